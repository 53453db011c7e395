"""Fault class 8 (issue 26): readers beside writers. `extract` adding a split to a store while `generate` (or
`train`) reads it: the reader keeps serving the rows it knew (new chunk files never replace old ones), a reader
opened meanwhile sees a whole store (old or new splits, never a half-described one), and generate's predictions
do not change; the same for `generate` beside `extract --merge` compacting its store (a reader opened before the
merge, in one process: tests/test_faults_tampered.py)."""

from __future__ import annotations

import numpy as np
from faultkit import children, mmcot, start_mmcot, world  # noqa: F401 (fixtures)


def _store_without_val(world, tmp_path):
    feats = tmp_path / "feats"
    res = mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,test", "--out", feats,
                "--workers", "0", "--chunk-size", "1")
    assert res.exit_code == 0, res.stderr
    return feats


ADD_VAL = ["-q", "extract", "-b", "patches", "--split", "val", "--workers", "0", "--chunk-size", "1"]


def test_a_reader_opened_before_a_split_is_added_reads_the_same_rows(world, tmp_path):
    from mmcot_cli.features.store import open_store

    feats = _store_without_val(world, tmp_path)
    reader = open_store(feats)
    before = {q: reader.read(q) for q in reader.qids()}
    assert mmcot(*ADD_VAL, "--data", world.data, "--out", feats).exit_code == 0
    for q, row in before.items():
        assert np.array_equal(reader.read(q), row)
    fresh = open_store(feats)
    assert set(fresh.qids()) > set(before) and "val" in fresh.manifest["splits"]


def test_generate_beside_an_extract_adding_a_split_real_processes(world, tmp_path, children):
    """generate runs again and again while another process adds the val split (one chunk per image): every run
    exits 0 with the predictions of the undisturbed store."""
    feats = _store_without_val(world, tmp_path)
    gen = ["-q", "generate", "--run", world.run, "--data", world.data, "--split", "test", "--device", "cpu",
           "--features", feats]
    assert mmcot(*gen, "--out", tmp_path / "ref.jsonl").exit_code == 0
    reference = (tmp_path / "ref.jsonl").read_text()
    writer = start_mmcot(*ADD_VAL, "--data", world.data, "--out", feats)
    children.append(writer)
    runs = beside = 0
    while writer.poll() is None or runs < 2:
        beside += writer.poll() is None
        res = mmcot(*gen, "--out", tmp_path / f"p{runs}.jsonl")
        assert res.exit_code == 0, res.stderr
        assert (tmp_path / f"p{runs}.jsonl").read_text() == reference
        runs += 1
    assert writer.wait() == 0, writer.stderr.read()
    assert beside >= 1  # at least one generate started while the split was being added
    assert mmcot(*gen, "--split", "val", "--out", tmp_path / "val.jsonl").exit_code == 0  # the new split serves


def test_generate_beside_an_extract_merge_compacting_its_store_real_processes(world, tmp_path, children):
    """The issue's case: `generate` lost its job while `extract --merge` compacted the store it read (one chunk
    file per image, replaced by shards). generate runs again and again while another process merges: every run
    exits 0 with the predictions of the undisturbed store, and the merged store serves the same."""
    feats = tmp_path / "feats"
    res = mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--out", feats,
                "--workers", "0", "--chunk-size", "1")
    assert res.exit_code == 0, res.stderr
    gen = ["-q", "generate", "--run", world.run, "--data", world.data, "--split", "test", "--device", "cpu",
           "--features", feats]
    assert mmcot(*gen, "--out", tmp_path / "ref.jsonl").exit_code == 0
    reference = (tmp_path / "ref.jsonl").read_text()
    writer = start_mmcot("-q", "extract", "--merge", feats)
    children.append(writer)
    runs = beside = 0
    while writer.poll() is None or runs < 2:
        beside += writer.poll() is None
        res = mmcot(*gen, "--out", tmp_path / f"p{runs}.jsonl")
        assert res.exit_code == 0, res.stderr
        assert (tmp_path / f"p{runs}.jsonl").read_text() == reference
        runs += 1
    assert writer.wait() == 0, writer.stderr.read()
    assert beside >= 1 and not list((feats / "chunks").glob("*.safetensors"))  # merged while generate read
