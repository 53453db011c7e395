"""Prompt formats: (source, target) text for a record, character-for-character as the reference builds it.

A format name is `<INPUT>-<OUTPUT>` (e.g. `QCM-LE`). The reference's quirks are reproduced on purpose, because a
model trained on these strings must see what the original model saw (REFERENCE.md §2):
- newlines inside lecture/solution become a literal backslash-n (they survive the whitespace collapse);
- output `AL` carries the solution and `AE` the lecture (names swapped, inherited from ScienceQA);
- output `LE` ends with an extra period; the source ends with "Answer:" for output `A`, else "Solution:";
- one pass of double-space removal; "BECAUSE:" is dropped only when the raw output ends exactly with it, which
  never happens because the templates leave a space after it: QCM-ALE with empty lecture and solution keeps a
  trailing "BECAUSE:" (golden qid 58), as in the reference; every "Answer:" is removed from the target (even
  inside a lecture);
- finally all whitespace runs are collapsed to single spaces (what the reference tokenizes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from mmcot_cli.data.answers import OPTION_LETTERS
from mmcot_cli.errors import DataError, UnknownNameError

DEFAULT_OPTIONS = OPTION_LETTERS  # the option letters choices are labelled with (one home: mmcot_cli.data.answers)

# Each input template receives the already-built fields; `g` is the QCMG/CQMG rationale line.
_INPUTS: dict[str, Callable[[dict], str]] = {
    "QCM": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nOptions: {f['m']}\n",
    "CQM": lambda f: f"Context: {f['c']}\nQuestion: {f['q']}\nOptions: {f['m']}\n",
    "QM": lambda f: f"Question: {f['q']}\nOptions: {f['m']}\n",
    "QC": lambda f: f"Question: {f['q']}\nContext: {f['c']}\n",
    "QCMG": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nOptions: {f['m']}\n{f['g']}\n",
    "CQMG": lambda f: f"Context: {f['c']}\nQuestion: {f['q']}\nOptions: {f['m']}\n{f['g']}\n",
    # Upper-bound experiments: gold lecture/solution/answer in the input.
    "QCML": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nOptions: {f['m']}\nBECAUSE: {f['l']}\n",
    "QCME": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nOptions: {f['m']}\nBECAUSE: {f['e']}\n",
    "QCMLE": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nOptions: {f['m']}\nBECAUSE: {f['l']} {f['e']}\n",
    "QCLM": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nBECAUSE: {f['l']}\nOptions: {f['m']}\n",
    "QCEM": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nBECAUSE: {f['e']}\nOptions: {f['m']}\n",
    "QCLEM": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nBECAUSE: {f['l']} {f['e']}\nOptions: {f['m']}\n",
    "QCMA": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nOptions: {f['m']}\nAnswer: The answer is {f['a']}.\n",
    "QCA": lambda f: f"Question: {f['q']}\nContext: {f['c']}\nAnswer: The answer is {f['a']}. \nBECAUSE:",
}

_OUTPUTS: dict[str, Callable[[dict], str]] = {
    "A": lambda f: f"Answer: The answer is {f['a']}.",
    # AL/AE: the reference pairs AL with the solution and AE with the lecture.
    "AL": lambda f: f"Answer: The answer is {f['a']}. BECAUSE: {f['e']}",
    "AE": lambda f: f"Answer: The answer is {f['a']}. BECAUSE: {f['l']}",
    "ALE": lambda f: f"Answer: The answer is {f['a']}. BECAUSE: {f['l']} {f['e']}",
    "AEL": lambda f: f"Answer: The answer is {f['a']}. BECAUSE: {f['e']} {f['l']}",
    "LA": lambda f: f"Answer: {f['l']} The answer is {f['a']}.",
    "EA": lambda f: f"Answer: {f['e']} The answer is {f['a']}.",
    "LEA": lambda f: f"Answer: {f['l']} {f['e']} The answer is {f['a']}.",
    "ELA": lambda f: f"Answer: {f['e']} {f['l']} The answer is {f['a']}.",
    "LE": lambda f: f"Solution: {f['l']} {f['e']}.",
    "E": lambda f: f"Solution: {f['e']}",
}

INPUT_FORMATS: tuple[str, ...] = tuple(_INPUTS)
OUTPUT_FORMATS: tuple[str, ...] = tuple(_OUTPUTS)
PROMPT_FORMATS: tuple[str, ...] = tuple(f"{i}-{o}" for i in INPUT_FORMATS for o in OUTPUT_FORMATS)
# The formats the reference CLI accepts (and the paper's two stages use).
REFERENCE_FORMATS: tuple[str, ...] = ("QCM-A", "QCM-E", "QCM-LE", "QCMG-A", "QCM-LEA", "QCM-ALE")
# Input formats whose input carries a rationale (stage 2 of the two-stage pipeline).
RATIONALE_INPUTS: tuple[str, ...] = ("QCMG", "CQMG")
# Output formats whose target states "The answer is (X)" (their predictions get an answer letter and index).
ANSWER_OUTPUTS: tuple[str, ...] = ("A", "AL", "AE", "ALE", "AEL", "LA", "EA", "LEA", "ELA")


@dataclass(frozen=True)
class StagePreset:
    """What `--stage` means when no option overrides it: the reference's stage-1/stage-2 scripts."""

    prompt_format: str
    max_output_len: int  # output tokens in training, and the generation limit
    metric: str  # validation metric that picks the best model


