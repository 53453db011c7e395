"""Teacher rationales (Fine-tune-CoT, REFERENCE.md §8): import, keep those that reach the gold answer, and train
the rationale stage on several rationales per problem.

Candidates are read from any of (one JSON object per line, matched to DATA_DIR records by qid):
- a teacher file `{qid, rationale, answer?}` (several lines per qid allowed; `answer` an option index, a letter
  "B"/"(B)" or the option text), e.g. written by a large language model;
- predictions from `mmcot generate --num-samples K` (every text of `samples`), or plain `mmcot generate` output
  (its `prediction`);
- a rationale set written by `mmcot rationales import|filter` (the schema below).
The answer of a candidate is the given one, else parsed from its text: the single "The answer is (X)", or a final
"--> X" (Fine-tune-CoT's "{rationale} --> {answer}"), X a letter or the option text.

Rationale set (written here, read by `mmcot train --stage rationale --rationale-source FILE`): one line per
rationale, `{qid, rationale, answer_index, answer_from: "given"|"parsed"|null, correct: true|false|null}`.
Identical rationales of one problem (the same text up to whitespace, e.g. repeated teacher samples) are written
once, and the training expansion drops them too: a repeated sample is not a second example. `--strip-answer`
removes the answer statement from each written rationale (after the answer was read from it), so stage-1 targets
hold the reasoning only: a final "The answer is (X)." / "Therefore, the answer is X" sentence, Fine-tune-CoT's
trailing "--> X", or the leading "The answer is (X). BECAUSE:" of the reference's ALE outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mmcot_cli.data.answers import extract_answer, letter_to_index
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError
from mmcot_cli.io import jsonl_lines, sha256_file, write_jsonl
from mmcot_cli.output_guard import input_files
from mmcot_cli.outputs import claim_output_file

Warn = Callable[[str], None]


def strip_prefix(text: str) -> str:
    """A stage-1 output starts with "Solution:"; the rationale-stage target adds it back."""
    text = text.strip()
    return text[len("Solution:"):].strip() if text.startswith("Solution:") else text


def answer_from_text(value: str, choices: list[str]) -> int | None:
    """An option index from "B", "(B)" or an option's text (case-insensitive, a final period ignored)."""
    value = value.strip().rstrip(".").strip()
    if len(value) == 3 and value[0] == "(" and value[2] == ")":
        value = value[1]
    if len(value) == 1 and value.isupper():
        return letter_to_index(value, len(choices))
    lowered = [c.strip().lower() for c in choices]
    return lowered.index(value.lower()) if value.lower() in lowered else None


def parse_answer(text: str, choices: list[str]) -> int | None:
    """The answer a rationale reaches: "The answer is (X)" (exactly once), else a trailing "--> X"."""
    letter = extract_answer(text)
    if letter is not None:
        return letter_to_index(letter, len(choices))
    if "-->" in text:
        return answer_from_text(text.rsplit("-->", 1)[1], choices)
    return None


# The reference's ALE output starts with the answer: "The answer is (B). BECAUSE: <rationale>".
LEADING_ANSWER = re.compile(r"^\s*(?:Answer:\s*)?The answer is \(?[A-Z]\)?\.?\s*BECAUSE:\s*", re.IGNORECASE)
# A final answer sentence: "The answer is (X).", "Therefore, the answer is X", "Answer: The answer is (X)."; it
# must start a sentence and run to the end of the text on one line (at most 200 characters).
FINAL_ANSWER = re.compile(r"(?:^|(?<=[.!?:])\s+|\n\s*)(?:Answer:\s*)?(?:(?:So|Therefore|Thus|Hence),?\s+)?"
                          r"the answer is\b[^\n]{0,200}$", re.IGNORECASE)


def strip_answer(text: str) -> str:
    """`text` without its answer statement (see the module docstring); the rationale itself is kept as is."""
    text = LEADING_ANSWER.sub("", text, count=1)
    if "-->" in text:  # Fine-tune-CoT: "{rationale} --> {answer}"
        text = text.rsplit("-->", 1)[0]
    match = None
    for match in FINAL_ANSWER.finditer(text):
        pass  # the last sentence-initial "the answer is" that runs to the end
    if match is not None:
        text = text[:match.start()]
    return text.strip()


