"""Shared by the fault-injection tests (tests/test_faults_*.py): a tiny world built once through the real CLI,
`mmcot` run in-process through its console entry point, checksums, and the "one clean error line" assertion."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_TEXT = ["--text-option", "d_model=16", "--text-option", "layers=1", "--text-option", "heads=2",
             "--text-option", "d_ff=32"]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def mmcot(*args) -> Result:
    """`mmcot ARGS` in this process through the console entry point (mmcot_cli.cli.main): exit code, stdout and
    stderr exactly as a user sees them (usage errors as one line, not click's box)."""
    from mmcot_cli.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    argv = sys.argv
    sys.argv = ["mmcot", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return Result(code, out.getvalue(), err.getvalue())


def mmcot_subprocess(*args, stdout=subprocess.PIPE, env=None) -> subprocess.CompletedProcess:
    """`python -m mmcot_cli ARGS` in a child process (for real stdout faults: /dev/full, closed pipes)."""
    return subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, timeout=300)


# Not part of a fault's error: what `mmcot train` prints as it goes (mmcot_cli.training.log_lines), and score's
# warning that the tiny world's random-init model gives every item the same answer (it does).
TRAIN_PROGRESS_LINE = re.compile(r"^(train \S+: (step \d+/\d+|epoch \d+)  |warning: every answer is \([A-Z]\): )")


def assert_one_error(result, code: int, *needles: str) -> str:
    """Exit `code`, exactly one non-empty stderr line starting with "error:" (besides train's progress lines),
    containing every needle, and no traceback. Returns the line."""
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    exit_code = getattr(result, "exit_code", None)
    exit_code = result.returncode if exit_code is None else exit_code
    lines = [line for line in stderr.splitlines() if line.strip() and not TRAIN_PROGRESS_LINE.match(line)]
    assert exit_code == code, f"exit {exit_code} != {code}; stderr:\n{stderr}"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def checksums(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the given files/folders (to prove inputs are unchanged)."""
    sums = {}
    for root in roots:
        root = Path(root)
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            sums[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return sums


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a failed write could leave: anything named *.tmp (files or folders)."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name)


@dataclass
class World:
    root: Path
    bench: Path  # ScienceQA-layout synthetic benchmark (problems.json, pid_splits.json, images/)
    data: Path  # DATA_DIR from `mmcot prepare`
    feats: Path  # patches FEATURES_DIR from `mmcot extract`
    run: Path  # tiny answer-stage run (QCM-A) trained on the features

    def copy(self, name: str, dest: Path) -> Path:
        """A private copy of one part of the world (tests that damage it)."""
        target = dest / name
        shutil.copytree(getattr(self, name), target)
        return target


def build_world(root: Path) -> World:
    os.umask(0o022)
    bench, data, feats, run = root / "bench", root / "data", root / "feats", root / "run"
    for args in (
        ["-q", "demo", "--generate-only", "--tiny", "--out", bench],
        ["-q", "prepare", bench, "--out", data],
        ["-q", "extract", "-b", "patches", "--data", data, "--split", "train,val,test", "--out", feats,
         "--workers", "0", "--chunk-size", "8"],
        ["-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--text-model",
         "t5-scratch", "--out", run, "--features", feats, "--epochs", "1", "--batch-size", "8", "--limit-train",
         "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT],
    ):
        result = mmcot(*args)
        assert result.exit_code == 0, f"{args}: {result.stderr}"
    return World(root, bench, data, feats, run)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    """The tiny world, built once per test session (about 15 s), shared read-only by every fault test."""
    return build_world(tmp_path_factory.mktemp("faults-world"))


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "16k", readonly: bool = False):
    """A small tmpfs at `path` (root only): real ENOSPC / EROFS. Skips the test where mounting is impossible."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a tmpfs needs root (real ENOSPC/EROFS); the monkeypatched tests cover the logic")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --------------------------------------------------------------------------- inputs of the later commands


def jsonl_source(folder: Path, extra: list[dict] | None = None) -> Path:
    """A generic-JSONL source (`prepare --format jsonl`): four problems in train, two in test."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"q{i}", "split": "train" if i < 4 else "test", "question": f"Question {i}?",
             "choices": ["yes", "no"], "answer": i % 2} for i in range(6)] + list(extra or [])
    path = folder / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def aokvqa_item(i: int) -> dict:
    return {"question_id": f"a{i}", "image_id": i, "question": f"What is {i}?", "choices": ["a", "b", "c", "d"],
            "correct_choice_idx": i % 4, "direct_answers": ["a"] * 10, "difficult_direct_answer": False,
            "rationales": ["because a", "since a", "a it is"]}


def aokvqa_source(folder: Path, splits: dict[str, list[dict]] | None = None) -> Path:
    """An A-OKVQA folder (aokvqa_v1p0_<split>.json), no images."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = splits or {"train": [aokvqa_item(i) for i in range(4)], "val": [aokvqa_item(i) for i in (4, 5)]}
    for split, items in splits.items():
        (folder / f"aokvqa_v1p0_{split}.json").write_text(json.dumps(items))
    return folder


def predictions(world: World, path: Path, split: str = "test") -> Path:
    """A predictions file for the world's `split` (every answer (A)): input of report, compare, rationales."""
    rows = [json.loads(line) for line in (world.data / f"{split}.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps({"qid": r["qid"], "prediction": "Solution: x. The answer is (A)."}) + "\n"
                            for r in rows))
    return path


def release_features(world: World, folder: Path) -> tuple[Path, Path]:
    """An original-release-style feature file for the `patches` backbone and its name_map.json (every world
    problem with an image, all splits)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    qids = [json.loads(line)["qid"] for s in ("train", "val", "test")
            for line in (world.data / f"{s}.jsonl").read_text().splitlines() if json.loads(line)["image"]]
    np.save(folder / "patches.npy", np.zeros((len(qids), 49, 192), dtype=np.float32))
    (folder / "name_map.json").write_text(json.dumps({q: str(i) for i, q in enumerate(qids)}))
    return folder / "patches.npy", folder / "name_map.json"


# --------------------------------------------------------------------------- other processes (locks, signals)

_HOLDER = r"""
import fcntl, json, os, sys, time
from pathlib import Path

target, command, kind = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if kind == "shard":  # a shard job of a store: mmcot's own shared lock + the shard's lock
    from mmcot_cli.outputs import claim_output_dir
    held = claim_output_dir(target, "extract", shard=command)
    held.__enter__()
else:  # plain flock, as any writer holding the output would
    lock = target / ".mmcot-lock" if kind == "dir" else target.parent / f".{target.name}.mmcot-lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "command": "mmcot " + command, "since": "now"}).encode())
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@contextlib.contextmanager
def other_writer(target: Path, command: str, kind: str = "dir"):
    """A real second process holding `target`'s output lock, as a running `mmcot COMMAND` does; yields its pid.
    kind "dir": the folder's .mmcot-lock; "file": .NAME.mmcot-lock beside the file (both plain flock, not mmcot's
    code); "shard": `command` is a shard ("0-of-2") of store `target`, held through mmcot's claim."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(target), command, kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.fixture
def children():
    """Processes a test starts (each in its own process group, see start_mmcot): whatever is left of them, and of
    their own children, is killed when the test ends, passed or failed."""
    import signal

    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


def start_mmcot(*args, env=None) -> subprocess.Popen:
    """`python -m mmcot_cli ARGS` started in the background (its own process group), stderr captured."""
    return subprocess.Popen([sys.executable, "-m", "mmcot_cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    """Poll `condition()` every 10 ms until it returns something truthy (returned) or `timeout` s pass."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def lock_holder(folder: Path) -> int | None:
    """The pid written in `folder`/.mmcot-lock by the process holding it (None while there is none)."""
    try:
        return json.loads((folder / ".mmcot-lock").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren …), read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":  # zombies have ended; only their exit status is left
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"
