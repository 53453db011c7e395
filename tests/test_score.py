"""`mmcot score`: answer extraction, evaluate_acc.py categories, fallbacks, input formats, errors, rationale
metrics, and the real ScienceQA sample."""

import json
import math
import warnings
from collections import Counter

import pytest
from conftest import build_record

from mmcot_cli.data.answers import extract_answer, letter_to_index
from mmcot_cli.errors import DataError, UnknownNameError
from mmcot_cli.evaluation.rationale_metrics import bleu, normalize_rationale, rouge_l
from mmcot_cli.evaluation.score import SQA_TOPICS, ScoreConfig, score, score_records


def _rec(qid, subject, grade, hint, image, topic, n_choices, answer, lecture="", solution=""):
    return build_record(qid=qid, question=f"q{qid}?", hint=hint, choices=[f"c{i}" for i in range(n_choices)],
                        answer=answer, lecture=lecture, solution=solution, subject=subject, grade=grade,
                        topic=topic, image=image)


# Every evaluate_acc.py group is covered; "" image is falsy like null.
RECORDS = [
    _rec("1", "natural science", "grade3", "h", "image.png", "physics", 2, 0),
    _rec("2", "natural science", "grade8", "", None, "biology", 3, 2),
    _rec("3", "social science", "grade5", "", "image.png", "geography", 4, 1),
    _rec("4", "social science", "grade10", "ctx", None, "economics", 2, 1),
    _rec("5", "language science", "grade2", "", None, "vocabulary", 5, 4),
    _rec("6", "language science", "grade12", "t", "", "grammar", 2, 0),
    _rec("7", "natural science", "grade1", "", None, "custom-topic", 2, 1),
    _rec("8", "social science", "grade6", "", None, "civics", 3, 0),
]

PREDS = {
    "1": {"prediction": "The answer is (A).", "stage": "answer"},                   # right
    "2": {"prediction": "The answer is (A).", "answer_index": 2},                   # index wins: right
    "3": {"prediction": "The answer is (A). The answer is (B)."},                   # two matches: failure
    "4": {"prediction": "Because ... The answer is (B)."},                          # right
    "5": {"answer_index": 3},                                                       # wrong
    "6": {"prediction": "the answer is (A)"},                                       # no match: failure
    # "7" has no prediction: missing, wrong
    "8": {"prediction": "The answer is (D)."},                                      # beyond 3 choices: wrong
}

EXPECTED_COUNTS = {
    "acc_natural": (2, 3), "acc_social": (1, 3), "acc_language": (0, 2), "acc_has_text": (2, 3),
    "acc_has_image": (1, 2), "acc_no_context": (1, 4), "acc_grade_1_6": (1, 5), "acc_grade_7_12": (2, 3),
    "acc_average": (3, 8), "acc_physics": (1, 1), "acc_biology": (1, 1), "acc_geography": (0, 1),
    "acc_economics": (1, 1), "acc_vocabulary": (0, 1), "acc_grammar": (0, 1), "acc_custom-topic": (0, 1),
    "acc_civics": (0, 1),
}
EXPECTED_PERCENT = {
    "acc_natural": 66.67, "acc_social": 33.33, "acc_language": 0.0, "acc_has_text": 66.67, "acc_has_image": 50.0,
    "acc_no_context": 25.0, "acc_grade_1_6": 20.0, "acc_grade_7_12": 66.67, "acc_average": 37.5,
    "acc_physics": 100.0, "acc_biology": 100.0, "acc_geography": 0.0, "acc_economics": 100.0,
    "acc_vocabulary": 0.0, "acc_grammar": 0.0, "acc_custom-topic": 0.0, "acc_civics": 0.0,
}


def _problems_file(tmp_path, records=RECORDS, extra=None):
    """A problems.json (qid → problem, the benchmark's layout) holding `records`."""
    problems = {r["qid"]: {k: v for k, v in r.items() if k not in ("qid", "image_paths", "caption")}
                for r in records}
    problems.update(extra or {})
    path = tmp_path / "problems.json"
    path.write_text(json.dumps(problems))
    return path


