"""Fault class 8 (issue 17): answers that are not options. Answer-giving runs decode their answer sentence
constrained to the item's option letters by default (`generate`, `ask`; `--no-constrain` turns it off), recorded
in each prediction row and the summary, so score's num_fail is 0 by construction for answer-stage runs."""

from __future__ import annotations

import json

import pytest
from faultkit import mmcot, world  # noqa: F401 (fixture)


def _rows(path):
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def _choices(world):
    return {r["qid"]: len(r["choices"]) for r in _rows(world.data / "test.jsonl")}


@pytest.mark.parametrize("extra", [[], ["--num-beams", "3"], ["--num-samples", "3", "--seed", "1"]],
                         ids=["greedy", "beams", "samples"])
def test_generate_answers_always_name_an_option(world, tmp_path, extra):
    out = tmp_path / "p.jsonl"
    res = mmcot("-q", "generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out", out, "--json",
                *extra)
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["constrained_answers"] is True
    choices = _choices(world)
    rows = _rows(out)
    assert len(rows) == len(choices)
    for row in rows:
        assert row["constrained"] is True
        assert row["answer_index"] is not None and 0 <= row["answer_index"] < choices[row["qid"]], row
        for sample in row.get("samples", []):
            assert sample in {f"The answer is ({letter})." for letter in "ABCDE"[:choices[row["qid"]]]}
    score = mmcot("score", out, "--data", world.data, "--json")
    assert score.exit_code == 0 and json.loads(score.stdout)["num_fail"] == 0
    assert json.loads(score.stdout)["num_constrained"] == len(rows)
    table = mmcot("score", out, "--data", world.data)  # the table says how the answers were decoded
    assert f"decoded within options {len(rows)}/{len(rows)}" in " ".join(table.stdout.split())


def test_generate_no_constrain_is_recorded(world, tmp_path):
    out = tmp_path / "p.jsonl"
    res = mmcot("-q", "generate", "--run", world.run, "--data", world.data, "--device", "cpu", "--out", out, "--json",
                "--no-constrain")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["constrained_answers"] is False
    assert all(row["constrained"] is False for row in _rows(out))
    assert json.loads(mmcot("score", out, "--data", world.data, "--json").stdout)["num_constrained"] == 0
    broken = tmp_path / "broken.jsonl"  # a hand-edited row: one line naming the file, line and key
    broken.write_text(out.read_text().replace('"constrained": false', '"constrained": "no"', 1))
    res = mmcot("score", broken, "--data", world.data)
    assert res.exit_code != 0 and f"{broken}:1:" in res.stderr and "'constrained'" in res.stderr, res.stderr
    # the world's one-epoch model does not write its answer sentence unaided: what the constraint is for
    assert any(row["answer_index"] is None for row in _rows(out))


@pytest.mark.parametrize("choices", ["north|south", "a|b|c|d|e"])
def test_ask_answer_is_one_of_the_choices(world, tmp_path, choices):
    args = ["ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Which way?", "--choices",
            choices, "--device", "cpu", "--json"]
    res = mmcot(*args)
    assert res.exit_code == 0, res.stderr
    result = json.loads(res.stdout)
    n = len(choices.split("|"))
    assert result["constrained"] is True and result["answer_letter"] in "ABCDE"[:n]
    assert result["answer_text"] == choices.split("|")[result["answer_index"]]
    res = mmcot(*args, "--no-constrain")
    assert res.exit_code == 0 and json.loads(res.stdout)["constrained"] is False


def test_rationale_stage_runs_are_not_constrained(world, tmp_path):
    """Only answer-giving outputs are constrained: a rationale run's rows carry no answer and no flag."""
    run = tmp_path / "rat"
    from faultkit import TINY_TEXT

    res = mmcot("-q", "train", "--stage", "rationale", "--data", world.data, "--text-model", "t5-scratch", "--out",
                run, "--epochs", "1", "--batch-size", "8", "--limit-train", "8", "--val-split", "none", *TINY_TEXT)
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "r.jsonl"
    res = mmcot("-q", "generate", "--run", run, "--data", world.data, "--device", "cpu", "--out", out, "--json",
                "--max-new-tokens", "4")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["constrained_answers"] is False
    assert all("constrained" not in row for row in _rows(out))
