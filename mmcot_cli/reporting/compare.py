"""`mmcot compare`: several results side by side, with differences from the first (the paper's Table 3 shape:
one row per setting, accuracy by category and rationale ROUGE-L in columns).

An input is a score object (what `mmcot score --json` prints, saved to a file), a predictions file or a RUN_DIR
(both scored against --data), optionally written "LABEL=PATH".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.evaluation.rationale_metrics import (
    rationale_metrics,
    rationale_reference,
)
from mmcot_cli.evaluation.score import CATEGORIES, ScoreConfig, load_gold, score
from mmcot_cli.io import loads, read_jsonl, read_text
from mmcot_cli.reporting.report import (
    default_label,
    load_meta,
    resolve_input,
    run_rationales,
    split_label,
)

Warn = Callable[[str], None]


@dataclass
class CompareConfig:
    inputs: list[str]
    data: Path | None = None  # needed for predictions files and RUN_DIRs
    split: str = "test"


def columns() -> list[tuple[str, str]]:
    """(key, label): the evaluate_acc.py categories, then rationale ROUGE-L."""

    return [(key, label) for key, label, _ in CATEGORIES] + [("rationale_rouge_l", "ROUGE-L")]


def _is_score_object(path: Path) -> dict | None:
    if path.is_dir():
        return None
    try:  # strict and safe: deep nesting, NaN, 1e999 are one DataError naming the file
        obj = loads(read_text(path, "score object or predictions file"), str(path))
    except DataError as e:
        if "invalid JSON: Extra data" in str(e):
            return None  # JSONL predictions (several objects)
        raise
    if isinstance(obj, dict) and ("acc_average" in obj or "has_answers" in obj):
        return obj
    return None


def _rouge_of_run(spec_path: str, cfg: CompareConfig, warn: Warn | None) -> float | None:
    """Rationale ROUGE-L of a run whose answers come without rationales (stage 2 of a two-stage run)."""

    _, _, preds, run_dir = resolve_input(spec_path, cfg.split)
    rationales, _ = run_rationales(read_jsonl(preds), load_meta(run_dir), cfg.split, warn)
    if not rationales:
        return None
    gold = {str(r["qid"]): r for r in load_gold(cfg.data, cfg.split)}
    qids = [q for q in rationales if q in gold]
    return rationale_metrics([rationales[q] for q in qids], [rationale_reference(gold[q]) for q in qids])["rouge_l"]


def _plain_number(value) -> bool:
    """A number a table can print (not a bool, not an int beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e300


def load_values(spec: str, cfg: CompareConfig, warn: Warn | None = None) -> dict:
    """{label, source, values: {column key: number or None}} for one input."""

    label, raw = split_label(spec)
    path = Path(raw)
    if not path.exists():
        raise DataError(f"{path}: no such score object, predictions file or run directory")
    obj = _is_score_object(path)
    if obj is None:
        if cfg.data is None:
            raise UsageError(f"{path}: a predictions file or RUN_DIR is scored against --data DATA_DIR; pass it "
                             "(score objects from `mmcot score --json` need no data)")
        _, _, preds, _ = resolve_input(raw, cfg.split)
        obj = score(ScoreConfig(predictions=preds, data=cfg.data, split=cfg.split), warn=warn)
        if obj.get("rationale") is None:
            obj["rationale"] = {"rouge_l": _rouge_of_run(raw, cfg, warn)}
    values = {key: obj.get(key) for key, _ in columns()[:-1]}
    rationale = obj.get("rationale")
    if rationale is not None and not isinstance(rationale, dict):
        raise DataError(f"{path}: rationale is {type(rationale).__name__}, expected an object or null")
    values["rationale_rouge_l"] = (rationale or {}).get("rouge_l")
    for key, value in values.items():
        if value is not None and not _plain_number(value):
            raise DataError(f"{path}: {key} is {type(value).__name__}, expected a number or null")
    return {"label": label or default_label(path), "source": str(path), "values": values}


def compare(cfg: CompareConfig, warn: Warn | None = None) -> dict:
    """{columns, rows: [{label, source, values, delta (vs the first row; None for it)}]}."""
    if len(cfg.inputs) < 1:
        raise UsageError("give at least one score object, predictions file or RUN_DIR")
    rows = [load_values(spec, cfg, warn) for spec in cfg.inputs]
    labels = [row["label"] for row in rows]
    for i, row in enumerate(rows):  # as `mmcot report`: the same label twice would make the table ambiguous
        if labels.count(row["label"]) > 1:
            row["label"] = f"{row['label']} ({i + 1})"
    base = rows[0]["values"]
    for i, row in enumerate(rows):
        row["delta"] = None if i == 0 else {
            k: (round(v - base[k], 2) if v is not None and base[k] is not None else None)
            for k, v in row["values"].items()}
    return {"columns": [{"key": k, "label": label} for k, label in columns()], "baseline": rows[0]["label"],
            "rows": rows}


def _cell(value, delta) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if delta is None else f"{value:.2f} ({delta:+.2f})"


def used_columns(table: dict) -> list[dict]:
    """Columns with a value in at least one row (a table of answer runs drops an empty ROUGE-L column)."""
    return [c for c in table["columns"] if any(r["values"][c["key"]] is not None for r in table["rows"])]


def to_markdown(table: dict) -> str:
    cols = used_columns(table)
    lines = ["| setting | " + " | ".join(c["label"] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for row in table["rows"]:
        delta = row["delta"] or {}
        cells = [_cell(row["values"][c["key"]], delta.get(c["key"]) if row["delta"] else None) for c in cols]
        lines.append(f"| {row['label'].replace('|', '/')} | " + " | ".join(cells) + " |")
    if len(table["rows"]) > 1:  # one input has nothing to be compared with
        lines.append("")
        lines.append(f"In parentheses: difference from {table['baseline']} (percentage points).")
    return "\n".join(lines) + "\n"
