"""`mmcot score` on A-OKVQA / generic JSONL data: overall and per-group accuracy, A-OKVQA MC and DA accuracy in
both difficult-question settings, and `--export-aokvqa`."""

import json

import pytest
from own_data_fixtures import sqa_source, write_aokvqa, write_jsonl  # noqa: F401 (fixture)

from mmcot_cli.data.records import load_records
from mmcot_cli.evaluation.own_formats import direct_answer_score


def _preds(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _answer(letter):
    return f"Solution: because. The answer is ({letter})."


@pytest.fixture
def aok(cli, tmp_path, sqa_source):
    write_aokvqa(sqa_source, tmp_path / "aok", tmp_path / "coco", per_split=6)
    assert cli("--quiet", "prepare", tmp_path / "aok", "--images", tmp_path / "coco", "--out",
               tmp_path / "d").exit_code == 0
    return tmp_path / "d"


def test_direct_answer_score_is_capped_exact_match():
    das = ["cab", "cab", "taxi", "Cab", "cab", "cab"]
    assert direct_answer_score("cab", das) == 1.0
    assert direct_answer_score("taxi", das) == pytest.approx(1 / 3)
    assert direct_answer_score("CAB", das) == 0.0 and direct_answer_score(None, das) == 0.0


def test_aokvqa_metrics_and_export(cli, aok, tmp_path):
    val = load_records(aok, "val")
    # Right on items 0, 1, 2; the next option (2 of 10 direct answers) on 3, 4; no answer on 5.
    rows = []
    for i, r in enumerate(val):
        if i < 3:
            rows.append({"qid": r["qid"], "prediction": _answer("ABCDE"[r["answer"]])})
        elif i < 5:
            rows.append({"qid": r["qid"], "prediction": _answer("ABCDE"[(r["answer"] + 1) % len(r["choices"])])})
        else:
            rows.append({"qid": r["qid"], "prediction": "no letter"})
    result = cli("--quiet", "score", _preds(tmp_path / "p.jsonl", rows), "--data", aok, "--split", "val", "--json",
                 "--export-aokvqa", tmp_path / "val-mc.json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["accuracy"] == 50.0 and out["num_fail"] == 1
    difficult = [r["difficult_direct_answer"] for r in val]  # the fixture marks items 2 and 5 difficult
    assert difficult == [False, False, True, False, False, True]
    groups = out["groups"]["difficult_direct_answer"]
    assert groups["true"] == {"correct": 1, "total": 2, "accuracy": 50.0}
    assert groups["false"] == {"correct": 2, "total": 4, "accuracy": 50.0}
    aok_m = out["aokvqa"]
    # MC over all six: 3 right. DA over the four non-difficult: 1 + 1 + 2/3 + 2/3. The other filterings:
    assert aok_m["mc_accuracy"] == 50.0 and aok_m["da_accuracy"] == round(100 * (2 + 4 / 3) / 4, 2)
    assert aok_m["mc_accuracy_non_difficult"] == 50.0
    assert aok_m["da_accuracy_all"] == round(100 * (3 + 4 / 3) / 6, 2)
    assert (aok_m["num_questions"], aok_m["num_non_difficult"]) == (6, 4)
    assert "groups" in out and "acc_natural" not in out
    exported = json.loads((tmp_path / "val-mc.json").read_text())
    assert list(exported) == [r["qid"] for r in val]
    assert [exported[r["qid"]]["multiple_choice"] for r in val[:3]] == [r["choices"][r["answer"]] for r in val[:3]]
    assert exported[val[5]["qid"]] == {"multiple_choice": "", "direct_answer": ""}


def official_accuracy(dataset: list[dict], predictions: dict, setting: str, skip_difficult: bool) -> float:
    """allenai/aokvqa evaluation/eval_predictions.py's documented formula, re-implemented here independently of
    mmcot: the file is {question_id: {"multiple_choice": str, "direct_answer": str}}; MC counts
    pred == choices[correct_choice_idx], DA min(1, #(pred == da for da in direct_answers) / 3) (exact strings);
    a question without a prediction scores 0; the mean ×100 over the questions kept. The current script leaves
    the difficult questions out of DA only; the older one out of MC (evaluation/own_formats.py reports both)."""
    kept = [q for q in dataset if not (skip_difficult and q["difficult_direct_answer"])]
    scores = []
    for q in kept:
        entry = predictions.get(q["question_id"])
        if entry is None or setting not in entry:
            scores.append(0.0)
            continue
        pred = entry[setting]
        if setting == "multiple_choice":
            scores.append(float(pred == q["choices"][q["correct_choice_idx"]]))
        else:
            scores.append(min(1.0, sum(pred == da for da in q["direct_answers"]) / 3.0))
    return 100.0 * sum(scores) / len(scores)


def test_exported_file_scores_identically_under_the_official_evaluation(cli, tmp_path, sqa_source):
    """mmcot's --export-aokvqa file, scored by the official formula against the raw aokvqa_v1p0_val.json, gives
    exactly mmcot's own MC and DA numbers, in both difficult-question filterings."""
    source = write_aokvqa(sqa_source, tmp_path / "aok", tmp_path / "coco", per_split=9)
    assert cli("--quiet", "prepare", tmp_path / "aok", "--images", tmp_path / "coco", "--out",
               tmp_path / "d").exit_code == 0
    val = load_records(tmp_path / "d", "val")
    # right, the next option (2/3 DA credit), another wrong one, or no answer at all
    rows = []
    for i, r in enumerate(val):
        n = len(r["choices"])
        pick = [r["answer"], (r["answer"] + 1) % n, (r["answer"] + 2) % n, None][i % 4]
        rows.append({"qid": r["qid"], "prediction": _answer("ABCDE"[pick]) if pick is not None else "no letter"})
    result = cli("--quiet", "score", _preds(tmp_path / "p.jsonl", rows), "--data", tmp_path / "d", "--split", "val",
                 "--json", "--export-aokvqa", tmp_path / "predictions_val.json")
    assert result.exit_code == 0, result.output
    ours = json.loads(result.stdout)["aokvqa"]
    exported = json.loads((tmp_path / "predictions_val.json").read_text())
    dataset = json.loads((tmp_path / "aok" / "aokvqa_v1p0_val.json").read_text())
    assert dataset == source["val"] and any(q["difficult_direct_answer"] for q in dataset)
    official = {
        "mc_accuracy": official_accuracy(dataset, exported, "multiple_choice", skip_difficult=False),
        "da_accuracy": official_accuracy(dataset, exported, "direct_answer", skip_difficult=True),
        "mc_accuracy_non_difficult": official_accuracy(dataset, exported, "multiple_choice", skip_difficult=True),
        "da_accuracy_all": official_accuracy(dataset, exported, "direct_answer", skip_difficult=False),
    }
    assert 0 < official["mc_accuracy"] < 100 and 0 < official["da_accuracy"] < 100
    assert {k: round(v, 2) for k, v in official.items()} == {k: ours[k] for k in official}
    # The DA credit really came from the option text: the next option is 2 of the 10 direct answers.
    assert official["da_accuracy_all"] != official["mc_accuracy"]


def test_predict_only_split_is_exported_not_scored(cli, aok, tmp_path):
    test = load_records(aok, "test")
    preds = _preds(tmp_path / "p.jsonl", [{"qid": r["qid"], "prediction": _answer("B")} for r in test])
    result = cli("score", preds, "--data", aok, "--split", "test")
    assert result.exit_code == 1 and "predict-only" in result.stderr and "--export-aokvqa" in result.stderr
    result = cli("--quiet", "score", preds, "--data", aok, "--split", "test", "--export-aokvqa", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t.json").read_text()) == {
        r["qid"]: {"multiple_choice": r["choices"][1], "direct_answer": r["choices"][1]} for r in test}


def test_jsonl_per_group_accuracy_and_table(cli, tmp_path, sqa_source):
    write_jsonl(sqa_source, tmp_path / "src" / "d.jsonl", per_split=6)
    assert cli("--quiet", "prepare", tmp_path / "src" / "d.jsonl", "--out", tmp_path / "d").exit_code == 0
    val = load_records(tmp_path / "d", "val")
    rows = [{"qid": r["qid"], "answer_index": r["answer"] if i % 2 == 0 else 1 - r["answer"] if
             len(r["choices"]) == 2 else (r["answer"] + 1) % len(r["choices"])} for i, r in enumerate(val)]
    preds = _preds(tmp_path / "p.jsonl", rows)
    out = json.loads(cli("--quiet", "score", preds, "--data", tmp_path / "d", "--split", "val", "--json").stdout)
    assert out["accuracy"] == 50.0 and out["data_format"] == "jsonl" and "aokvqa" not in out
    for name in ("subject", "category"):
        expected = {}
        for i, r in enumerate(val):
            cell = expected.setdefault(r["groups"][name], [0, 0])
            cell[0] += i % 2 == 0
            cell[1] += 1
        assert {v: [c["correct"], c["total"]] for v, c in out["groups"][name].items()} == \
            {v: [c, t] for v, (c, t) in expected.items()}
    table = cli("--quiet", "score", preds, "--data", tmp_path / "d", "--split", "val")
    assert table.exit_code == 0 and "overall" in table.stdout and "subject =" in table.stdout
    chance = round(100 * sum(1 / len(r["choices"]) for r in val) / len(val), 2)  # beside accuracy, both formats
    assert out["baselines"]["chance"] == chance and out["baselines"]["majority"] is not None
    assert "baseline: chance" in table.stdout and "baseline: majority class" in table.stdout
    result = cli("score", preds, "--data", tmp_path / "d", "--split", "val", "--export-aokvqa", tmp_path / "x.json")
    assert result.exit_code == 1 and "A-OKVQA" in result.stderr and not (tmp_path / "x.json").exists()


def test_export_of_predict_only_split_checks_predictions(cli, aok, tmp_path):
    test = load_records(aok, "test")
    rows = [{"qid": r["qid"], "prediction": _answer("A")} for r in test] + [{"qid": "nope", "prediction": "x"}]
    preds = _preds(tmp_path / "p.jsonl", rows)
    result = cli("score", preds, "--data", aok, "--split", "test", "--export-aokvqa", tmp_path / "t.json")
    assert result.exit_code == 1 and f"p.jsonl:{len(rows)}: qid nope is not in the gold data" in result.stderr
    assert not (tmp_path / "t.json").exists()
    result = cli("--quiet", "score", preds, "--data", aok, "--split", "test", "--export-aokvqa", tmp_path / "t.json",
                 "--skip-bad", "--fallback", "random", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["num_bad"] == 1
    assert json.loads((tmp_path / "t.json").read_text()) == {
        r["qid"]: {"multiple_choice": r["choices"][0], "direct_answer": r["choices"][0]} for r in test}
