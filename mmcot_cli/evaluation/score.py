"""Scoring: answer extraction, ScienceQA accuracy by category (as the benchmark's evaluate_acc.py defines it),
and rationale metrics (ROUGE-L, BLEU-1/4), all offline.

Inputs are gold records (the DATA_DIR record schema, docs/FORMATS.md) and predictions: this project's
predictions JSONL or the benchmark's results JSON (`{"results": {qid: option_index}}`), detected automatically.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mmcot_cli.data.answers import (
    OPTION_LETTERS,
    extract_answer,
    letter_to_index,
)
from mmcot_cli.data.json_stream import iter_object
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, UnknownNameError, UnknownSplitError
from mmcot_cli.evaluation.baselines import baselines, collapse_warning, collapsed
from mmcot_cli.evaluation.original_metrics import (
    original_get_scores,
    original_target,
    original_validation_rouge_l,
)
from mmcot_cli.evaluation.predictions import (
    BadEntries,
    Prediction,
    Warn,
    coerce_predictions,
    is_int,
    read_predictions,
    type_name,
)
from mmcot_cli.evaluation.rationale_metrics import (
    RATIONALE_REFS,
    MetricOptions,
    normalize_rationale,
    rationale_metrics,
    rationale_reference,
)
from mmcot_cli.evaluation.similarity import (
    similarity_model_setting,
    similarity_setting,
)
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.validate import PROTOCOLS, check_seed, check_split_name

REFERENCE_OPTIONS = OPTION_LETTERS  # a letter outside them is redrawn under the random fallback
# strict: a failure is wrong; random: a seeded draw among the item's real options; reference: the original's
# draw, uniform over all five letters A–E (random.choice(range(5))), so on a 2-choice item usually wrong.
FALLBACKS = ("strict", "random", "reference")
DRAWS = ("random", "reference")

# The 26 topics evaluate_acc.py reports, in its order; topics found in the data but not here are appended.
SQA_TOPICS = (
    "punctuation", "literacy-in-science", "verbs", "pronouns", "civics", "culture", "word-study", "economics",
    "physics", "units-and-measurement", "science-and-engineering-practices", "reading-comprehension",
    "global-studies", "grammar", "figurative-language", "us-history", "writing-strategies", "world-history",
    "reference-skills", "biology", "earth-science", "phonological-awareness", "capitalization", "chemistry",
    "vocabulary", "geography",
)

_GRADES_1_6 = frozenset(f"grade{i}" for i in range(1, 7))
_GRADES_7_12 = frozenset(f"grade{i}" for i in range(7, 13))

# (JSON key, short label, membership test) — the evaluate_acc.py categories.
CATEGORIES: tuple[tuple[str, str, Callable[[dict], bool]], ...] = (
    ("acc_natural", "NAT", lambda r: r["subject"] == "natural science"),
    ("acc_social", "SOC", lambda r: r["subject"] == "social science"),
    ("acc_language", "LAN", lambda r: r["subject"] == "language science"),
    ("acc_has_text", "TXT", lambda r: bool(r["hint"])),
    ("acc_has_image", "IMG", lambda r: bool(r["image"])),
    ("acc_no_context", "NO", lambda r: not r["hint"] and not r["image"]),
    ("acc_grade_1_6", "G1-6", lambda r: r["grade"] in _GRADES_1_6),
    ("acc_grade_7_12", "G7-12", lambda r: r["grade"] in _GRADES_7_12),
    ("acc_average", "Avg", lambda r: True),
)

# Fields of a gold record that scoring reads.
_GOLD_FIELDS = ("choices", "answer", "subject", "grade", "topic", "hint", "image")


# ---------------------------------------------------------------------------------------------------------
# Gold data


def _check_record(record: dict, where: str) -> None:
    for key in _GOLD_FIELDS:
        if key not in record:
            raise DataError(f"{where}: qid {record.get('qid')}: missing field {key!r}")
    choices, answer = record["choices"], record["answer"]
    if not isinstance(choices, list) or not choices:
        raise DataError(f"{where}: qid {record.get('qid')}: 'choices' must be a non-empty list")
    if not is_int(answer) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: qid {record.get('qid')}: answer {answer!r} is not an index into "
                        f"{len(choices)} choices")


def load_problems(path: str | Path, split: str) -> list[dict]:
    """Gold records from a benchmark problems.json (qid → problem), keeping problems whose `split` is `split`."""
    path = Path(path)
    records: dict[str, dict] = {}
    splits_seen = set()
    # streamed: a big problems.json is never held whole, only the split's records (a qid given twice: the last
    # entry, as json.load keeps it)
    for qid, problem in iter_object(path, "an object of qid → problem", "problems file"):
        if not isinstance(problem, dict):
            raise DataError(f"{path}: qid {qid}: expected a problem object, got {type_name(problem)}")
        splits_seen.add(problem.get("split"))
        if problem.get("split") != split:
            records.pop(str(qid), None)
            continue
        record = {**problem, "qid": str(qid)}
        _check_record(record, str(path))
        records[str(qid)] = record
    if not records:
        raise UnknownSplitError(str(path), split, [str(s) for s in splits_seen])
    return list(records.values())


def load_gold(data: str | Path, split: str = "test") -> list[dict]:
    """Gold records from DATA: a prepared DATA_DIR (`<split>.jsonl`), a problems.json file, or a benchmark
    folder holding problems.json (directly or in scienceqa/)."""
    data = Path(data)
    if data.is_dir():
        if not (data / f"{split}.jsonl").is_file():
            for candidate in (data / "problems.json", data / "scienceqa" / "problems.json"):
                if candidate.is_file():
                    return load_problems(candidate, split)
        records = load_records(data, split)
        for record in records:
            _check_record(record, str(data / f"{split}.jsonl"))
        if not records:
            raise DataError(f"{data / f'{split}.jsonl'}: no records")
        return records
    if not data.exists():
        raise DataError(f"{data}: not found")
    return load_problems(data, split)


# ---------------------------------------------------------------------------------------------------------
# Accuracy


def percent(correct: float, total: int) -> float | None:
    # Empty groups are reported as such (null), not as an error or as evaluate_acc.py's -1.
    return round(100.0 * correct / total, 2) if total else None


def _topics(records: list[dict]) -> list[str]:
    extra = sorted({r["topic"] for r in records} - set(SQA_TOPICS))
    return list(SQA_TOPICS) + extra


def resolve_prediction(pred: Prediction | None, n_choices: int, fallback: str, rng: random.Random) -> tuple[int | None, str]:
    """(predicted option index or None for wrong, status) for one gold item."""
    if pred is None or not pred.has_answer:
        return None, "missing"
    if pred.answer_index is not None:
        return pred.answer_index, "index"
    letter = extract_answer(pred.text) if pred.text is not None else pred.letter
    if letter is None:
        if fallback in DRAWS:
            return _draw(fallback, n_choices, rng), "failed_random"
        return None, "failed"
    index = letter_to_index(letter, n_choices)
    if index is None:
        # Beyond the item's choices: the reference keeps A–E letters (scored wrong) and redraws any other.
        if fallback in DRAWS and letter not in REFERENCE_OPTIONS:
            return _draw(fallback, n_choices, rng), "invalid_letter_random"
        return None, "invalid_letter"
    return index, "extracted"


def _draw(fallback: str, n_choices: int, rng: random.Random) -> int:
    """An option index: among the item's choices, or (reference) among all of A–E, possibly past its choices."""
    return rng.randrange(len(REFERENCE_OPTIONS) if fallback == "reference" else n_choices)


