"""`mmcot score` for data prepared from A-OKVQA or generic JSONL: overall and per-group accuracy, A-OKVQA's own
metrics, and the A-OKVQA prediction file (`--export-aokvqa`, the official {question_id: {"multiple_choice",
"direct_answer"}} format; the direct answer is the chosen option's text).

Answers are resolved exactly as for ScienceQA (mmcot_cli.evaluation.score: the single "The answer is (X)", or an option
index; `--fallback random` draws among the item's options). A-OKVQA metrics, from allenai/aokvqa
evaluation/eval_predictions.py (the prediction is the text of the chosen option):
- multiple choice: `pred == choices[correct_choice_idx]`;
- direct answer: `min(1, #(pred == da for da in direct_answers) / 3)`, exact string comparison.
The current official script leaves out questions marked `difficult_direct_answer` in the direct-answer setting
and keeps every question for multiple choice; an earlier version of it (and REFERENCE.md) filter them in the
multiple-choice setting instead. Both variants are reported, each with its question count.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mmcot_cli.data.readers import format_of
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError
from mmcot_cli.evaluation.predictions import (
    BadEntries,
    Prediction,
    Warn,
    read_predictions,
)
from mmcot_cli.evaluation.score import (
    ScoreConfig,
    check_score_options,
    percent,
    resolve_prediction,
    score_against,
)
from mmcot_cli.io import write_json


def group_accuracy(records: list[dict], correct: dict[str, bool]) -> dict:
    """{field: {value: {correct, total, accuracy}}} over every grouping field of the records."""
    out: dict[str, dict[str, dict]] = {}
    for rec in records:
        for name, value in (rec.get("groups") or {}).items():
            cell = out.setdefault(name, {}).setdefault(str(value), {"correct": 0, "total": 0})
            cell["total"] += 1
            cell["correct"] += int(correct[rec["qid"]])
    for cells in out.values():
        for cell in cells.values():
            cell["accuracy"] = percent(cell["correct"], cell["total"])
    return {name: dict(sorted(cells.items())) for name, cells in sorted(out.items())}


def direct_answer_score(pred: str | None, direct_answers: list[str]) -> float:
    """A-OKVQA's direct-answer accuracy of one prediction (exact string match, capped at 3 matches)."""
    if pred is None:
        return 0.0
    return min(1.0, sum(pred == da for da in direct_answers) / 3.0)


def aokvqa_metrics(records: list[dict], chosen: dict[str, str | None]) -> dict:
    """Multiple-choice and direct-answer accuracy (×100), in the current official script's setting and the other."""
    easy = [r for r in records if not r.get("difficult_direct_answer")]

    def mc(rs: list[dict]) -> float | None:
        return percent(sum(chosen[r["qid"]] == r["choices"][r["answer"]] for r in rs), len(rs))

    def da(rs: list[dict]) -> float | None:
        return percent(sum(direct_answer_score(chosen[r["qid"]], r.get("direct_answers") or []) for r in rs),
                        len(rs))

    return {
        "mc_accuracy": mc(records), "da_accuracy": da(easy),
        "mc_accuracy_non_difficult": mc(easy), "da_accuracy_all": da(records),
        "num_questions": len(records), "num_non_difficult": len(easy),
        "setting": "official eval_predictions.py: MC over all questions, DA over non-difficult ones; "
                   "*_non_difficult / *_all are the other filtering (an earlier version of that script)",
    }


def resolve_choices(records: list[dict], preds: list[Prediction], fallback: str, seed: int, bad: BadEntries
                    ) -> dict[str, int | None]:
    """qid → chosen option index (None: no answer), in gold order with the same seeded draws as scoring."""
    gold = {r["qid"]: r for r in records}
    by_qid: dict[str, Prediction] = {}
    for pred in preds:
        if pred.qid not in gold:
            bad(f"{pred.where}: qid {pred.qid} is not in the gold data")
        elif pred.qid in by_qid:
            bad(f"{pred.where}: duplicate qid {pred.qid} (first at {by_qid[pred.qid].where})")
        elif pred.answer_index is not None and pred.answer_index >= len(gold[pred.qid]["choices"]):
            bad(f"{pred.where}: qid {pred.qid}: option index {pred.answer_index} is beyond its choices")
        else:
            by_qid[pred.qid] = pred
    rng = random.Random(seed)
    return {q: resolve_prediction(by_qid.get(q), len(r["choices"]), fallback, rng)[0] for q, r in gold.items()}


