"""Fault class 9 (issue 26): scale. `prepare` streams problems.json (mmcot_cli.data.json_stream): the memory it
holds grows with the number of qids (split lists, an offset index), not with the problems' text; a problems.json
cut short, or truncated while prepare reads it, is one line naming the file and the position, and DATA_DIR is
left as it was. `score` streams a predictions JSONL (benchmarks/bench_prepare_scale.py has the figures)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest
from conftest import REPO_ROOT
from faultkit import assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_prepare_scale",
                                                  REPO_ROOT / "benchmarks" / "bench_prepare_scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks its module up)
    spec.loader.exec_module(module)
    return module


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_prepare_memory_grows_with_the_qids_not_with_the_problems(tmp_path):
    from mmcot_cli.data.readers import prepare_source
    from mmcot_cli.io import read_json

    bench = _bench()
    sizes = (1000, 10000)
    sources = {n: bench.make_source(tmp_path / f"src{n}", n) for n in sizes}
    on_disk = {n: (sources[n] / "problems.json").stat().st_size for n in sizes}
    file_growth = (on_disk[10000] - on_disk[1000]) / 9000  # bytes of problems.json per added problem (~2 kB)
    peaks = {n: _peak(lambda n=n: prepare_source(sources[n], tmp_path / f"data{n}")) for n in sizes}
    growth = (peaks[10000] - peaks[1000]) / 9000
    assert growth < 0.35 * file_growth, (peaks, on_disk)
    assert sum(1 for _ in open(tmp_path / "data10000" / "train.jsonl")) == 6000
    # The bound tells the two ways apart: holding the problems whole (as prepare did) takes more than the file.
    whole = _peak(lambda: read_json(sources[10000] / "problems.json", surrogates=True))
    assert whole / 10000 > file_growth


def test_prepare_reads_blocks_of_any_size_the_same(world, tmp_path, monkeypatch):
    """Block boundaries fall inside keys, strings, \\u escapes and numbers: the records come out the same."""
    import mmcot_cli.data.json_stream as json_stream

    src = tmp_path / "bench"
    shutil.copytree(world.bench, src)
    problems = json.loads((src / "problems.json").read_text())
    first = next(iter(problems))
    problems[first]["lecture"] = "caf\u00e9 \u2028 \U0001f600 \x01 \\ \" end"  # escapes, multi-byte characters
    (src / "problems.json").write_text(json.dumps(problems, indent=1, ensure_ascii=False), encoding="utf-8")
    assert mmcot("-q", "prepare", src, "--out", tmp_path / "whole").exit_code == 0
    for block in (1, 7, 64):
        monkeypatch.setattr(json_stream, "BLOCK", block)
        res = mmcot("-q", "prepare", src, "--out", tmp_path / f"b{block}")
        assert res.exit_code == 0, res.stderr
        for split in ("train", "val", "test"):
            assert (tmp_path / f"b{block}" / f"{split}.jsonl").read_bytes() == \
                (tmp_path / "whole" / f"{split}.jsonl").read_bytes()


def _cut_points(text: str) -> dict[str, int]:
    inside_string = text.index('"question"') + 5
    between = text.index(",", text.index("}")) + 1  # just after a member's closing brace and comma
    number = re.search(r'"answer": \d', text).end()  # right after the first digit of a number
    return {"inside a string": inside_string, "between members": between, "after a digit": number,
            "before the last brace": text.rstrip().rindex("}")}


@pytest.mark.parametrize("where", ["inside a string", "between members", "after a digit", "before the last brace"])
def test_prepare_names_the_file_and_position_of_a_problems_json_cut_short(world, tmp_path, where):
    src = tmp_path / "bench"
    shutil.copytree(world.bench, src)
    problems = src / "problems.json"
    data = world.copy("data", tmp_path)
    before = checksums(data)
    text = problems.read_text()
    problems.write_text(text[:_cut_points(text)[where]])
    for out in (data, tmp_path / "fresh"):
        res = mmcot("prepare", src, "--out", out)
        line = assert_one_error(res, 1, "ends at byte", "truncated while it was read")
        assert re.search(rf"{re.escape(str(problems))}:\d+:\d+: ", line), line
    assert checksums(data) == before  # the DATA_DIR prepared earlier is untouched
    assert not (tmp_path / "fresh").exists()


def _read_position(pid: int, path: str) -> int | None:
    """How far process `pid` has read `path` (its file offset), or None while it has not opened it."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                        return int(info.readline().split()[1])
            except OSError:
                continue
    except OSError:
        return None
    return None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="needs Linux's /proc")
def test_prepare_stops_when_problems_json_is_truncated_while_it_reads(tmp_path):
    """A real process, stopped (SIGSTOP) in the middle of reading problems.json, the file truncated under it,
    then let go: one line naming the file, nothing written."""
    source = _bench().make_source(tmp_path / "src", 6000)  # ~12 MB: a dozen blocks
    problems = str((source / "problems.json").resolve())
    size = os.path.getsize(problems)
    proc = subprocess.Popen([sys.executable, "-m", "mmcot_cli", "prepare", str(source), "--out",
                             str(tmp_path / "data")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, position = time.monotonic() + 120, None
        while proc.poll() is None and time.monotonic() < deadline:
            position = _read_position(proc.pid, problems)
            if position:  # past the first block (opening it to check its kind reads nothing)
                proc.send_signal(signal.SIGSTOP)
                position = _read_position(proc.pid, problems)
                break
            time.sleep(0.0005)
        assert position and position < size, f"never caught it mid-read (at {position} of {size} bytes)"
        os.truncate(problems, position // 2)
        proc.send_signal(signal.SIGCONT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"error: {problems}") and ("ends at byte" in lines[0] or "changed while" in lines[0])
    assert not (tmp_path / "data").exists()
