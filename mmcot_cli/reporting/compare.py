"""`mmcot compare`: several results side by side, with differences from the first (the paper's Table 3 shape:
one row per setting, the headline scores and the rationale metrics in columns).

An input is a score object (what `mmcot score --json` prints, saved to a file), a predictions file or a RUN_DIR
(both scored against --data as `mmcot score` does for the data's format), optionally written "LABEL=PATH". The
columns follow the scores' kind (mmcot_cli.evaluation.kinds): ScienceQA's categories NAT … Avg, A-OKVQA's MC / DA
(both difficult-question filterings) and its groups, or a JSONL dataset's overall and per-group accuracy; then
the rationale metrics of the table's protocol first: under `mmcot`, every rationale metric (RATIONALE_METRICS,
mmcot's on normalised text) then the original's get_scores ROUGE-L and validation ROUGE-L
(mmcot_cli.evaluation.original_metrics, on raw text); under `original`, those two first. Predictions and RUN_DIRs are
scored under `--protocol` or the protocol their predictions record (as `mmcot report`); a score object keeps the one
it was scored under. Results of different kinds, or scored under different protocols, are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.evaluation.kinds import Column, compare_values, headline_baselines, headline_columns, kind_of
from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS, MetricOptions
from mmcot_cli.evaluation.score import ScoreConfig, load_gold, rationale_result
from mmcot_cli.evaluation.score_data import score_data
from mmcot_cli.evaluation.similarity import (
    similarity_model_setting,
    similarity_setting,
)
from mmcot_cli.io import loads, read_jsonl, read_text
from mmcot_cli.reporting.report import (
    default_label,
    load_meta,
    recorded_protocol,
    resolve_input,
    run_rationales,
    split_label,
)
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.validate import PROTOCOLS, check_split_name

Warn = Callable[[str], None]
KIND_NAMES = {"scienceqa": "ScienceQA", "aokvqa": "A-OKVQA", "groups": "per-group (JSONL)"}


@dataclass
class CompareConfig:
    """`mmcot compare`'s settings: one field per option (mmcot_cli.settings)."""

    inputs: list[str] = setting(help="Score objects (`mmcot score --json` output), predictions files or RUN_DIRs; "
                                "LABEL=PATH names one. The first is the baseline.", argument=True,
                                metavar="INPUTS...")
    data: Path | None = setting(None, "DATA_DIR to score predictions files and RUN_DIRs against.", metavar="DATA")
    split: str = setting("test", "Which split of DATA predictions files and RUN_DIRs predicted.", metavar="SPLIT", check=check_split_name)
    similarity: bool = similarity_setting()
    similarity_model: Path | None = similarity_model_setting()
    protocol: str | None = setting(None, "mmcot or original: how predictions files and RUN_DIRs are scored, as "
                                   "`score --protocol` (original: its answer rule, --fallback reference, and its "
                                   "get_scores ROUGE-L as the rationale headline, first). Default: the protocol "
                                   "each input's predictions record, else mmcot. A score object keeps its own; one "
                                   "of the other protocol is refused.", choices=PROTOCOLS)

    def __post_init__(self) -> None:
        self.inputs = list(self.inputs)
        check_settings(self)

    @property
    def metric_options(self) -> MetricOptions:
        return MetricOptions.from_flags(self.similarity, self.similarity_model)


# The original's rationale metrics: column key → (label, how to read it from a score object's `rationale`).
ORIGINAL_COLUMNS = {
    "rationale_original_rouge_l": ("ROUGE-L (orig. get_scores)", lambda r: (r.get("get_scores") or {}).get("rouge_l")),
    "rationale_original_validation_rouge_l": ("ROUGE-L (orig. validation)", lambda r: r.get("validation_rouge_l")),
}
# The rationale column each protocol reports first (`score --protocol`'s headline).
HEADLINE = {"mmcot": "rationale_rouge_l", "original": "rationale_original_rouge_l"}


