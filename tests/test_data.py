"""`mmcot prepare`: the real sample, both folder layouts, every validation error, --skip-bad, load_records."""

import json
from pathlib import Path

import pytest

from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare, problem_to_record, read_captions
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, UnknownSplitError


def _problem(question="Which is hot?", image=None, split="train", **kw):
    p = {"question": question, "choices": ["ice", "fire"], "answer": 1, "hint": "", "image": image,
         "task": "closed choice", "grade": "grade3", "subject": "natural science", "topic": "physics",
         "category": "Heat", "skill": "Compare", "lecture": "Heat.\nMore.", "solution": "Fire.", "split": split}
    p.update(kw)
    return p


def make_source(root: Path, layout: str = "flat", problems=None, splits=None, images=(), captions=None) -> Path:
    """A tiny ScienceQA folder. layout "flat": files in root, images/<qid>/; "benchmark": files in
    root/scienceqa/, images/<split>/<qid>/ (ScienceQA's download layout)."""
    problems = problems if problems is not None else {
        "1": _problem(split="train"), "2": _problem(image="image.png", split="train"),
        "3": _problem(image="image.png", split="test"), "4": _problem(split="test"),
    }
    splits = splits if splits is not None else {"train": ["1", "2"], "test": ["3", "4", "99"]}
    data = root / "scienceqa" if layout == "benchmark" else root
    data.mkdir(parents=True, exist_ok=True)
    (data / "problems.json").write_text(json.dumps(problems, indent=1))
    (data / "pid_splits.json").write_text(json.dumps(splits))
    for qid, name in images:
        split = problems[qid]["split"]
        folder = root / "images" / (f"{split}/{qid}" if layout == "benchmark" else qid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\x89PNG fake")
    if captions is not None:
        (root / "captions.json").write_text(json.dumps(captions))
    return root


def _files(folder: Path) -> list[str]:
    """The files a DATA_DIR holds, besides its owner marker (mmcot_cli.outputs.OWNER_FILE)."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".mmcot-output.json") if folder.exists() else []


# --------------------------------------------------------------------------- the real sample

def test_prepare_sample(cli, sample_dir, tmp_path):
    out = tmp_path / "d"
    result = cli("prepare", sample_dir, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = {s: v["count"] for s, v in summary["splits"].items()}
    assert counts == {"train": 50, "val": 50, "test": 50}
    assert {s: v["missing_problems"] for s, v in summary["splits"].items()} == \
        {"train": 12726 - 50, "val": 4241 - 50, "test": 4241 - 50}
    assert summary["splits"]["test"]["with_images"] == 26
    assert summary["splits"]["train"]["with_images"] == 0 and summary["splits"]["train"]["missing_images"] > 0
    assert "12676 of 12726 qids have no entry" in result.stderr
    assert "split train: none of its" in result.stderr  # one warning for the split without images
    assert _files(out) == ["manifest.json", "test.jsonl", "train.jsonl", "val.jsonl"]

    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["splits"]["test"]["missing_problems"]) == 4191
    official = json.loads((sample_dir / "pid_splits.json").read_text())
    assert manifest["splits"]["val"]["missing_problems"][0] in official["val"]
    assert manifest["captions"].endswith("captions.json") and manifest["created_by"].startswith("mmcot")

    test = {r["qid"]: r for r in load_records(out, "test")}
    problems = json.loads((sample_dir / "problems.json").read_text())
    captions = json.loads((sample_dir / "captions.json").read_text())["captions"]
    assert list(test) == [q for q in official["test"] if q in problems]  # split-list order
    assert test["5"]["image_paths"] == [str((sample_dir / "images/5/image.png").resolve())]
    assert [Path(p).name for p in test["149"]["image_paths"]] == [f"choice_{i}.png" for i in range(4)]
    assert test["161"]["image_paths"][0].endswith("161/image.png")  # question image wins over choices
    assert test["5"]["caption"] == captions["5"]
    rec = test["5"]
    assert {k: rec[k] for k in ("question", "choices", "answer", "lecture", "grade", "image")} == \
        {k: problems["5"][k] for k in ("question", "choices", "answer", "lecture", "grade", "image")}
    train = load_records(out, "train")
    assert any(r["image"] == "image.png" and r["image_paths"] == [] for r in train)


def test_prepare_sample_strict_fails(cli, sample_dir, tmp_path):
    result = cli("prepare", sample_dir, "--out", tmp_path / "d", "--strict", "--splits", "test")
    assert result.exit_code == 1
    assert "has no entry" in result.stderr and "problems.json" in result.stderr
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------- layouts, captions, images

@pytest.mark.parametrize("layout", ["flat", "benchmark"])
def test_layouts(tmp_path, layout):
    src = make_source(tmp_path / "src", layout, images=[("2", "image.png"), ("3", "image.png"), ("4", "choice_0.png"),
                                                         ("4", "choice_1.png")],
                      captions={"captions": {"3": "a red ball"}})
    summary = prepare(PrepareConfig(source=src, out=tmp_path / "out", splits=("train", "test")))
    assert summary["splits"]["test"] == {"count": 2, "split_list": 3, "missing_problems": 1, "with_images": 2,
                                         "missing_images": 0, "skipped": 0, "without_rationale": 0}
    test = {r["qid"]: r for r in load_records(tmp_path / "out", "test")}
    assert Path(test["3"]["image_paths"][0]).is_file() and test["3"]["caption"] == "a red ball"
    assert [Path(p).name for p in test["4"]["image_paths"]] == ["choice_0.png", "choice_1.png"]
    assert test["4"]["image"] is None and test["4"]["split"] == "test"
    assert [r["qid"] for r in load_records(tmp_path / "out", "train")] == ["1", "2"]


def test_images_option_and_flat_captions(cli, tmp_path):
    src = make_source(tmp_path / "src")
    imgs = tmp_path / "elsewhere"
    (imgs / "3").mkdir(parents=True)
    (imgs / "3" / "image.png").write_bytes(b"x")
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"3": "flat caption"}))
    result = cli("prepare", src, "--out", tmp_path / "out", "--splits", "test", "--images", imgs,
                 "--captions", caps, "--json")
    assert result.exit_code == 0, result.output
    assert "flat {qid: caption} dict" in result.stderr
    rec = load_records(tmp_path / "out", "test")[0]
    assert rec["caption"] == "flat caption" and rec["image_paths"] == [str((imgs / "3/image.png").resolve())]


def test_split_without_any_images_is_kept(tmp_path):
    """No image of the split on disk (not downloaded): one warning, records kept with image_paths []."""
    src = make_source(tmp_path / "src", images=[("3", "image.png")])
    summary = prepare(PrepareConfig(source=src, out=tmp_path / "out", splits=("train", "test")))
    assert summary["splits"]["train"]["count"] == 2 and summary["splits"]["train"]["missing_images"] == 1
    assert sum("split train: none of its 1 declared images" in w for w in summary["warnings"]) == 1
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["splits"]["train"]["missing_images"] == ["2"]


def test_minitrain_and_unknown_split(cli, tmp_path):
    src = make_source(tmp_path / "src", splits={"train": ["1", "2"], "minitrain": ["1"], "test": ["4"]})
    result = cli("prepare", src, "--out", tmp_path / "out", "--splits", "minitrain")
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "out") == ["manifest.json", "minitrain.jsonl"]
    result = cli("prepare", src, "--out", tmp_path / "out2", "--splits", "train,bogus")
    assert result.exit_code == 2 and "'bogus'" in result.stderr and "minitrain" in result.stderr
    assert not (tmp_path / "out2").exists()


# --------------------------------------------------------------------------- validation errors

def _break(name):
    """(problems, splits, images, extra setup) producing one bad item, and what the message must contain."""
    base = {"1": _problem(), "2": _problem(image="image.png", split="test"), "3": _problem(image="image.png",
                                                                                           split="test")}
    splits = {"train": ["1"], "test": ["2", "3"]}
    images = [("2", "image.png"), ("3", "image.png")]
    if name == "missing field":
        del base["1"]["lecture"]
        return base, splits, images, ["problems.json", "qid 1", "'lecture'"]
    if name == "answer out of range":
        base["1"]["answer"] = 2
        return base, splits, images, ["problems.json", "qid 1", "out of range"]
    if name == "choices not a list":
        base["1"]["choices"] = "ice, fire"
        return base, splits, images, ["problems.json", "qid 1", "'choices'"]
    if name == "missing problem (strict)":
        splits["train"].append("77")
        return base, splits, images, ["problems.json", "qid 77"]
    if name == "missing image":
        images = [("2", "image.png")]
        return base, splits, images, ["3/image.png", "qid 3", "not found"]
    if name == "duplicate qid":
        splits["test"].append("3")
        return base, splits, images, ["pid_splits.json", "qid 3", "twice"]
    raise AssertionError(name)


BREAKS = ["missing field", "answer out of range", "choices not a list", "missing problem (strict)", "missing image",
          "duplicate qid"]


@pytest.mark.parametrize("name", BREAKS)
def test_validation_errors(cli, tmp_path, name):
    problems, splits, images, needles = _break(name)
    src = make_source(tmp_path / "src", problems=problems, splits=splits, images=images)
    out = tmp_path / "out"
    out.mkdir()
    result = cli("prepare", src, "--out", out, "--splits", "train,test", "--strict")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert _files(out) == []  # nothing written, not even the good split


@pytest.mark.parametrize("name", BREAKS)
def test_skip_bad(cli, tmp_path, name):
    problems, splits, images, needles = _break(name)
    src = make_source(tmp_path / "src", problems=problems, splits=splits, images=images)
    out = tmp_path / "out"
    result = cli("prepare", src, "--out", out, "--splits", "train,test", "--strict", "--skip-bad", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["skipped"] == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped:")]
    assert len(warnings) == 1 and all(n in warnings[0] for n in needles)
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = [s for split in manifest["splits"].values() for s in split["skipped"]]
    assert len(skipped) == 1
    kept = [r["qid"] for split in ("train", "test") for r in load_records(out, split)]
    assert len(kept) == len(set(kept)) == sum(len(v) for v in splits.values()) - 1
    assert skipped[0]["qid"] not in kept or name == "duplicate qid"  # a duplicate keeps its first listing


def test_many_bad_items_counted(cli, tmp_path):
    problems = {str(i): _problem(answer=9) for i in range(1, 5)}
    src = make_source(tmp_path / "src", problems=problems, splits={"train": ["1", "2", "3", "4"]})
    result = cli("prepare", src, "--out", tmp_path / "out", "--splits", "train")
    assert result.exit_code == 1 and "qid 1" in result.stderr and "and 3 more bad items" in result.stderr
    assert "--skip-bad" in result.stderr


@pytest.mark.parametrize("victim", ["problems.json", "pid_splits.json", "captions.json"])
def test_bad_json_file(cli, tmp_path, victim):
    src = make_source(tmp_path / "src", captions={"captions": {}})
    (src / victim).write_text('{\n  "1": {"question": "x",,\n}')
    result = cli("prepare", src, "--out", tmp_path / "out", "--splits", "train")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and f"{victim}:2:" in line and "invalid JSON" in line
    assert not (tmp_path / "out").exists()


def test_bad_source_folders(cli, tmp_path):
    result = cli("prepare", tmp_path / "nope", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "not a directory" in result.stderr
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "problems.json").write_text("{}")
    result = cli("prepare", tmp_path / "half", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "pid_splits.json" in result.stderr
    src = make_source(tmp_path / "src")
    result = cli("prepare", src, "--out", tmp_path / "out", "--splits", "train",
                 "--images", tmp_path / "no-images")
    assert result.exit_code == 1 and "no-images" in result.stderr
    (src / "pid_splits.json").write_text(json.dumps({"train": "1,2"}))
    result = cli("prepare", src, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "'train' is not a list" in result.stderr
    assert not (tmp_path / "out").exists()


def test_out_below_a_file_is_one_line_error(cli, tmp_path):
    src = make_source(tmp_path / "src")
    (tmp_path / "afile").write_text("x")
    result = cli("prepare", src, "--out", tmp_path / "afile" / "data", "--splits", "train")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "cannot create directory" in lines[0]
    assert str(tmp_path / "afile" / "data") in lines[0] and "Traceback" not in result.stderr


def test_bad_captions_shape(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"captions": {"1": 5}}))
    with pytest.raises(DataError, match="qid 1"):
        read_captions(path)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="expected"):
        read_captions(path)


# --------------------------------------------------------------------------- load_records

def test_load_records_errors(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_records(tmp_path / "none", "test")
    (tmp_path / "train.jsonl").write_text(json.dumps(problem_to_record("1", _problem(), "train")) + "\n")
    (tmp_path / "val.jsonl").write_text('{"qid": "1"}\n')
    with pytest.raises(UnknownSplitError, match=r"no split 'test'; splits present: train, val"):
        load_records(tmp_path, "test")
    with pytest.raises(DataError, match=r"val.jsonl:1: record missing"):
        load_records(tmp_path, "val")
    (tmp_path / "val.jsonl").write_text("{oops\n")
    with pytest.raises(DataError, match=r"val.jsonl:1:"):
        load_records(tmp_path, "val")
    assert load_records(tmp_path, "train")[0]["choices"] == ["ice", "fire"]


@pytest.mark.parametrize("bad", [None, {"qid": "1"}, True, ""])
def test_pid_splits_items_must_be_qids(tmp_path, bad):
    from mmcot_cli.data.readers.scienceqa import read_pid_splits

    path = tmp_path / "pid_splits.json"
    path.write_text(json.dumps({"train": ["1", bad]}))
    with pytest.raises(DataError, match=r"pid_splits.json: split 'train' item 1: .* is not a qid"):
        read_pid_splits(path)


@pytest.mark.parametrize("name", ["../image.png", "sub/image.png", ".."])
def test_image_name_must_stay_in_its_folder(name):
    from mmcot_cli.data.readers.scienceqa import problem_errors

    assert "bare file name" in problem_errors("7", _problem(image=name))
    assert problem_errors("7", _problem(image="image.png")) is None
