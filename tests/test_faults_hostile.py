"""Fault class 4 (issue 10): hostile files — JSON nested tens of thousands deep, numbers beyond float range or
Python's int-digit limit, decompression-bomb and oversized images — are one line naming the file, exit 1, in
every command that reads them; nothing is written."""

from __future__ import annotations

import json
import shutil

import pytest
from faultkit import (
    TINY_TEXT,
    aokvqa_source,
    assert_one_error,
    checksums,
    jsonl_source,
    leftovers,
    mmcot,
    predictions,  # noqa: F401 (fixture)
    release_features,
    world,
)

DEEP = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000
HUGE_INT = "9" * 100_000


def _bench_with(world, tmp_path, name: str, text: str):
    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    (bench / name).write_text(text)
    return bench


@pytest.mark.parametrize("name,text,needle", [
    ("problems.json", DEEP, "nested too deeply"),
    ("problems.json", DEEP_OBJECT, "nested too deeply"),
    ("pid_splits.json", DEEP, "nested too deeply"),
    ("captions.json", '{"captions": ' + DEEP + "}", "nested too deeply"),
    ("problems.json", '{"1": {"answer": 1e999}}', "out of range"),
    ("problems.json", '{"1": {"answer": ' + HUGE_INT + "}}", "too many digits"),
    ("problems.json", '{"1": {"answer": NaN}}', "NaN"),
    ("pid_splits.json", '{"train": [' + HUGE_INT + "]}", "too many digits"),
])
def test_prepare_hostile_json(world, tmp_path, name, text, needle):
    bench = _bench_with(world, tmp_path, name, text)
    before = checksums(bench)
    res = mmcot("prepare", bench, "--out", tmp_path / "data")
    assert_one_error(res, 1, name, needle)
    assert not (tmp_path / "data").exists() and checksums(bench) == before


@pytest.mark.parametrize("text", [DEEP + "\n", '{"qid": "1", "prediction": ' + DEEP + "}\n",
                                  '{"results": ' + DEEP_OBJECT + "}", '{"qid": "1", "answer_index": 1e999}\n',
                                  '{"qid": "1", "answer_index": ' + HUGE_INT + "}\n"])
def test_score_hostile_predictions(world, tmp_path, text):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(text)
    res = mmcot("score", preds, "--data", world.data)
    assert_one_error(res, 1, str(preds))


@pytest.mark.parametrize("target", ["run_config.json", "model/config.json"])
def test_generate_hostile_run_metadata(world, tmp_path, target):
    run = world.copy("run", tmp_path)
    (run / target).write_text(DEEP_OBJECT)
    res = mmcot("generate", "--run", run, "--data", world.data, "--device", "cpu", "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, target.split("/")[-1])
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("target", ["manifest.json", "splits/test.json", "index.json"])
def test_hostile_store_metadata(world, tmp_path, target):
    feats = world.copy("feats", tmp_path)
    (feats / target).write_text(DEEP)
    res = mmcot("extract", "-b", "patches", "--data", world.data, "--split", "test", "--out", feats, "--workers", "0",
                "--chunk-size", "8")
    if target == "index.json" and res.exit_code == 0:
        return  # index.json is a cache: rebuilt from the file headers, so a hostile one is simply replaced
    assert_one_error(res, 1, target.split("/")[-1])


def test_hostile_chunk_header(world, tmp_path):
    feats = world.copy("feats", tmp_path)
    chunk = sorted((feats / "chunks").glob("test-*.safetensors"))[0]
    header = json.dumps({"features": {"dtype": "F32", "shape": [1, 1, 1], "data_offsets": [0, 4]},
                         "__metadata__": {"mmcot": DEEP}}).encode()
    chunk.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    res = mmcot("generate", "--run", world.run, "--data", world.data, "--features", feats, "--device", "cpu",
                "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, chunk.name)


def _bomb(path, size=(9000, 9000)):
    from PIL import Image

    Image.new("L", size).save(path)


def test_extract_refuses_decompression_bomb(world, tmp_path):
    data = world.copy("data", tmp_path)
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    victim = next(r for r in rows if r["image_paths"])
    bomb = tmp_path / "bomb.png"
    _bomb(bomb)
    victim["image_paths"] = [str(bomb)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = mmcot("extract", "-b", "patches", "--data", data, "--split", "test", "--out", tmp_path / "f",
                "--workers", "0")
    assert_one_error(res, 1, f"qid {victim['qid']}", str(bomb), "too large")


def test_ask_refuses_decompression_bomb(world, tmp_path):
    bomb = tmp_path / "bomb.png"
    _bomb(bomb)
    res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices",
                "a|b", "--image", bomb, "--device", "cpu")
    assert_one_error(res, 1, str(bomb), "too large")


def test_pillow_bomb_error_is_an_image_error(tmp_path, monkeypatch):
    """Beyond our own limit, Pillow's DecompressionBombError/Warning become the same ImageError."""
    from PIL import Image

    from mmcot_cli.data import images

    monkeypatch.setattr(images, "MAX_PIXELS", 10**12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "big.png"
    _bomb(path, (100, 100))  # 10,000 pixels > 2 × 1000: Pillow raises; > 1000 alone would warn
    with pytest.raises(images.ImageError, match="decompression bomb"):
        images.load_rgb(path, "7")


# --------------------------------------------------------------------------- commands that landed later


@pytest.mark.parametrize("text,needle", [(DEEP_OBJECT, "nested too deeply"), ('{"d_model": 1e999}', "out of range"),
                                         ('{"d_model": ' + HUGE_INT + "}", "too many digits")])
def test_import_run_hostile_config(tmp_path, text, needle):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(text)
    res = mmcot("import-run", ckpt, "--stage", "answer", "--out", tmp_path / "run")
    assert_one_error(res, 1, "config.json", needle)
    assert not (tmp_path / "run").exists()


def test_import_run_absurd_config_sizes(tmp_path):
    """A config promising 10**12 layers is refused before any module is built (not a hang)."""
    from t5_layouts import make_t5_dir

    ckpt = make_t5_dir(tmp_path / "ckpt", tokenizer="spiece", weights="bin", tied=True)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "num_layers": 10**12}))
    res = mmcot("import-run", ckpt, "--stage", "answer", "--out", tmp_path / "run")
    assert_one_error(res, 1, "config.json", "num_layers")
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("text,needle", [(DEEP, "nested too deeply"), ('{"1": 1e999}', "out of range"),
                                         ('{"1": ' + HUGE_INT + "}", "too many digits"), ('{"1": NaN}', "NaN"),
                                         ('{"1": true}', "not an integer"), ('{"1": 1.5}', "not an integer"),
                                         ('{"1": "9' + "9" * 5000 + '"}', "not an integer")],
                         ids=["deep", "1e999", "huge-int", "nan", "bool", "float", "huge-string"])
