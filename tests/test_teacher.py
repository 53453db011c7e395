"""Teacher rationales: answer parsing, `mmcot rationales import|filter`, and the rationale-stage expansion."""

import json

import pytest

from mmcot_cli.data.teacher import expand_rationales, parse_answer, read_candidates, strip_answer
from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.inference.sampling import Sampling

CHOICES = ["north", "south", "east"]


def _records():
    return [
        {"qid": "a", "split": "train", "question": "Which way?", "choices": CHOICES, "answer": 0},
        {"qid": "b", "split": "train", "question": "Which way now?", "choices": CHOICES, "answer": 2},
        {"qid": "c", "split": "train", "question": "And now?", "choices": CHOICES, "answer": 1},
    ]


def _data_dir(tmp_path):
    from mmcot_cli.data.readers.common import make_record

    d = tmp_path / "data"
    d.mkdir()
    records = [make_record("jsonl", r["qid"], "train", r["question"], r["choices"], r["answer"]) for r in _records()]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (d / "manifest.json").write_text(json.dumps({"format": "jsonl"}))
    return d


@pytest.mark.parametrize("text, expected", [
    ("The sun rises in the east. The answer is (C).", 2),
    ("The answer is (A). No. The answer is (B).", None),  # several: no answer, as the reference's extraction
    ("Because of the compass --> south", 1),
    ("Because of the compass --> (A).", 0),
    ("Because --> west", None),
    ("The answer is (E).", None),  # beyond the choices
    ("No answer at all.", None),
])
def test_parse_answer(text, expected):
    assert parse_answer(text, CHOICES) == expected


def test_filter_keeps_rationales_that_reach_gold(cli, tmp_path):
    data = _data_dir(tmp_path)
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text("".join(json.dumps(r) + "\n" for r in [
        {"qid": "a", "rationale": "Solution: Up is north. The answer is (A)."},  # parsed, right; prefix dropped
        {"qid": "a", "rationale": "Maybe south --> south"},  # parsed, wrong
        {"qid": "b", "rationale": "It is east.", "answer": "east"},  # given as text, right
        {"qid": "b", "rationale": "It is C.", "answer": 2},  # given as index, right
        {"qid": "c", "rationale": "I cannot tell."},  # no answer
        {"qid": "zz", "rationale": "Not a problem of this split.", "answer": 0},
    ]))
    result = cli("--quiet", "rationales", "filter", teacher, "--data", data, "--out", tmp_path / "kept.jsonl", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rationales"], summary["with_answer"], summary["correct"], summary["kept"]) == (5, 4, 3, 3)
    assert (summary["problems"], summary["problems_with_rationales"], summary["problems_kept"]) == (3, 3, 2)
    assert summary["unknown_qids"] == 1 and "1 rationales name qids" in result.stderr
    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert [(k["qid"], k["rationale"], k["answer_from"]) for k in kept] == [
        ("a", "Up is north. The answer is (A).", "parsed"), ("b", "It is east.", "given"), ("b", "It is C.", "given")]
    # import keeps everything, with the verdict.
    result = cli("--quiet", "rationales", "import", teacher, "--data", data, "--out", tmp_path / "all.jsonl", "--json")
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert json.loads(result.stdout)["kept"] == 5 and [r["correct"] for r in rows] == [True, False, True, True, None]


def test_bad_teacher_lines(cli, tmp_path):
    data = _data_dir(tmp_path)
    teacher = tmp_path / "t.jsonl"
    teacher.write_text(json.dumps({"qid": "a", "rationale": "x", "answer": "west"}) + "\n{oops\n")
    result = cli("rationales", "filter", teacher, "--data", data, "--out", tmp_path / "k.jsonl")
    assert result.exit_code == 1 and f"{teacher}:2:2: invalid JSON" in result.stderr
    assert not (tmp_path / "k.jsonl").exists()
    result = cli("rationales", "filter", teacher, "--data", data, "--out", tmp_path / "k.jsonl", "--skip-bad")
    assert result.exit_code == 0 and "answer 'west' is not one of its 3 options (skipped)" in result.stderr


def test_reads_sampled_predictions(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"qid": "a", "prediction": "Solution: one", "stage": "rationale",
                                "samples": ["Solution: one", "Solution: two", "Solution: "]}) + "\n")
    assert [(c.qid, c.rationale) for c in read_candidates(path)] == [("a", "one"), ("a", "two")]


def test_expand_rationales(tmp_path):
    gold = [dict(r, lecture="L", solution="S") for r in _records()]
    gold[0]["rationales"] = ["r1", "r2", "r3"]
    out, info = expand_rationales(gold, "gold")
    assert [(r["qid"], r["lecture"], r["solution"]) for r in out] == [
        ("a", "", "r1"), ("a", "", "r2"), ("a", "", "r3"), ("b", "L", "S"), ("c", "L", "S")]
    assert info == {"source": "gold", "examples": 5, "problems": 3}
    f = tmp_path / "set.jsonl"
    f.write_text("".join(json.dumps({"qid": q, "rationale": t}) + "\n" for q, t in [("b", "x"), ("b", "y")]))
    out, info = expand_rationales(gold, str(f))
    assert [(r["qid"], r["solution"]) for r in out] == [("b", "x"), ("b", "y")]
    assert info["examples"] == 2 and info["problems_without"] == 2 and len(info["sha256"]) == 64
    f.write_text(json.dumps({"qid": "zz", "rationale": "t"}) + "\n")
    with pytest.raises(DataError, match="none of its rationales"):
        expand_rationales(gold, str(f))
    f.write_text("")  # what `rationales filter` writes when it keeps nothing
    with pytest.raises(DataError, match="no rationales in it"):
        expand_rationales(gold, str(f))


