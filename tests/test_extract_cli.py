"""`mmcot extract` end to end: prepare → extract (--json, shards, --merge, --skip-bad, errors, exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcot_cli.features.store import open_store


def _problem(split: str, image: str | None) -> dict:
    return {"question": "Which is it?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": image,
            "task": "closed choice", "grade": "grade3", "subject": "natural science", "topic": "physics",
            "category": "C", "skill": "S", "lecture": "", "solution": "", "split": split}


def make_scienceqa(root: Path, n_test: int = 7, n_val: int = 3) -> Path:
    """A tiny ScienceQA folder with real PNGs in odd modes; test qid 4 has choice images only, qid 3 none."""
    rng = np.random.default_rng(1)
    problems, splits = {}, {"test": [], "val": []}
    modes = ["RGB", "RGBA", "L", "P"]
    for i in range(n_test + n_val):
        qid, split = str(i + 1), ("test" if i < n_test else "val")
        splits[split].append(qid)
        folder = root / "images" / qid
        if qid == "3":
            problems[qid] = _problem(split, None)
            continue
        names = ["choice_0.png", "choice_1.png"] if qid == "4" else ["image.png"]
        problems[qid] = _problem(split, None if qid == "4" else "image.png")
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            img = Image.fromarray(rng.integers(0, 256, size=(50, 80, 3), dtype=np.uint8))
            mode = modes[i % len(modes)]
            img = img.quantize(16) if mode == "P" else img.convert(mode)
            img.save(folder / name)
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    return root


@pytest.fixture
def data_dir(cli, tmp_path) -> Path:
    src = make_scienceqa(tmp_path / "sqa")
    result = cli("prepare", src, "--out", tmp_path / "data", "--splits", "test,val", "--json")
    assert result.exit_code == 0, result.output
    return tmp_path / "data"


def run_json(cli, *args):
    result = cli("extract", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_extract_patches_json_summary(cli, data_dir, tmp_path):
    s = run_json(cli, "--backbone", "patches", "--data", data_dir, "--split", "test", "--out", tmp_path / "f",
                 "--workers", "0")
    assert (s["backbone"], s["split"], s["count"], s["shape"], s["dtype"]) == ("patches", "test", 6, [49, 192],
                                                                             "float16")
    assert s["path"] == str(tmp_path / "f")
    store = open_store(tmp_path / "f")
    assert store.has("4") and not store.has("3")  # choice-only problem → choice_0.png; no image → no row
    s2 = run_json(cli, "-b", "patches", "--data", data_dir, "--split", "val", "--out", tmp_path / "f",
                  "--workers", "0")
    assert s2["count"] == 3 and len(open_store(tmp_path / "f")) == 9


def test_shards_and_merge_via_cli(cli, data_dir, tmp_path):
    common = ["-b", "patches", "--data", data_dir, "--split", "test,val", "--chunk-size", "2", "--workers", "0"]
    run_json(cli, *common, "--out", tmp_path / "one")
    for k in range(3):
        s = run_json(cli, *common, "--out", tmp_path / "many", "--shard", f"{k}/3")
    assert s["complete"] and s["shard"] == "2/3"
    merged = run_json(cli, "--merge", tmp_path / "many")
    assert merged["count"] == 9
    run_json(cli, "--merge", tmp_path / "one")
    for split in ("test", "val"):
        name = f"shards/{split}-00000.safetensors"
        assert (tmp_path / "many" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    assert not (tmp_path / "many" / "chunks").exists() or not any((tmp_path / "many" / "chunks").iterdir())


def test_random_init_real_backbone_small_variant(cli, data_dir, tmp_path):
    s = run_json(cli, "-b", "resnet", "--variant", "resnet18", "--random-init", "--data", data_dir,
                 "--out", tmp_path / "f", "--workers", "2", "--dtype", "float32", "--batch-size", "4")
    assert s["shape"] == [1, 512] and s["dtype"] == "float32" and s["weights"] == "random-init"
    assert open_store(tmp_path / "f").get("1").abs().sum() > 0


def test_sample_images(cli, sample_dir, tmp_path):
    result = cli("prepare", sample_dir, "--out", tmp_path / "data", "--splits", "test", "--json")
    assert result.exit_code == 0, result.output
    s = run_json(cli, "-b", "patches", "--data", tmp_path / "data", "--out", tmp_path / "f", "--workers", "0")
    records = [json.loads(line) for line in (tmp_path / "data" / "test.jsonl").read_text().splitlines()]
    with_image = [r["qid"] for r in records if r["image_paths"]]
    assert s["count"] == len(with_image) > 0
    store = open_store(tmp_path / "f")
    assert all(store.get(q).abs().sum() > 0 for q in with_image)


def test_errors_and_exit_codes(cli, data_dir, tmp_path):
    result = cli("extract", "-b", "nope", "--data", data_dir, "--out", tmp_path / "f")
    assert result.exit_code == 2 and "patches" in result.stderr and "detr" in result.stderr
    result = cli("extract", "-b", "patches", "--data", data_dir, "--out", tmp_path / "f", "--shard", "3/3")
    assert result.exit_code == 2 and "--shard" in result.stderr
    result = cli("extract", "--merge", tmp_path / "nothing")
    assert result.exit_code == 1 and "not a feature store" in result.stderr
    (tmp_path / "afile").write_text("x")
    result = cli("extract", "-b", "patches", "--data", data_dir, "--out", tmp_path / "afile" / "f", "--workers", "0")
    assert result.exit_code == 1 and result.stderr.strip().count("\n") == 0
    assert "cannot create directory" in result.stderr and str(tmp_path / "afile" / "f") in result.stderr

    victim = data_dir.parent / "sqa" / "images" / "5" / "image.png"
    victim.write_bytes(victim.read_bytes()[:100])
    result = cli("extract", "-b", "patches", "--data", data_dir, "--out", tmp_path / "f", "--workers", "0")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "qid 5" in lines[0] and str(victim) in lines[0]
    assert not (tmp_path / "f").exists()
    s = run_json(cli, "-b", "patches", "--data", data_dir, "--out", tmp_path / "f", "--workers", "0", "--skip-bad")
    assert [b["qid"] for b in s["bad"]] == ["5"] and s["count"] == 5
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["bad"][0]["qid"] == "5" and manifest["bad"][0]["path"] == str(victim)
    assert torch.equal(open_store(tmp_path / "f").get("5"), torch.zeros(49, 192))


def test_limit_extracts_the_first_images_and_train_names_it(cli, data_dir, tmp_path):
    """extract --limit 2: the first two images of each split, recorded in the store; a command needing a row
    beyond them says so and how many leading records the store serves."""
    from mmcot_cli.data.records import load_records
    from mmcot_cli.errors import DataError

    feats = tmp_path / "feats"
    out = run_json(cli, "-b", "patches", "--data", data_dir, "--split", "test,val", "--out", feats, "--workers", "0",
                   "--limit", "2")
    # test: qids 1-7, qid 3 without an image (6 images); val: qids 8-10 (3 images)
    assert out["limit"] == 2 and out["count"] == 4 and out["images_in_splits"] == {"test": 6, "val": 3}
    assert out["complete"]
    store = open_store(feats)
    assert sorted(store.qids()) == ["1", "2", "8", "9"]
    info = store.manifest["splits"]["test"]
    assert (info["limit"], info["images"], info["with_image"], info["without_image"]) == (2, 6, 2, 1)
    records = load_records(data_dir, "test")
    store.check_coverage(records[:3], "test")  # qids 1, 2 and 3 (no image): served
    with pytest.raises(DataError, match=r"no features for qid 4: split 'test' of the store holds the first 2 of its "
                                        r"6 images \(extract --limit 2\), which serve its first 3 records; pass "
                                        r"--limit 3 or less"):
        store.check_coverage(records, "test")

    # the same command again resumes (nothing to do); another --limit into the store is refused in one line
    again = run_json(cli, "-b", "patches", "--data", data_dir, "--split", "test", "--out", feats, "--workers", "0",
                     "--limit", "2")
    assert again["extracted"] == 0 and again["chunks_skipped"] == 1
    res = cli("extract", "-b", "patches", "--data", data_dir, "--split", "test", "--out", feats, "--workers", "0")
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "holds the first 2 of its 6 images (extract --limit 2); this run asks for all its images" in res.stderr

    # train on the partial store: one line naming the limit and --limit-train; with it, training runs
    args = ["train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data_dir, "--train-split", "test",
            "--val-split", "none", "--features", feats, "--text-model", "t5-scratch", "--epochs", "1",
            "--batch-size", "2", "--text-option", "d_model=16", "--text-option", "layers=1", "--text-option",
            "heads=2", "--text-option", "d_ff=32"]
    res = cli(*args, "--out", tmp_path / "run")
    assert res.exit_code == 1 and "(extract --limit 2), which serve its first 3 records; pass --limit-train 3" in (
        " ".join(res.stderr.split())), res.stderr
    res = cli(*args, "--out", tmp_path / "run2", "--limit-train", "3")
    assert res.exit_code == 0, res.output


def test_device_defaults_to_auto_and_required_options_are_marked(cli, data_dir, tmp_path, monkeypatch):
    """As train and generate (issue 25): `--device auto` by default, resolved by the same parse_device; the help
    says --backbone and --out are required (unless --merge), and leaving them out is one line, exit 2."""
    import re

    from mmcot_cli.features import extract as extract_module

    text = " ".join(cli("extract", "--help").stdout.replace("│", " ").split())
    assert re.search(r"--device TEXT auto \(the GPU when there is one\).*?\[default: auto\]", text)
    assert re.search(r"--backbone -b NAME .*?required unless --merge", text)
    assert re.search(r"--out -o FEATURES_DIR .*?required unless --merge", text)
    asked = []
    real = extract_module.parse_device
    monkeypatch.setattr(extract_module, "parse_device", lambda name: asked.append(name) or real(name))
    run_json(cli, "-b", "patches", "--data", data_dir, "--split", "val", "--out", tmp_path / "f", "--workers", "0")
    assert asked == ["auto"]
    res = cli("extract", "--data", data_dir)
    assert res.exit_code == 2 and res.stderr.strip() == "error: --backbone and --out are required (or --merge " \
                                                       "FEATURES_DIR)"
