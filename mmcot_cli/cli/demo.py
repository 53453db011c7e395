"""`mmcot demo`: the whole two-stage method, multimodal vs text-only, on a synthetic benchmark, offline."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from mmcot_cli.cli.app import print_json, write_stdout
from mmcot_cli.cli.options import settings_command
from mmcot_cli.cli.score import format_percent
from mmcot_cli.demo.ablation import AblationConfig, run_ablation
from mmcot_cli.demo.run import run_demo
from mmcot_cli.demo.settings import DemoSettings
from mmcot_cli.errors import require_libraries
from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS, MetricOptions
from mmcot_cli.evaluation.score import CATEGORIES
from mmcot_cli.io import read_text
from mmcot_cli.progress import err_console, make_console

# What a full demo (and the ablation) needs besides torch: the scorer's metrics and the report's charts. A missing
# one is one line before the minutes of training, not after them (with a half-written --out).
DEMO_LIBRARIES = (("rouge-score", "rouge_score", "ROUGE-L of rationales"), ("nltk", "nltk", "BLEU of rationales"),
                  ("rouge", "rouge", "the original's ROUGE-L"),
                  ("matplotlib", "matplotlib", "drawing the report charts"))


def print_demo_tables(result: dict, console: Console | None = None) -> None:
    """Accuracy by category and rationale metrics, multimodal and text-only side by side."""
    console = console or make_console()
    modes = [m for m in ("multimodal", "text_only") if m in result]
    labels = {"multimodal": "multimodal", "text_only": "text-only"}
    table = Table(title="Answer accuracy on the synthetic test split (%)")
    table.add_column("category")
    for mode in modes:
        table.add_column(labels[mode], justify="right")
    table.add_column("chance", justify="right")
    table.add_column("items", justify="right")
    for key, label, _ in CATEGORIES:
        first = result[modes[0]]
        table.add_row(f"{label} ({key})", *[format_percent(result[m].get(key)) for m in modes], format_percent(result["chance"][key]),
                      str(first["counts"][key]["total"]))
    console.print(table)

    protocol = result[modes[0]].get("protocol", "mmcot")
    headline = "the original's get_scores ROUGE-L" if protocol == "original" else "mmcot's ROUGE-L"
    # The protocol goes in a line of its own: a table's title wraps to the table's width.
    rt = Table(title="Generated rationales vs gold solution (test split, ×100)")
    note = f"protocol {protocol}: headline {headline} (mmcot: normalised text, original: raw text)"
    rt.add_column("metric")
    for mode in modes:
        rt.add_column(labels[mode], justify="right")
    got = [((result[m]["rationale"] or {}).get("original") or {}).get("get_scores") or {} for m in modes]
    original_row = ["ROUGE-L (original get_scores, all questions)", *[format_percent(g.get("rouge_l")) for g in got]]
    if protocol == "original":  # the headline first
        rt.add_row(*original_row)
    for metric in RATIONALE_METRICS:
        if not metric.enabled(MetricOptions()) and not any(metric.key in (result[m]["rationale"] or {})
                                                           for m in modes):
            continue  # an optional metric (similarity) that was not computed
        rt.add_row(f"{metric.label} (mmcot, all questions)",
                   *[format_percent((result[m]["rationale"] or {}).get(metric.key)) for m in modes])
    if protocol != "original":
        rt.add_row(*original_row)
    img = result.get("rationale_image_questions") or {}
    rt.add_row("ROUGE-L (image questions)", *[format_percent((img.get(m) or {}).get("rouge_l")) for m in modes])
    console.print(rt)
    console.print(note)

    paths = result["paths"]
    console.print(f"benchmark: {paths['benchmark']}\nprepared data: {paths['data']}\n"
                  f"features: {paths['features'] or '(none)'}")
    for mode in modes:
        runs = paths["runs"][mode]
        console.print(f"{labels[mode]} runs: {runs['rationale']} (rationales: preds-<split>.jsonl), "
                      f"{runs['answer']} (answers: preds-test.jsonl)")
    console.print(f"summary: {paths['out']}/demo.json · total {result['seconds']['total']:.0f} s")
    console.print(kernels_line(result.get("cpu_numerics")))


def kernels_line(record: dict | None) -> str:
    """Which CPU kernels made the numbers above: whether another machine prints the same digits."""
    if record is None:
        return "kernels: the GPU's, deterministic (the same tables on the same GPU and software)"
    if record.get("pinned"):
        return ("CPU kernels: portable (ATen AVX2, MKL COMPATIBLE, oneDNN AVX2): the same tables on every x86-64 CPU "
                "and thread count")
    return f"CPU kernels: not pinned ({record.get('reason')}): another CPU can print other digits"


@settings_command("demo")
def demo_command(
    cfg: DemoSettings,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (multimodal and text_only score "
                                  "objects, as `mmcot score --json`)."),
) -> None:
    """Offline demo: synthetic benchmark → prepare → extract → two-stage training → generate → score,
    with and without image features, printed side by side."""
    if cfg.ablation or not cfg.generate_only:
        require_libraries(DEMO_LIBRARIES)
    if cfg.ablation:
        _ablation(cfg.ablation_config(), json_out)
        return
    run_cfg = cfg.demo_config()

    def step(message: str) -> None:
        err_console.print(f"[bold cyan]▶[/] {message}")

    result = run_demo(run_cfg, step=step)
    if json_out:
        print_json(result)
    elif run_cfg.generate_only:
        b = result["benchmark"]
        err_console.print(f"wrote {b['count']} problems ({b['images']} images; splits {b['splits']}) to {b['path']}")
    else:
        print_demo_tables(result)
        if result["paths"].get("report"):
            err_console.print(f"report: {result['paths']['report']}")


def _ablation(cfg: AblationConfig, json_out: bool) -> None:
    result = run_ablation(cfg, step=lambda message: err_console.print(f"[bold cyan]▶[/] {message}"))
    if json_out:
        print_json(result)
        return

    write_stdout(read_text(result["paths"]["markdown"], "Markdown file"))
    err_console.print(f"tables: {result['paths']['markdown']}\nreport: {result['paths']['report']}\n"
                      f"total {result['seconds']['total']:.0f} s")