def check_score_options(fallback: str, rationale_ref: str) -> None:
    if fallback not in FALLBACKS:
        raise UnknownNameError("fallback", fallback, list(FALLBACKS))
    if rationale_ref not in RATIONALE_REFS:
        raise UnknownNameError("rationale reference", rationale_ref, list(RATIONALE_REFS))


def score_records(records: list[dict], predictions: Mapping[str, Any] | Iterable[Any], fallback: str = "strict",
                  seed: int = 0, rationale_ref: str = "solution", skip_bad: bool = False,
                  warn: Warn | None = None, details: bool = False) -> dict:
    """Score predictions against gold records (any subset of ScienceQA).

    `predictions`: {qid: generated text | option index | row dict} or Prediction objects / JSONL row dicts.
    Returns evaluate_acc.py's `acc_*` keys (percent, 2 decimals; null for empty groups), `counts`
    ({key: {correct, total}}), num_* counters, `baselines` (chance and majority-class accuracy on these items),
    `collapsed` (every answer one letter, else null) and `rationale` metrics when predictions carry rationales.
    With `details`, `items` lists each gold qid's predicted index, answer, correctness and status.
    """
    check_score_options(fallback, rationale_ref)
    preds = coerce_predictions(predictions)
    return score_against(records, preds, fallback, seed, rationale_ref, BadEntries(skip_bad, warn), warn, details)