def rationale_columns(protocol: str = "mmcot") -> list[Column]:
    """`rationale_<metric key>` for every rationale metric (RATIONALE_METRICS, labelled "(mmcot)": normalised text)
    and the original's two ROUGE-L (ORIGINAL_COLUMNS, raw text), after the score columns: the protocol's headline
    group first (mmcot's under `mmcot`, the original's under `original`)."""
    ours = [Column(f"rationale_{m.key}", f"{m.label} (mmcot)") for m in RATIONALE_METRICS]
    theirs = [Column(key, label) for key, (label, _) in ORIGINAL_COLUMNS.items()]
    return theirs + ours if protocol == "original" else ours + theirs


def _is_score_object(path: Path) -> dict | None:
    if path.is_dir():
        return None
    text = read_text(path, "score object or predictions file")
    if not text.strip():
        return None  # scored as predictions: "empty predictions file", as `mmcot score` says
    try:  # strict and safe: deep nesting, NaN, 1e999 are one DataError naming the file
        obj = loads(text, str(path))
    except DataError as e:
        if "invalid JSON: Extra data" in str(e):
            return None  # JSONL predictions (several objects)
        raise
    if isinstance(obj, dict) and ("acc_average" in obj or "has_answers" in obj):
        return obj
    return None


def _rationale_of_run(spec_path: str, cfg: CompareConfig, warn: Warn | None) -> dict | None:
    """Rationale metrics of a run whose answers come without rationales (stage 2 of a two-stage run)."""

    _, _, preds, run_dir = resolve_input(spec_path, cfg.split)
    rationales, _ = run_rationales(read_jsonl(preds), load_meta(run_dir), cfg.split, warn)
    if not rationales:
        return None
    gold = {str(r["qid"]): r for r in load_gold(cfg.data, cfg.split)}
    qids = [q for q in rationales if q in gold]
    return rationale_result({q: rationales[q] for q in qids}, gold, "solution", cfg.metric_options)


