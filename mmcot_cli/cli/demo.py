"""`mmcot demo`: the whole two-stage method, multimodal vs text-only, on a synthetic benchmark, offline."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from mmcot_cli.cli.app import command, print_json, write_stdout
from mmcot_cli.cli.score import format_percent
from mmcot_cli.demo.ablation import AblationConfig, run_ablation
from mmcot_cli.demo.run import DemoConfig, run_demo
from mmcot_cli.errors import UsageError
from mmcot_cli.evaluation.rationale_metrics import RATIONALE_METRICS, MetricOptions
from mmcot_cli.evaluation.score import CATEGORIES
from mmcot_cli.io import read_text
from mmcot_cli.progress import err_console, make_console


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

    rt = Table(title="Generated rationales vs gold solution (test split, ×100)")
    rt.add_column("metric")
    for mode in modes:
        rt.add_column(labels[mode], justify="right")
    for metric in RATIONALE_METRICS:
        if not metric.enabled(MetricOptions()) and not any(metric.key in (result[m]["rationale"] or {})
                                                           for m in modes):
            continue  # an optional metric (similarity) that was not computed
        rt.add_row(f"{metric.label} (all questions)",
                   *[format_percent((result[m]["rationale"] or {}).get(metric.key)) for m in modes])
    img = result.get("rationale_image_questions") or {}
    rt.add_row("ROUGE-L (image questions)", *[format_percent((img.get(m) or {}).get("rouge_l")) for m in modes])
    console.print(rt)

    paths = result["paths"]
    console.print(f"benchmark: {paths['benchmark']}\nprepared data: {paths['data']}\n"
                  f"features: {paths['features'] or '(none)'}")
    for mode in modes:
        runs = paths["runs"][mode]
        console.print(f"{labels[mode]} runs: {runs['rationale']} (rationales: preds-<split>.jsonl), "
                      f"{runs['answer']} (answers: preds-test.jsonl)")
    console.print(f"summary: {paths['out']}/demo.json · total {result['seconds']['total']:.0f} s")


@command("demo")
def demo_command(
    out: str = typer.Option(None, "--out", help="Output folder (an earlier demo output there is replaced once the new run has finished; "
                            "an interrupted rerun leaves it as it was); "
                            "default demo-out, or ablation-out with --ablation."),
    quick: bool = typer.Option(False, "--quick", help="A smaller, shorter run (about 1–2 minutes) for smoke tests."),
    tiny: bool = typer.Option(False, "--tiny", help="Seconds-long run of the same pipeline (tests); learns "
                              "little."),
    backbone: str = typer.Option("patches", "--backbone", help="Vision backbone: patches (weight-free) or any "
                                 "registered one, e.g. vit (built with random weights unless --pretrained)."),
    pretrained: bool = typer.Option(False, "--pretrained/--random-init", help="Build a backbone with weights "
                                    "from its pretrained weights (needs them locally) instead of random init."),
    seed: int = typer.Option(0, "--seed", help="Seed for the benchmark and training."),
    device: str = typer.Option("auto", "--device", help="Where extraction, training and generation run: auto "
                               "(the GPU when there is one), cpu or cuda. Training uses deterministic kernels, "
                               "so a rerun with the same seed on the same device gives the same scores."),
    generate_only: bool = typer.Option(False, "--generate-only", help="Only write the synthetic benchmark "
                                       "(ScienceQA layout) into --out."),
    n_problems: int = typer.Option(None, "--problems", help="Override the benchmark size."),
    sequential: bool = typer.Option(False, "--sequential", help="Run the multimodal and text-only pipelines one "
                                    "after the other in this process instead of side by side in two processes."),
    threads: int = typer.Option(None, "--threads", min=1, help="torch threads per pipeline (default: half the "
                                "CPUs side by side; torch's default with --sequential)."),
    ablation: bool = typer.Option(False, "--ablation", help="The paper's ablations instead: one-stage QCM→A / "
                                  "QCM→RA / QCM→AR, two-stage text-only / + captions / + vision; writes ablation.md "
                                  "(comparison tables) and report.html (docs/DEMO.md)."),
    text_model: str = typer.Option("t5-scratch", "--text-model", help="t5-scratch, or llama-scratch: the same "
                                   "benchmark on a decoder-only LM (docs/DEMO.md)."),
    fusion: str = typer.Option("gated", "--fusion", help="Decoder-only: gated (at --fusion-layer) or prefix."),
    fusion_layer: int = typer.Option(None, "--fusion-layer", min=0, help="Decoder-only, gated: the fused decoder "
                                     "layer (default: the middle one)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (multimodal and text_only score "
                                  "objects, as `mmcot score --json`)."),
) -> None:
    """Offline demo: synthetic benchmark → prepare → extract → two-stage training → generate → score,
    with and without image features, printed side by side."""
    if quick and tiny:

        raise UsageError("--quick and --tiny are exclusive")
    size = "tiny" if tiny else "quick" if quick else "default"
    if ablation:
        _ablation(out or "ablation-out", size, seed, threads, n_problems, json_out)
        return
    out = out or "demo-out"
    cfg = DemoConfig(out=out, size=size, backbone=backbone,
                     random_init=not pretrained, seed=seed, generate_only=generate_only, n_problems=n_problems,
                     parallel=not sequential, threads=threads, device=device, text_model=text_model,
                     fusion=fusion, fusion_layer=fusion_layer)

    def step(message: str) -> None:
        err_console.print(f"[bold cyan]▶[/] {message}")

    result = run_demo(cfg, step=step)
    if json_out:
        print_json(result)
    elif generate_only:
        b = result["benchmark"]
        err_console.print(f"wrote {b['count']} problems ({b['images']} images; splits {b['splits']}) to {b['path']}")
    else:
        print_demo_tables(result)
        if result["paths"].get("report"):
            err_console.print(f"report: {result['paths']['report']}")


def _ablation(out: str, size: str, seed: int, threads: int | None, n_problems: int | None, json_out: bool) -> None:

    result = run_ablation(AblationConfig(out=out, size=size, seed=seed, threads=threads or 1,
                                                n_problems=n_problems),
                          step=lambda message: err_console.print(f"[bold cyan]▶[/] {message}"))
    if json_out:
        print_json(result)
        return

    write_stdout(read_text(result["paths"]["markdown"], "Markdown file"))
    err_console.print(f"tables: {result['paths']['markdown']}\nreport: {result['paths']['report']}\n"
                      f"total {result['seconds']['total']:.0f} s")