def _accuracy(records: list[dict], gold: dict[str, dict], by_qid: dict[str, Prediction], fallback: str,
              rng: random.Random, result: dict, statuses: dict[str, int], items: list[dict]) -> list[str]:
    """Fill `result` with the acc_* percentages and `counts`, `statuses` with status counts and `items` with
    per-qid rows; returns the gold qids without a prediction."""
    keys = [key for key, _, _ in CATEGORIES] + [f"acc_{t}" for t in _topics(records)]
    counts = {key: {"correct": 0, "total": 0} for key in keys}
    missing = []
    for qid, record in gold.items():
        index, status = resolve_prediction(by_qid.get(qid), len(record["choices"]), fallback, rng)
        statuses[status] = statuses.get(status, 0) + 1
        if status == "missing":
            missing.append(qid)
        correct = index is not None and index == record["answer"]
        member = [key for key, _, test in CATEGORIES if test(record)] + [f"acc_{record['topic']}"]
        for key in member:
            counts[key]["total"] += 1
            counts[key]["correct"] += int(correct)
        items.append({"qid": qid, "pred_index": index, "answer": record["answer"], "correct": correct,
                      "status": status})
    for key in keys:
        result[key] = percent(counts[key]["correct"], counts[key]["total"])
    result["counts"] = counts
    return missing


def score_against(records: list[dict], preds: list[Prediction], fallback: str, seed: int, rationale_ref: str,
           bad: BadEntries, warn: Warn | None, details: bool, gold_name: str = "the gold data",
           metric_options: MetricOptions = MetricOptions()) -> dict:
    gold = {}
    for record in records:
        _check_record(record, "<records>")
        if str(record["qid"]) in gold:
            raise DataError(f"<records>: duplicate gold qid {record['qid']}")
        gold[str(record["qid"])] = record

    # Gold-dependent checks: unknown qid, duplicate qid, option index beyond the item's choices.
    by_qid: dict[str, Prediction] = {}
    for pred in preds:
        if pred.qid not in gold:
            bad(f"{pred.where}: qid {pred.qid} is not in {gold_name}")
            continue
        if pred.qid in by_qid:
            bad(f"{pred.where}: duplicate qid {pred.qid} (first at {by_qid[pred.qid].where})")
            continue
        n = len(gold[pred.qid]["choices"])
        if pred.answer_index is not None and pred.answer_index >= n:
            bad(f"{pred.where}: qid {pred.qid}: option index {pred.answer_index} is beyond its {n} choices")
            continue
        by_qid[pred.qid] = pred

    has_answers = any(p.has_answer for p in by_qid.values())
    has_rationales = any(p.rationale is not None for p in by_qid.values())
    result: dict[str, Any] = {}
    statuses: dict[str, int] = {}
    items: list[dict] = []
    if has_answers:
        missing = _accuracy(records, gold, by_qid, fallback, random.Random(seed), result, statuses, items)
        result["baselines"] = baselines(list(gold.values()))
        result["collapsed"] = collapsed([it["pred_index"] for it in items])
        if result["collapsed"] and warn:
            share = [it["correct"] for it in items]
            warn(collapse_warning(result["collapsed"], percent(sum(share), len(share)), result["baselines"]))
    else:
        missing = [qid for qid in gold if qid not in by_qid]
    result.update({
        "num_gold": len(gold),
        "num_predictions": len(by_qid),
        "num_scored": len(gold) if has_answers else 0,
        "num_fail": statuses.get("failed", 0) + statuses.get("failed_random", 0),
        "num_random": statuses.get("failed_random", 0) + statuses.get("invalid_letter_random", 0),
        "num_invalid_letter": statuses.get("invalid_letter", 0) + statuses.get("invalid_letter_random", 0),
        "num_missing": len(missing),
        "num_bad": bad.count,
        # answers generated within their options (generate's default; num_fail counts only the others)
        "num_constrained": sum(bool(p.constrained) for p in by_qid.values()) if has_answers else 0,
        "fallback": fallback,
        "seed": seed if fallback in DRAWS else None,
        "has_answers": has_answers,
    })
    if missing and warn:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        what = "prediction (scored as wrong)" if has_answers else "rationale"
        warn(f"{len(missing)} of {len(gold)} gold qids have no {what}: {shown}")

    if has_rationales:
        texts = {q: p.rationale for q, p in by_qid.items() if p.rationale is not None}
        result["rationale"] = rationale_result(texts, gold, rationale_ref, metric_options)
        if warn and texts and not any(normalize_rationale(t) for t in texts.values()):
            warn(f"every rationale is empty ({len(texts)} of {len(texts)}): the rationale metrics are 0 and the "
                 "original's get_scores skips them all (an undertrained rationale stage, or too few new tokens)")
    else:
        result["rationale"] = None
    if details:
        result["items"] = items
    return result


