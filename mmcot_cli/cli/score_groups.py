"""Tables `mmcot score` prints for A-OKVQA / generic JSONL data (overall, per group, A-OKVQA metrics)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS
from mmcot_cli.progress import err_console


def format_percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_rationale_table(result: dict, console: Console) -> None:
    """The rationale metrics (RATIONALE_METRICS), when the score object has them (both score tables end with it)."""
    rationale = result.get("rationale")
    if rationale:
        rt = Table(title=f"Rationale metrics (reference: {rationale['reference']})")
        metrics = [m for m in RATIONALE_METRICS if m.key in rationale]
        for col in [m.label for m in metrics] + ["scored", "empty reference"]:
            rt.add_column(col, justify="right")
        rt.add_row(*[format_percent(rationale[m.key]) for m in metrics], str(rationale["num_scored"]),
                   str(rationale["num_empty_ref"]))
        console.print(rt)


def print_group_table(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    export = result.get("export")
    if export:
        err_console.print(f"wrote {export['path']}: {export['questions']} answers, multiple choice and direct answer "
                          f"(= the chosen option's text; {export['empty']} empty)")
    if result.get("has_answers") and result.get("accuracy") is not None:
        table = Table(title=f"Accuracy — {result['predictions']} on {result['data']} ({result['split']}, "
                            f"{result['data_format']})")
        for col, justify in (("group", "left"), ("correct/total", "right"), ("%", "right")):
            table.add_column(col, justify=justify)
        table.add_row("overall", f"{result['correct']}/{result['num_gold']}", format_percent(result["accuracy"]))
        for name, cells in result["groups"].items():
            table.add_section()
            for value, cell in cells.items():
                table.add_row(f"{name} = {value}", f"{cell['correct']}/{cell['total']}", format_percent(cell["accuracy"]))
        table.caption = (f"fallback {result['fallback']} · extraction failures {result['num_fail']} · "
                         f"missing {result['num_missing']} · bad entries skipped {result['num_bad']}")
        console.print(table)
    aok = result.get("aokvqa")
    if aok:
        t = Table(title="A-OKVQA (official setting: MC over all questions, DA over non-difficult ones)")
        for col in ("MC", "DA", "MC non-difficult", "DA all", "questions", "non-difficult"):
            t.add_column(col, justify="right")
        t.add_row(format_percent(aok["mc_accuracy"]), format_percent(aok["da_accuracy"]), format_percent(aok["mc_accuracy_non_difficult"]),
                  format_percent(aok["da_accuracy_all"]), str(aok["num_questions"]), str(aok["num_non_difficult"]))
        console.print(t)
    print_rationale_table(result, console)