def _jsonl(tmp_path, rows, name="preds.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------ extraction


@pytest.mark.parametrize("text, letter", [
    ("The answer is (B).", "B"),
    ("Solution: blah. The answer is (E). BECAUSE: x", "E"),
    ("The answer is (Z)", "Z"),
    ("The answer is B.", None),            # the reference needs the parentheses
    ("the answer is (B)", None),           # and is case-sensitive
    ("The answer is (A) or The answer is (B)", None),  # several matches fail
    ("The answer is (A). The answer is (A).", None),
    ("", None),
    (None, None),
])
def test_extract_answer(text, letter):
    assert extract_answer(text) == letter


def test_letter_to_index():
    assert letter_to_index("A", 2) == 0
    assert letter_to_index("B", 2) == 1
    assert letter_to_index("C", 2) is None
    assert letter_to_index("E", 5) == 4
    assert letter_to_index("a", 5) is None


# ------------------------------------------------------------------------------------------ accuracy


def test_every_category_exact():
    result = score_records(RECORDS, PREDS)
    for key, (correct, total) in EXPECTED_COUNTS.items():
        assert result["counts"][key] == {"correct": correct, "total": total}, key
        assert result[key] == EXPECTED_PERCENT[key], key
    # The benchmark's 26 topics are always reported; the ones with no items are empty, not errors.
    for topic in SQA_TOPICS:
        assert f"acc_{topic}" in result
    assert result["acc_punctuation"] is None
    assert result["counts"]["acc_punctuation"] == {"correct": 0, "total": 0}
    assert (result["num_fail"], result["num_invalid_letter"], result["num_missing"]) == (2, 1, 1)
    assert (result["num_gold"], result["num_scored"], result["num_predictions"], result["num_bad"]) == (8, 8, 7, 0)
    assert result["rationale"] is None


def test_subset_and_plain_text_or_index_predictions():
    # Library callers may pass {qid: text} or {qid: index}; any subset of qids is scored on its own.
    subset = RECORDS[:2]
    result = score_records(subset, {"1": "The answer is (B).", "2": 2})
    assert result["acc_average"] == 50.0
    assert result["counts"]["acc_average"] == {"correct": 1, "total": 2}
    assert result["acc_social"] is None and result["counts"]["acc_social"]["total"] == 0


def test_missing_predictions_warn_and_score_wrong():
    messages = []
    result = score_records(RECORDS, PREDS, warn=messages.append)
    assert result["num_missing"] == 1
    assert any("1 of 8 gold qids have no prediction" in m and "7" in m for m in messages)


def test_unknown_fallback_is_a_name_error():
    with pytest.raises(UnknownNameError):
        score_records(RECORDS, PREDS, fallback="guess")


# ------------------------------------------------------------------------------------------ random fallback


def test_random_fallback_deterministic_and_valid():
    # 300 two-choice items whose predictions all fail extraction; only indices 0/1 may ever be drawn.
    records = [_rec(str(i), "natural science", "grade3", "", None, "physics", 2, i % 2) for i in range(300)]
    preds = {str(i): "no answer here" for i in range(300)}
    a = score_records(records, preds, fallback="random", seed=7, details=True)
    b = score_records(records, preds, fallback="random", seed=7, details=True)
    c = score_records(records, preds, fallback="random", seed=8, details=True)
    assert a["items"] == b["items"]
    assert [i["pred_index"] for i in a["items"]] != [i["pred_index"] for i in c["items"]]
    drawn = [i["pred_index"] for i in a["items"]]
    assert set(drawn) == {0, 1}
    assert a["num_fail"] == 300 and a["num_random"] == 300 and a["seed"] == 7
    correct = sum(i["correct"] for i in a["items"])
    assert a["counts"]["acc_average"]["correct"] == correct
    assert 90 < correct < 210  # a fair coin on 300 items
    strict = score_records(records, preds)
    assert strict["acc_average"] == 0.0 and strict["num_fail"] == 300 and strict["seed"] is None


def test_random_fallback_letters_beyond_choices():
    records = [_rec("1", "natural science", "grade3", "", None, "physics", 2, 0),
               _rec("2", "natural science", "grade3", "", None, "physics", 2, 0)]
    # "C" is one of the reference's A–E options: kept and wrong. "Z" is not: redrawn among the real options.
    result = score_records(records, {"1": "The answer is (C).", "2": "The answer is (Z)."}, fallback="random",
                           seed=0, details=True)
    items = {i["qid"]: i for i in result["items"]}
    assert items["1"]["pred_index"] is None and items["1"]["status"] == "invalid_letter"
    assert items["2"]["pred_index"] in (0, 1) and items["2"]["status"] == "invalid_letter_random"
    assert result["num_invalid_letter"] == 2 and result["num_fail"] == 0
    strict = score_records(records, {"1": "The answer is (C).", "2": "The answer is (Z)."}, details=True)
    assert [i["pred_index"] for i in strict["items"]] == [None, None]


def test_reference_fallback_draws_from_all_five_letters(cli, tmp_path):
    """The original: random.choice(range(5)) whatever the item's choices, so 2-choice items are mostly wrong."""
    records = [_rec(str(i), "natural science", "grade3", "", None, "physics", 2, i % 2) for i in range(500)]
    preds = {str(i): "no answer here" for i in range(500)}
    a = score_records(records, preds, fallback="reference", seed=3, details=True)
    assert a["items"] == score_records(records, preds, fallback="reference", seed=3, details=True)["items"]
    drawn = [i["pred_index"] for i in a["items"]]
    assert set(drawn) == {0, 1, 2, 3, 4}
    assert not any(i["correct"] for i in a["items"] if i["pred_index"] >= 2)
    correct = sum(i["correct"] for i in a["items"])
    assert 60 < correct < 140  # about 1 in 5, not 1 in 2
    assert a["fallback"] == "reference" and a["seed"] == 3 and a["num_fail"] == 500
    z = score_records(records[:1], {"0": "The answer is (Z)."}, fallback="reference", seed=0, details=True)
    assert z["items"][0]["status"] == "invalid_letter_random" and 0 <= z["items"][0]["pred_index"] < 5


# ------------------------------------------------------------------------------------------ CLI and formats


def _jsonl_rows(preds):
    return [{"qid": q, **p} for q, p in preds.items()]


def test_cli_jsonl_matches_library(tmp_path, cli):
    data = _problems_file(tmp_path)
    preds = _jsonl(tmp_path, _jsonl_rows(PREDS))
    res = cli("score", preds, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # stdout is exactly one JSON object
    assert out["format"] == "jsonl" and out["split"] == "test"
    for key, (correct, total) in EXPECTED_COUNTS.items():
        assert out["counts"][key] == {"correct": correct, "total": total}
        assert out[key] == EXPECTED_PERCENT[key]
    assert "1 of 8 gold qids have no prediction" in res.stderr


def test_cli_table(tmp_path, cli):
    data = _problems_file(tmp_path)
    preds = _jsonl(tmp_path, _jsonl_rows(PREDS))
    res = cli("score", preds, "--data", data)
    assert res.exit_code == 0, res.output
    assert "NAT (acc_natural)" in res.stdout and "2/3" in res.stdout and "66.67" in res.stdout
    assert "custom-topic" in res.stdout


def test_cli_scienceqa_results_json(tmp_path, cli):
    # Other splits in problems.json are ignored; results values may be ints or digit strings (int() in SQA).
    data = _problems_file(tmp_path, extra={"100": {**RECORDS[0], "split": "train"}})
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"acc": 0, "results": {"1": 0, "2": "2", "3": 1, "4": 0, "5": 4, "6": 1,
                                                        "7": 1, "8": 0}, "outputs": {}}))
    res = cli("score", results, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["format"] == "scienceqa-results"
    # right: 1, 2, 3, 5, 7, 8; wrong: 4, 6
    assert out["counts"]["acc_average"] == {"correct": 6, "total": 8}
    assert out["acc_average"] == 75.0
    assert out["counts"]["acc_has_text"] == {"correct": 1, "total": 3}
    assert out["acc_language"] == 50.0
    assert out["num_fail"] == 0 and out["num_missing"] == 0


def _assert_one_line_error(res, *needles, code=1):
    assert res.exit_code == code, res.output
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("rows, needles", [
    (['{"qid": "1", "prediction": "The answer is (A)."}', '{"qid": "2", "predic'], ["preds.jsonl:2", "invalid JSON"]),
    (['{"qid": "1", "prediction": "x"}', '[1, 2]'], ["preds.jsonl:2", "expected a JSON object"]),
    (['{"prediction": "The answer is (A)."}'], ["preds.jsonl:1", "missing 'qid'"]),
    (['{"qid": "1", "prediction": "x"}', '', '{"qid": "1", "prediction": "y"}'],
     ["preds.jsonl:3", "duplicate qid 1", "preds.jsonl:1"]),
    (['{"qid": "999", "prediction": "x"}'], ["preds.jsonl:1", "qid 999", "is not in", "problems.json (split test)"]),
    (['{"qid": "1", "answer_index": 2}'], ["preds.jsonl:1", "qid 1", "option index 2", "2 choices"]),
    (['{"qid": "1", "answer_index": "0"}'], ["preds.jsonl:1", "qid 1", "answer_index"]),
    (['{"qid": "1", "answer_index": true}'], ["preds.jsonl:1", "answer_index"]),
    (['{"qid": "1", "prediction": 5}'], ["preds.jsonl:1", "'prediction' must be a string"]),
    (['{"qid": 1, "prediction": "x"}'], ["preds.jsonl:1", "'qid' must be a non-empty string"]),
    (['{"qid": "1", "stage": "final", "prediction": "x"}'], ["preds.jsonl:1", "'stage'"]),
    (['{"qid": "1"}'], ["preds.jsonl:1", "no 'prediction'"]),
])
def test_cli_jsonl_errors(tmp_path, cli, rows, needles):
    data = _problems_file(tmp_path)
    res = cli("score", _jsonl(tmp_path, rows), "--data", data, "--json")
    _assert_one_line_error(res, *needles)


@pytest.mark.parametrize("results, needles", [
    ({"1": 5}, ["results.json", "results['1']", "option index 5", "2 choices"]),
    ({"1": "A"}, ["results.json", "results['1']", "non-negative integer"]),
    ({"1": -1}, ["results.json", "results['1']"]),
    ({"1": "\u00b2"}, ["results.json", "results['1']", "non-negative integer"]),  # isdigit() but not int()-able
    ({"42": 0}, ["results.json", "qid 42", "is not in", "(split test)"]),
])
def test_cli_results_json_errors(tmp_path, cli, results, needles):
    data = _problems_file(tmp_path)
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": results}))
    _assert_one_line_error(cli("score", path, "--data", data), *needles)


def test_cli_file_level_errors(tmp_path, cli):
    data = _problems_file(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _assert_one_line_error(cli("score", empty, "--data", data), "empty.jsonl", "empty")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"preds": ["The answer is (A)."], "labels": []}))
    _assert_one_line_error(cli("score", other, "--data", data), "other.json", "without 'results'")
    _assert_one_line_error(cli("score", tmp_path / "nope.jsonl", "--data", data), "nope.jsonl", "not found")
    preds = _jsonl(tmp_path, ['{"qid": "1", "prediction": "x"}'])
    _assert_one_line_error(cli("score", preds, "--data", data, "--split", "val"), "problems.json", "'val'", code=2)
    _assert_one_line_error(cli("score", preds, "--data", data, "--fallback", "guess"), "guess", "strict", code=2)
    _assert_one_line_error(cli("score", preds, "--data", data, "--rationale-ref", "x"), "lecture+solution", code=2)
    bad_gold = _problems_file(tmp_path, extra={"9": {**RECORDS[0], "answer": 7}})
    _assert_one_line_error(cli("score", preds, "--data", bad_gold), "qid 9", "answer 7")


