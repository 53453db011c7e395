"""`mmcot prepare --format aokvqa|jsonl`: records, images, predict-only splits, validation, --skip-bad, detection."""

import json
from pathlib import Path

import pytest
from own_data_fixtures import sqa_source, write_aokvqa, write_jsonl  # noqa: F401 (fixture)

from mmcot_cli.data.prompts import build_prompt
from mmcot_cli.data.readers import detect_format
from mmcot_cli.data.records import RECORD_FIELDS, load_records
from mmcot_cli.errors import DataError


def _lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def _row(i, split="train", **kw):
    return {"id": f"q{i}", "split": split, "question": f"Question {i}?", "choices": ["yes", "no"], "answer": i % 2,
            **kw}


def test_jsonl_records_follow_the_scienceqa_schema(cli, tmp_path, sqa_source):
    rows = write_jsonl(sqa_source, tmp_path / "src" / "data.jsonl", per_split=6)
    result = cli("--quiet", "prepare", tmp_path / "src" / "data.jsonl", "--out", tmp_path / "d", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "jsonl" and summary["group_fields"] == ["category", "subject"]
    assert summary["splits"]["test"]["predict_only"] and not summary["splits"]["train"]["predict_only"]
    by_id = {r["id"]: r for r in rows}
    for split in ("train", "val", "test"):
        records = load_records(tmp_path / "d", split)
        assert [r["qid"] for r in records] == [r["id"] for r in rows if r["split"] == split]
        for rec in records:
            src = by_id[rec["qid"]]
            assert set(RECORD_FIELDS) <= set(rec)
            assert rec["hint"] == src["context"] and rec["choices"] == src["choices"]
            assert rec["answer"] == src.get("answer")
            assert rec["groups"] == {"subject": src["subject"], "category": src["category"]}
            if "rationale" in src:
                assert rec["solution"] == src["rationale"] and rec["lecture"] == ""
            else:
                assert (rec["lecture"], rec["solution"]) == (src["lecture"], src["solution"])
            if "image" in src:
                assert rec["image_paths"] == [str((tmp_path / "src" / src["image"]).resolve())]
            else:
                assert rec["image_paths"] == [] and rec["image"] is None
    # A predict-only record still gives the model input; only the target is absent.
    test = load_records(tmp_path / "d", "test")[0]
    source, target = build_prompt(test, "QCM-E")
    assert source.startswith("Question: ") and source.endswith("Solution:") and target == ""
    with pytest.raises(DataError, match="predict-only"):
        build_prompt(test, "QCMA-E")


def test_aokvqa_records_images_and_predict_only_test(cli, tmp_path, sqa_source):
    items = write_aokvqa(sqa_source, tmp_path / "aok", tmp_path / "coco", per_split=5)
    result = cli("--quiet", "prepare", tmp_path / "aok", "--images", tmp_path / "coco", "--out", tmp_path / "d",
                 "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "aokvqa" and list(summary["splits"]) == ["train", "val", "test"]
    assert summary["splits"]["test"]["predict_only"] and summary["splits"]["val"]["with_images"] == 5
    val = load_records(tmp_path / "d", "val")
    for rec, item in zip(val, items["val"]):
        assert rec["qid"] == item["question_id"] and rec["answer"] == item["correct_choice_idx"]
        assert rec["rationales"] == item["rationales"] and rec["solution"] == item["rationales"][0]
        assert rec["direct_answers"] == item["direct_answers"] and rec["hint"] == ""
        assert rec["image_paths"] == [str((tmp_path / "coco" / "val2017" / f"{item['image_id']:012d}.jpg").resolve())]
        assert rec["groups"] == {"difficult_direct_answer": str(item["difficult_direct_answer"]).lower()}
    # Context "N/A" as for a ScienceQA question without a hint.
    assert "Context: N/A" in build_prompt(val[0], "QCM-E")[0]
    test = load_records(tmp_path / "d", "test")
    assert all(r["answer"] is None and "direct_answers" not in r for r in test)
    assert test[0]["image_paths"][0].endswith(f"test2017/{items['test'][0]['image_id']:012d}.jpg")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["format"] == "aokvqa" and manifest["splits"]["test"]["predict_only"]
    # `prompts` shows the rationale stage's training examples as train builds them: one per gold rationale.
    res = cli("prompts", tmp_path / "d", "--split", "val", "--format", "QCM-E", "--rationale-source", "gold")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["qid"] for r in rows] == [i["question_id"] for i in items["val"] for _ in i["rationales"]]
    targets = [f"Solution: {t}".replace("\n", "\\n") for i in items["val"] for t in i["rationales"]]
    assert [r["target"] for r in rows] == targets
    plain = cli("prompts", tmp_path / "d", "--split", "val", "--format", "QCM-E")
    assert len(plain.stdout.splitlines()) == len(items["val"])  # without it: one line per record
    res = cli("prompts", tmp_path / "d", "--split", "val", "--format", "QCM-A", "--rationale-source", "gold")
    assert res.exit_code == 2 and "target has none" in res.stderr


def test_detection(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "aokvqa_v1p0_val.json").write_text("[]")
    (tmp_path / "j.jsonl").write_text("")
    assert detect_format(tmp_path / "a") == "aokvqa" and detect_format(tmp_path / "j.jsonl") == "jsonl"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="problems.json.*aokvqa_v1p0"):
        detect_format(tmp_path / "empty")


