"""The original's rationale metrics (mmcot_cli.evaluation.original_metrics): get_scores' rouge-package ROUGE-L and
regex-token BLEU, and the per-epoch validation rougeL, against hand-computed values and against the original's
loops re-written here from evaluations.py's semantics (same packages); `mmcot score` shows all three, labelled."""

from __future__ import annotations

import json
import re

import pytest
from conftest import build_record

from mmcot_cli.evaluation.original_metrics import (
    original_get_scores,
    original_target,
    original_validation_rouge_l,
)
from mmcot_cli.evaluation.score import score_records

# (prediction, target) pairs chosen so that each rule shows.
PREDS = ["Solution: cats run", "Solution: a b c d", "Solution: a b", "z. Solution: x y", "", "x", "Solution: k l m n"]
TARGETS = ["Solution: Cats run", "Solution: a b\\nc d", "Solution: a a b", "Solution: x y. z", "Solution: q", "  ",
           "Solution: k l m n"]


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r + 1e-8)  # the rouge package's F (with its epsilon)


def test_get_scores_hand_computed():
    got = original_get_scores(PREDS, TARGETS)
    # rouge 1.0.1: case-sensitive words, sentences split on ".", word counts over DISTINCT words (a set):
    # 1: {Solution:, Cats, run} vs {Solution:, cats, run}: LCS 2 of 3 → 2/3
    # 2: "b\nc" is one word: LCS 3, m 4, n 5 → F(3/5, 3/4); 3: "a a b" has 3 distinct words, all in the LCS → 1
    # 4: summary level: each target sentence's union LCS over the prediction's sentences → 4 of 4 → 1
    # 5: empty prediction skipped; 6: empty (stripped) target skipped; 7: identical → 1
    rouge = [_f(2 / 3, 2 / 3), _f(3 / 5, 3 / 4), _f(1, 1), _f(1, 1), _f(1, 1)]
    assert got["rouge_l"] == pytest.approx(100 * sum(rouge) / 5, abs=1e-6)
    assert (got["num_rouge_scored"], got["num_rouge_refused"], got["num_bleu_scored"]) == (5, 0, 6)
    # BLEU-1 on re.split(r"\s|\.") tokens; only the empty target is skipped (the empty prediction scores 0):
    # 2/3, 3 of 5, 3 of 3 with brevity penalty exp(1 - 4/3), 4 of 4, 0, 1
    bleu_1 = [2 / 3, 3 / 5, 2.718281828459045 ** (-1 / 3), 1, 0, 1]
    assert got["bleu_1"] == pytest.approx(100 * sum(bleu_1) / 6, abs=1e-6)
    # BLEU-4 without smoothing: only the identical pair has every order of n-gram matched
    assert got["bleu_4"] == pytest.approx(100 / 6, abs=1e-6)


def test_validation_rouge_hand_computed():
    # rouge-score rougeL, lower-cased alphanumeric tokens, Porter stemming, every pair (empty ones score 0):
    # 1: cats→cat both sides → 1; 2: "b\nc" → "b", "nc": LCS 4 of 5 → 0.8; 3: LCS 3, ref 4, pred 3 → 6/7;
    # 4: word order across sentences counts: LCS 3 of 4 → 3/4; 5, 6: 0; 7: 1
    expected = [1, 0.8, 6 / 7, 3 / 4, 0, 0, 1]
    assert original_validation_rouge_l(PREDS, TARGETS) == pytest.approx(100 * sum(expected) / 7, abs=1e-6)
    # nltk.sent_tokenize's newlines between sentences cannot change rougeL (the offline choice)
    assert original_validation_rouge_l(["A b. C d."], ["A b.\nC d."]) == pytest.approx(100.0)


def _rewritten_get_scores_rouge(preds, targets):
    # evaluations.caculate_rouge's loop, re-written from its semantics with the same `rouge` package
    from rouge import Rouge

    values = []
    for pred, target in zip(preds, targets):
        target = target.strip()
        if pred == "" or target == "":
            continue
        values.append(Rouge(metrics=["rouge-l"]).get_scores(target, pred, avg=True)["rouge-l"]["f"])
    return 100 * sum(values) / len(values)


def _rewritten_bleu(preds, targets, n):
    from nltk.translate.bleu_score import sentence_bleu

    def tok(text):
        return [t for t in re.split(r"\s|\.", text) if len(t) > 0]

    values = [sentence_bleu([tok(t.strip())], tok(p), (1.0 / n,) * n) for p, t in zip(preds, targets) if t.strip()]
    return 100 * sum(values) / len(values)


