"""Scoring: answer extraction, ScienceQA accuracy by category (as the benchmark's evaluate_acc.py defines it),
and rationale metrics (ROUGE-L, BLEU-1/4), all offline.

Inputs are gold records (the DATA_DIR record schema, docs/FORMATS.md) and predictions: this project's
predictions JSONL or the benchmark's results JSON (`{"results": {qid: option_index}}`), detected automatically.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mmcot_cli import progress
from mmcot_cli.errors import DataError, UnknownNameError, UnknownSplitError
from mmcot_cli.io import read_json, read_text

# The reference's pattern (main.py extract_ans): exactly one match gives the letter, anything else fails.
ANSWER_PATTERN = re.compile(r"The answer is \(([A-Z])\)")
# The reference's option letters (args.options); a letter outside them is redrawn under the random fallback.
REFERENCE_OPTIONS = ("A", "B", "C", "D", "E")

FALLBACKS = ("strict", "random")
RATIONALE_REFS = ("solution", "lecture+solution")

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

Warn = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------------
# Answer extraction


def extract_answer(text: str | None) -> str | None:
    """The letter X of the single "The answer is (X)" in `text`; None when there is no match or several."""
    if not isinstance(text, str):
        return None
    found = ANSWER_PATTERN.findall(text)
    return found[0] if len(found) == 1 else None


def letter_to_index(letter: str, num_choices: int) -> int | None:
    """Option index for `letter` ("A" → 0); None when the letter is beyond the item's `num_choices` options."""
    if len(letter) != 1 or not "A" <= letter <= "Z":
        return None
    index = ord(letter) - ord("A")
    return index if index < num_choices else None


# ---------------------------------------------------------------------------------------------------------
# Predictions


@dataclass
class Prediction:
    """One prediction: an option index and/or generated answer text, and/or a rationale."""

    qid: str
    answer_index: int | None = None
    text: str | None = None  # generated text to extract "The answer is (X)" from
    letter: str | None = None  # a pre-extracted letter, used only when there is neither index nor text
    rationale: str | None = None
    where: str = "<predictions>"  # "file:line" or "file: results['qid']", for messages

    @property
    def has_answer(self) -> bool:
        return self.answer_index is not None or self.text is not None or self.letter is not None


