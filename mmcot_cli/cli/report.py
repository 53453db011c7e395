"""`mmcot report` (one self-contained HTML page about runs) and `mmcot compare` (results side by side)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mmcot_cli.cli.app import command, print_json, warn, write_stdout
from mmcot_cli.cli.score import SIMILARITY_HELP, SIMILARITY_MODEL_HELP
from mmcot_cli.errors import UsageError
from mmcot_cli.evaluation.similarity import resolve_similarity_model
from mmcot_cli.progress import err_console, make_console
from mmcot_cli.reporting.compare import (
    ORIGINAL_COLUMNS,
    CompareConfig,
    compare,
    to_markdown,
    used_columns,
)
from mmcot_cli.reporting.report import ReportConfig, write_report


@command("report")
def report_command(
    inputs: list[str] = typer.Argument(..., help="RUN_DIRs (their preds-<split>.jsonl, run_config.json, "
                                       "metrics.jsonl) or predictions files; LABEL=PATH names one."),
    data: Path = typer.Option(..., "--data", help="Prepared DATA_DIR (or problems.json) the runs are scored on."),
    out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write (atomically)."),
    split: str = typer.Option("test", "--split"),
    gallery: int = typer.Option(50, "--gallery", min=0, help="Wrong answers in the error gallery."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling the gallery."),
    title: str = typer.Option("mmcot report", "--title"),
    similarity: bool = typer.Option(False, "--similarity", help=SIMILARITY_HELP),
    similarity_model: Optional[Path] = typer.Option(None, "--similarity-model", help=SIMILARITY_MODEL_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """One self-contained HTML report: the scores of the data's format (ScienceQA: accuracy by category and
    topic, beside the published rows on the real test split; A-OKVQA: MC and DA accuracy; JSONL: overall and
    per-group accuracy), charts, training curves, rationale quality, and an error gallery ("corrected by
    vision: k of n" when a text-only and an image run are both given)."""

    summary = write_report(ReportConfig(inputs=list(inputs), data=data, out=out, split=split, gallery=gallery,
                                        seed=seed, title=title,
                                        similarity_model=resolve_similarity_model(similarity, similarity_model)),
                           warn=warn)
    if json_out:
        print_json(summary)
        return
    corrected = summary["corrected_by_vision"]
    extra = f"; corrected by vision: {corrected['k']} of {corrected['n']}" if corrected else ""
    err_console.print(f"wrote {summary['out']} ({summary['bytes'] / 1e6:.2f} MB; {len(summary['runs'])} run(s), "
                      f"{summary['gallery_items']} gallery items{extra})")


def _compare_rows(t: Table, table: dict, cols: list[dict]) -> None:
    for row in table["rows"]:
        cells = []
        for c in cols:
            v = row["values"][c["key"]]
            d = (row["delta"] or {}).get(c["key"])
            cells.append("—" if v is None else f"{v:.2f}" + (f" ({d:+.2f})" if row["delta"] and d is not None
                                                           else ""))
        t.add_row(row["label"], *cells)


def print_compare_table(table: dict, console: Console | None = None) -> None:
    """The scores and mmcot's rationale metrics side by side, then (in a table of their own, so the first fits a
    terminal) the original's two ROUGE-L of the same rationales, when any input has rationales."""
    console = console or make_console()
    used = used_columns(table)
    several = len(table["rows"]) > 1  # one input has nothing to be compared with
    for title, cols in ((f"Side by side (in parentheses: difference from {table['baseline']})" if several
                         else "Scores", [c for c in used if c["key"] not in ORIGINAL_COLUMNS]),
                        ("Rationale ROUGE-L as the original computes it (raw text)",
                         [c for c in used if c["key"] in ORIGINAL_COLUMNS])):
        if not cols:
            continue
        t = Table(title=title)
        t.add_column("setting", no_wrap=True)  # labels whole; numbers wrap at their space on a narrow terminal
        for c in cols:
            t.add_column(c["label"], justify="right", overflow="fold")
        _compare_rows(t, table, cols)
        console.print(t)


@command("compare")
def compare_command(
    inputs: list[str] = typer.Argument(..., help="Score objects (`mmcot score --json` output), predictions files "
                                       "or RUN_DIRs; LABEL=PATH names one. The first is the baseline."),
    data: Optional[Path] = typer.Option(None, "--data", help="DATA_DIR to score predictions files and RUN_DIRs "
                                        "against."),
    split: str = typer.Option("test", "--split"),
    similarity: bool = typer.Option(False, "--similarity", help=SIMILARITY_HELP),
    similarity_model: Optional[Path] = typer.Option(None, "--similarity-model", help=SIMILARITY_MODEL_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
) -> None:
    """Results side by side as one table, with each one's difference from the first (paper Table 3 shape):
    ScienceQA's categories, A-OKVQA's MC/DA and groups, or overall and per-group accuracy, then the rationale
    metrics."""

    if json_out and markdown:
        raise UsageError("--json and --markdown are exclusive")
    table = compare(CompareConfig(inputs=list(inputs), data=data, split=split,
                                  similarity_model=resolve_similarity_model(similarity, similarity_model)),
                    warn=warn)
    if json_out:
        print_json(table)
    elif markdown:
        write_stdout(to_markdown(table))
    else:
        print_compare_table(table)
