"""Fault class 4 (issue 10): hostile files — JSON nested tens of thousands deep, numbers beyond float range or
Python's int-digit limit, decompression-bomb and oversized images — are one line naming the file, exit 1, in
every command that reads them; nothing is written."""

from __future__ import annotations

import json
import shutil

import pytest
from faultkit import assert_one_error, checksums, mmcot, world  # noqa: F401 (fixture)

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

    from mmcot_cli import images

    monkeypatch.setattr(images, "MAX_PIXELS", 10**12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "big.png"
    _bomb(path, (100, 100))  # 10,000 pixels > 2 × 1000: Pillow raises; > 1000 alone would warn
    with pytest.raises(images.ImageError, match="decompression bomb"):
        images.load_rgb(path, "7")
