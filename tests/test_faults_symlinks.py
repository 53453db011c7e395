"""Fault class 2 (issue 26): symbolic links. A lock file or temporary file planted as a link (or a hard link) to
another file is never created through, truncated or written, in every command that takes a lock: one line naming
the lock file, exit 1, the linked-to file unchanged. `--out` reached through a link to an input is refused.
Real files and links, real commands (nothing of the file system is mocked)."""

from __future__ import annotations

import os
import shutil

import pytest
from faultkit import (
    TINY_TEXT,
    assert_one_error,
    checksums,
    mmcot,
    predictions,
    world,  # noqa: F401 (fixture)
)

VICTIM_TEXT = "precious: must never be truncated or overwritten\n"


def _victim(tmp_path):
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text(VICTIM_TEXT)
    return victim


def _commands(world, tmp_path):
    """command name → (argv, the folder or file it writes): every writer that takes an output lock."""
    preds = predictions(world, tmp_path / "preds.jsonl")
    return {
        "prepare": (["prepare", world.bench, "--out", tmp_path / "data"], tmp_path / "data", "dir"),
        "extract": (["extract", "-b", "patches", "--data", world.data, "--split", "test", "--workers", "0",
                     "--out", tmp_path / "feats"], tmp_path / "feats", "dir"),
        "train": (["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                   "t5-scratch", "--out", tmp_path / "run", "--epochs", "1", "--limit-train", "4",
                   "--val-split", "none", *TINY_TEXT], tmp_path / "run", "dir"),
        "report": (["report", preds, "--data", world.data, "--out", tmp_path / "r" / "report.html"],
                   tmp_path / "r" / "report.html", "file"),
        "generate": (["generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--split", "test",
                      "--out", tmp_path / "p" / "preds.jsonl"], tmp_path / "p" / "preds.jsonl", "file"),
    }


def _lock_of(target, kind):
    return target / ".mmcot-lock" if kind == "dir" else target.parent / f".{target.name}.mmcot-lock"


@pytest.mark.parametrize("name", ["prepare", "extract", "train", "report", "generate"])
@pytest.mark.parametrize("link", ["symlink", "dangling", "hardlink"])
def test_planted_lock_file_is_never_written_through(world, tmp_path, name, link):
    argv, target, kind = _commands(world, tmp_path)[name]
    victim = _victim(tmp_path)
    lock = _lock_of(target, kind)
    lock.parent.mkdir(parents=True, exist_ok=True)
    if link == "symlink":
        lock.symlink_to(victim)
    elif link == "dangling":  # O_CREAT through it would create a file wherever it points
        lock.symlink_to(tmp_path / "elsewhere" / "created-through-link")
    else:
        os.link(victim, lock)
    res = mmcot(*argv)
    assert_one_error(res, 1, str(lock))
    assert victim.read_text() == VICTIM_TEXT
    assert not (tmp_path / "elsewhere" / "created-through-link").exists()
    assert not (target.is_file() or (target.is_dir() and any(p.name != lock.name for p in target.iterdir())))


def test_generate_into_a_run_folder_with_a_planted_folder_lock(world, tmp_path):
    """generate --out inside a RUN_DIR takes the run folder's lock (shared): a link planted there is refused and
    what it points to keeps its bytes (it used to be truncated)."""
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    victim = _victim(tmp_path)
    (run / ".mmcot-lock").symlink_to(victim)
    before = checksums(run)
    res = mmcot("generate", "--run", run, "--data", world.data, "--device", "cpu", "--split", "test",
                "--out", run / "preds.jsonl")
    assert_one_error(res, 1, str(run / ".mmcot-lock"), "symbolic link")
    assert victim.read_text() == VICTIM_TEXT and checksums(run) == before


@pytest.mark.parametrize("case", ["generate-default-out", "train-resume", "extract-merge", "rationales-filter",
                                  "demo"])