def test_equals_the_original_functions_on_realistic_text():
    preds = ["Solution: Look at the table.\\nThe cup is hotter, so heat flows out.",
             "Solution: A magnet attracts iron. Iron is a metal.", "Solution: The answer is unclear"]
    targets = ["Solution: Look at each object.\\nThe cup is hotter. Heat flows from the cup.",
               "Solution: Magnets attract iron.", "Solution: Plants need light. They make food."]
    got = original_get_scores(preds, targets)
    assert got["rouge_l"] == pytest.approx(_rewritten_get_scores_rouge(preds, targets), abs=1e-6)
    assert got["bleu_1"] == pytest.approx(_rewritten_bleu(preds, targets, 1), abs=1e-6)
    assert got["bleu_4"] == pytest.approx(_rewritten_bleu(preds, targets, 4), abs=1e-6)


def test_original_target_is_the_trained_target():
    record = {"qid": "1", "question": "q", "choices": ["a", "b"], "answer": 0, "lecture": "L\nx",
              "solution": "S  one\ntwo"}
    assert original_target(record) == "Solution: S one\\ntwo"  # QCM-E: literal \n kept, whitespace collapsed
    assert original_target(record, "lecture+solution") == "Solution: L\\nx S one\\ntwo."  # QCM-LE's extra period


def test_score_reports_all_three_labelled(tmp_path, cli):
    records = [build_record(qid="1", solution="The cup is hot.\nSo it cools."),
               build_record(qid="2", solution="w x y z r")]
    rows = [{"qid": "1", "stage": "rationale", "prediction": "Solution: The cup is hot.\\nSo it cools."},
            {"qid": "2", "stage": "rationale", "prediction": "Solution: w x y z q"}]
    r = score_records(records, rows)["rationale"]
    assert r["rouge_l"] == 90.0  # mmcot: normalised text, "Solution:" and "\n" removed
    # the original: raw text; pair 2 keeps "Solution:" → LCS 5 of 6 distinct words
    assert r["original"]["get_scores"]["rouge_l"] == pytest.approx(round(50 * (1 + _f(5 / 6, 5 / 6)), 4))
    assert r["original"]["validation_rouge_l"] == pytest.approx(round(50 * (1 + 5 / 6), 4))
    data = tmp_path / "problems.json"
    data.write_text(json.dumps({q["qid"]: {k: v for k, v in q.items() if k not in ("qid", "image_paths", "caption")}
                                for q in records}))
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps(row) + "\n" for row in rows))
    table = cli("score", preds, "--data", data)
    assert table.exit_code == 0, table.output
    for label in ("mmcot", "orig. get_scores", "orig. validation", "normalised text"):
        assert label in table.stdout


def _random_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    import random

    rng = random.Random(seed)
    words = ["a", "b", "c", "cat", "runs", "Solution:", "x.", "y", "\\n", "."]

    def text() -> str:
        return "" if rng.random() < 0.1 else " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
    return [text() for _ in range(n)], [text() for _ in range(n)]


def test_collecting_the_rouge_packages_cycles_keeps_every_value():
    # get_scores' ROUGE-L with the rouge package's garbage collected as it goes (collect_cycles) equals the plain
    # mean of the package's own per-pair get_scores(avg=True), with the original's skips (empty prediction or
    # stripped target) and the pairs the package refuses (only full stops) left out, to 1e-9
    from rouge import Rouge

    preds, targets = _random_pairs(400)
    got = original_get_scores(preds, targets)
    values = []
    for p, t in zip(preds, targets):
        if p == "" or t.strip() == "":
            continue
        try:
            values.append(Rouge(metrics=["rouge-l"]).get_scores(t.strip(), p, avg=True)["rouge-l"]["f"])
        except (ValueError, ZeroDivisionError):
            pass
    assert got["num_rouge_scored"] == len(values) > 300
    assert got["rouge_l"] == pytest.approx(100 * sum(values) / len(values), abs=1e-9)


def test_rouge_packages_lcs_tables_do_not_pile_up():
    # each pair leaves its LCS tables in reference cycles (rouge_score._recon_lcs); with the automatic collector
    # off, only collect_cycles frees them: every 256 pairs (600 here: the last ~90 pairs' are alive at the end,
    # fewer than at the peak; left to pile up they would only grow), none after; gc is left as it was
    import gc
    import types

    from mmcot_cli.evaluation import original_metrics

    def alive() -> int:
        return sum(1 for o in gc.get_objects()
                   if type(o) is types.FunctionType and o.__qualname__ == "_recon_lcs.<locals>._recon")

    preds, targets = _random_pairs(600, seed=1)
    peak = []
    scored = original_metrics.get_scores_rouge_l_pair

    def counting(p, t):
        peak.append(alive())
        return scored(p, t)

    gc.collect()
    gc.disable()
    try:
        original_metrics.get_scores_rouge_l_pair = counting
        original_metrics.original_get_scores(preds, targets)
    finally:
        original_metrics.get_scores_rouge_l_pair = scored
        gc.enable()
    assert original_metrics.CYCLE_COLLECT_EVERY == 256
    assert peak[-1] < max(peak) / 2 and alive() == 0
    assert gc.get_freeze_count() == 0