def _plain_number(value) -> bool:
    """A number a table can print (not a bool, not an int beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e300


def _check_shape(obj: dict, path: Path) -> None:
    """The parts of a score object compare reads are of the right type (one DataError naming the file)."""
    def expect(value, what: str) -> None:
        if value is not None and not isinstance(value, dict):
            raise DataError(f"{path}: {what} is {type(value).__name__}, expected an object or null")

    if obj.get("data_format") is not None and not isinstance(obj["data_format"], str):
        raise DataError(f"{path}: data_format is {type(obj['data_format']).__name__}, expected a string")
    for key in ("rationale", "aokvqa", "groups"):
        expect(obj.get(key), key)
    original = (obj.get("rationale") or {}).get("original")
    expect(original, "rationale.original")
    expect((original or {}).get("get_scores"), "rationale.original.get_scores")
    for name, cells in (obj.get("groups") or {}).items():
        expect(cells, f"groups[{name!r}]")
        for value, cell in (cells or {}).items():
            expect(cell, f"groups[{name!r}][{value!r}]")


def _protocol_of(obj: dict, path: Path, cfg: CompareConfig) -> str:
    """The protocol a score object was scored under (none recorded: mmcot, as before protocols existed); a
    --protocol it was not scored under is refused (its answers were chosen by the other rule)."""
    protocol = obj.get("protocol") or "mmcot"
    if protocol not in PROTOCOLS:
        raise DataError(f"{path}: protocol is {protocol!r}, expected one of {', '.join(PROTOCOLS)}")
    if cfg.protocol is not None and cfg.protocol != protocol:
        raise UsageError(f"{path}: a score object scored under protocol {protocol}, not --protocol {cfg.protocol}; "
                         f"score its predictions again (`mmcot score --protocol {cfg.protocol} --json`) or give "
                         "the predictions file or RUN_DIR with --data")
    return protocol


def load_values(spec: str, cfg: CompareConfig, warn: Warn | None = None) -> dict:
    """{label, source, kind, protocol, columns, values: {column key: number or None}} for one input."""

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
        obj = score_data(ScoreConfig(predictions=preds, data=cfg.data, split=cfg.split, similarity=cfg.similarity,
                                    similarity_model=cfg.similarity_model,
                                    protocol=cfg.protocol or recorded_protocol(preds, warn)), warn=warn)
        if obj.get("rationale") is None:
            obj["rationale"] = _rationale_of_run(raw, cfg, warn)
    _check_shape(obj, path)
    protocol = _protocol_of(obj, path, cfg)
    columns, values = compare_values(obj)
    rationale = obj.get("rationale") or {}
    for metric in RATIONALE_METRICS:
        values[f"rationale_{metric.key}"] = rationale.get(metric.key)
    original = rationale.get("original") or {}
    for key, (_, read) in ORIGINAL_COLUMNS.items():
        values[key] = read(original)
    for key, value in values.items():
        if value is not None and not _plain_number(value):
            raise DataError(f"{path}: {key} is {type(value).__name__}, expected a number or null")
    return {"label": label or default_label(path), "source": str(path), "kind": kind_of(obj),
            "protocol": protocol, "scored_on": (obj.get("split"), obj.get("num_gold")), "columns": columns,
            "values": values, "baselines": obj.get("baselines") if isinstance(obj.get("baselines"), dict) else None}


BASELINE_ROWS = (("chance", "baseline: chance"), ("majority", "baseline: majority class"))
BASELINE_NOTE = ("baseline rows: chance is a uniform guess among each item's own options, majority class always "
                 "the option letter most often right")


def compare_baselines(kind: str, rows: list[dict], cfg: CompareConfig) -> dict | None:
    """{"chance", "majority": {column key: percent}, "of"}: per column over --data's split, else for the overall
    accuracy from the first score object that has them (`baselines`, on its items); None when neither exists."""
    if cfg.data is not None:
        per = headline_baselines(kind, load_gold(cfg.data, cfg.split))
        of = f"{cfg.split} split of {cfg.data}"
    else:
        first = next((row for row in rows if row["baselines"]), None)
        if first is None:
            return None
        overall = headline_columns(kind)[-1 if kind == "scienceqa" else 0].key  # Avg, MC, Acc
        per, of = {overall: first["baselines"]}, f"items of {first['label']}"
    found = {name: {key: cell.get(name) for key, cell in per.items() if _plain_number(cell.get(name))}
             for name, _ in BASELINE_ROWS}
    return {**found, "of": of} if any(found.values()) else None


def compare(cfg: CompareConfig, warn: Warn | None = None) -> dict:
    """{kind, protocol, headline, columns, baseline, rows: [{label, source, protocol, values, delta (vs the first
    row; None for it)}], baselines}; `headline`: the key of the protocol's headline rationale column; `baselines`:
    chance and majority-class accuracy beside the accuracies (compare_baselines)."""
    if len(cfg.inputs) < 1:
        raise UsageError("give at least one score object, predictions file or RUN_DIR")
    cfg.metric_options.check()
    rows = [load_values(spec, cfg, warn) for spec in cfg.inputs]
    kinds = list(dict.fromkeys(row["kind"] for row in rows))
    if len(kinds) > 1:
        found = "; ".join(f"{row['source']}: {KIND_NAMES[row['kind']]}" for row in rows)
        raise UsageError(f"results scored differently cannot share one table ({found}); compare each kind "
                         "separately")
    protocols = list(dict.fromkeys(row["protocol"] for row in rows))
    if len(protocols) > 1:  # the answer rule differs: differences would compare two ways of scoring
        found = "; ".join(f"{row['source']}: {row['protocol']}" for row in rows)
        raise UsageError(f"results scored under different protocols cannot share one table ({found}); give "
                         "--protocol for predictions files and RUN_DIRs, or score the score objects again under one")
    protocol = protocols[0]
    _warn_other_data(rows, warn)
    columns: dict[str, Column] = {}
    for row in rows:  # the union, in order of first appearance (groups can differ between datasets)
        columns.update((c.key, c) for c in row.pop("columns") if c.key not in columns)
    columns.update((c.key, c) for c in rationale_columns(protocol))
    labels = [row["label"] for row in rows]
    for i, row in enumerate(rows):  # as `mmcot report`: the same label twice would make the table ambiguous
        row.pop("kind")
        row["values"] = {key: row["values"].get(key) for key in columns}
        if labels.count(row["label"]) > 1:
            row["label"] = f"{row['label']} ({i + 1})"
    base = rows[0]["values"]
    for i, row in enumerate(rows):
        row["delta"] = None if i == 0 else {
            k: (round(v - base[k], 2) if v is not None and base[k] is not None else None)
            for k, v in row["values"].items()}
    baselines = compare_baselines(kinds[0], rows, cfg)
    for row in rows:
        row.pop("baselines")
    return {"kind": kinds[0], "protocol": protocol, "headline": HEADLINE[protocol],
            "columns": [{"key": c.key, "label": c.label} for c in columns.values()],
            "baseline": rows[0]["label"], "rows": rows, "baselines": baselines}


def _warn_other_data(rows: list[dict], warn: Warn | None) -> None:
    """Score objects scored on other data than the first (another split, another number of questions) make a
    table whose differences compare other questions: one warning naming them (predictions files and RUN_DIRs are
    all scored against --data)."""
    scored_on = [row.pop("scored_on") for row in rows]
    if warn is None or len(set(scored_on)) < 2:
        return
    found = "; ".join(f"{row['source']}: split {split}, {'?' if n is None else n} questions"
                      for row, (split, n) in zip(rows, scored_on))
    warn(f"results scored on different data ({found}): their differences compare different questions")


def _cell(value, delta) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if delta is None else f"{value:.2f} ({delta:+.2f})"


def used_columns(table: dict) -> list[dict]:
    """Columns with a value in at least one row (a table of answer runs drops an empty ROUGE-L column)."""
    return [c for c in table["columns"] if any(r["values"][c["key"]] is not None for r in table["rows"])]


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def baseline_cell(base: dict, name: str, key: str) -> str:
    """A baseline row's cell: its percent under an accuracy column, empty under the others (no baseline there)."""
    return f"{base[name][key]:.2f}" if key in base[name] else ""