def test_planted_lock_in_the_other_writers(world, tmp_path, case):
    """The writers beyond the five above, each with a lock link planted where it takes its lock (generate into the
    run folder by default, train --resume, extract --merge, rationales filter, demo): refused naming the link,
    what it points to unchanged."""
    run, feats = world.copy("run", tmp_path), world.copy("feats", tmp_path)
    preds = predictions(world, tmp_path / "preds.jsonl")
    argv, lock = {
        "generate-default-out": (["generate", "--run", run, "--data", world.data, "--device", "cpu"],
                                 run / ".preds-test.jsonl.mmcot-lock"),
        "train-resume": (["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data,
                          "--text-model", "t5-scratch", "--out", run, "--features", feats, "--epochs", "2",
                          "--batch-size", "8", "--limit-train", "8", "--val-split", "none", "--save-every", "1",
                          *TINY_TEXT, "--resume"], run / ".mmcot-lock"),
        "extract-merge": (["extract", "--merge", feats], feats / ".mmcot-lock"),
        "rationales-filter": (["rationales", "filter", preds, "--data", world.data, "--out", tmp_path / "f.jsonl"],
                              tmp_path / ".f.jsonl.mmcot-lock"),
        "demo": (["demo", "--generate-only", "--tiny", "--out", tmp_path / "demo"], tmp_path / "demo" / ".mmcot-lock"),
    }[case]
    victim = _victim(tmp_path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.symlink_to(victim)
    before = checksums(run, feats)
    res = mmcot(*argv)
    assert_one_error(res, 1, str(lock), "symbolic link")
    assert victim.read_text() == VICTIM_TEXT and checksums(run, feats) == before


def test_planted_temporary_files_are_not_followed(world, tmp_path):
    """Debris names of the atomic writers (.NAME.XXXXXXXX.tmp, .NAME.old) planted as links to a file and to a
    folder elsewhere: the sweep removes the links only, never what they point to, and the command succeeds."""
    data = tmp_path / "data"
    assert mmcot("-q", "prepare", world.bench, "--out", data).exit_code == 0
    victim = _victim(tmp_path)
    keep = tmp_path / "elsewhere" / "folder"
    keep.mkdir()
    (keep / "inside.txt").write_text(VICTIM_TEXT)
    (data / ".train.jsonl.abcdEFGH.tmp").symlink_to(victim)
    (data / ".images.abcdEFGH.tmp").symlink_to(keep)
    (tmp_path / ".data.old").symlink_to(keep)
    res = mmcot("-q", "prepare", world.bench, "--out", data)
    assert res.exit_code == 0, res.stderr
    assert victim.read_text() == VICTIM_TEXT and (keep / "inside.txt").read_text() == VICTIM_TEXT


def test_metrics_log_planted_as_link_is_not_appended_through(world, tmp_path):
    """train --resume rewrites then appends to metrics.jsonl: a link planted in its place is replaced by the run's
    own log (an atomic rename replaces the link), never appended through."""
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    victim = tmp_path / "victim.jsonl"  # a log elsewhere, as the run's own looks (it is read before resuming)
    shutil.copy(run / "metrics.jsonl", victim)
    before = checksums(victim)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    res = mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data,
                "--text-model", "t5-scratch", "--out", run, "--features", world.feats, "--epochs", "2",
                "--batch-size", "8", "--limit-train", "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT,
                "--resume")
    assert res.exit_code == 0, res.stderr
    assert checksums(victim) == before and not (run / "metrics.jsonl").is_symlink()


@pytest.mark.parametrize("what", ["file", "source", "data", "below-data"])
def test_out_through_a_link_to_an_input(world, tmp_path, what):
    preds = predictions(world, tmp_path / "preds.jsonl")
    link = tmp_path / "link"
    if what == "file":  # report --out a link to the predictions it reads
        link.symlink_to(preds)
        argv, inputs, needle = ["report", preds, "--data", world.data, "--out", link], preds, "is the input"
    elif what == "source":  # prepare --out a link to its source folder
        link.symlink_to(world.bench, target_is_directory=True)
        argv, inputs, needle = ["prepare", world.bench, "--out", link], world.bench, "is the input"
    else:  # extract --out a link to the DATA_DIR it reads, or a folder below that link
        link.symlink_to(world.data, target_is_directory=True)
        out = link if what == "data" else link / "feats"
        argv = ["extract", "-b", "patches", "--data", world.data, "--split", "test", "--workers", "0", "--out", out]
        inputs, needle = world.data, "input" if what == "data" else "prepare"
    before = checksums(inputs)
    res = mmcot(*argv)
    assert_one_error(res, 2, needle)
    assert checksums(inputs) == before and link.is_symlink()


def test_append_never_follows_a_link(tmp_path):
    """The one appender of the package (mmcot_cli.io.append_jsonl, metrics.jsonl): a link is one error line."""
    from mmcot_cli.errors import DataError
    from mmcot_cli.io import append_jsonl

    victim = _victim(tmp_path)
    (tmp_path / "log.jsonl").symlink_to(victim)
    with pytest.raises(DataError, match="symbolic link"):
        append_jsonl(tmp_path / "log.jsonl", {"step": 1})
    assert victim.read_text() == VICTIM_TEXT
