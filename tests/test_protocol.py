"""`--protocol original|mmcot` on score: the original's A–E fallback, its get_scores as the rationale headline, the
protocol recorded in the score object (generate's side: tests/test_generate.py)."""

from __future__ import annotations

import json

import pytest

from mmcot_cli.evaluation.score import score_records, with_headline


def test_score_original_uses_the_reference_fallback_and_get_scores_headline(make_record):
    records = [make_record(qid="1", choices=["a", "b"], answer=0, solution="x y"),
               make_record(qid="2", choices=["a", "b"], answer=1, solution="z")]
    rows = [{"qid": "1", "prediction": "The answer is (A).", "rationale": "Solution: x y"},
            {"qid": "2", "prediction": "no answer here", "rationale": "Solution: z"}]
    result = with_headline(score_records(records, rows, fallback="reference", seed=3), "original")
    assert result["fallback"] == "reference" and result["num_fail"] == 1
    assert result["rationale"]["headline"] == "original.get_scores"
    assert result["rationale"]["original"]["get_scores"]["rouge_l"] == pytest.approx(100.0, abs=1e-4)


def test_score_cli_records_the_protocol(tmp_path, cli, make_record):
    records = [make_record(qid="1", choices=["a", "b"], answer=0)]
    data = tmp_path / "problems.json"
    data.write_text(json.dumps({r["qid"]: {k: v for k, v in r.items() if k not in ("qid", "image_paths", "caption")}
                                for r in records}))
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"qid": "1", "prediction": "nothing"}) + "\n")
    original = json.loads(cli("score", preds, "--data", data, "--protocol", "original", "--json").stdout)
    assert (original["protocol"], original["fallback"], original["num_fail"]) == ("original", "reference", 1)
    mmcot = json.loads(cli("score", preds, "--data", data, "--json").stdout)
    assert (mmcot["protocol"], mmcot["fallback"]) == ("mmcot", "strict")
    table = cli("score", preds, "--data", data, "--protocol", "original")
    assert "protocol original" in table.stdout
    bad = cli("score", preds, "--data", data, "--protocol", "paper")
    assert bad.exit_code == 2 and "--protocol must be one of mmcot, original" in bad.output
