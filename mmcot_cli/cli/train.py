"""`mmcot train`: one stage (rationale or answer) of the two-stage Multimodal-CoT training."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from mmcot_cli.cli.app import print_json
from mmcot_cli.cli.options import settings_command
from mmcot_cli.data.carve import splits_note
from mmcot_cli.progress import err_console
from mmcot_cli.registry.weights import require_text_weights
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.training.run_dir import hold_run_dir


@settings_command("train")
def train_command(
    cfg: TrainConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Train one stage; RUN_DIR/model/ ends up as the best validation checkpoint.

    Multi-process: `accelerate launch --num_processes N -m mmcot_cli train …` or
    `torchrun --nproc_per_node N -m mmcot_cli train …`; --fsdp shards the model across them.
    """
    cfg.resolved()  # bad option values (exit 2) are named before any weights are looked for
    if not cfg.resume:  # pretrained weights that cannot be had: one line at once, before torch loads
        require_text_weights(cfg.text_model)
    with hold_run_dir(cfg):  # before torch loads: a second writer of RUN_DIR is refused at once
        from mmcot_cli.training.loop import train

        summary = train(cfg)
    summary["splits_note"] = splits_note(cfg.data_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch / torchrun only rank 0 reports
        return
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"Trained {summary['stage']} stage → {summary['model_dir']}")
    table.add_column("")
    table.add_column("value", justify="right")
    best = summary.get("best") or {}
    rows = [("prompt format", summary["prompt_format"]), ("train examples", summary["train_examples"]),
            ("val examples", summary["val_examples"] if summary.get("metric") else "not validated (last model kept)"),
            ("optimizer steps", summary["steps"]),
            ("final train loss", f"{summary['final_loss']:.4f}" if summary.get("final_loss") is not None
             else "no step trained this session"),
            ("processes", summary["world_size"]), ("samples/s", _rate(summary["samples_per_s"]))]
    if summary.get("parameters"):
        counts = summary["parameters"]
        rows.append(("parameters (trainable)", f"{counts['total']:,} ({counts['trainable']:,})"))
    numerics = summary.get("cpu_numerics")
    if numerics:  # --deterministic on a CPU: whether another machine computes the same bits
        rows.append(("CPU kernels", f"portable, {numerics.get('threads')} thread(s)" if numerics.get("pinned")
                     else f"not pinned: {numerics.get('reason')}"))
    if summary.get("metric") and best.get("value") is not None:
        rows.append((f"best val {summary['metric']}", f"{best.get('value'):.2f} (epoch {best.get('epoch')}, "
                                                         f"step {best.get('step')})"))
    for name, value in rows:
        table.add_row(name, str(value))
    err_console.print(table)
    if summary["splits_note"]:
        err_console.print(f"data: {summary['splits_note']}", highlight=False, markup=False)


def _rate(samples_per_s: float | None) -> str:
    """None when this invocation trained no step (a finished run resumed): say so rather than print "None"."""
    return "none trained now" if samples_per_s is None else f"{samples_per_s:.1f}"