def original_rationale_metrics(raw_pairs: list[tuple[str, str]], metric_options: MetricOptions) -> dict:
    """The original's two rationale metrics (mmcot_cli.evaluation.original_metrics) of raw (generated text,
    original target) pairs, ×100 to 4 decimals: `get_scores` (rouge_l, bleu_1, bleu_4, similarity, and how many
    pairs each averaged) and `validation_rouge_l` (its per-epoch model-selection metric)."""
    preds, targets = [p for p, _ in raw_pairs], [t for _, t in raw_pairs]
    scores = original_get_scores(preds, targets, metric_options.similarity_model)
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
    validation = original_validation_rouge_l(preds, targets)
    return {"get_scores": rounded, "validation_rouge_l": None if validation is None else round(validation, 4)}


def rationale_result(texts: Mapping[str, str], gold: Mapping[str, dict], ref: str,
                     metric_options: MetricOptions) -> dict:
    """The `rationale` part of a score object for generated rationales by qid (each qid in `gold`): mmcot's
    normalised metrics at the top level and the original's under `original` (original_rationale_metrics)."""
    qids = list(texts)
    metrics = rationale_metrics([texts[q] for q in qids], [rationale_reference(gold[q], ref) for q in qids],
                                metric_options)
    raw = [(texts[q], original_target(gold[q], ref)) for q in qids]
    return {"reference": ref, **metrics, "original": original_rationale_metrics(raw, metric_options)}


# ---------------------------------------------------------------------------------------------------------
# Entry point for `mmcot score`


_FALLBACK_HELP = ("On extraction failure: strict (wrong), random (a seeded draw among the item's real options) or "
                  "reference (the original's rule: a draw among all five letters A–E, usually wrong on 2-choice "
                  "items; same distribution, not the original's exact draws).")

@dataclass
class ScoreConfig:
    """`mmcot score`'s settings: one field per option (mmcot_cli.settings)."""

    predictions: Path = setting(help="Predictions JSONL (mmcot generate) or a ScienceQA results JSON ({\"results\": "
                                "{qid: option_index}}); detected automatically.", argument=True,
                                metavar="PREDICTIONS")
    data: Path = setting(help="Prepared DATA_DIR, a ScienceQA problems.json, or a folder holding problems.json.",
                         metavar="DATA")
    split: str = setting("test", "Which split of DATA to score against.", metavar="SPLIT", check=check_split_name)
    fallback: str = setting("strict", _FALLBACK_HELP, choices=FALLBACKS)
    seed: int = setting(0, "Seed for --fallback random/reference.", check=check_seed)
    skip_bad: bool = setting(False, "Warn about and skip bad prediction entries instead of failing.")
    rationale_ref: str = setting("solution", "Gold text for rationale metrics.", choices=RATIONALE_REFS)
    export_aokvqa: Path | None = setting(None, "A-OKVQA data: also write the benchmark's prediction file "
                                         "{question_id: {multiple_choice, direct_answer}} (the official evaluation's "
                                         "and leaderboard's format; the direct answer is the chosen option's text; "
                                         "works on the predict-only test split).", metavar="FILE")
    similarity: bool = similarity_setting()
    similarity_model: Path | None = similarity_model_setting()
    protocol: str = setting("mmcot", "mmcot or original: the original's answer rule (--fallback reference) and its "
                            "get_scores rationale metrics as the headline. Recorded in the score object.",
                            choices=PROTOCOLS)
    details: bool = setting(False, "Add per-item results (items) to the output.", flag="")  # report's, not a flag

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def metric_options(self) -> MetricOptions:
        return MetricOptions.from_flags(self.similarity, self.similarity_model)


def score(cfg: ScoreConfig, warn: Warn | None = None) -> dict:
    """Read DATA and PREDS, score them, and return the result object `mmcot score --json` prints."""
    if cfg.protocol == "original":
        cfg = replace(cfg, fallback="reference")
    cfg.metric_options.check()
    records = load_gold(cfg.data, cfg.split)
    preds, fmt, num_bad = read_predictions(cfg.predictions, cfg.skip_bad, warn)
    bad = BadEntries(cfg.skip_bad, warn)
    bad.count = num_bad
    result = score_against(records, preds, cfg.fallback, cfg.seed, cfg.rationale_ref, bad, warn, cfg.details,
                           gold_name=f"{cfg.data} (split {cfg.split})", metric_options=cfg.metric_options)
    return {"predictions": str(cfg.predictions), "format": fmt, "data": str(cfg.data), "split": cfg.split,
            "protocol": cfg.protocol, **with_headline(result, cfg.protocol)}


def with_headline(result: dict, protocol: str) -> dict:
    """The score object with `rationale.headline`: which rationale metrics the protocol reports first (`mmcot`:
    the normalised ones at the top level; `original`: `original.get_scores`)."""
    if result.get("rationale"):
        result["rationale"]["headline"] = "original.get_scores" if protocol == "original" else "mmcot"
    return result
