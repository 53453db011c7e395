"""Fault classes 6 and 7 (issue 17): what a feature store refuses or survives at write time.

6: NaN or infinite features (from `import-features` or a backbone's encode), and finite values beyond the store's
   float16 range, are refused where every store write passes (ChunkWriter), one line naming the qid.
7: `extract --skip-bad` when every image of a chunk is bad writes that chunk with no rows (the skipped images are
   recorded as bad and read as zeros, as documented), and a rerun resumes instead of crashing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from faultkit import assert_one_error, leftovers, mmcot, release_features, world  # noqa: F401 (fixture)

from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import VisionBackbone, hookimpl


def _records(path):
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def _image_qids(world, split="test"):
    return [r["qid"] for r in _records(world.data / f"{split}.jsonl") if r["image_paths"]]


# --------------------------------------------------------------------------- class 6: non-finite features


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_import_features_refuses_non_finite_rows(world, tmp_path, value):
    npy, name_map = release_features(world, tmp_path / "release")
    rows = np.load(npy)
    victim = _image_qids(world, "val")[1]
    row = int(json.loads(name_map.read_text())[victim])
    rows[row, 3, 5] = value
    np.save(npy, rows)
    res = mmcot("import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", tmp_path / "f")
    assert_one_error(res, 1, f"qid {victim}", "NaN or infinite")
    assert leftovers(tmp_path) == []
    assert not list((tmp_path / "f").glob("chunks/val-*.safetensors"))  # no chunk holding it was written


def test_import_features_refuses_values_beyond_float16(world, tmp_path):
    npy, name_map = release_features(world, tmp_path / "release")
    rows = np.load(npy)
    victim = _image_qids(world, "train")[0]
    rows[int(json.loads(name_map.read_text())[victim])] = 1e6  # finite in float32, inf in float16
    np.save(npy, rows)
    res = mmcot("import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", tmp_path / "f", "--dtype", "float16")
    assert_one_error(res, 1, f"qid {victim}", "float16", "--dtype float32")
    res = mmcot("-q", "import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", tmp_path / "f32", "--dtype", "float32")
    assert res.exit_code == 0, res.stderr


class _Huge:
    """A backbone whose features are finite float32 values beyond float16's range."""

    @hookimpl
    def register_vision_backbones(self, register):
        from mmcot_plugins.patches import PatchEncoder

        class Encoder(PatchEncoder):
            def encode(self, pixels):
                return super().encode(pixels) * 0 + 1e6

        register(VisionBackbone(name="huge", feature_shape=(49, 192), default_weights="", weight_free=True,
                                build=lambda options: Encoder()))


def test_extract_refuses_features_beyond_float16(world, tmp_path):
    plugin = _Huge()
    plugins.register_plugin(plugin, name="huge-plugin")
    try:
        res = mmcot("extract", "-b", "huge", "--data", world.data, "--split", "test", "--out", tmp_path / "f",
                    "--workers", "0")
        assert_one_error(res, 1, f"qid {_image_qids(world)[0]}", "float16", "--dtype float32")
        assert not list((tmp_path / "f").glob("chunks/*.safetensors"))
        res = mmcot("-q", "extract", "-b", "huge", "--data", world.data, "--split", "test", "--out", tmp_path / "g",
                    "--workers", "0", "--dtype", "float32")
        assert res.exit_code == 0, res.stderr
    finally:
        plugins.unregister_plugin(plugin)


# --------------------------------------------------------------------------- class 7: a chunk of bad images only


def test_extract_skip_bad_when_every_image_of_a_chunk_is_bad(world, tmp_path):
    from mmcot_cli.features.store import open_store

    data = world.copy("data", tmp_path)
    rows = _records(data / "test.jsonl")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    broken = [r["qid"] for r in rows if r["image_paths"]][:4]  # with --chunk-size 4: the whole first chunk
    for r in rows:
        if r["qid"] in broken:
            r["image_paths"] = [str(garbage)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "f"
    args = ["-q", "extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "0",
            "--chunk-size", "4", "--skip-bad", "--json"]
    res = mmcot(*args)
    assert res.exit_code == 0, res.stderr
    first = json.loads(res.stdout)
    assert first["complete"] and sorted(b["qid"] for b in first["bad"]) == sorted(broken)
    res = mmcot(*args)  # the rerun resumes: every chunk is on disk, none rewritten
    assert res.exit_code == 0, res.stderr
    again = json.loads(res.stdout)
    assert again["chunks_written"] == 0 and again["chunks_skipped"] == first["chunks_written"]
    store = open_store(out)
    good = [r["qid"] for r in rows if r["image_paths"] and r["qid"] not in broken][0]
    assert not store.has(broken[0]) and store.has(good)
    assert float(np.abs(np.asarray(store.get(broken[0]))).sum()) == 0.0  # no row: zeros of the declared shape
    store.close()
    res = mmcot("-q", "extract", "--merge", out, "--json")
    assert res.exit_code == 0, res.stderr
    merged = open_store(out)
    assert merged.has(good) and not merged.has(broken[0])
    merged.close()


def test_merge_of_a_split_whose_every_image_is_bad(world, tmp_path):
    """The extreme case: no row at all in the split, so even the merged shard is empty."""
    data = world.copy("data", tmp_path)
    rows = _records(data / "test.jsonl")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    for r in rows:
        if r["image_paths"]:
            r["image_paths"] = [str(garbage)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "f"
    for args in (["extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "0",
                  "--chunk-size", "4", "--skip-bad"], ["extract", "--merge", out]):
        res = mmcot("-q", *args)
        assert res.exit_code == 0 and "Traceback" not in res.stderr, res.stderr
