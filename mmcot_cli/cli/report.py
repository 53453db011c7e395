"""`mmcot report` (one self-contained HTML page about runs) and `mmcot compare` (results side by side)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from mmcot_cli.cli.app import print_json, warn, write_stdout
from mmcot_cli.cli.options import settings_command
from mmcot_cli.errors import UsageError
from mmcot_cli.progress import err_console, make_console
from mmcot_cli.reporting.compare import (
    BASELINE_ROWS,
    ORIGINAL_COLUMNS,
    CompareConfig,
    baseline_cell,
    baseline_note,
    compare,
    protocol_note,
    to_markdown,
    used_columns,
)
from mmcot_cli.reporting.report import ReportConfig, write_report


@settings_command("report")
def report_command(
    cfg: ReportConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """One self-contained HTML report: the scores of the data's format (ScienceQA: accuracy by category and
    topic, beside the published rows on the real test split; A-OKVQA: MC and DA accuracy; JSONL: overall and
    per-group accuracy), charts, training curves, rationale quality, and an error gallery ("corrected by
    vision: k of n" when a text-only and an image run are both given)."""
    summary = write_report(cfg, warn=warn)
    if json_out:
        print_json(summary)
        return
    corrected = summary["corrected_by_vision"]
    extra = f"; corrected by vision: {corrected['k']} of {corrected['n']}" if corrected else ""
    protocols = ", ".join(sorted(set(summary["protocols"].values())))
    err_console.print(f"wrote {summary['out']} ({summary['bytes'] / 1e6:.2f} MB; {len(summary['runs'])} run(s), "
                      f"protocol {protocols}, {summary['gallery_items']} gallery items{extra})")


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
    """The scores and the protocol's headline rationale metrics side by side (mmcot's on normalised text under
    `mmcot`, the original's get_scores / validation ROUGE-L under `original`), then the other ones in a table of
    their own (so the first fits a terminal), when any input has rationales."""
    console = console or make_console()
    used = used_columns(table)
    several = len(table["rows"]) > 1  # one input has nothing to be compared with
    original = table.get("protocol") == "original"
    others = ("mmcot's rationale metrics (normalised text)" if original
              else "Rationale ROUGE-L as the original computes it (raw text)")
    first = [c for c in used if (c["key"] in ORIGINAL_COLUMNS) == original or not c["key"].startswith("rationale_")]
    caption = protocol_note(table)
    for title, cols in ((f"Side by side (in parentheses: difference from {table['baseline']})" if several
                         else "Scores", first),
                        (others, [c for c in used if c not in first])):
        if not cols:
            continue
        t = Table(title=title)
        t.add_column("setting", no_wrap=True)  # labels whole; numbers wrap at their space on a narrow terminal
        for c in cols:
            t.add_column(c["label"], justify="right", overflow="fold")
        _compare_rows(t, table, cols)
        base = table.get("baselines")
        if base and any(c["key"] in base[name] for name, _ in BASELINE_ROWS for c in cols):  # not ROUGE-L tables
            for name, label in BASELINE_ROWS:
                t.add_row(label, *(baseline_cell(base, name, c["key"]) for c in cols), style="dim")
        console.print(t)
    console.print(caption, style="dim")
    if table.get("baselines"):
        console.print(baseline_note(table["baselines"]), style="dim", highlight=False)


@settings_command("compare")
def compare_command(
    cfg: CompareConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
) -> None:
    """Results side by side as one table, with each one's difference from the first (paper Table 3 shape):
    ScienceQA's categories, A-OKVQA's MC/DA and groups, or overall and per-group accuracy, then the rationale
    metrics."""
    if json_out and markdown:
        raise UsageError("--json and --markdown are exclusive")
    table = compare(cfg, warn=warn)
    if json_out:
        print_json(table)
    elif markdown:
        write_stdout(to_markdown(table))
    else:
        print_compare_table(table)