def test_sampling_options():
    assert Sampling().generate_kwargs() == {}
    assert Sampling(num_samples=4).generate_kwargs() == {"do_sample": True, "num_return_sequences": 4,
                                                         "temperature": 0.7}
    assert Sampling(temperature=1.2, top_p=0.9).generate_kwargs()["top_p"] == 0.9
    for bad in (Sampling(num_samples=2), Sampling(seed=3)):  # combinations: checked against the beams
        with pytest.raises(UsageError):
            bad.check(num_beams=2 if bad.num_samples == 2 else 1)
    for kwargs, option in (({"temperature": 0}, "--temperature"), ({"top_p": 1.5}, "--top-p"),
                           ({"num_samples": 0}, "--num-samples"), ({"seed": -1}, "--seed")):
        with pytest.raises(UsageError, match=option):  # numbers: on construction (library callers too)
            Sampling(**kwargs)


def test_filter_warns_when_no_rationale_states_an_answer(cli, tmp_path):
    """Samples from a QCM-E run carry no answer: the filter keeps nothing and says why (not a silent empty file)."""
    data = _data_dir(tmp_path)
    teacher = tmp_path / "samples.jsonl"
    teacher.write_text("".join(json.dumps(r) + "\n" for r in [
        {"qid": "a", "rationale": "Up is north."}, {"qid": "b", "rationale": "East is where the sun rises."}]))
    result = cli("--quiet", "rationales", "filter", teacher, "--data", data, "--out", tmp_path / "kept.jsonl", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kept"] == 0
    assert "none of its 2 rationales states an answer" in result.stderr
    assert "QCM-EA" in result.stderr


@pytest.mark.parametrize("text, expected", [
    ("Up is north. The answer is (A).", "Up is north."),  # mm-cot / ScienceQA final statement
    ("Up is north.\nThe answer is A.", "Up is north."),  # ScienceQA's GPT-3 letters, on its own line
    ("Up is north. Therefore, the answer is north", "Up is north."),  # zero-shot-CoT / ft_cot_natural
    ("Up is north --> north", "Up is north"),  # Fine-tune-CoT's ft_cot_token label
    ("Up is north\n\n-->\n\nnorth", "Up is north"),  # its GPT-3 variant
    ("The answer is (A). BECAUSE: Up is north.", "Up is north."),  # the reference's ALE output
    ("Answer: The answer is (A).", ""),  # nothing but the answer
    ("Because the answer is hidden, look north.", "Because the answer is hidden, look north."),  # mid-sentence
    ("Up is north.", "Up is north."),
])
def test_strip_answer(text, expected):
    assert strip_answer(text) == expected


def test_identical_samples_are_one_example_and_answers_can_be_stripped(cli, tmp_path):
    """Three identical samples of a problem are one rationale (the count reported), in the set and in training;
    --strip-answer leaves the reasoning only, after the answer was used to judge it."""
    data = _data_dir(tmp_path)
    teacher = tmp_path / "samples.jsonl"
    teacher.write_text("".join(json.dumps(r) + "\n" for r in [
        {"qid": "a", "samples": ["Solution: Up is north. The answer is (A).", "Up is  north. The answer is (A).",
                                 "Up is north. The answer is (A)."]},  # identical up to whitespace
        {"qid": "a", "rationale": "Maps point up to north --> north"},
        {"qid": "b", "rationale": "The answer is (C)."},  # only an answer: nothing left once stripped
        {"qid": "b", "rationale": "Sunrise is east. The answer is (B)."},  # wrong: filtered out before stripping
    ]))
    result = cli("--quiet", "rationales", "filter", teacher, "--data", data, "--out", tmp_path / "kept.jsonl", "--json")
    summary = json.loads(result.stdout)
    # b's "The answer is (C)." reaches the gold answer but states no reasoning: dropped even without stripping
    assert (summary["correct"], summary["duplicates"], summary["answer_only"], summary["kept"]) == (5, 2, 1, 2)
    result = cli("--quiet", "rationales", "filter", teacher, "--data", data, "--out", tmp_path / "k2.jsonl", "--json",
                 "--strip-answer")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["duplicates"], summary["answers_stripped"], summary["answer_only"], summary["kept"]) == (2, 5, 1, 2)
    kept = [json.loads(line) for line in (tmp_path / "k2.jsonl").read_text().splitlines()]
    assert [(k["qid"], k["rationale"], k["answer_index"]) for k in kept] == [
        ("a", "Up is north.", 0), ("a", "Maps point up to north", 0)]
    table = cli("rationales", "import", teacher, "--data", data, "--out", tmp_path / "all.jsonl", "--strip-answer")
    assert table.exit_code == 0 and "identical" in table.stderr and "stripped" in table.stderr
    # training straight from a file with repeated samples: each distinct rationale is one example
    out, info = expand_rationales([dict(r, lecture="", solution="") for r in _records()], str(teacher))
    assert [r["solution"] for r in out if r["qid"] == "a"] == [
        "Up is north. The answer is (A).", "Maps point up to north --> north"]
    assert info["duplicates_dropped"] == 2 and info["answer_only_dropped"] == 1 and info["examples"] == 3