def export_aokvqa(path: str | Path, records: list[dict], chosen: dict[str, int | None]) -> dict:
    """The benchmark's prediction file, as evaluation/eval_predictions.py and the leaderboard read it:
    `{question_id: {"multiple_choice": text, "direct_answer": text}}`. The model only picks an option, so the
    direct answer is the chosen option's text too; no answer → "" in both (scored wrong in both)."""
    answers = {}
    for r in records:
        text = r["choices"][chosen[r["qid"]]] if chosen[r["qid"]] is not None else ""
        answers[r["qid"]] = {"multiple_choice": text, "direct_answer": text}
    write_json(path, answers)
    return {"path": str(path), "questions": len(answers),
            "empty": sum(1 for a in answers.values() if a["multiple_choice"] == ""),
            "direct_answer": "the chosen option's text"}


def score_own_data(cfg: ScoreConfig, warn: Warn | None = None, export: str | Path | None = None) -> dict:
    """Score against a DATA_DIR prepared from A-OKVQA or JSONL; a predict-only split can only be exported."""

    check_score_options(cfg.fallback, cfg.rationale_ref)
    cfg.metric_options.check()
    records = load_records(cfg.data, cfg.split)
    fmt = format_of(cfg.data)
    if export is not None and fmt.scoring != "aokvqa":
        raise DataError(f"{cfg.data}: --export-aokvqa needs data prepared from A-OKVQA (this is {fmt.name})")
    preds, pred_fmt, num_bad = read_predictions(cfg.predictions, cfg.skip_bad, warn)
    bad = BadEntries(cfg.skip_bad, warn)
    bad.count = num_bad
    head: dict[str, Any] = {"predictions": str(cfg.predictions), "format": pred_fmt, "data": str(cfg.data),
                            "data_format": fmt.name, "split": cfg.split}
    if all(r["answer"] is None for r in records):
        if export is None:
            raise DataError(f"{cfg.data}: split {cfg.split!r} is predict-only (no answers): nothing to score"
                            + ("; --export-aokvqa FILE writes the benchmark's prediction file" if fmt.scoring == "aokvqa"
                               else ""))
        exported = export_aokvqa(export, records, resolve_choices(records, preds, cfg.fallback, cfg.seed, bad))
        return {**head, "has_answers": False, "predict_only": True, "num_bad": bad.count, "export": exported}
    result = score_against(records, preds, cfg.fallback, cfg.seed, cfg.rationale_ref, bad, warn, True,
                    gold_name=f"{cfg.data} (split {cfg.split})", metric_options=cfg.metric_options)
    exported = None
    if export is not None:  # score_against has already reported bad predictions; the same draws are repeated here
        exported = export_aokvqa(export, records, resolve_choices(records, preds, cfg.fallback, cfg.seed,
                                                                  BadEntries(True, None)))
    items = result.pop("items")
    for key in [k for k in result if k.startswith("acc_")] + ["counts"]:
        result.pop(key, None)  # ScienceQA's categories mean nothing here
    correct = {it["qid"]: it["correct"] for it in items}
    out = {**head, **result, "predict_only": False, "export": exported}
    if result["has_answers"]:
        out["accuracy"] = percent(sum(correct.values()), len(correct))
        out["correct"] = sum(correct.values())
        out["groups"] = group_accuracy(records, correct)
        if fmt.scoring == "aokvqa":
            gold = {r["qid"]: r for r in records}
            chosen = {it["qid"]: None if it["pred_index"] is None else gold[it["qid"]]["choices"][it["pred_index"]]
                      for it in items}
            out["aokvqa"] = aokvqa_metrics(records, chosen)
    if cfg.details:
        out["items"] = items
    return out
