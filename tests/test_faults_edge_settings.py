"""Fault class 10 (issue 26): edge settings. An answer budget too small for "The answer is (X)." is a warning in
generate and ask (not silent answers without a letter); a qid given twice in a results JSON is an error naming it
(json keeps the last one silently)."""

from __future__ import annotations

import json

import pytest
from faultkit import assert_one_error, mmcot, world  # noqa: F401 (fixture)


def test_generate_warns_when_the_answer_budget_ends_before_the_letter(world, tmp_path):
    res = mmcot("generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--max-new-tokens", "2",
                "--out", tmp_path / "p.jsonl")
    assert res.exit_code == 0, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert "answer budget of 2" in line and "The answer is (A)." in line and "--max-new-tokens" in line
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows and all(r["answer_index"] is None for r in rows)  # what the warning foretold
    ok = mmcot("generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out", tmp_path / "q.jsonl")
    assert "warning:" not in ok.stderr


def test_ask_warns_when_the_answer_budget_ends_before_the_letter(world):
    res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Q?", "--choices", "a|b",
                "--device", "cpu", "--max-new-tokens", "2")
    assert res.exit_code == 0, res.stderr
    assert "warning:" in res.stderr and "answer budget of 2" in res.stderr


@pytest.mark.parametrize("command", ["score", "compare", "report"])
def test_every_reader_refuses_a_qid_given_twice_in_a_results_json(world, tmp_path, command):
    qid = json.loads((world.data / "test.jsonl").read_text().splitlines()[0])["qid"]
    path = tmp_path / "results.json"
    out = tmp_path / "r.html"
    args = {"score": [], "compare": ["--markdown"], "report": ["--out", out]}[command]
    path.write_text('{"acc": 0, "results": {"%s": 0, "other": 1, "%s": 1}}' % (qid, qid))
    res = mmcot(command, path, "--data", world.data, *args)
    assert_one_error(res, 1, str(path), repr(qid), "twice")
    assert not out.exists()
    path.write_text('{"acc": 0, "results": {"%s": 0}}' % qid)
    assert mmcot("-q", command, path, "--data", world.data, *args).exit_code == 0


def test_compare_warns_when_results_were_scored_on_different_data(world, tmp_path):
    """Two score objects of other splits side by side: the table is made, with one warning naming both (the
    differences would compare other questions); the same data twice: no warning."""
    objects = {}
    for split in ("test", "val"):
        rows = [json.loads(x) for x in (world.data / f"{split}.jsonl").read_text().splitlines()]
        preds = tmp_path / f"{split}.jsonl"
        preds.write_text("".join(json.dumps({"qid": r["qid"], "prediction": "The answer is (A)."}) + "\n"
                                 for r in rows))
        res = mmcot("-q", "score", preds, "--data", world.data, "--split", split, "--json")
        objects[split] = tmp_path / f"{split}.json"
        objects[split].write_text(res.stdout)
    res = mmcot("compare", objects["test"], objects["val"], "--json")
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert res.exit_code == 0 and "scored on different data" in line and "split val" in line, res.stderr
    assert "scored_on" not in res.stdout
    res = mmcot("compare", objects["test"], objects["test"], "--json")
    assert res.exit_code == 0 and "different data" not in res.stderr


def test_an_empty_split_or_predictions_file_is_named(world, tmp_path):
    """An empty split file: generate says so in one warning (its predictions file is empty; score would refuse
    it), train refuses before building a model (t5-scratch said "none were given" about its tokenizer texts);
    an empty predictions file given to compare is "empty predictions file", as score says (it was a JSON
    decoding error at 1:1)."""
    data = world.copy("data", tmp_path)
    (data / "test.jsonl").write_text("")
    out = tmp_path / "p.jsonl"
    res = mmcot("-q", "generate", "--run", world.run, "--data", data, "--device", "cpu", "--out", out)
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert res.exit_code == 0 and "split 'test' has no records" in line and out.read_text() == ""
    res = mmcot("train", "--stage", "answer", "--prompt-format", "QCM-A", "--data", data, "--train-split", "test",
                "--text-model", "t5-scratch", "--out", tmp_path / "run", "--val-split", "none")
    assert_one_error(res, 2, "split 'test' has no records to train on")
    assert not (tmp_path / "run").exists()
    res = mmcot("compare", out, "--data", world.data)
    assert_one_error(res, 1, str(out), "empty predictions file")
