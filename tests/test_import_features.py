"""`mmcot import-features`: the original's feature files (.npy / torch.save) into a feature store, losslessly."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.features.original_features import ImportFeaturesConfig, import_feature_file
from mmcot_cli.features.store import open_store


@pytest.fixture(scope="module")
def data_dir(sample_dir, tmp_path_factory) -> Path:
    from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("data") / "data"
    prepare(PrepareConfig(source=sample_dir, out=out))
    return out


def _records(data_dir, split):
    return [json.loads(line) for line in (data_dir / f"{split}.jsonl").read_text().splitlines()]


def _release(tmp_path, data_dir, shape=(100, 256), dtype=np.float32, extra_rows=3):
    """A release-style file + name_map: rows for problems with a question image, in shuffled order."""
    qids = [r["qid"] for s in ("train", "val", "test") for r in _records(data_dir, s) if r["image"]]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(qids) + extra_rows)
    name_map = {q: str(int(order[i])) for i, q in enumerate(qids)}
    arr = rng.standard_normal((len(qids) + extra_rows, *shape)).astype(dtype)
    (tmp_path / "name_map.json").write_text(json.dumps(name_map))
    return arr, name_map


def _cfg(tmp_path, data_dir, file, **kw):
    base = dict(file=str(file), name_map=str(tmp_path / "name_map.json"), data_dir=str(data_dir),
                splits=("train", "val", "test"), backbone="detr", out=str(tmp_path / "feats"))
    return ImportFeaturesConfig(**{**base, **kw})


@pytest.mark.parametrize("suffix, dtype", [(".npy", np.float32), (".npy", np.float16), (".pth", np.float32)])
def test_rows_are_stored_exactly_with_the_files_dtype(tmp_path, data_dir, suffix, dtype):
    arr, name_map = _release(tmp_path, data_dir, dtype=dtype)
    file = tmp_path / f"detr{suffix}"
    if suffix == ".npy":
        np.save(file, arr)
    else:
        torch.save(torch.from_numpy(arr), file)
    summary = import_feature_file(_cfg(tmp_path, data_dir, file))
    store = open_store(tmp_path / "feats")
    assert store.dtype == np.dtype(dtype).name
    for split in ("train", "val", "test"):
        records = _records(data_dir, split)
        s = summary["splits"][split]
        assert s["records"] == len(records)
        assert s["with_features"] == sum(1 for r in records if r["qid"] in name_map)
        assert s["zero_features"] == len(records) - s["with_features"]
        for r in records:
            row = store.read(r["qid"])
            if r["qid"] in name_map:
                assert np.array_equal(row, arr[int(name_map[r["qid"]])].astype(np.float32))
            else:  # no entry: zeros, as the original (an explicit zero row for choice-only pictures)
                assert row is None or not row.any()
                assert store.get(r["qid"]).abs().sum() == 0
    assert summary["splits"]["test"]["zero_features"] > 0


def test_dtype_option_converts(tmp_path, data_dir):
    arr, name_map = _release(tmp_path, data_dir)
    np.save(tmp_path / "detr.npy", arr)
    import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "detr.npy", dtype="float16", splits=("test",)))
    store = open_store(tmp_path / "feats")
    qid = next(q for q in name_map if store.has(q))
    assert store.dtype == "float16"
    assert np.array_equal(store.read(qid), arr[int(name_map[qid])].astype(np.float16).astype(np.float32))


def test_resnet_file_of_pooled_vectors(tmp_path, data_dir):
    arr, name_map = _release(tmp_path, data_dir, shape=(2048,))
    np.save(tmp_path / "resnet.npy", arr)
    import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "resnet.npy", backbone="resnet", splits=("test",)))
    store = open_store(tmp_path / "feats")
    qid = next(q for q in name_map if store.has(q))
    assert store.feature_shape == (1, 2048)
    assert np.array_equal(store.read(qid)[0], arr[int(name_map[qid])])


def test_errors_are_named(tmp_path, data_dir):
    arr, name_map = _release(tmp_path, data_dir)
    np.save(tmp_path / "detr.npy", arr)
    with pytest.raises(DataError, match=r"rows of shape \[100, 256\], but backbone vit produces \[145, 1024\]"):
        import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "detr.npy", backbone="vit"))
    qid = next(iter(name_map))
    (tmp_path / "name_map.json").write_text(json.dumps({**name_map, qid: str(len(arr))}))
    with pytest.raises(DataError, match=f"qid {qid} → row {len(arr)}, but .* has {len(arr)} rows"):
        import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "detr.npy"))
    (tmp_path / "name_map.json").write_text(json.dumps({q: r for q, r in name_map.items() if q != qid}))
    with pytest.raises(DataError, match=f"qid {qid} has an image .* but no entry in the name map"):
        import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "detr.npy"))
    assert not (tmp_path / "feats").exists()
    np.save(tmp_path / "f64.npy", arr.astype(np.float64))
    (tmp_path / "name_map.json").write_text(json.dumps(name_map))
    with pytest.raises(UsageError, match="dtype float64.*--dtype"):
        import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "f64.npy"))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "detr.npy").read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "cut.npy"))
    torch.save({"features": torch.from_numpy(arr)}, tmp_path / "dict.pth")
    with pytest.raises(DataError, match="expected one tensor"):
        import_feature_file(_cfg(tmp_path, data_dir, tmp_path / "dict.pth"))
