"""Feature store and extraction library: round trip, memory-mapped reads, shards + merge, resume, bad input.

Extraction uses the weight-free `patches` backbone (fast, deterministic) on generated PNGs.
"""

from __future__ import annotations

import json
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from mmcot_cli.data.images import ImageError, load_rgb
from mmcot_cli.errors import DataError, MMCoTError, ShapeError, UsageError
from mmcot_cli.features import extract as X
from mmcot_cli.features import store as S
from mmcot_cli.features.extract import ExtractConfig, extract, merge
from mmcot_cli.features.store import StoreMismatchError, open_store
from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl


def make_records(folder: Path, n: int = 9, split_seed: int = 0) -> list[dict]:
    """n problems: most with a question image, one with only choice images, one with no image."""
    rng = np.random.default_rng(split_seed)
    records = []
    for i in range(n):
        qid = str(100 + split_seed * 1000 + i)
        d = folder / qid
        d.mkdir(parents=True, exist_ok=True)
        if i == 3:
            records.append({"qid": qid, "image_paths": []})
            continue
        names = ["choice_0.png", "choice_1.png"] if i == 5 else ["image.png"]
        for name in names:
            arr = rng.integers(0, 256, size=(40 + i, 70, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / name)
        records.append({"qid": qid, "image_paths": [str(d / nm) for nm in names]})
    return records


@pytest.fixture
def records(tmp_path) -> list[dict]:
    return make_records(tmp_path / "images")


def cfg_for(out: Path, records, **kw) -> ExtractConfig:
    base = dict(backbone="patches", out=str(out), records={"test": records}, splits=("test",), workers=0,
                batch_size=2, chunk_size=3)
    base.update(kw)
    return ExtractConfig(**base)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.safetensors"))}


def test_round_trip_matches_direct_encoding(tmp_path, records):
    summary = extract(cfg_for(tmp_path / "f", records))
    assert summary["count"] == 8 and summary["shape"] == [49, 192] and summary["dtype"] == "float16"
    assert summary["complete"] and summary["chunks_written"] == 3
    store = open_store(tmp_path / "f")
    enc = plugins.get_vision_backbone("patches").build(VisionBuildOptions())
    for rec in records:
        got = store.get(rec["qid"])
        assert got.dtype == torch.float32 and got.shape == (49, 192)
        if not rec["image_paths"]:
            assert not store.has(rec["qid"]) and torch.equal(got, torch.zeros(49, 192))
            continue
        # choice-only problems use choice_0.png
        expected = enc.encode(enc.preprocess(load_rgb(rec["image_paths"][0]))[None])[0]
        assert torch.equal(got, expected.half().float())
    batch = store.get_batch([r["qid"] for r in records])
    assert batch.shape == (9, 49, 192) and batch.dtype == torch.float32
    assert all(torch.equal(batch[i], store.get(r["qid"])) for i, r in enumerate(records))
    m = store.manifest
    assert m["backbone"] == "patches" and m["feature_shape"] == [49, 192] and m["count"] == 8
    assert m["splits"]["test"]["without_image"] == 1 and m["splits"]["test"]["complete"]
    on_disk = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert on_disk["count"] == 8 and on_disk["splits"]["test"]["records"] == 9
    # the files are plain safetensors: another reader agrees row by row
    name, row = store._index[records[0]["qid"]]
    with safe_open(str(tmp_path / "f" / name), "pt") as fh:
        assert torch.equal(fh.get_tensor("features")[row].float(), store.get(records[0]["qid"]))
    clone = pickle.loads(pickle.dumps(store))  # what a DataLoader worker receives
    assert torch.equal(clone.get(records[0]["qid"]), store.get(records[0]["qid"]))


def test_float32_and_workers_give_same_features(tmp_path, records):
    extract(cfg_for(tmp_path / "a", records, dtype="float32"))
    extract(cfg_for(tmp_path / "b", records, dtype="float32", workers=2))
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    assert a.dtype == "float32" and file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert all(torch.equal(a.get(q), b.get(q)) for q in a.qids())


def test_reading_one_row_does_not_load_the_file(tmp_path):
    qids = [str(i) for i in range(400)]
    arr = np.random.default_rng(0).standard_normal((400, 145, 64)).astype(np.float16)
    S.import_features(tmp_path / "big", backbone="vit", split="train", qids=qids, features=arr, chunk_size=400)
    store = open_store(tmp_path / "big")
    file_size = (tmp_path / "big" / "chunks" / "train-00000.safetensors").stat().st_size
    tracemalloc.start()
    row = store.get("257")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert torch.equal(row, torch.from_numpy(arr[257].astype(np.float32)))
    assert file_size > 7_000_000 and peak < file_size / 50  # one row is 145×64 floats, not the 7 MB file


def test_shards_then_merge_are_bit_exact(tmp_path, records):
    extract(cfg_for(tmp_path / "full", records))
    for k in (2, 0, 1):  # any order
        s = extract(cfg_for(tmp_path / "sharded", records, shard=(k, 3)))
        assert s["chunks_written"] == 1
    assert s["complete"]
    full, sharded = open_store(tmp_path / "full"), open_store(tmp_path / "sharded")
    assert sorted(full.qids()) == sorted(sharded.qids())
    assert all(torch.equal(full.get(q), sharded.get(q)) for q in full.qids())  # usable before merging
    merge(tmp_path / "sharded")
    merge(tmp_path / "full")
    merged = file_bytes(tmp_path / "sharded")
    assert list(merged) == ["shards/test-00000.safetensors"] and merged == file_bytes(tmp_path / "full")
    again = open_store(tmp_path / "sharded")
    assert all(torch.equal(full.get(q), again.get(q)) for q in full.qids())
    assert merge(tmp_path / "sharded")["files_written"] == []  # already compact


def test_merge_refuses_an_incomplete_store(tmp_path, records):
    extract(cfg_for(tmp_path / "f", records, shard=(0, 2)))
    assert not open_store(tmp_path / "f").manifest["splits"]["test"]["complete"]
    with pytest.raises(DataError, match="missing test: chunks 1"):
        merge(tmp_path / "f")


def test_resume_after_crash_ends_identical(tmp_path, records, monkeypatch):
    extract(cfg_for(tmp_path / "clean", records))
    real_write, calls = S.write_data_file, []

    def crash_after_first(path, data, entries):
        if calls:
            raise KeyboardInterrupt("simulated kill")
        calls.append(path)
        real_write(path, data, entries)

    monkeypatch.setattr(S, "write_data_file", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        extract(cfg_for(tmp_path / "crashed", records))
    monkeypatch.setattr(S, "write_data_file", real_write)
    left = sorted(p.name for p in (tmp_path / "crashed").rglob("*") if p.is_file())
    assert left == [".mmcot-output.json", "manifest.json", "test-00000.safetensors", "test.json"]  # whole files only
    resumed = extract(cfg_for(tmp_path / "crashed", records))
    assert resumed["chunks_skipped"] == 1 and resumed["chunks_written"] == 2
    assert file_bytes(tmp_path / "crashed") == file_bytes(tmp_path / "clean")
    assert extract(cfg_for(tmp_path / "crashed", records))["chunks_written"] == 0  # nothing left to do


def test_bad_image_fails_cleanly_or_is_skipped(tmp_path, records):
    bad = Path(records[4]["image_paths"][0])
    bad.write_bytes(bad.read_bytes()[:80])  # truncated PNG
    missing_qid = records[7]["qid"]
    Path(records[7]["image_paths"][0]).unlink()
    with pytest.raises(ImageError) as err:
        extract(cfg_for(tmp_path / "f", records, chunk_size=20))
    assert f"qid {records[4]['qid']}" in str(err.value) and str(bad) in str(err.value)
    assert not (tmp_path / "f").exists()  # nothing half-written

    summary = extract(cfg_for(tmp_path / "f", records, chunk_size=20, skip_bad=True))
    assert {b["qid"] for b in summary["bad"]} == {records[4]["qid"], missing_qid}
    store = open_store(tmp_path / "f")
    assert store.manifest["count"] == 6 and not store.has(missing_qid)
    assert {b["qid"]: b["error"] for b in store.manifest["bad"]}[missing_qid] == "file not found"
    assert torch.equal(store.get(records[4]["qid"]), torch.zeros(49, 192))
    # coverage: images skipped as bad at extraction are accepted; a record the store never saw is not
    assert store.bad_qids() == {records[4]["qid"], missing_qid} and store.missing(records) == []
    store.check_coverage(records, "test")
    stranger = {"qid": "999999", "image_paths": ["/x.png"]}
    assert store.missing([*records, stranger, {"qid": "5", "image_paths": []}]) == ["999999"]
    with pytest.raises(DataError, match=r"no features for qid 999999 \(1 of the 7 problems with an image in split "
                                        r"'val' have none\); run `mmcot extract --split val"):
        store.check_coverage([*records, stranger], "val")


def test_several_splits_in_one_store_and_mismatch_errors(tmp_path, records):
    val = make_records(tmp_path / "val-images", n=4, split_seed=1)
    extract(cfg_for(tmp_path / "f", records))
    extract(ExtractConfig(backbone="patches", out=str(tmp_path / "f"), records={"val": val}, splits=("val",),
                          workers=0, batch_size=2, chunk_size=3))
    store = open_store(tmp_path / "f")
    assert set(store.manifest["splits"]) == {"test", "val"} and len(store) == 8 + 3
    assert store.has(val[0]["qid"]) and store.has(records[0]["qid"])
    with pytest.raises(StoreMismatchError, match="dtype"):
        extract(cfg_for(tmp_path / "f", records, dtype="float32"))
    with pytest.raises(StoreMismatchError, match="chunk_size"):
        extract(cfg_for(tmp_path / "f", records, chunk_size=4))
    with pytest.raises(StoreMismatchError, match="different records"):
        extract(cfg_for(tmp_path / "f", records[:-1]))


class _LyingPlugin:
    """A third-party backbone whose encoder output disagrees with its declared shape."""

    @hookimpl
    def register_vision_backbones(self, register):
        def build(options):
            from mmcot_plugins.patches import PatchEncoder

            enc = PatchEncoder()
            if options.variant == "wrong-declared":
                enc.feature_shape = (7, 7)  # declares one shape, encode() returns (49, 192)
            return enc

        register(VisionBackbone(name="liar", feature_shape=(10, 10), default_weights="", build=build))


def test_output_shape_is_checked(tmp_path, records):
    plugin = _LyingPlugin()
    plugins.register_plugin(plugin, name="liar-plugin")
    try:
        with pytest.raises(ShapeError, match=r"declares features \(10, 10\)"):
            extract(cfg_for(tmp_path / "a", records, backbone="liar"))
        with pytest.raises(ShapeError, match=r"produced features \(2, 49, 192\)"):
            extract(cfg_for(tmp_path / "b", records, backbone="liar", variant="wrong-declared"))
    finally:
        plugins.unregister_plugin(plugin)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_stale_index_is_rebuilt_and_options_are_validated(tmp_path, records):
    extract(cfg_for(tmp_path / "f", records))
    (tmp_path / "f" / "index.json").write_text('{"files": {}, "qids": {}}')
    assert len(open_store(tmp_path / "f")) == 8
    from mmcot_cli.features.settings import parse_shard

    assert parse_shard("3/4") == (3, 4) == parse_shard([3, 4])
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    with pytest.raises(UsageError):
        cfg_for(tmp_path / "g", records, dtype="bfloat16")
    with pytest.raises(DataError, match="not a feature store"):
        open_store(tmp_path)


def test_weight_free_backbone_ignores_random_init(tmp_path, records):
    plain = extract(cfg_for(tmp_path / "plain", records))
    rand = extract(cfg_for(tmp_path / "rand", records, random_init=True))
    assert plain["weights"] == rand["weights"] == ""
    assert file_bytes(tmp_path / "plain") == file_bytes(tmp_path / "rand")
    again = extract(cfg_for(tmp_path / "rand", records, random_init=True))  # resumed: nothing built
    assert again["chunks_written"] == 0 and again["weights"] == ""


def test_chunk_writer_writes_each_chunk_when_its_last_item_arrives(tmp_path):
    from mmcot_cli.features.store import ChunkWriter
    from mmcot_cli.features.store_files import read_data_file

    started = []
    writer = ChunkWriter(tmp_path, (2, 3), "float32", [("test", 0, 2), ("test", 1, 2)],
                         on_first_write=lambda: started.append(True))
    writer.add("a", np.ones((2, 3), np.float32))
    assert not (tmp_path / "chunks").exists() and not started  # nothing before a chunk is whole
    writer.add_bad("b", "/img/b.png", "file not found")
    writer.add_bad("c", "/img/c.png", "truncated")
    writer.add("d", np.full((2, 3), 2, np.float32))
    assert started == [True] and (writer.chunks_written, writer.rows_written) == (2, 2)
    first = read_data_file(tmp_path / "chunks" / "test-00000.safetensors", "chunks/test-00000.safetensors")
    second = read_data_file(tmp_path / "chunks" / "test-00001.safetensors", "chunks/test-00001.safetensors")
    assert first.entries == [{"split": "test", "chunk": 0, "qids": ["a"],
                              "bad": [{"qid": "b", "path": "/img/b.png", "error": "file not found"}]}]
    assert second.entries[0]["qids"] == ["d"] and second.read_rows(0, 1).tolist() == [[[2.0] * 3] * 2]
    assert [b["qid"] for b in writer.bad] == ["b", "c"] and writer.bad[0]["split"] == "test"
    with pytest.raises(MMCoTError, match="more items than the planned chunks"):
        writer.add("e", np.zeros((2, 3), np.float32))
