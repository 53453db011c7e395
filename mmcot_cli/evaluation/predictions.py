"""Reading predictions: this project's predictions JSONL, the benchmark's results JSON, or library objects.

Type checks only (a qid is a non-empty string, an index a non-negative integer, …); checks against the gold data
(unknown or duplicate qid, index beyond the choices) are scoring's (`mmcot_cli.evaluation.score`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mmcot_cli.errors import DataError
from mmcot_cli.io import JsonlLine, jsonl_lines, loads, lone_surrogate, read_text

Warn = Callable[[str], None]


@dataclass(slots=True)  # one per predictions line: 200k of them stay small
class Prediction:
    """One prediction: an option index and/or generated answer text, and/or a rationale."""

    qid: str
    answer_index: int | None = None
    text: str | None = None  # generated text to extract "The answer is (X)" from
    letter: str | None = None  # a pre-extracted letter, used only when there is neither index nor text
    rationale: str | None = None
    constrained: bool | None = None  # generate recorded decoding within the item's options (None: not recorded)
    where: str = "<predictions>"  # "file:line" or "file: results['qid']", for messages

    @property
    def has_answer(self) -> bool:
        return self.answer_index is not None or self.text is not None or self.letter is not None


class BadEntries:
    """Raise or (with skip_bad) warn-and-count one bad prediction."""

    def __init__(self, skip_bad: bool, warn: Warn | None):
        self.skip_bad, self.warn, self.count, self.first = skip_bad, warn, 0, None

    def __call__(self, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.count += 1
        self.first = self.first or message
        if self.warn:
            self.warn(f"{message} (skipped)")


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prediction_from_row(row: dict, where: str) -> Prediction:
    """Validate one predictions-JSONL object (types only; gold checks come later). Raises DataError."""
    if "qid" not in row:
        raise DataError(f"{where}: missing 'qid'")
    qid = row["qid"]
    if not isinstance(qid, str) or not qid:
        raise DataError(f"{where}: 'qid' must be a non-empty string, got {type_name(qid)} {qid!r}")
    for key in ("prediction", "rationale", "answer_letter", "stage"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise DataError(f"{where}: qid {qid}: {key!r} must be a string or null, got {type_name(row[key])}")
    index = row.get("answer_index")
    if index is not None and (not is_int(index) or index < 0):
        raise DataError(f"{where}: qid {qid}: 'answer_index' must be a non-negative integer or null, "
                        f"got {type_name(index)} {index!r}")
    if not isinstance(row.get("constrained"), (bool, type(None))):
        raise DataError(f"{where}: qid {qid}: 'constrained' must be true, false or null, "
                        f"got {type_name(row['constrained'])}")
    stage = row.get("stage")
    if stage not in (None, "answer", "rationale"):
        raise DataError(f"{where}: qid {qid}: 'stage' must be 'answer' or 'rationale', got {stage!r}")
    pred = Prediction(qid=qid, answer_index=index, where=where, rationale=row.get("rationale"),
                      constrained=row.get("constrained"))
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


def _read_jsonl_predictions(lines: Iterable[JsonlLine], bad: BadEntries) -> list[Prediction]:
    preds = []
    for line in lines:  # deep nesting, huge numbers, lone surrogates: one line each
        if line.error is not None:
            bad(str(line.error))
            continue
        if not isinstance(line.value, dict):
            bad(f"{line.where}: expected a JSON object, got {type_name(line.value)}")
            continue
        try:
            preds.append(_prediction_from_row(line.value, line.where))
        except DataError as e:
            bad(str(e))
    return preds


def _read_results_json(path: Path, obj: dict, bad: BadEntries) -> list[Prediction]:
    results = obj["results"]
    if not isinstance(results, dict):
        raise DataError(f"{path}: 'results' must be an object of qid → option index, got {type_name(results)}")
    preds = []
    for qid, value in results.items():
        where = f"{path}: results[{qid!r}]"
        if lone_surrogate(qid) is not None:
            bad(f"{where}: lone surrogate {lone_surrogate(qid)} in the qid (not valid Unicode text)")
            continue
        # evaluate_acc.py does int(results[qid]); accept ints and digit strings, nothing looser.
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if not is_int(value) or value < 0:
            bad(f"{where}: option index must be a non-negative integer, got {type_name(value)} {value!r}")
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
    bad = BadEntries(skip_bad, warn)
    lines = jsonl_lines(path, "predictions file")
    head = list(itertools.islice(lines, 2))
    if len(head) == 2 and head[0].error is None and isinstance(head[0].value, dict):
        # Two lines or more, the first an object on its own: JSONL (no single JSON document looks like this),
        # read line by line as it streams, never held whole.
        preds = _read_jsonl_predictions(itertools.chain(head, lines), bad)
        if not preds:
            first = f" (the first bad entry: {bad.first})" if bad.first else ""
            raise DataError(f"{path}: no usable predictions{first}")
        return preds, "jsonl", bad.count
    lines.close()
    text = read_text(path, "predictions file")  # one JSON document (a results JSON), one line, or none usable
    if not text.strip():
        raise DataError(f"{path}: empty predictions file")
    try:
        whole = loads(text, str(path), surrogates=True)  # a results JSON's lone surrogates are bad entries
    except DataError:
        whole = None  # not one JSON document: JSONL (or broken), handled line by line below
    if isinstance(whole, dict) and "results" in whole:
        loads(text, str(path), surrogates=True, unique_keys=True)  # a qid given twice is never resolved silently
        preds, fmt = _read_results_json(path, whole, bad), "scienceqa-results"
    elif isinstance(whole, dict) and "preds" in whole and "qid" not in whole:
        raise DataError(f"{path}: a JSON object without 'results' (by-position 'preds' lists without qids, as the "
                        f"reference writes them, cannot be scored; `mmcot rationales import FILE --format mm-cot "
                        f"--data DATA --split SPLIT --out R.jsonl` maps a stage-1 file to qids); expected predictions "
                        f"JSONL or a ScienceQA results JSON {{\"results\": {{qid: option_index}}}}")
    elif isinstance(whole, dict) and sum(1 for line in text.split("\n") if line.strip()) > 1:
        # One object spread over several lines is not JSONL (whose objects sit one per line).
        raise DataError(f"{path}: a JSON object without 'results'; expected predictions JSONL or a ScienceQA "
                        f"results JSON {{\"results\": {{qid: option_index}}}}")
    elif whole is not None and not isinstance(whole, dict):
        raise DataError(f"{path}: a JSON {type_name(whole)}; expected predictions JSONL or a ScienceQA results "
                        f"JSON {{\"results\": {{qid: option_index}}}}")
    else:
        preds, fmt = _read_jsonl_predictions(jsonl_lines(path, text=text), bad), "jsonl"
    if not preds:
        first = f" (the first bad entry: {bad.first})" if bad.first else ""
        raise DataError(f"{path}: no usable predictions{first}")
    return preds, fmt, bad.count


def coerce_predictions(predictions: Mapping[str, Any] | Iterable[Any]) -> list[Prediction]:
    """Library callers may pass {qid: text | index | row dict | Prediction} or an iterable of row dicts."""
    out: list[Prediction] = []
    if isinstance(predictions, Mapping):
        for qid, value in predictions.items():
            where = f"<predictions>[{qid!r}]"
            if isinstance(value, Prediction):
                out.append(value)
            elif isinstance(value, str):
                out.append(Prediction(qid=str(qid), text=value, where=where))
            elif is_int(value):
                out.append(_prediction_from_row({"qid": str(qid), "answer_index": value}, where))
            elif isinstance(value, dict):
                out.append(_prediction_from_row({"qid": str(qid), **value}, where))
            else:
                raise DataError(f"{where}: expected text, an option index or a prediction object, "
                                f"got {type_name(value)}")
        return out
    for i, value in enumerate(predictions):
        where = f"<predictions>[{i}]"
        if isinstance(value, Prediction):
            out.append(value)
        elif isinstance(value, dict):
            out.append(_prediction_from_row(value, where))
        else:
            raise DataError(f"{where}: expected a prediction object, got {type_name(value)}")
    return out