def answer_only(text: str) -> bool:
    """Nothing but an answer statement ("The answer is (B)."): it teaches no reasoning, so it is never kept as a
    rationale (rationales import/filter, train --rationale-source FILE)."""
    return not strip_answer(text)


def same_text_key(text: str) -> str:
    """What makes two rationales identical: the same words (whitespace differences ignored)."""
    return " ".join(text.split())


def drop_identical(rows: list[dict]) -> tuple[list[dict], int]:
    """Rows with a rationale already seen for the same qid removed (first kept); (rows, how many dropped)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        key = (str(row["qid"]), same_text_key(row["rationale"]))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out, len(rows) - len(out)


@dataclass
class Candidate:
    qid: str
    rationale: str
    given: Any = None  # the row's `answer`, if any
    where: str = ""


def _row_candidates(row: Any, where: str) -> list[Candidate]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    qid = row.get("qid")
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or str(qid).strip() == "":
        raise DataError(f"{where}: missing or invalid 'qid'")
    qid = str(qid)
    if "rationale" in row:
        texts, given = [row["rationale"]], row.get("answer", row.get("answer_index"))
    elif "samples" in row:
        texts, given = row["samples"], None
    elif "prediction" in row:
        texts, given = [row["prediction"]], None
    else:
        raise DataError(f"{where}: qid {qid}: no 'rationale', 'samples' or 'prediction'")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise DataError(f"{where}: qid {qid}: rationale texts must be strings")
    return [Candidate(qid, strip_prefix(t), given, where) for t in texts if strip_prefix(t)]


def read_candidates(path: str | Path, skip_bad: bool = False, warn: Warn | None = None) -> list[Candidate]:
    path = Path(path)
    out: list[Candidate] = []
    first_bad = None
    for line in jsonl_lines(path, "rationale file"):
        try:
            if line.error is not None:
                raise line.error
            out.extend(_row_candidates(line.value, line.where))
        except DataError as e:
            if not skip_bad:
                raise
            first_bad = first_bad or str(e)
            if warn:
                warn(f"{e} (skipped)")
    if not out and first_bad:
        raise DataError(f"{path}: no usable rationales (the first bad line: {first_bad})")
    return out


def _given_index(cand: Candidate, choices: list[str]) -> int | None:
    given = cand.given
    if isinstance(given, int) and not isinstance(given, bool):
        index = given if 0 <= given < len(choices) else None
    elif isinstance(given, str):
        index = answer_from_text(given, choices)
    else:
        raise DataError(f"{cand.where}: qid {cand.qid}: 'answer' must be an option index, letter or text")
    if index is None:
        raise DataError(f"{cand.where}: qid {cand.qid}: answer {given!r} is not one of its {len(choices)} options")
    return index


def judge(candidates: list[Candidate], records: list[dict], skip_bad: bool = False,
          warn: Warn | None = None) -> tuple[list[dict], int]:
    """Rationale-set rows for the candidates whose qid is in `records`; (rows, number of unknown qids)."""
    by_qid = {str(r["qid"]): r for r in records}
    rows, unknown = [], 0
    for cand in candidates:
        rec = by_qid.get(cand.qid)
        if rec is None:
            unknown += 1
            continue
        try:
            index = _given_index(cand, rec["choices"]) if cand.given is not None else None
        except DataError as e:
            if not skip_bad:
                raise
            if warn:
                warn(f"{e} (skipped)")
            continue
        source = "given" if index is not None else None
        if index is None:
            index = parse_answer(cand.rationale, rec["choices"])
            source = "parsed" if index is not None else None
        gold = rec.get("answer")
        correct = None if index is None or gold is None else index == gold
        rows.append({"qid": cand.qid, "rationale": cand.rationale, "answer_index": index, "answer_from": source,
                     "correct": correct})
    return rows, unknown


def collect_rationales(source: str | Path, data_dir: str | Path, split: str, out: str | Path,
                       only_correct: bool, skip_bad: bool = False, warn: Warn | None = None,
                       strip_answers: bool = False) -> dict:
    """`mmcot rationales import|filter`: write the rationale set for `split` and report what was kept.
    Identical rationales of a problem are written once; `strip_answers` removes answer statements (after the
    answer was read from them; a rationale that was only an answer statement is dropped)."""

    with claim_output_file(out, "rationales", inputs={"SOURCE": source, "--data": data_dir,
                                                      **input_files(data_dir, [f"{split}.jsonl"])}):
        return _collect_held(source, data_dir, split, out, only_correct, skip_bad, warn, strip_answers)


def _collect_held(source: str | Path, data_dir: str | Path, split: str, out: str | Path, only_correct: bool,
                  skip_bad: bool, warn: Warn | None, strip_answers: bool) -> dict:
    records = load_records(data_dir, split)
    if only_correct and all(r.get("answer") is None for r in records):
        raise DataError(f"{data_dir}: split {split!r} is predict-only (no answers): nothing to filter against")
    rows, unknown = judge(read_candidates(source, skip_bad, warn), records, skip_bad, warn)
    if unknown and warn:
        warn(f"{unknown} rationales name qids that are not in split {split!r} of {data_dir} (ignored)")
    if only_correct and rows and warn and all(r["answer_index"] is None for r in rows):
        warn(f"{source}: none of its {len(rows)} rationales states an answer (no 'answer' field, no 'The answer is "
             "(X).' in the text), so none can be kept; sample from a run whose outputs end with the answer "
             "(trained with --prompt-format QCM-EA)")
    kept = [r for r in rows if r["correct"]] if only_correct else rows
    stripped = 0
    before = len(kept)
    if strip_answers:
        for row in kept:
            text = strip_answer(row["rationale"])
            stripped += text != row["rationale"]
            row.update(rationale=text, answer_stripped=True)
    kept = [r for r in kept if not answer_only(r["rationale"])]
    dropped = before - len(kept)
    kept, duplicates = drop_identical(kept)
    write_jsonl(out, kept)
    problems = {r["qid"] for r in rows}
    kept_problems = {r["qid"] for r in kept}
    return {
        "source": str(source), "data": str(data_dir), "split": split, "out": str(out),
        "filter": "correct answer" if only_correct else None,
        "problems": len(records), "problems_with_rationales": len(problems),
        "rationales": len(rows), "with_answer": sum(r["answer_index"] is not None for r in rows),
        "correct": sum(bool(r["correct"]) for r in rows), "kept": len(kept),
        "problems_kept": len(kept_problems), "unknown_qids": unknown, "duplicates": duplicates,
        "strip_answer": strip_answers, "answers_stripped": stripped, "answer_only": dropped,
        "mean_per_kept_problem": round(len(kept) / len(kept_problems), 2) if kept_problems else None,
    }


# --------------------------------------------------------------------------- training on a rationale set


def expand_rationales(records: list[dict], source: str = "gold") -> tuple[list[dict], dict]:
    """Rationale-stage training records: one copy per rationale (`solution` = it, `lecture` = "").

    `gold`: records carrying several gold rationales (A-OKVQA's three) give one example each; others are kept as
    they are. FILE: a rationale set (or teacher file); problems without a rationale in it are left out.
    Returns (records, provenance for run_config.json)."""
    if source == "gold":
        out = []
        for r in records:
            texts = r.get("rationales") or []
            out.extend([dict(r, lecture="", solution=t) for t in texts] if len(texts) > 1 else [r])
        return out, {"source": "gold", "examples": len(out), "problems": len(records)}
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: rationale file not found (write one with `mmcot rationales filter`)")
    candidates = read_candidates(path)
    usable = [c for c in candidates if not answer_only(c.rationale)]
    rows, duplicates = drop_identical([{"qid": c.qid, "rationale": c.rationale} for c in usable])
    by_qid: dict[str, list[str]] = {}
    for row in rows:
        by_qid.setdefault(row["qid"], []).append(row["rationale"])
    out = [dict(r, lecture="", solution=t) for r in records for t in by_qid.get(str(r["qid"]), [])]
    if not by_qid:
        raise DataError(f"{path}: no rationales in it (did `mmcot rationales filter` keep none?)")
    if not out:
        raise DataError(f"{path}: none of its rationales belongs to a training problem")
    covered = sum(1 for r in records if str(r["qid"]) in by_qid)
    return out, {"source": str(path.resolve()), "sha256": sha256_file(path), "examples": len(out),
                 "problems": covered, "problems_without": len(records) - covered, "duplicates_dropped": duplicates,
                 "answer_only_dropped": len(candidates) - len(usable)}