class _Bad:
    """Raise or (with skip_bad) warn-and-count one bad prediction."""

    def __init__(self, skip_bad: bool, warn: Warn | None):
        self.skip_bad, self.warn, self.count = skip_bad, warn, 0

    def __call__(self, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.count += 1
        if self.warn:
            self.warn(f"{message} (skipped)")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prediction_from_row(row: dict, where: str) -> Prediction:
    """Validate one predictions-JSONL object (types only; gold checks come later). Raises DataError."""
    if "qid" not in row:
        raise DataError(f"{where}: missing 'qid'")
    qid = row["qid"]
    if not isinstance(qid, str) or not qid:
        raise DataError(f"{where}: 'qid' must be a non-empty string, got {_type_name(qid)} {qid!r}")
    for key in ("prediction", "rationale", "answer_letter", "stage"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise DataError(f"{where}: qid {qid}: {key!r} must be a string or null, got {_type_name(row[key])}")
    index = row.get("answer_index")
    if index is not None and (not _is_int(index) or index < 0):
        raise DataError(f"{where}: qid {qid}: 'answer_index' must be a non-negative integer or null, "
                        f"got {_type_name(index)} {index!r}")
    stage = row.get("stage")
    if stage not in (None, "answer", "rationale"):
        raise DataError(f"{where}: qid {qid}: 'stage' must be 'answer' or 'rationale', got {stage!r}")
    pred = Prediction(qid=qid, answer_index=index, where=where, rationale=row.get("rationale"))
    if stage == "rationale":
        # A stage-1 output is a rationale, not an answer; it is scored with the rationale metrics only.
        if pred.rationale is None:
            pred.rationale = row.get("prediction")
    else:
        pred.text = row.get("prediction")
        if pred.answer_index is None and pred.text is None:
            pred.letter = row.get("answer_letter")
    if not pred.has_answer and pred.rationale is None:
        raise DataError(f"{where}: qid {qid}: no 'prediction', 'answer_index' or 'rationale'")
    return pred


def _read_jsonl_predictions(path: Path, text: str, bad: _Bad) -> list[Prediction]:
    preds = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad(f"{where}:{e.colno}: invalid JSON: {e.msg}")
            continue
        if not isinstance(row, dict):
            bad(f"{where}: expected a JSON object, got {_type_name(row)}")
            continue
        try:
            preds.append(_prediction_from_row(row, where))
        except DataError as e:
            bad(str(e))
    return preds


def _read_results_json(path: Path, obj: dict, bad: _Bad) -> list[Prediction]:
    results = obj["results"]
    if not isinstance(results, dict):
        raise DataError(f"{path}: 'results' must be an object of qid → option index, got {_type_name(results)}")
    preds = []
    for qid, value in results.items():
        where = f"{path}: results[{qid!r}]"
        # evaluate_acc.py does int(results[qid]); accept ints and digit strings, nothing looser.
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if not _is_int(value) or value < 0:
            bad(f"{where}: option index must be a non-negative integer, got {_type_name(value)} {value!r}")
            continue
        preds.append(Prediction(qid=qid, answer_index=value, where=where))
    return preds


def read_predictions(path: str | Path, skip_bad: bool = False, warn: Warn | None = None
                     ) -> tuple[list[Prediction], str, int]:
    """Read a predictions JSONL or a ScienceQA results JSON (auto-detected).

    Returns (predictions, format name, number of bad entries skipped). Bad entries raise DataError naming
    file:line (JSONL) or file + qid (results JSON), unless `skip_bad`, which warns and counts instead.
    """
    path = Path(path)
    text = read_text(path, "predictions file")
    if not text.strip():
        raise DataError(f"{path}: empty predictions file")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # not one JSON document: JSONL (or broken), handled line by line below
    bad = _Bad(skip_bad, warn)
    if isinstance(whole, dict) and "results" in whole:
        preds, fmt = _read_results_json(path, whole, bad), "scienceqa-results"
    elif isinstance(whole, dict) and "preds" in whole and "qid" not in whole:
        raise DataError(f"{path}: a JSON object without 'results' (by-position 'preds' lists without qids, as the "
                        f"reference writes them, cannot be scored); expected predictions JSONL or a ScienceQA "
                        f"results JSON {{\"results\": {{qid: option_index}}}}")
    elif isinstance(whole, dict) and sum(1 for line in text.splitlines() if line.strip()) > 1:
        # One object spread over several lines is not JSONL (whose objects sit one per line).
        raise DataError(f"{path}: a JSON object without 'results'; expected predictions JSONL or a ScienceQA "
                        f"results JSON {{\"results\": {{qid: option_index}}}}")
    elif whole is not None and not isinstance(whole, dict):
        raise DataError(f"{path}: a JSON {_type_name(whole)}; expected predictions JSONL or a ScienceQA results "
                        f"JSON {{\"results\": {{qid: option_index}}}}")
    else:
        preds, fmt = _read_jsonl_predictions(path, text, bad), "jsonl"
    if not preds:
        raise DataError(f"{path}: no usable predictions")
    return preds, fmt, bad.count


def _coerce_predictions(predictions: Mapping[str, Any] | Iterable[Any]) -> list[Prediction]:
    """Library callers may pass {qid: text | index | row dict | Prediction} or an iterable of row dicts."""
    out: list[Prediction] = []
    if isinstance(predictions, Mapping):
        for qid, value in predictions.items():
            where = f"<predictions>[{qid!r}]"
            if isinstance(value, Prediction):
                out.append(value)
            elif isinstance(value, str):
                out.append(Prediction(qid=str(qid), text=value, where=where))
            elif _is_int(value):
                out.append(_prediction_from_row({"qid": str(qid), "answer_index": value}, where))
            elif isinstance(value, dict):
                out.append(_prediction_from_row({"qid": str(qid), **value}, where))
            else:
                raise DataError(f"{where}: expected text, an option index or a prediction object, "
                                f"got {_type_name(value)}")
        return out
    for i, value in enumerate(predictions):
        where = f"<predictions>[{i}]"
        if isinstance(value, Prediction):
            out.append(value)
        elif isinstance(value, dict):
            out.append(_prediction_from_row(value, where))
        else:
            raise DataError(f"{where}: expected a prediction object, got {_type_name(value)}")
    return out


# ---------------------------------------------------------------------------------------------------------
# Gold data


def _check_record(record: dict, where: str) -> None:
    for key in _GOLD_FIELDS:
        if key not in record:
            raise DataError(f"{where}: qid {record.get('qid')}: missing field {key!r}")
    choices, answer = record["choices"], record["answer"]
    if not isinstance(choices, list) or not choices:
        raise DataError(f"{where}: qid {record.get('qid')}: 'choices' must be a non-empty list")
    if not _is_int(answer) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: qid {record.get('qid')}: answer {answer!r} is not an index into "
                        f"{len(choices)} choices")


def load_problems(path: str | Path, split: str) -> list[dict]:
    """Gold records from a benchmark problems.json (qid → problem), keeping problems whose `split` is `split`."""
    path = Path(path)
    problems = read_json(path)
    if not isinstance(problems, dict):
        raise DataError(f"{path}: expected an object of qid → problem, got {_type_name(problems)}")
    records = []
    splits_seen = set()
    for qid, problem in problems.items():
        if not isinstance(problem, dict):
            raise DataError(f"{path}: qid {qid}: expected a problem object, got {_type_name(problem)}")
        splits_seen.add(problem.get("split"))
        if problem.get("split") != split:
            continue
        record = {**problem, "qid": str(qid)}
        _check_record(record, str(path))
        records.append(record)
    if not records:
        raise UnknownSplitError(str(path), split, [str(s) for s in splits_seen])
    return records


def load_gold(data: str | Path, split: str = "test") -> list[dict]:
    """Gold records from DATA: a prepared DATA_DIR (`<split>.jsonl`), a problems.json file, or a benchmark
    folder holding problems.json (directly or in scienceqa/)."""
    data = Path(data)
    if data.is_dir():
        if not (data / f"{split}.jsonl").is_file():
            for candidate in (data / "problems.json", data / "scienceqa" / "problems.json"):
                if candidate.is_file():
                    return load_problems(candidate, split)
        from mmcot_cli.data import load_records  # owned by `mmcot prepare`; names the file/line of bad records

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
# Rationale metrics


def normalize_rationale(text: str) -> str:
    """Text a rationale is compared on: literal "\\n" (how prompts encode newlines) as spaces, whitespace
    collapsed, and a leading "Solution:" (the stage-1 targets' prefix) stripped."""
    text = " ".join(text.replace("\\n", " ").split())
    if text.startswith("Solution:"):
        text = text[len("Solution:"):].strip()
    return text


def rationale_reference(record: dict, ref: str = "solution") -> str:
    """The gold text a generated rationale is compared with: `solution` (the QCM-E target) or
    `lecture solution` (the QCM-LE target), normalised like the prediction."""
    if ref == "solution":
        text = record.get("solution") or ""
    elif ref == "lecture+solution":
        text = f"{record.get('lecture') or ''} {record.get('solution') or ''}"
    else:
        raise UnknownNameError("rationale reference", ref, list(RATIONALE_REFS))
    return normalize_rationale(text)


_ROUGE_SCORER = None


def _rouge_pair(pred: str, ref: str) -> float:
    global _ROUGE_SCORER
    if _ROUGE_SCORER is None:
        from rouge_score import rouge_scorer

        _ROUGE_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _ROUGE_SCORER.score(ref, pred)["rougeL"].fmeasure


def _bleu_tokens(text: str) -> list[str]:
    # evaluations.py: split on whitespace and full stops, dropping empty pieces.
    return [t for t in re.split(r"\s|\.", text) if t]


def _bleu_pair(pred: str, ref: str, n: int) -> float:
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        # Without smoothing nltk warns for every sentence with no n-gram overlap; the score is 0 by design.
        warnings.simplefilter("ignore")
        return float(sentence_bleu([_bleu_tokens(ref)], _bleu_tokens(pred), (1.0 / n,) * n))


def _mean_percent(scores: list[float]) -> float | None:
    return 100.0 * sum(scores) / len(scores) if scores else None


def _check_lengths(name: str, preds: list[str], refs: list[str]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"{name}: {len(preds)} predictions but {len(refs)} references")


def rouge_l(preds: list[str], refs: list[str]) -> float | None:
    """Mean ROUGE-L F-measure ×100 (rouge-score, Porter stemming as the reference's validation metric).

    Pairs with an empty reference are skipped; an empty prediction scores 0 (the reference's evaluations.py
    skips those too, which would reward saying nothing). None when no pair has a reference."""
    _check_lengths("rouge_l", preds, refs)
    return _mean_percent([_rouge_pair(p, r) for p, r in zip(preds, refs) if r.strip()])


def bleu(preds: list[str], refs: list[str], n: int) -> float | None:
    """Mean sentence BLEU-n ×100 (nltk, uniform weights, no smoothing, as the reference). Empty references
    are skipped; None when none is left."""
    _check_lengths("bleu", preds, refs)
    return _mean_percent([_bleu_pair(p, r, n) for p, r in zip(preds, refs) if r.strip()])


def rationale_metrics(preds: list[str], refs: list[str]) -> dict:
    """ROUGE-L, BLEU-1 and BLEU-4 (×100) over normalised texts, with the number of pairs scored."""
    _check_lengths("rationale_metrics", preds, refs)
    pairs = [(normalize_rationale(p), normalize_rationale(r)) for p, r in zip(preds, refs)]
    pairs = [(p, r) for p, r in pairs if r]
    rouge, bleu_1, bleu_4 = [], [], []
    # ~5 ms a pair on CPU, so a full test split takes a while: show progress.
    for pred, ref in progress.track(pairs, "rationale metrics"):
        rouge.append(_rouge_pair(pred, ref))
        bleu_1.append(_bleu_pair(pred, ref, 1))
        bleu_4.append(_bleu_pair(pred, ref, 4))
    return {
        "num_scored": len(pairs),
        "num_empty_ref": len(refs) - len(pairs),
        "rouge_l": _round(_mean_percent(rouge)),
        "bleu_1": _round(_mean_percent(bleu_1)),
        "bleu_4": _round(_mean_percent(bleu_4)),
    }


# ---------------------------------------------------------------------------------------------------------
# Accuracy


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _percent(correct: int, total: int) -> float | None:
    # Empty groups are reported as such (null), not as an error or as evaluate_acc.py's -1.
    return round(100.0 * correct / total, 2) if total else None


def _topics(records: list[dict]) -> list[str]:
    extra = sorted({r["topic"] for r in records} - set(SQA_TOPICS))
    return list(SQA_TOPICS) + extra


def _resolve(pred: Prediction | None, n_choices: int, fallback: str, rng: random.Random) -> tuple[int | None, str]:
    """(predicted option index or None for wrong, status) for one gold item."""
    if pred is None or not pred.has_answer:
        return None, "missing"
    if pred.answer_index is not None:
        return pred.answer_index, "index"
    letter = extract_answer(pred.text) if pred.text is not None else pred.letter
    if letter is None:
        if fallback == "random":
            return rng.randrange(n_choices), "failed_random"
        return None, "failed"
    index = letter_to_index(letter, n_choices)
    if index is None:
        # Beyond the item's choices: the reference keeps A–E letters (scored wrong) and redraws any other.
        if fallback == "random" and letter not in REFERENCE_OPTIONS:
            return rng.randrange(n_choices), "invalid_letter_random"
        return None, "invalid_letter"
    return index, "extracted"


def _check_options(fallback: str, rationale_ref: str) -> None:
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
    ({key: {correct, total}}), num_* counters, and `rationale` metrics when predictions carry rationales.
    With `details`, `items` lists each gold qid's predicted index, answer, correctness and status.
    """
    _check_options(fallback, rationale_ref)
    preds = _coerce_predictions(predictions)
    return _score(records, preds, fallback, seed, rationale_ref, _Bad(skip_bad, warn), warn, details)


def _score(records: list[dict], preds: list[Prediction], fallback: str, seed: int, rationale_ref: str,
           bad: _Bad, warn: Warn | None, details: bool, gold_name: str = "the gold data") -> dict:
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
    rng = random.Random(seed)
    statuses: dict[str, int] = {}
    items = []
    missing = []
    if has_answers:
        topics = _topics(records)
        keys = [key for key, _, _ in CATEGORIES] + [f"acc_{t}" for t in topics]
        counts = {key: {"correct": 0, "total": 0} for key in keys}
        for qid, record in gold.items():
            pred = by_qid.get(qid)
            index, status = _resolve(pred, len(record["choices"]), fallback, rng)
            statuses[status] = statuses.get(status, 0) + 1
            if status == "missing":
                missing.append(qid)
            correct = index is not None and index == record["answer"]
            member = [key for key, _, test in CATEGORIES if test(record)] + [f"acc_{record['topic']}"]
            for key in member:
                counts[key]["total"] += 1
                counts[key]["correct"] += int(correct)
            if details:
                items.append({"qid": qid, "pred_index": index, "answer": record["answer"], "correct": correct,
                              "status": status})
        for key in keys:
            result[key] = _percent(counts[key]["correct"], counts[key]["total"])
        result["counts"] = counts
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
        "fallback": fallback,
        "seed": seed if fallback == "random" else None,
        "has_answers": has_answers,
    })
    if missing and warn:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        what = "prediction (scored as wrong)" if has_answers else "rationale"
        warn(f"{len(missing)} of {len(gold)} gold qids have no {what}: {shown}")

    if has_rationales:
        pairs = [(p.rationale, rationale_reference(gold[q], rationale_ref))
                 for q, p in by_qid.items() if p.rationale is not None]
        metrics = rationale_metrics([p for p, _ in pairs], [r for _, r in pairs])
        result["rationale"] = {"reference": rationale_ref, **metrics}
    else:
        result["rationale"] = None
    if details:
        result["items"] = items
    return result


# ---------------------------------------------------------------------------------------------------------
# Entry point for `mmcot score`


@dataclass
class ScoreConfig:
    predictions: Path
    data: Path
    split: str = "test"
    fallback: str = "strict"  # "strict": extraction failure is wrong; "random": seeded draw among real options
    seed: int = 0
    skip_bad: bool = False
    rationale_ref: str = "solution"  # or "lecture+solution"
    details: bool = False  # add per-item results ("items") to the output


def score(cfg: ScoreConfig, warn: Warn | None = None) -> dict:
    """Read DATA and PREDS, score them, and return the result object `mmcot score --json` prints."""
    _check_options(cfg.fallback, cfg.rationale_ref)
    records = load_gold(cfg.data, cfg.split)
    preds, fmt, num_bad = read_predictions(cfg.predictions, cfg.skip_bad, warn)
    bad = _Bad(cfg.skip_bad, warn)
    bad.count = num_bad
    result = _score(records, preds, cfg.fallback, cfg.seed, cfg.rationale_ref, bad, warn, cfg.details,
                    gold_name=f"{cfg.data} (split {cfg.split})")
    return {"predictions": str(cfg.predictions), "format": fmt, "data": str(cfg.data), "split": cfg.split,
            **result}
