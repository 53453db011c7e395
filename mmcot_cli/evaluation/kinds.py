"""What a score object shows, by its scoring kind (the format registry's `DataFormat.scoring`): the headline
columns (the report's accuracy table and chart, compare's first columns), the breakdown (ScienceQA topics; the
groups of A-OKVQA / JSONL data) and the categories of records that rationale quality is averaged over.

- scienceqa: evaluate_acc.py's categories NAT … Avg; breakdown by topic (too many for compare's columns).
- aokvqa: A-OKVQA's multiple-choice and direct-answer accuracy in both difficult-question filterings
  (mmcot_cli.evaluation.own_formats.aokvqa_metrics); breakdown by group (also compare columns).
- groups: overall accuracy; breakdown by group (also compare columns).

A format reuses a kind by naming it in the registry; the report and compare read only this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mmcot_cli.data.readers import FORMATS
from mmcot_cli.evaluation.baselines import baselines
from mmcot_cli.evaluation.score import CATEGORIES


@dataclass(frozen=True)
class Column:
    key: str  # key in compare's `values` (and the report's tables)
    label: str


_HEADLINE: dict[str, tuple[Column, ...]] = {
    "scienceqa": tuple(Column(key, label) for key, label, _ in CATEGORIES),
    "aokvqa": (Column("mc_accuracy", "MC"), Column("da_accuracy", "DA"),
               Column("mc_accuracy_non_difficult", "MC (non-difficult)"), Column("da_accuracy_all", "DA (all)")),
    "groups": (Column("accuracy", "Acc"),),
}
# Kinds whose breakdown columns compare shows after the headline (ScienceQA's 26 topics would swamp it).
_BREAKDOWN_IN_COMPARE = frozenset({"aokvqa", "groups"})
HEADLINE_TITLES = {"scienceqa": "Accuracy by category (%)", "aokvqa": "A-OKVQA accuracy (%)",
                   "groups": "Accuracy (%)"}
BREAKDOWN_TITLES = {"scienceqa": "Accuracy by topic (%)", "aokvqa": "Accuracy by group (%)",
                    "groups": "Accuracy by group (%)"}
_CATEGORY_KEYS = frozenset(key for key, _, _ in CATEGORIES)


def kind_of(result: dict) -> str:
    """The scoring kind of a score object (`mmcot score --json`): its data format's kind in the format registry;
    ScienceQA objects name no data format."""
    fmt = result.get("data_format")
    if fmt is None:
        return "scienceqa"
    if fmt in FORMATS:
        return FORMATS[fmt].scoring
    return "aokvqa" if result.get("aokvqa") is not None else "groups"


def headline_columns(kind: str) -> tuple[Column, ...]:
    return _HEADLINE[kind]


def headline_values(result: dict) -> dict[str, object]:
    """{column key: value} of the headline columns (None where the object has none)."""
    kind = kind_of(result)
    source = (result.get("aokvqa") or {}) if kind == "aokvqa" else result
    if not isinstance(source, dict):
        source = {}
    return {c.key: source.get(c.key) for c in _HEADLINE[kind]}


def headline_sizes(result: dict) -> dict[str, int | None]:
    """{column key: number of items the value is over}, for the report's "items" row."""
    kind = kind_of(result)
    if kind == "scienceqa":
        counts = result.get("counts") or {}
        return {c.key: (counts.get(c.key) or {}).get("total") for c in _HEADLINE[kind]}
    if kind == "aokvqa":
        aok = result.get("aokvqa") or {}
        every, easy = aok.get("num_questions"), aok.get("num_non_difficult")
        return {"mc_accuracy": every, "da_accuracy": easy, "mc_accuracy_non_difficult": easy,
                "da_accuracy_all": every}
    return {"accuracy": result.get("num_gold")}


def headline_baselines(kind: str, records: list[dict]) -> dict[str, dict]:
    """{column key: evaluation.baselines over that column's items} for the headline columns that choose among
    options (A-OKVQA's direct-answer columns have no option to guess: left out)."""
    if kind == "scienceqa":
        return {key: baselines([r for r in records if test(r)]) for key, _, test in CATEGORIES}
    if kind == "aokvqa":
        easy = [r for r in records if not r.get("difficult_direct_answer")]
        return {"mc_accuracy": baselines(records), "mc_accuracy_non_difficult": baselines(easy)}
    return {"accuracy": baselines(records)}


def breakdown(result: dict) -> list[tuple[Column, int, object]]:
    """(column, items, accuracy) rows: ScienceQA's non-empty topics, or every group value (`field = value`)."""
    if kind_of(result) == "scienceqa":
        counts = result.get("counts") or {}
        return [(Column(key, key[len("acc_"):]), cell["total"], result.get(key)) for key, cell in counts.items()
                if key not in _CATEGORY_KEYS and isinstance(cell, dict) and cell.get("total")]
    rows = []
    for name, cells in (result.get("groups") or {}).items():
        for value, cell in (cells or {}).items():
            rows.append((Column(f"group:{name}={value}", f"{name} = {value}"), cell.get("total"),
                         cell.get("accuracy")))
    return rows


def compare_values(result: dict) -> tuple[list[Column], dict[str, object]]:
    """The columns and values compare shows for one score object: the headline, then (A-OKVQA, groups) the
    breakdown."""
    kind = kind_of(result)
    columns, values = list(_HEADLINE[kind]), headline_values(result)
    if kind in _BREAKDOWN_IN_COMPARE:
        for column, _, value in breakdown(result):
            columns.append(column)
            values[column.key] = value
    return columns, values


def record_categories(kind: str, records: list[dict]) -> list[tuple[str, str, Callable[[dict], bool]]]:
    """(key, label, membership test) over gold records: ScienceQA's categories, else all and each group value."""
    if kind == "scienceqa":
        return list(CATEGORIES)
    values = sorted({(name, str(value)) for r in records for name, value in (r.get("groups") or {}).items()})

    def member(name: str, value: str) -> Callable[[dict], bool]:
        def test(record: dict) -> bool:
            groups = record.get("groups") or {}
            return name in groups and str(groups[name]) == value
        return test

    return [("all", "All", lambda r: True)] + [(f"group:{n}={v}", f"{n} = {v}", member(n, v)) for n, v in values]
