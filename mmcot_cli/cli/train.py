"""`mmcot train`: one stage (rationale or answer) of the two-stage Multimodal-CoT training."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mmcot_cli.cli.app import command, print_json
from mmcot_cli.data.prompts import STAGE_PRESETS
from mmcot_cli.errors import UsageError
from mmcot_cli.progress import err_console
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.training.run_dir import hold_run_dir

# Defaults from the one home of training defaults (TrainConfig), help texts from the one home of the stage presets.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
_STAGE_HELP = " or ".join(f"{stage} ({p.prompt_format})" for stage, p in STAGE_PRESETS.items())
_OUT_LEN_HELP = " or ".join(f"{p.max_output_len} ({stage})" for stage, p in STAGE_PRESETS.items())
_FORMAT_HELP = " / ".join(p.prompt_format for p in STAGE_PRESETS.values())


def parse_text_options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--text-option expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@command("train")
def train_command(
    stage: str = typer.Option(..., "--stage", help=f"{_STAGE_HELP}: the stage's prompt format, output length "
                              "and validation metric."),
    data: Path = typer.Option(..., "--data", help="DATA_DIR written by `mmcot prepare`."),
    text_model: str = typer.Option(..., "--text-model", help="Registered text backbone (see `mmcot backbones`; "
                                   "t5-scratch trains offline), a local model directory or a hub id."),
    out: Path = typer.Option(..., "--out", help="RUN_DIR to create (model/, run_config.json, metrics.jsonl, "
                             "checkpoints/)."),
    features: Optional[Path] = typer.Option(None, "--features", help="FEATURES_DIR from `mmcot extract`; "
                                            "without it the model is text-only (no fusion layers)."),
    rationales: Optional[Path] = typer.Option(None, "--rationales", help="Stage-1 RUN_DIR (its preds-<split>"
                                              ".jsonl) or one predictions file; matched by qid."),
    train_on: str = typer.Option(DEFAULTS["train_on"], "--train-on", help="Rationales in the train split's inputs: gold "
                                 "(lecture + solution, as the reference) or generated (stage-1 preds-train.jsonl)."),
    rationale_source: str = typer.Option(DEFAULTS["rationale_source"], "--rationale-source", help="Rationale stage targets: gold (every "
                                         "gold rationale, one example each) or a rationale set FILE from `mmcot "
                                         "rationales filter` (each rationale one example; problems without one "
                                         "are left out)."),
    prompt_format: Optional[str] = typer.Option(None, "--prompt-format", help="Override the stage preset "
                                                f"({_FORMAT_HELP}), e.g. QCM-LE, QCM-A."),
    use_caption: bool = typer.Option(DEFAULTS["use_caption"], "--use-caption", help="Append image captions to the context."),
    epochs: int = typer.Option(DEFAULTS["epochs"], "--epochs", min=1),
    lr: float = typer.Option(DEFAULTS["lr"], "--lr"),
    batch_size: int = typer.Option(DEFAULTS["batch_size"], "--batch-size", min=1, help="Per process."),
    eval_batch_size: Optional[int] = typer.Option(None, "--eval-batch-size", min=1, help="Default 2 × batch size."),
    grad_accum: int = typer.Option(DEFAULTS["grad_accum"], "--grad-accum", min=1, help="Batches per optimizer step."),
    warmup_ratio: float = typer.Option(DEFAULTS["warmup_ratio"], "--warmup-ratio", help="Share of steps with linear LR warmup."),
    weight_decay: float = typer.Option(DEFAULTS["weight_decay"], "--weight-decay"),
    max_input_len: int = typer.Option(DEFAULTS["max_input_len"], "--max-input-len", min=1),
    max_output_len: Optional[int] = typer.Option(None, "--max-output-len", min=1, help=f"Default {_OUT_LEN_HELP}; "
                                                 "also the generation limit during validation."),
    precision: str = typer.Option(DEFAULTS["precision"], "--precision", help="fp32, bf16 or fp16 (autocast; "
                                  "weights stay fp32). auto: bf16 on a GPU that supports it, else fp32."),
    bf16: bool = typer.Option(False, "--bf16", help="Same as --precision bf16."),
    fp16: bool = typer.Option(False, "--fp16", help="Same as --precision fp16 (GPU)."),
    deterministic: bool = typer.Option(DEFAULTS["deterministic"], "--deterministic", help="Bit-identical reruns "
                                       "with the same seed on the same GPU (deterministic kernels; slower). CPU "
                                       "runs are deterministic anyway."),
    compile_model: bool = typer.Option(DEFAULTS["compile"], "--compile", help="torch.compile the training "
                                       "forward pass (compiles on the first steps)."),
    max_tokens_per_batch: Optional[int] = typer.Option(None, "--max-tokens-per-batch", min=1, help="Size batches "
                                                       "by tokens: as many length-sorted examples as fit N padded "
                                                       "(input + target) tokens; --batch-size is then unused for "
                                                       "training batches."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="DataLoader processes that collate "
                                          "batches and read features ahead (default 2 on a GPU, 0 on CPU)."),
    device: str = typer.Option(DEFAULTS["device"], "--device", help="auto (the GPU when there is one), cpu or "
                               "cuda."),
    seed: int = typer.Option(DEFAULTS["seed"], "--seed"),
    eval_every: str = typer.Option(DEFAULTS["eval_every"], "--eval-every", help="'epoch', a number of optimizer steps, or 0."),
    save_every: int = typer.Option(DEFAULTS["save_every"], "--save-every", min=0, help="Optimizer steps between resume checkpoints "
                                   "(one is also written after every epoch)."),
    train_split: str = typer.Option(DEFAULTS["train_split"], "--train-split"),
    val_split: str = typer.Option(DEFAULTS["val_split"], "--val-split", help="'none' to skip validation (the last model is kept)."),
    limit_train: Optional[int] = typer.Option(None, "--limit-train", min=1, help="Only the first N train records."),
    limit_val: Optional[int] = typer.Option(None, "--limit-val", min=1, help="Validate on the first N records."),
    num_beams: int = typer.Option(DEFAULTS["num_beams"], "--num-beams", min=1, help="Beams for validation generation."),
    group_by_length: bool = typer.Option(DEFAULTS["group_by_length"], "--group-by-length/--no-group-by-length", help="Batch examples "
                                         "of similar length (less padding); --no-group-by-length draws plain "
                                         "random batches as the original's Trainer does."),
    random_init: bool = typer.Option(DEFAULTS["random_init"], "--random-init", help="Build the text backbone from its config only."),
    text_option: list[str] = typer.Option([], "--text-option", help="Text backbone option KEY=VALUE (repeatable), "
                                          "checked against the options the backbone declares (a wrong key lists them), "
                                          "e.g. d_model=256 layers=4 for t5-scratch."),
    fusion: str = typer.Option(DEFAULTS["fusion"], "--fusion", help="How image features reach a decoder-only "
                               "text backbone: gated (the paper's gated cross-attention, at --fusion-layer) or prefix "
                               "(projected features placed before the prompt). T5 always fuses gated on its encoder "
                               "output."),
    fusion_layer: Optional[int] = typer.Option(None, "--fusion-layer", min=0, help="Decoder-only, --fusion gated: the "
                                               "decoder layer whose input is fused (default: the middle layer)."),
    resume: bool = typer.Option(DEFAULTS["resume"], "--resume", help="Continue RUN_DIR from its last checkpoint."),
    allow_changed_data: bool = typer.Option(DEFAULTS["allow_changed_data"], "--allow-changed-data",
                                            help="With --resume: continue although the inputs (DATA_DIR splits, "
                                            "features, rationales) changed since the run started (recorded in "
                                            "run_config.json)."),
    report_to: str = typer.Option(DEFAULTS["report_to"], "--report-to", help="Experiment tracker: none, tensorboard (event files "
                                  "in RUN_DIR/tracking/), wandb or mlflow (their usual configuration)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Train one stage; RUN_DIR/model/ ends up as the best validation checkpoint.

    Multi-process: `accelerate launch --num_processes N -m mmcot_cli train …` or
    `torchrun --nproc_per_node N -m mmcot_cli train …` (see docs/TRAINING.md).
    """
    chosen = ({precision} - {"auto"}) | {name for name, on in (("bf16", bf16), ("fp16", fp16)) if on}
    if len(chosen) > 1:
        raise UsageError(f"conflicting precisions {', '.join(sorted(chosen))} (--bf16 and --fp16 are short for "
                         "--precision bf16 / fp16)")
    if allow_changed_data and not resume:
        raise UsageError("--allow-changed-data applies to --resume")
    options = parse_text_options(text_option)
    cfg = TrainConfig(
        stage=stage, data_dir=str(data), text_model=text_model, out_dir=str(out),
        features=str(features) if features else None, rationales=str(rationales) if rationales else None,
        train_on=train_on, rationale_source=rationale_source, prompt_format=prompt_format, use_caption=use_caption,
        epochs=epochs, lr=lr,
        batch_size=batch_size, eval_batch_size=eval_batch_size, grad_accum=grad_accum, warmup_ratio=warmup_ratio,
        weight_decay=weight_decay, max_input_len=max_input_len, max_output_len=max_output_len,
        precision=chosen.pop() if chosen else precision, deterministic=deterministic, compile=compile_model,
        max_tokens_per_batch=max_tokens_per_batch, workers=workers, device=device, seed=seed, eval_every=eval_every,
        save_every=save_every, train_split=train_split,
        val_split=None if val_split.lower() in ("none", "") else val_split, limit_train=limit_train,
        limit_val=limit_val, num_beams=num_beams, group_by_length=group_by_length, random_init=random_init,
        text_options=options, fusion=fusion, fusion_layer=fusion_layer, resume=resume,
        allow_changed_data=allow_changed_data, report_to=report_to,
    )
    with hold_run_dir(cfg):  # before torch loads: a second writer of RUN_DIR is refused at once
        from mmcot_cli.training.loop import train

        summary = train(cfg)
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
            ("processes", summary["world_size"]), ("samples/s", _rate(summary["samples_per_s"]))]
    if summary.get("metric") and best.get("value") is not None:
        rows.append((f"best val {summary['metric']}", f"{best.get('value'):.2f} (epoch {best.get('epoch')}, "
                                                         f"step {best.get('step')})"))
    for name, value in rows:
        table.add_row(name, str(value))
    err_console.print(table)


def _rate(samples_per_s: float | None) -> str:
    """None when this invocation trained no step (a finished run resumed): say so rather than print "None"."""
    return "none trained now" if samples_per_s is None else f"{samples_per_s:.1f}"