def test_import_features_hostile_name_map(world, tmp_path, text, needle):
    npy, name_map = release_features(world, tmp_path / "release")
    name_map.write_text(text)
    res = mmcot("import-features", npy, "--name-map", name_map, "--data", world.data, "--backbone", "patches",
                "--out", tmp_path / "f")
    assert_one_error(res, 1, "name_map.json", needle)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("text,needle", [
    ('{"acc_average": ' + DEEP + "}", "nested too deeply"), ('{"acc_average": NaN}', "NaN"),
    ('{"acc_average": 1e999}', "out of range"), ('{"acc_average": ' + HUGE_INT + "}", "too many digits"),
    ('{"acc_average": ' + "9" * 400 + "}", "expected a number"), ('{"acc_average": "high"}', "expected a number"),
    ('{"acc_average": true}', "expected a number"), ('{"acc_average": 80, "rationale": 5}', "rationale"),
])
def test_compare_hostile_score_objects(tmp_path, text, needle):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"acc_average": 80.0}')
    bad.write_text(text)
    res = mmcot("compare", good, bad, "--markdown")
    assert_one_error(res, 1, str(bad), needle)
    assert res.stdout == ""


@pytest.mark.parametrize("name", ["metrics.jsonl", "preds-test.jsonl", "run_config.json"])
def test_report_hostile_run_files(world, tmp_path, name):
    run = world.copy("run", tmp_path)
    predictions(world, run / "preds-test.jsonl")
    (run / name).write_text(DEEP_OBJECT + "\n")
    out = tmp_path / "r.html"
    res = mmcot("report", run, "--data", world.data, "--out", out)
    assert_one_error(res, 1, name)
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("line,needle", [(DEEP, "nested too deeply"), ('{"id": ' + HUGE_INT + "}", "too many digits"),
                                         ('{"id": "q9", "answer": 1e999}', "out of range")])
def test_prepare_jsonl_hostile_lines(tmp_path, line, needle):
    src = jsonl_source(tmp_path / "src")
    src.write_text(src.read_text() + line + "\n")
    before = checksums(src)
    res = mmcot("prepare", src, "--out", tmp_path / "data")
    assert_one_error(res, 1, f"{src}:7", needle)
    assert not (tmp_path / "data").exists() and checksums(src) == before


def test_prepare_aokvqa_hostile_file(tmp_path):
    src = aokvqa_source(tmp_path / "src")
    (src / "aokvqa_v1p0_val.json").write_text(DEEP)
    res = mmcot("prepare", src, "--out", tmp_path / "data")
    assert_one_error(res, 1, "aokvqa_v1p0_val.json", "nested too deeply")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("line,needle", [(DEEP, "nested too deeply"), ('{"qid": ' + HUGE_INT + "}", "too many digits"),
                                         ('{"qid": "1", "rationale": "x", "answer": NaN}', "NaN")])
def test_rationales_hostile_lines(world, tmp_path, line, needle):
    src = tmp_path / "teacher.jsonl"
    src.write_text('{"qid": "1", "rationale": "x"}\n' + line + "\n")
    out = tmp_path / "set.jsonl"
    for sub in ("import", "filter"):
        res = mmcot("rationales", sub, src, "--data", world.data, "--split", "test", "--out", out)
        assert_one_error(res, 1, f"{src}:2", needle)
        assert not out.exists()


def test_train_hostile_rationale_source(world, tmp_path):
    src = tmp_path / "set.jsonl"
    src.write_text(DEEP + "\n")
    out = tmp_path / "run"
    res = mmcot("train", "--stage", "rationale", "--data", world.data, "--text-model", "t5-scratch", "--out", out,
                "--epochs", "1", "--val-split", "none", "--rationale-source", src, *TINY_TEXT)
    assert_one_error(res, 1, f"{src}:1", "nested too deeply")
    assert not (out / "model").exists()


@pytest.mark.parametrize("split", ["../../escaped", "a/b", ".hidden", ""])
def test_prepare_jsonl_split_names_cannot_be_paths(tmp_path, split):
    """A split name becomes DATA_DIR/<split>.jsonl: a hostile one must not write outside DATA_DIR."""
    src = jsonl_source(tmp_path / "src", [{"id": "z", "split": split, "question": "Q?", "choices": ["a", "b"],
                                           "answer": 0}])
    res = mmcot("prepare", src, "--out", tmp_path / "a" / "data")
    assert_one_error(res, 1, f"{src}:7", "split")
    assert not (tmp_path / "a").exists() and not list(tmp_path.rglob("escaped*"))