@pytest.mark.parametrize("bad, message", [
    ({"choices": ["only"]}, "'choices' has 1 items"),
    ({"answer": 2}, "answer index 2 out of range"),
    ({"question": ""}, "'question' must be a non-empty string"),
    ({"rationale": "r", "solution": "s"}, "either 'rationale' or 'lecture' \\+ 'solution'"),
    ({"difficulty": 3}, "unknown field 'difficulty'"),
    ({"image": "missing.png"}, "missing.png: id q1: image of split train not found"),
])
def test_jsonl_bad_line_names_file_line_and_id(cli, tmp_path, bad, message):
    (tmp_path / "img.png").write_bytes(b"x")
    rows = [_row(0, image="img.png"), {**_row(1), **bad}, _row(2)]
    (tmp_path / "d.jsonl").write_text(_lines(rows))
    result = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "out")
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    import re
    assert re.search(message, line), line
    if "image" not in bad:
        assert f"{tmp_path / 'd.jsonl'}:2: id q1:" in line
    # --skip-bad drops exactly that line and lists it in the manifest.
    result = cli("--quiet", "prepare", tmp_path / "d.jsonl", "--out", tmp_path / "out", "--skip-bad", "--json")
    assert result.exit_code == 0, result.output
    assert [r["qid"] for r in load_records(tmp_path / "out", "train")] == ["q0", "q2"]
    skipped = json.loads((tmp_path / "out" / "manifest.json").read_text())["splits"]["train"]["skipped"]
    assert [s["qid"] for s in skipped] == ["q1"]


def test_jsonl_empty_rationale_means_no_rationale(cli, tmp_path):
    """`"rationale": ""` keeps the problem without a rationale (as ScienceQA keeps its empty solutions) and the
    summary counts it; a blank string is the same; an empty list entry is still a bad line."""
    rows = [_row(0, rationale="Because."), _row(1, rationale=""), _row(2, rationale="  "), _row(3)]
    (tmp_path / "d.jsonl").write_text(_lines(rows))
    result = cli("--quiet", "prepare", tmp_path / "d.jsonl", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"]["train"]["without_rationale"] == 3
    records = load_records(tmp_path / "out", "train")
    assert [r["qid"] for r in records] == ["q0", "q1", "q2", "q3"]
    assert [r["solution"] for r in records] == ["Because.", "", "", ""]
    assert "rationales" not in records[1]
    assert build_prompt(records[1], "QCM-E")[1] == "Solution:"  # no rationale: the empty target, as ScienceQA
    table = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "out2")
    assert table.exit_code == 0 and "rationale" in table.stderr  # the "no rationale" column
    (tmp_path / "e.jsonl").write_text(_lines([_row(0), _row(1, rationale=["ok", ""])]))
    result = cli("prepare", tmp_path / "e.jsonl", "--out", tmp_path / "out3")
    assert result.exit_code == 1 and "'rationale' must be a string" in result.stderr