STAGE_PRESETS: dict[str, StagePreset] = {
    "rationale": StagePreset(prompt_format="QCM-E", max_output_len=512, metric="rougeL"),
    "answer": StagePreset(prompt_format="QCMG-A", max_output_len=64, metric="accuracy"),
}


def stage_format(stage: str, prompt_format: str | None = None) -> str:
    """The prompt format a stage trains with: `prompt_format` when given, else the stage preset's (the one default
    of `train --stage` and `mmcot prompts --stage`)."""
    return prompt_format or STAGE_PRESETS[stage].prompt_format


class UnknownPromptFormatError(UnknownNameError):
    """Like UnknownNameError, but the message lists inputs × outputs instead of all 154 combinations."""

    def __init__(self, name: str):
        super().__init__("prompt format", name, list(PROMPT_FORMATS))
        self.args = (
            f"unknown prompt format {name!r}; use INPUT-OUTPUT with INPUT one of {', '.join(INPUT_FORMATS)} "
            f"and OUTPUT one of {', '.join(OUTPUT_FORMATS)} (e.g. QCM-LE, QCMG-A)",
        )

    def __str__(self) -> str:
        return self.args[0]


def split_format(prompt_format: str) -> tuple[str, str]:
    """`QCM-LE` → ("QCM", "LE"); UnknownNameError (exit 2) for anything not in PROMPT_FORMATS."""
    if prompt_format not in PROMPT_FORMATS:
        raise UnknownPromptFormatError(prompt_format)
    inp, out = prompt_format.split("-")
    return inp, out


def uses_rationale(prompt_format: str) -> bool:
    """True for QCMG-*/CQMG-*: the input carries a (gold or generated) rationale."""
    return split_format(prompt_format)[0] in RATIONALE_INPUTS


def gives_answer(prompt_format: str) -> bool:
    """True when the format's output states "The answer is (X)" (A, LA, ALE, …)."""
    return split_format(prompt_format)[1] in ANSWER_OUTPUTS


def writes_rationale(prompt_format: str) -> bool:
    """True when the format's output holds a lecture or solution (E, LE, ALE, LEA, …)."""
    return bool(set(split_format(prompt_format)[1]) & set("LE"))


def collapse_whitespace(text: str) -> str:
    """What the reference tokenizes: every run of real whitespace becomes one space."""
    return " ".join(text.split())


def answer_letter(record: Mapping, options: Sequence[str] = DEFAULT_OPTIONS) -> str:
    """The gold option letter, e.g. "B" (no parentheses)."""
    answer, choices = record["answer"], record["choices"]
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise DataError(f"qid {record.get('qid', '?')}: answer {answer!r} is not an index into its "
                        f"{len(choices)} choices")
    if answer >= len(options):
        raise DataError(f"qid {record.get('qid', '?')}: answer index {answer} has no option letter "
                        f"(options: {''.join(options)})")
    return options[answer]


