"""`mmcot score`: ScienceQA accuracy by category (and rationale metrics) for a predictions file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mmcot_cli.cli.app import command, print_json, warn
from mmcot_cli.cli.score_groups import (
    format_percent,
    print_group_table,
    print_rationale_table,
)
from mmcot_cli.evaluation.groups import score_any
from mmcot_cli.evaluation.score import CATEGORIES, ScoreConfig


def print_score_table(result: dict, console: Console | None = None) -> None:
    """The accuracy table (categories, then non-empty topics) and the rationale metrics, if any."""
    console = console or Console()
    if result["has_answers"]:
        counts = result["counts"]
        table = Table(title=f"Accuracy — {result['predictions']} on {result['data']} ({result['split']})")
        table.add_column("category")
        table.add_column("correct/total", justify="right")
        table.add_column("%", justify="right")
        for key, label, _ in CATEGORIES:
            c = counts[key]
            table.add_row(f"{label} ({key})", f"{c['correct']}/{c['total']}", format_percent(result[key]))
        topic_keys = [k for k in counts if k not in {key for key, _, _ in CATEGORIES}]
        empty = [k for k in topic_keys if counts[k]["total"] == 0]
        table.add_section()
        for key in topic_keys:
            c = counts[key]
            if c["total"]:
                table.add_row(key[len("acc_"):], f"{c['correct']}/{c['total']}", format_percent(result[key]))
        notes = [f"fallback {result['fallback']}" + (f" (seed {result['seed']})" if result["seed"] is not None
                                                     else ""),
                 f"extraction failures {result['num_fail']}", f"letters beyond choices {result['num_invalid_letter']}",
                 f"missing {result['num_missing']}", f"bad entries skipped {result['num_bad']}"]
        if empty:
            notes.append(f"{len(empty)} topics with no items")
        table.caption = " · ".join(notes)
        console.print(table)
    print_rationale_table(result, console)


@command("score")
def score_command(
    predictions: Path = typer.Argument(..., help="Predictions JSONL (mmcot generate) or a ScienceQA results JSON "
                                       "({\"results\": {qid: option_index}}); detected automatically."),
    data: Path = typer.Option(..., "--data", help="Prepared DATA_DIR, a ScienceQA problems.json, or a folder "
                              "holding problems.json."),
    split: str = typer.Option("test", "--split", help="Which split of DATA to score against."),
    fallback: str = typer.Option("strict", "--fallback", help="On extraction failure: 'strict' (wrong), "
                                 "'random' (a seeded draw among the item's real options) or 'reference' (the "
                                 "original's rule: a draw among all five letters A–E, usually wrong on 2-choice "
                                 "items; same distribution, not the original's exact draws)."),
    seed: int = typer.Option(0, "--seed", help="Seed for --fallback random/reference."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Warn about and skip bad prediction entries "
                                  "instead of failing."),
    rationale_ref: str = typer.Option("solution", "--rationale-ref",
                                      help="Gold text for rationale metrics: 'solution' or 'lecture+solution'."),
    export_aokvqa: Optional[Path] = typer.Option(None, "--export-aokvqa", help="A-OKVQA data: also write the "
                                                 "benchmark's prediction file {question_id: {multiple_choice, "
                                                 "direct_answer}} (the official evaluation's and leaderboard's "
                                                 "format; the direct answer is the chosen option's text; works on "
                                                 "the predict-only test split)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score predictions: ScienceQA accuracy by category and topic (A-OKVQA / JSONL data: overall, per group and
    A-OKVQA's MC/DA accuracy), and ROUGE-L/BLEU for rationales."""
    cfg = ScoreConfig(predictions=predictions, data=data, split=split, fallback=fallback, seed=seed,
                      skip_bad=skip_bad, rationale_ref=rationale_ref)
    result = score_any(cfg, warn=warn, export=export_aokvqa)
    if json_out:
        print_json(result)
    elif "data_format" in result:
        print_group_table(result)
    else:
        print_score_table(result)