def test_scienceqa_summary_counts_problems_without_rationale(cli, tmp_path, sample_dir):
    result = cli("--quiet", "prepare", sample_dir, "--out", tmp_path / "d", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for split, s in summary["splits"].items():
        records = load_records(tmp_path / "d", split)
        assert s["without_rationale"] == sum(1 for r in records if not r["solution"].strip())


def test_jsonl_split_rules(cli, tmp_path):
    rows = [_row(0), _row(0), _row(1, split="val")]
    (tmp_path / "d.jsonl").write_text(_lines(rows))
    result = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "d.jsonl:2: id q0: duplicate id in split train (first at" in result.stderr
    rows = [_row(0), {k: v for k, v in _row(1).items() if k != "answer"}]
    (tmp_path / "d.jsonl").write_text(_lines(rows))
    result = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "d.jsonl:2: id q1: no 'answer'" in result.stderr
    result = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "o", "--splits", "dev")
    assert result.exit_code == 2 and "'dev'" in result.stderr and "train" in result.stderr
    result = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "o", "--captions", tmp_path / "c.json")
    assert result.exit_code == 2 and "--captions" in result.stderr
    result = cli("prepare", tmp_path / "d.jsonl", "--out", tmp_path / "o", "--format", "csv")
    assert result.exit_code == 2 and "aokvqa, hub, jsonl, scienceqa" in result.stderr
    assert not (tmp_path / "o").exists()


def test_jsonl_split_without_any_image_on_disk_is_kept_text_only(cli, tmp_path):
    rows = [_row(0, image="imgs/a.png"), _row(1, image="imgs/b.png")]
    (tmp_path / "d.jsonl").write_text(_lines(rows))
    result = cli("--quiet", "prepare", tmp_path / "d.jsonl", "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0 and "none of its 2 images" in result.stderr
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["splits"]["train"]["missing_images"] == \
        ["q0", "q1"]


def test_aokvqa_bad_item(cli, tmp_path, sqa_source):
    items = write_aokvqa(sqa_source, tmp_path / "aok", tmp_path / "coco", per_split=3)
    items["val"][1]["correct_choice_idx"] = 9
    (tmp_path / "aok" / "aokvqa_v1p0_val.json").write_text(json.dumps(items["val"]))
    result = cli("prepare", tmp_path / "aok", "--images", tmp_path / "coco", "--out", tmp_path / "d")
    qid = items["val"][1]["question_id"]
    assert result.exit_code == 1 and not (tmp_path / "d").exists()
    assert f"aokvqa_v1p0_val.json: item 1: id {qid}: correct_choice_idx index 9 out of range" in result.stderr
    result = cli("--quiet", "prepare", tmp_path / "aok", "--images", tmp_path / "coco", "--out", tmp_path / "d",
                 "--skip-bad", "--splits", "val")
    assert result.exit_code == 0 and len(load_records(tmp_path / "d", "val")) == 2
    # One image of a split that has the others: that item is bad.
    Path(tmp_path / "coco" / "train2017" / f"{items['train'][0]['image_id']:012d}.jpg").unlink()
    result = cli("prepare", tmp_path / "aok", "--images", tmp_path / "coco", "--out", tmp_path / "d2",
                 "--splits", "train")
    assert result.exit_code == 1 and "image of split train not found" in result.stderr
