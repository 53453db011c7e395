"""Fault class 2 (issue 17): state that no longer matches. A run records the sha256 of its inputs and `--resume`
refuses other data (one line; --allow-changed-data continues and is recorded); a feature store knows its chunk
files by content checksum, not size, and names a file that holds other rows than its name says; `prepare` leaves
only its own split files in DATA_DIR."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from faultkit import TINY_TEXT, assert_one_error, checksums, jsonl_source, mmcot, world  # noqa: F401


def _train(world, data, out, *extra, features=None):
    return mmcot("-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--text-model",
                 "t5-scratch", "--out", out, "--val-split", "none", "--batch-size", "2", "--save-every", "2",
                 *(["--features", features] if features else []), *TINY_TEXT, *extra)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_refuses_changed_training_data(world, tmp_path):
    """The issue's case: --resume after the train split shrank ran fewer steps with lr 0 for the last epochs
    and exited 0. Now it is refused, naming the file; --allow-changed-data goes on and is recorded."""
    data = world.copy("data", tmp_path)
    run = tmp_path / "run"
    assert _train(world, data, run, "--epochs", "1").exit_code == 0
    recorded = json.loads((run / "run_config.json").read_text())["inputs"]
    assert set(recorded) == {"--data train split"}
    rows = _rows(data / "train.jsonl")
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:len(rows) // 4]))
    before = checksums(run)
    res = _train(world, data, run, "--epochs", "2", "--resume")
    assert_one_error(res, 2, str(data / "train.jsonl"), "--allow-changed-data", "changed")
    assert checksums(run) == before  # refused before anything was written
    res = _train(world, data, run, "--epochs", "2", "--resume", "--allow-changed-data")
    assert res.exit_code == 0, res.stderr
    meta = json.loads((run / "run_config.json").read_text())
    (changed,) = meta["changed_inputs"]
    assert set(changed["changed"]) == {"--data train split"} and changed["resumed_from"].startswith("step-")
    assert meta["inputs"]["--data train split"]["sha256"] == changed["changed"]["--data train split"]["now"]
    # run_config.json describes the run as it continued: the raised --epochs and the smaller example count.
    assert meta["train_config"]["epochs"] == 2 and meta["train_examples"] == len(rows) // 4
    assert _train(world, data, run, "--epochs", "3", "--resume").exit_code == 0  # the new data is the reference
    meta = json.loads((run / "run_config.json").read_text())
    assert meta["train_config"]["epochs"] == 3 and len(meta["changed_inputs"]) == 1
    res = _train(world, data, run, "--epochs", "3", "--resume")  # finished: nothing trains, nothing changes
    assert res.exit_code == 0 and "none trained now" in res.stderr and "None" not in res.stderr


def test_resume_refuses_a_store_extracted_again_differently(world, tmp_path):
    feats = world.copy("feats", tmp_path)
    run = tmp_path / "run"
    assert _train(world, world.data, run, "--epochs", "1", features=feats).exit_code == 0
    shutil.rmtree(feats)
    assert mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--out", feats,
                 "--workers", "0", "--dtype", "float32").exit_code == 0
    res = _train(world, world.data, run, "--epochs", "2", "--resume", features=feats)
    assert_one_error(res, 2, "--features", str(feats.resolve()))


def test_resume_of_a_store_that_only_grew_or_was_merged_is_not_refused(world, tmp_path):
    """The store's fingerprint covers what the run reads (identity, the train split's description), so adding
    another split or compacting the store does not stop a resume."""
    data = world.copy("data", tmp_path)
    feats = tmp_path / "feats"
    ext = ["-q", "extract", "-b", "patches", "--data", data, "--workers", "0", "--chunk-size", "8", "--out", feats]
    assert mmcot(*ext, "--split", "train").exit_code == 0
    run = tmp_path / "run"
    assert _train(world, data, run, "--epochs", "1", features=feats).exit_code == 0
    assert mmcot(*ext, "--split", "test").exit_code == 0
    assert mmcot("-q", "extract", "--merge", feats).exit_code == 0
    res = _train(world, data, run, "--epochs", "2", "--resume", features=feats)
    assert res.exit_code == 0, res.stderr
    meta = json.loads((run / "run_config.json").read_text())  # it went on: epoch 2 trained, nothing "changed"
    assert meta["train_config"]["epochs"] == 2 and not meta.get("changed_inputs")
    assert [r["epoch"] for r in _rows(run / "metrics.jsonl") if "train_loss" in r] == [1, 2]


def test_run_config_without_fingerprints_still_resumes(world, tmp_path):
    """run_config.json files written before fingerprints existed load and resume (nothing to compare)."""
    run = tmp_path / "run"
    assert _train(world, world.data, run, "--epochs", "1").exit_code == 0
    meta = json.loads((run / "run_config.json").read_text())
    del meta["inputs"], meta["changed_inputs"]
    (run / "run_config.json").write_text(json.dumps(meta))
    res = _train(world, world.data, run, "--epochs", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    meta = json.loads((run / "run_config.json").read_text())  # resumed to the end, fingerprints recorded now
    assert meta["train_config"]["epochs"] == 2 and meta["inputs"]
    assert [r["epoch"] for r in _rows(run / "metrics.jsonl") if "train_loss" in r] == [1, 2]


def test_allow_changed_data_needs_resume(world, tmp_path):
    assert_one_error(_train(world, world.data, tmp_path / "r", "--allow-changed-data"), 2, "--resume")


def _chunk_names(store):
    return sorted(p.name for p in (store / "chunks").glob("*.safetensors"))


def test_swapped_same_size_chunk_files_are_named_and_repaired(world, tmp_path):
    """The issue's case: two same-size chunk files swapped served 32 qids another problem's features, because
    index.json knew files by size. Now the swap is named (one line) and a rerun of extract repairs it."""
    from mmcot_cli.features.store import open_store

    store = world.copy("feats", tmp_path)
    good = open_store(store)
    expected = {q: good.read(q) for q in good.qids()}
    by_size: dict[int, list] = {}
    for p in sorted((store / "chunks").glob("*.safetensors")):
        by_size.setdefault(p.stat().st_size, []).append(p)
    a, b = next(files for files in by_size.values() if len(files) > 1)[:2]  # same size: index.json's only key
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    res = _train(world, world.data, tmp_path / "run", "--epochs", "1", features=store)
    line = assert_one_error(res, 1, "swapped")
    assert a.name in line or b.name in line
    res = mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--out", store,
                "--workers", "0", "--chunk-size", "8")
    assert res.exit_code == 0, res.stderr
    assert a.name in res.stderr and b.name in res.stderr  # reported as extracted again
    repaired = open_store(store)
    assert all(np.array_equal(repaired.read(q), row) for q, row in expected.items())


def test_index_cache_keyed_by_checksum_not_size(world, tmp_path):
    """A chunk rewritten with its rows in another order (same name, same size) must not be read through the old
    cached qid → row index."""
    from mmcot_cli.features.store import open_store
    from mmcot_cli.features.store_files import read_data_file, write_data_file

    store = world.copy("feats", tmp_path)
    good = open_store(store)
    expected = {q: good.read(q) for q in good.qids()}
    path = store / "chunks" / "train-00000.safetensors"
    f = read_data_file(path, "chunks/train-00000.safetensors")
    rows, entry = f.read_rows(0, f.shape[0]), f.entries[0]
    size = path.stat().st_size
    write_data_file(path, rows[::-1], [{**entry, "qids": entry["qids"][::-1]}])
    assert path.stat().st_size == size  # same size: a size-keyed index.json would still be trusted
    store_now = open_store(store)
    assert all(np.array_equal(store_now.read(q), row) for q, row in expected.items())


def test_chunks_of_another_backbone_in_a_store_are_named_and_repaired(world, tmp_path):
    """What two extracts at once left before locks (manifest (49, 192), a chunk of (1, 2048)): reading names the
    file in one line instead of a 59-line ValueError in train; a rerun of extract replaces it."""
    from mmcot_cli.features.store_files import read_data_file, write_data_file

    store = world.copy("feats", tmp_path)
    path = store / "chunks" / "train-00001.safetensors"
    entry = read_data_file(path, "chunks/train-00001.safetensors").entries[0]
    write_data_file(path, np.zeros((len(entry["qids"]), 1, 2048), dtype=np.float16), [entry])
    res = _train(world, world.data, tmp_path / "run", "--epochs", "1", features=store)
    assert_one_error(res, 1, "train-00001.safetensors", "[1, 2048]")
    res = mmcot("-q", "extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--out", store,
                "--workers", "0", "--chunk-size", "8")
    assert res.exit_code == 0, res.stderr
    assert _train(world, world.data, tmp_path / "run2", "--epochs", "1", features=store).exit_code == 0


@pytest.mark.parametrize("second", ["fewer_splits", "other_source"])
def test_prepare_replaces_the_whole_data_dir(world, tmp_path, second):
    """The issue's case: prepare into an existing DATA_DIR with fewer --splits left the old train.jsonl (from
    another source), which prompts/train then read. Now DATA_DIR holds exactly the last prepare's splits."""
    data = tmp_path / "data"
    assert mmcot("-q", "prepare", world.bench, "--out", data).exit_code == 0
    assert sorted(p.name for p in data.glob("*.jsonl")) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    if second == "fewer_splits":
        res = mmcot("-q", "prepare", world.bench, "--out", data, "--splits", "test")
        left = ["test.jsonl"]
    else:
        src = jsonl_source(tmp_path / "src")
        (src.parent / "d.jsonl").write_text("".join(line.replace('"split": "train"', '"split": "minitrain"') + "\n"
                                                   for line in src.read_text().splitlines()))
        res = mmcot("-q", "prepare", src, "--out", data)
        left = ["minitrain.jsonl", "test.jsonl"]
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in data.glob("*.jsonl")) == left
    res = mmcot("prompts", data, "--split", "train")
    assert_one_error(res, 2, "no split 'train'", "test")