def baseline_note(base: dict) -> str:
    return f"{BASELINE_NOTE[0].upper()}{BASELINE_NOTE[1:]} (on the {base['of']})."


def to_markdown(table: dict) -> str:
    cols = used_columns(table)
    lines = [_md_row(["setting"] + [c["label"] for c in cols]), "|---|" + "---|" * len(cols)]
    for row in table["rows"]:
        delta = row["delta"] or {}
        cells = [_cell(row["values"][c["key"]], delta.get(c["key"]) if row["delta"] else None) for c in cols]
        lines.append(_md_row([row["label"]] + cells))
    base = table.get("baselines")
    for name, label in BASELINE_ROWS if base else ():
        lines.append(_md_row([label] + [baseline_cell(base, name, c["key"]) for c in cols]))
    lines.append("")
    if len(table["rows"]) > 1:  # one input has nothing to be compared with
        lines.append(f"In parentheses: difference from {table['baseline']} (percentage points).")
    if base:
        lines.append(baseline_note(base))
    lines.append(protocol_note(table))
    return "\n".join(lines) + "\n"


def protocol_note(table: dict) -> str:
    """The table's protocol and, when it has rationale columns, which metrics are which and which is the headline."""
    note = f"Protocol {table['protocol']}"
    if not any(c["key"].startswith("rationale_") for c in used_columns(table)):
        return note + "."
    headline = ("the original's get_scores ROUGE-L" if table["protocol"] == "original" else "mmcot's ROUGE-L")
    return (f"{note} (headline rationale metric: {headline}). (mmcot): mmcot's metrics on normalised text; "
            "orig. get_scores / orig. validation: the original's, on the raw text.")