def context_text(record: Mapping, use_caption: bool = False) -> str:
    """Hint and (optionally) caption joined by a space; "N/A" when both are empty."""
    caption = (record.get("caption") or "") if use_caption else ""
    context = " ".join([record.get("hint") or "", caption]).strip()
    return context or "N/A"


def options_text(record: Mapping, options: Sequence[str] = DEFAULT_OPTIONS) -> str:
    choices = record["choices"]
    if len(choices) > len(options):
        raise DataError(f"qid {record.get('qid', '?')}: {len(choices)} choices but only {len(options)} option "
                        f"letters ({''.join(options)})")
    return " ".join(f"({letter}) {choice}" for letter, choice in zip(options, choices))


def _literal_newlines(text: str) -> str:
    # The reference turns each newline into the two characters backslash + n.
    return (text or "").replace("\n", "\\n")


class _NoAnswer:
    """Stands in for the answer of a predict-only record: fine as long as no template formats it."""

    def __init__(self, record: Mapping):
        self.qid = record.get("qid", "?")

    def __format__(self, spec: str) -> str:
        raise DataError(f"qid {self.qid}: no gold answer (predict-only split), but the prompt format puts the answer "
                        "in its input")


def build_prompt_raw(record: Mapping, prompt_format: str, use_caption: bool = False, rationale: str | None = None,
                     options: Sequence[str] = DEFAULT_OPTIONS) -> tuple[str, str]:
    """(source, target) before whitespace collapse, as the reference's train-pair builder returns them."""
    inp, out = split_format(prompt_format)
    lecture, solution = _literal_newlines(record.get("lecture", "")), _literal_newlines(record.get("solution", ""))
    fields = {
        "q": record["question"],
        "c": context_text(record, use_caption),
        "m": options_text(record, options),
        "a": f"({answer_letter(record, options)})" if record.get("answer") is not None else _NoAnswer(record),
        "l": lecture,
        "e": solution,
        # Stage 2: the caller's rationale verbatim (it already starts with "Solution:"); else the gold one.
        "g": rationale if rationale is not None else f"Solution: {lecture} {solution}",
    }
    source = _INPUTS[inp](fields)
    target = _OUTPUTS[out](fields) if record.get("answer") is not None else ""  # predict-only: no target
    if target.endswith("BECAUSE:"):
        target = target.replace("BECAUSE:", "").strip()
    source = source + ("Answer:" if out == "A" else "Solution:")
    source = source.replace("  ", " ").strip()
    target = target.replace("  ", " ").strip()
    target = target.replace("Answer:", "").strip()
    return source, target


def build_prompt(record: Mapping, prompt_format: str, use_caption: bool = False, rationale: str | None = None,
                 options: Sequence[str] = DEFAULT_OPTIONS) -> tuple[str, str]:
    """(source, target) exactly as the original model sees them (whitespace-collapsed).

    `record` is a DATA_DIR record (or a problems.json entry with a `caption` key when use_caption is set).
    `rationale` is used verbatim for QCMG/CQMG inputs (stage 2); without it those inputs get the gold
    `Solution: {lecture} {solution}` (how the reference trains stage 2). Ignored by other formats.
    """
    source, target = build_prompt_raw(record, prompt_format, use_caption, rationale, options)
    return collapse_whitespace(source), collapse_whitespace(target)


def prompt_rows(records: Sequence[Mapping], prompt_format: str, use_caption: bool = False,
                rationales: Mapping[str, str] | None = None, rationales_source: str = "rationales",
                options: Sequence[str] = DEFAULT_OPTIONS):
    """Yield {qid, source, target} per record; with `rationales`, every record needs one (by qid)."""
    split_format(prompt_format)
    for rec in records:
        rationale = None
        if rationales is not None:
            rationale = rationales.get(str(rec["qid"]))
            if rationale is None:
                raise DataError(f"{rationales_source}: no rationale for qid {rec['qid']}")
        source, target = build_prompt(rec, prompt_format, use_caption, rationale, options)
        yield {"qid": rec["qid"], "source": source, "target": target}


def format_jsonl_row(row: Mapping, ascii_only: bool = False) -> str:
    return json.dumps(row, ensure_ascii=ascii_only)
