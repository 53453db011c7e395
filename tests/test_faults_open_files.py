"""Fault class 11 (issue 26): a low open-files limit on a store of many chunks. A reader keeps at most a quarter
of `ulimit -n` chunk files memory-mapped (the least recently used map is closed first), so extract, extract
--merge, train (DataLoader workers too), train --resume and generate work under `ulimit -n 128` on a store of 240
chunks; a limit too low for anything is one line naming the limit, not "cannot write"."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import TINY_TEXT, assert_one_error, mmcot

CHUNKS = 240  # a 400-problem tiny benchmark has 240 images; --chunk-size 1 gives one chunk each


def _limited(n: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return apply


def limited(limit: int, *args) -> subprocess.CompletedProcess:
    """`python -m mmcot_cli ARGS` under `ulimit -n LIMIT` (set in the child before Python starts)."""
    return subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=_limited(limit), timeout=600)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


TRAIN = ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--text-model", "t5-scratch", "--batch-size", "8",
         "--val-split", "val", *TINY_TEXT]
EXTRACT = ["-q", "extract", "-b", "patches", "--split", "train,val,test", "--chunk-size", "1"]


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """data/ (400 problems, 240 with an image), feats/ (240 chunks) and run/ trained on them, without a limit."""
    root = tmp_path_factory.mktemp("many-chunks")
    for args in (["-q", "demo", "--generate-only", "--tiny", "--problems", "400", "--out", root / "bench"],
                 ["-q", "prepare", root / "bench", "--out", root / "data"],
                 [*EXTRACT, "--data", root / "data", "--out", root / "feats", "--workers", "0"],
                 ["-q", *TRAIN, "--data", root / "data", "--features", root / "feats", "--out", root / "run",
                  "--epochs", "1", "--workers", "0"],
                 ["-q", "generate", "--run", root / "run", "--data", root / "data", "--split", "train", "--features",
                  root / "feats", "--out", root / "preds.jsonl"]):
        res = mmcot(*args)
        assert res.exit_code == 0, f"{args[:3]}: {res.stderr}"
    assert len(list((root / "feats" / "chunks").rglob("*.safetensors"))) == CHUNKS
    return root


_READ_ALL = """
import os, sys
from mmcot_cli.features.store import open_store
from mmcot_cli.features.store_files import map_budget
store = open_store(sys.argv[1])
before = len(os.listdir("/proc/self/fd"))
rows = [store.read(q) for q in store.qids()]
during = len(os.listdir("/proc/self/fd")) - before
again = store.read(store.qids()[0])  # an evicted chunk is mapped again: the same row
print(map_budget(), len(store._maps), during, sum(r is not None for r in rows), bool((again == rows[0]).all()))
"""


def test_a_reader_maps_a_bounded_number_of_chunks(many):
    """Reading every row of the 240-chunk store under ulimit -n 128 keeps at most 32 maps (and descriptors)."""
    proc = ok(subprocess.run([sys.executable, "-c", _READ_ALL, str(many / "feats")], capture_output=True, text=True,
                             preexec_fn=_limited(128), timeout=300))
    budget, maps, during, rows, same = proc.stdout.split()
    assert (budget, maps, rows, same) == ("32", "32", str(CHUNKS), "True")
    assert int(during) <= 32


def test_extract_writes_many_chunks_under_the_limit(many, tmp_path):
    ok(limited(128, *EXTRACT, "--data", many / "data", "--out", tmp_path / "feats", "--workers", "2"))
    assert len(list((tmp_path / "feats" / "chunks").rglob("*.safetensors"))) == CHUNKS
    ok(limited(128, *EXTRACT, "--data", many / "data", "--out", tmp_path / "feats", "--workers", "0"))  # resumed


def test_extract_merge_under_the_limit(many, tmp_path):
    import shutil

    shutil.copytree(many / "feats", tmp_path / "feats")
    ok(limited(128, "-q", "extract", "--merge", tmp_path / "feats"))
    assert not list((tmp_path / "feats" / "chunks").rglob("*.safetensors"))
    ok(limited(128, "-q", "generate", "--run", many / "run", "--data", many / "data", "--split", "train",
               "--features", tmp_path / "feats", "--out", tmp_path / "p.jsonl"))
    assert (tmp_path / "p.jsonl").read_text() == (many / "preds.jsonl").read_text()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_train_and_resume_under_the_limit(many, tmp_path, workers):
    args = [*TRAIN, "--data", many / "data", "--features", many / "feats", "--out", tmp_path / "run", "--workers",
            workers]
    ok(limited(128, "-q", *args, "--epochs", "1"))
    ok(limited(128, "-q", *args, "--epochs", "2", "--resume"))
    assert (tmp_path / "run" / "model").is_dir()


def test_generate_under_the_limit_gives_the_same_predictions(many, tmp_path):
    ok(limited(128, "-q", "generate", "--run", many / "run", "--data", many / "data", "--split", "train",
               "--features", many / "feats", "--out", tmp_path / "p.jsonl"))
    assert (tmp_path / "p.jsonl").read_text() == (many / "preds.jsonl").read_text()


def test_a_limit_too_low_names_the_limit(many, tmp_path):
    res = limited(8, "-q", "generate", "--run", many / "run", "--data", many / "data", "--split", "train",
                  "--features", many / "feats", "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, "too many open files", "ulimit -n) is 8")
    assert not (tmp_path / "p.jsonl").exists()
