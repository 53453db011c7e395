"""Fault class 4 (issue 26): hostile files. An image path that names a FIFO, /dev/zero or a directory is one
line naming the qid and the file in every command that reads images (extract, ask), never a hang or an endless
read; a JSONL image path that climbs out of the dataset's folder is refused by prepare."""

from __future__ import annotations

import json
import os

import pytest
from faultkit import assert_one_error, mmcot, world  # noqa: F401 (fixture)


def _special(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "image.png"
        os.mkfifo(path)  # nobody ever writes: a blocking open or read would hang for ever
        return path, "FIFO"
    if kind == "dev-zero":
        path = tmp_path / "image.png"
        path.symlink_to("/dev/zero")  # endless bytes: a plain read would never end
        return path, "device"
    path = tmp_path / "image.png"
    path.mkdir()
    return path, "directory"


def _point_image(data, qid, path):
    file = data / "test.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    for row in rows:
        if row["qid"] == qid:
            row["image_paths"] = [str(path)]
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_extract_names_an_image_that_is_not_a_file(world, tmp_path, kind):
    data = world.copy("data", tmp_path)
    path, needle = _special(tmp_path, kind)
    _point_image(data, "10", path)
    out = tmp_path / "f"
    res = mmcot("extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "0")
    assert_one_error(res, 1, "qid 10", str(path), needle)
    assert not list(out.glob("chunks/*.safetensors"))
    res = mmcot("-q", "extract", "-b", "patches", "--data", data, "--split", "test", "--out", out, "--workers", "0",
                "--skip-bad")  # skipped with a warning, the others extracted; the lock was released
    assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_ask_names_an_image_that_is_not_a_file(world, tmp_path, kind):
    path, needle = _special(tmp_path, kind)
    res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices",
                "a|b", "--image", path, "--device", "cpu")
    assert res.exit_code != 0 and str(path) in res.stderr and "Traceback" not in res.stderr
    assert needle in res.stderr


@pytest.mark.parametrize("image", ["../outside.png", "sub/../../outside.png"])
def test_prepare_jsonl_refuses_image_paths_leaving_the_folder(tmp_path, image):
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "outside.png").write_bytes(b"not read")
    rows = [{"id": "a", "split": "train", "question": "Q?", "choices": ["x", "y"], "answer": 0, "image": image}]
    (src / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = mmcot("prepare", "--format", "jsonl", src / "d.jsonl", "--out", tmp_path / "data")
    assert_one_error(res, 1, f"{src / 'd.jsonl'}:1", "'..'")
    assert not (tmp_path / "data").exists()