def test_cli_skip_bad_warns_and_counts(tmp_path, cli):
    data = _problems_file(tmp_path)
    rows = _jsonl_rows(PREDS) + ['{"qid": "1", "prediction": "dup"}', '{bad json', '{"qid": "999", "answer_index": 0}',
                                 '{"qid": "7", "answer_index": 9}']
    res = cli("score", _jsonl(tmp_path, rows), "--data", data, "--skip-bad", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["num_bad"] == 4
    # The bad rows changed nothing: same numbers as without them ("7" still missing).
    assert out["counts"]["acc_average"] == {"correct": 3, "total": 8} and out["num_missing"] == 1
    warned = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 5  # four bad entries + the missing-prediction warning
    assert sum("skipped" in w for w in warned) == 4
    assert any("preds.jsonl:8" in w and "duplicate" in w for w in warned)


# ------------------------------------------------------------------------------------------ rationale metrics


def test_rouge_and_bleu_hand_computed():
    # identical → 100; "w x y z q" vs "w x y z r": LCS 4 of 5 → F 0.8; BLEU-1 = 4/5;
    # BLEU-4 = (4/5 · 3/4 · 2/3 · 1/2)^(1/4) = 0.2^(1/4) (equal lengths: no brevity penalty); empty ref skipped.
    preds = ["The cat sat on the mat.", "w x y z q", "anything"]
    refs = ["The cat sat on the mat.", "w x y z r", "  "]
    assert rouge_l(preds, refs) == pytest.approx((100 + 80) / 2)
    assert bleu(preds, refs, 1) == pytest.approx((100 + 80) / 2)
    assert bleu(preds, refs, 4) == pytest.approx((100 + 100 * 0.2 ** 0.25) / 2)
    # No 4-gram overlap: 0 without smoothing (nltk's warning is silenced), and an empty prediction scores 0.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bleu(["a b c d"], ["a b c e"], 4) == pytest.approx(0.0, abs=1e-9)
    assert bleu(["a b c d"], ["a b c e"], 1) == pytest.approx(75.0)
    assert rouge_l([""], ["a b"]) == 0.0
    assert rouge_l(["a"], [""]) is None and bleu(["a"], [""], 1) is None
    with pytest.raises(ValueError):
        rouge_l(["a"], [])


def test_several_gold_rationales_are_all_references():
    """A-OKVQA's three crowd rationales: ROUGE-L takes the best match, BLEU counts n-grams against all three."""
    from mmcot_cli.evaluation.rationale_metrics import rationale_metrics, rationale_reference

    record = {"solution": "w x y z r", "rationales": ["w x y z r", "p q", "Solution: a b c d"]}
    refs = rationale_reference(record)
    assert refs == ("w x y z r", "p q", "a b c d")
    assert rationale_reference({"solution": "s", "rationales": ["s"]}) == "s"  # one gold text: as before
    assert rouge_l(["a b c d"], [refs]) == pytest.approx(100.0)  # the third matches; the first alone gave 0
    assert rouge_l(["w x y z q"], [refs]) == pytest.approx(80.0)
    # BLEU-1 clipped counts over all references: "a b p z" has a, b (3rd), p (2nd), z (1st) → 4/4
    assert bleu(["a b p z"], [refs], 1) == pytest.approx(100.0)
    out = rationale_metrics(["Solution: a b c d", "x"], [refs, ""])
    assert (out["num_scored"], out["num_empty_ref"], out["rouge_l"]) == (1, 1, 100.0)


def test_normalize_rationale():
    assert normalize_rationale("Solution: A.\\nB  c\n") == "A. B c"
    assert normalize_rationale("no prefix") == "no prefix"


def test_rationale_metrics_from_predictions(tmp_path, cli):
    records = [
        _rec("1", "natural science", "grade3", "", None, "physics", 2, 0, lecture="Heat flows.",
             solution="The cup is hot.\nSo it cools."),
        _rec("2", "natural science", "grade3", "", None, "physics", 2, 0, lecture="L.", solution="w x y z r"),
        _rec("3", "natural science", "grade3", "", None, "physics", 2, 0, lecture="", solution=""),
    ]
    # Stage-1 rows: "Solution:" prefix and literal \n (as the model is trained to write them) are normalised.
    rows = [{"qid": "1", "stage": "rationale", "prediction": "Solution: The cup is hot.\\nSo it cools."},
            {"qid": "2", "stage": "rationale", "prediction": "Solution: w x y z q"},
            {"qid": "3", "stage": "rationale", "prediction": "Solution: whatever"}]
    result = score_records(records, rows)
    assert result["has_answers"] is False and result["num_scored"] == 0 and "acc_average" not in result
    r = result["rationale"]
    assert (r["reference"], r["num_scored"], r["num_empty_ref"]) == ("solution", 2, 1)
    assert r["rouge_l"] == round((100 + 80) / 2, 2)
    assert r["bleu_1"] == round((100 + 80) / 2, 2)
    assert r["bleu_4"] == round((100 + 100 * 0.2 ** 0.25) / 2, 2)
    # Against "lecture solution" (the QCM-LE target): item 2 now has the extra token "L" in the reference.
    le = score_records(records, rows, rationale_ref="lecture+solution")["rationale"]
    assert le["reference"] == "lecture+solution" and le["num_scored"] == 2
    assert le["rouge_l"] < r["rouge_l"]
    # An answer row may carry its rationale in a `rationale` key; both are scored. Via the CLI, too.
    data = _problems_file(tmp_path, records)
    preds = _jsonl(tmp_path, [
        {"qid": "1", "prediction": "The answer is (A).", "rationale": "The cup is hot. So it cools."},
        {"qid": "2", "prediction": "The answer is (B).", "rationale": "w x y z r"},
    ])
    res = cli("score", preds, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["counts"]["acc_average"] == {"correct": 1, "total": 3}
    assert out["rationale"]["rouge_l"] == 100.0 and out["rationale"]["bleu_4"] == 100.0
    table = cli("score", preds, "--data", data)
    assert "Rationale metrics" in table.stdout and "100.00" in table.stdout


# ------------------------------------------------------------------------------------------ real sample


def _independent_counts(problems, qids):
    c = Counter()
    for q in qids:
        p = problems[q]
        c[{"natural science": "NAT", "social science": "SOC", "language science": "LAN"}[p["subject"]]] += 1
        c["TXT"] += p["hint"] != ""
        c["IMG"] += p["image"] is not None and p["image"] != ""
        c["NO"] += p["hint"] == "" and not p["image"]
        c["G1-6" if int(p["grade"][len("grade"):]) <= 6 else "G7-12"] += 1
        c["topic:" + p["topic"]] += 1
    return c


def test_sample_gold_predictions_score_100(tmp_path, cli, sample_dir):
    problems = json.loads((sample_dir / "problems.json").read_text())
    test_qids = [q for q, p in problems.items() if p["split"] == "test"]
    assert len(test_qids) == 50
    rows = [{"qid": q, "prediction": f"Solution: x. The answer is ({'ABCDE'[problems[q]['answer']]}).",
             "stage": "answer", "answer_letter": None, "answer_index": None} for q in test_qids]
    preds = _jsonl(tmp_path, rows)
    res = cli("score", preds, "--data", sample_dir / "problems.json", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    expected = _independent_counts(problems, test_qids)
    labels = {"acc_natural": "NAT", "acc_social": "SOC", "acc_language": "LAN", "acc_has_text": "TXT",
              "acc_has_image": "IMG", "acc_no_context": "NO", "acc_grade_1_6": "G1-6", "acc_grade_7_12": "G7-12"}
    for key, label in labels.items():
        n = expected[label]
        assert out["counts"][key] == {"correct": n, "total": n}, key
        assert out[key] == (100.0 if n else None), key
    assert out["counts"]["acc_average"] == {"correct": 50, "total": 50} and out["acc_average"] == 100.0
    for name, n in expected.items():
        if name.startswith("topic:"):
            assert out["counts"]["acc_" + name[len("topic:"):]] == {"correct": n, "total": n}
    assert sum(v["total"] for k, v in out["counts"].items() if k[4:] in {p["topic"] for p in problems.values()}) == 50
    assert out["num_fail"] == 0 and out["num_missing"] == 0 and res.stderr == ""

    # The same through a prepared DATA_DIR and a results JSON that gets every third item wrong.
    from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare

    data_dir = tmp_path / "data"
    prepare(PrepareConfig(source=sample_dir, out=data_dir, splits=("test",)))
    results = {q: (problems[q]["answer"] if i % 3 else (problems[q]["answer"] + 1) % len(problems[q]["choices"]))
               for i, q in enumerate(test_qids)}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": results}))
    res = cli("score", path, "--data", data_dir, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    wrong = sum(1 for i, _ in enumerate(test_qids) if i % 3 == 0)
    assert out["counts"]["acc_average"] == {"correct": 50 - wrong, "total": 50}
    assert math.isclose(out["acc_average"], round(100 * (50 - wrong) / 50, 2))


def test_score_config_library_entry(tmp_path):
    data = _problems_file(tmp_path)
    preds = _jsonl(tmp_path, _jsonl_rows(PREDS))
    result = score(ScoreConfig(predictions=preds, data=data))
    assert result["acc_average"] == 37.5 and result["format"] == "jsonl"
    with pytest.raises(DataError):
        score(ScoreConfig(predictions=preds, data=tmp_path / "missing.json"))


def test_duplicate_gold_qid_is_an_error():
    with pytest.raises(DataError, match="duplicate gold qid 1"):
        score_records(RECORDS + RECORDS[:1], PREDS)


def test_baselines_beside_accuracy_and_a_collapse_warned(tmp_path, cli):
    # chance: the mean of 1/len(choices) over the 8 items; majority: A and B are both right 3 times, A first.
    res = cli("score", _jsonl(tmp_path, _jsonl_rows(PREDS)), "--data", _problems_file(tmp_path), "--json")
    out = json.loads(res.stdout)
    expected = round(100 * (1 / 2 + 1 / 3 + 1 / 4 + 1 / 2 + 1 / 5 + 1 / 2 + 1 / 2 + 1 / 3) / 8, 2)
    assert out["baselines"] == {"chance": expected, "majority": 37.5, "majority_letter": "A"}
    assert out["collapsed"] is None and "every answer is" not in res.stderr
    always_b = {q: {"prediction": "The answer is (B)."} for q in PREDS | {"7": None}}
    res = cli("score", _jsonl(tmp_path, _jsonl_rows(always_b)), "--data", _problems_file(tmp_path))
    assert res.exit_code == 0, res.output
    assert out["baselines"]["chance"] == expected
    assert ("warning: every answer is (B): all 8 predictions chose the same option (accuracy 37.50 %, "
            "majority-class baseline 37.50 %, chance 38.96 %)") in " ".join(res.stderr.split())
    assert "baseline: chance" in res.stdout and "always (A)" in res.stdout


def test_rationales_that_are_all_empty_are_said_once(tmp_path, cli):
    # an undertrained stage 1 writes "Solution:" and nothing else: metrics of 0 without a word read as a result
    rows = [{"qid": q, "prediction": "The answer is (A).", "rationale": "Solution: "} for q in PREDS]
    res = cli("score", _jsonl(tmp_path, rows), "--data", _problems_file(tmp_path))
    assert res.exit_code == 0, res.output
    assert f"warning: every rationale is empty ({len(PREDS)} of {len(PREDS)})" in " ".join(res.stderr.split())
    rows[0]["rationale"] = "Solution: the answer is red."
    res = cli("score", _jsonl(tmp_path, rows), "--data", _problems_file(tmp_path))
    assert "every rationale is empty" not in res.stderr
