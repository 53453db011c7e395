"""Fault class 6 (issue 10): silent degradation. A run whose config lost its fusion settings never runs
text-only; a truncated or corrupted feature chunk is named by every reader (with how to recover) and
re-extracted by a resumed `mmcot extract`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from faultkit import assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)


def _strip_fusion(config_path, keys=("image_shape", "feature_shape", "vision_backbone")):
    config = json.loads(config_path.read_text())
    for key in keys:
        config["mmcot"].pop(key, None)
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize("keep_run_config", [True, False])
def test_run_without_fusion_settings_is_an_error(world, tmp_path, keep_run_config):
    """Weights hold fusion layers (and run_config.json says the run is multimodal): error naming the file."""
    run = world.copy("run", tmp_path)
    _strip_fusion(run / "model" / "config.json")
    if not keep_run_config:
        (run / "run_config.json").unlink()
    before = checksums(run)
    res = mmcot("generate", "--run", run, "--data", world.data, "--device", "cpu", "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, "config.json", "fusion")
    assert not (tmp_path / "p.jsonl").exists() and checksums(run) == before


def test_ask_with_stripped_config_is_an_error(world, tmp_path):
    run = world.copy("run", tmp_path)
    _strip_fusion(run / "model" / "config.json")
    res = mmcot("ask", "--rationale-run", run, "--answer-run", run, "--question", "Q?", "--choices", "a|b",
                "--device", "cpu")
    assert_one_error(res, 1, "config.json", "fusion")


def _first_chunk(feats):
    return sorted((feats / "chunks").glob("test-*.safetensors"))[0]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the feature rows: the header and the size stay valid
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,what", [(_truncate, "truncated"), (_flip_a_byte, "checksum")],
                         ids=["truncated", "corrupted"])
def test_readers_name_a_damaged_chunk(world, tmp_path, damage, what):
    feats = world.copy("feats", tmp_path)
    chunk = _first_chunk(feats)
    damage(chunk)
    res = mmcot("generate", "--run", world.run, "--data", world.data, "--features", feats, "--device", "cpu",
                "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, chunk.name, what, "rerun the same `mmcot extract`")
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", world.data, "--text-model",
                "t5-scratch", "--out", tmp_path / "run", "--features", feats, "--epochs", "1", "--val-split", "none",
                "--train-split", "test")
    assert_one_error(res, 1, chunk.name, what)
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte], ids=["truncated", "corrupted"])
def test_extract_resume_reextracts_a_damaged_chunk(world, tmp_path, damage):
    from mmcot_cli.features.store import open_store

    feats = world.copy("feats", tmp_path)
    chunk = _first_chunk(feats)
    original = open_store(world.feats)
    damage(chunk)
    res = mmcot("extract", "-b", "patches", "--data", world.data, "--split", "train,val,test", "--out", feats,
                "--workers", "0", "--chunk-size", "8", "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["reextracted_files"] == [f"chunks/{chunk.name}"] and summary["complete"]
    assert f"chunks/{chunk.name}: truncated or corrupted; removed and extracted again" in res.stderr
    repaired = open_store(feats)
    assert repaired.qids() == original.qids()
    for qid in original.qids():
        assert np.array_equal(repaired.read(qid), original.read(qid))
