"""`mmcot score`: accuracy for a predictions file — by ScienceQA category, or overall and per group (A-OKVQA, JSONL)
— and the rationale metrics."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from mmcot_cli.cli.app import print_json, warn
from mmcot_cli.cli.options import settings_command
from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS
from mmcot_cli.evaluation.score import CATEGORIES, ScoreConfig
from mmcot_cli.evaluation.score_data import score_data
from mmcot_cli.progress import err_console, make_console


def format_percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_rationale_table(result: dict, console: Console) -> None:
    """The rationale metrics, when the score object has them (both score tables end with it): one column per way of
    computing them — mmcot's on normalised text (RATIONALE_METRICS), the original's get_scores and the original's
    per-epoch validation ROUGE-L (mmcot_cli.evaluation.original_metrics) — on the same predictions."""
    rationale = result.get("rationale")
    if not rationale:
        return
    original = rationale.get("original") or {}
    got = original.get("get_scores") or {}
    headline = ("the original's get_scores" if rationale.get("headline") == "original.get_scores"
                else "mmcot's")
    rt = Table(title=f"Rationale metrics (reference: {rationale['reference']}; mmcot: normalised text; orig.: the "
               f"original's get_scores and validation metric, raw text; protocol {result.get('protocol', 'mmcot')}: "
               f"headline {headline})")
    rt.add_column("metric", no_wrap=True)
    for col in ("mmcot", "orig. get_scores", "orig. validation"):
        rt.add_column(col, justify="right")
    for m in RATIONALE_METRICS:
        if m.key in rationale:
            rt.add_row(m.label, format_percent(rationale[m.key]),
                       format_percent(got.get(m.key)) if original else "—",
                       format_percent(original.get("validation_rouge_l")) if m.key == "rouge_l" and original
                       else "—")
    rt.add_row("pairs scored", str(rationale["num_scored"]), str(got.get("num_rouge_scored", "—")),
               "all" if original else "—")
    rt.add_row("empty reference", str(rationale["num_empty_ref"]), "—", "—")
    console.print(rt)


def print_group_table(result: dict, console: Console | None = None) -> None:
    console = console or make_console()
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
        add_baseline_rows(table, result)
        table.caption = (f"fallback {result['fallback']} · extraction failures {result['num_fail']} · "
                         f"{_constrained(result)} · missing {result['num_missing']} · "
                         f"bad entries skipped {result['num_bad']}")
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


def add_baseline_rows(table: Table, result: dict) -> None:
    """Chance and majority-class accuracy on the same items, below the accuracy they put in its place."""
    base = result.get("baselines") or {}
    if base.get("chance") is None:
        return
    table.add_section()
    table.add_row("baseline: chance (a uniform guess among each item's options)", "", format_percent(base["chance"]))
    table.add_row(f"baseline: majority class (always ({base['majority_letter']}))", "",
                  format_percent(base["majority"]))


def _constrained(result: dict) -> str:
    """How many answers were decoded within their item's options (generate's default, `--no-constrain` off)."""
    return f"decoded within options {result.get('num_constrained', 0)}/{result['num_predictions']}"


def print_score_table(result: dict, console: Console | None = None) -> None:
    """The accuracy table (categories, then non-empty topics) and the rationale metrics, if any."""
    console = console or make_console()
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
        add_baseline_rows(table, result)
        notes = [f"protocol {result.get('protocol', 'mmcot')}", f"fallback {result['fallback']}" + (f" (seed {result['seed']})" if result["seed"] is not None
                                                     else ""),
                 f"extraction failures {result['num_fail']}", _constrained(result),
                 f"letters beyond choices {result['num_invalid_letter']}",
                 f"missing {result['num_missing']}", f"bad entries skipped {result['num_bad']}"]
        if empty:
            notes.append(f"{len(empty)} topics with no items")
        table.caption = " · ".join(notes)
        console.print(table)
    print_rationale_table(result, console)


@settings_command("score")
def score_command(
    cfg: ScoreConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score predictions: ScienceQA accuracy by category and topic (A-OKVQA / JSONL data: overall, per group and
    A-OKVQA's MC/DA accuracy), and ROUGE-L/BLEU (and with --similarity the embedding similarity) for rationales."""
    result = score_data(cfg, warn=warn, export=cfg.export_aokvqa)
    if json_out:
        print_json(result)
    elif "data_format" in result:
        print_group_table(result)
    else:
        print_score_table(result)
    if result.get("splits_note") and not json_out:
        make_console().print(f"data: {result['splits_note']}", highlight=False, markup=False)
