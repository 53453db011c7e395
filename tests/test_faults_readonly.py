"""Fault class 1 (issue 26): read-only places. A DATA_DIR, feature store and run folder on a read-only mount:
readers keep working (generate --out elsewhere, train from the store, score), writers refuse with one line naming
the folder before any work, and nothing in the read-only place changes (a real read-only bind mount)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

import pytest
from faultkit import TINY_TEXT, assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)


@contextlib.contextmanager
def read_only_copy(world, tmp_path):
    """data/, feats/ and run/ copied, then seen through a read-only bind mount (root only)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    for name in ("data", "feats", "run"):
        shutil.copytree(getattr(world, name), src / name)
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", src, ro], capture_output=True).returncode != 0:
        pytest.skip("a read-only bind mount needs root")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", ro], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        before = checksums(ro)
        yield ro
        assert checksums(ro) == before and sorted(os.listdir(ro)) == ["data", "feats", "run"]
    finally:
        subprocess.run(["umount", "-l", ro], capture_output=True)


def _train(data, feats, out, *extra):
    return mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--text-model",
                 "t5-scratch", "--out", out, "--features", feats, "--epochs", "1", "--batch-size", "8",
                 "--limit-train", "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT, *extra)


def test_readers_work_from_a_read_only_place(world, tmp_path):
    with read_only_copy(world, tmp_path) as ro:
        out = tmp_path / "p.jsonl"
        res = mmcot("-q", "generate", "--run", ro / "run", "--data", ro / "data", "--features", ro / "feats",
                    "--device", "cpu", "--out", out)
        assert res.exit_code == 0, res.stderr
        assert mmcot("score", out, "--data", ro / "data").exit_code == 0
        res = _train(ro / "data", ro / "feats", tmp_path / "run2")
        assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize("case", ["generate-into-run", "resume", "merge", "extract", "report", "prepare"])
def test_writers_refuse_a_read_only_place(world, tmp_path, case):
    with read_only_copy(world, tmp_path) as ro:
        if case == "generate-into-run":
            res, named = mmcot("generate", "--run", ro / "run", "--data", ro / "data", "--device", "cpu"), ro / "run"
        elif case == "resume":
            res, named = _train(ro / "data", ro / "feats", ro / "run", "--epochs", "2", "--resume"), ro / "run"
        elif case == "merge":
            res, named = mmcot("extract", "--merge", ro / "feats"), ro / "feats"
        elif case == "extract":
            res = mmcot("extract", "-b", "patches", "--data", ro / "data", "--split", "test", "--out", ro / "f2",
                        "--workers", "0")
            named = ro / "f2"
        elif case == "report":
            res = mmcot("report", ro / "run", "--data", ro / "data", "--out", ro / "r.html")
            named = ro / "r.html"
        else:
            res, named = mmcot("prepare", world.bench, "--out", ro / "data2"), ro / "data2"
        assert_one_error(res, 1, str(named), "Read-only file system")
