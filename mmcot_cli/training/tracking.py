"""Experiment tracking for `mmcot train --report-to`: Accelerate's trackers (TensorBoard, Weights & Biases, MLflow).

Off by default: nothing leaves the machine unless asked. What is logged: the run configuration once (as
hyperparameters), the loss and learning rate at every optimizer step (`train/loss`, `train/lr`), and every
metrics.jsonl row (`epoch/train_loss`, `epoch/lr`, `val/<metric>`, …) at its step. Only the main process logs
(Accelerate's trackers run there). TensorBoard writes event files to RUN_DIR/tracking/<project>/; W&B and MLflow
use their own configuration (WANDB_MODE, MLFLOW_TRACKING_URI, …) as usual.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from mmcot_cli.errors import UnknownNameError, UsageError

REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
PROJECT = "mmcot"  # W&B project / MLflow experiment name / TensorBoard sub-folder
# What each tracker needs installed (TensorBoard's SummaryWriter comes from torch but needs the package).
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}


def check_report_to(name: str) -> None:
    """Unknown tracker → UnknownNameError (exit 2); a known one whose package is missing → UsageError."""
    if name not in REPORT_TO:
        raise UnknownNameError("tracker (--report-to)", name, list(REPORT_TO))
    if name != "none" and not any(importlib.util.find_spec(p) for p in _PACKAGES[name]):
        raise UsageError(f"--report-to {name} needs the {_PACKAGES[name][0]} package (pip install "
                         f"{_PACKAGES[name][0]})")


def accelerator_kwargs(report_to: str, run_dir: str | Path) -> dict:
    """Extra Accelerator(...) arguments: the tracker and where local trackers write."""
    if report_to == "none":
        return {}
    return {"log_with": report_to, "project_dir": str(Path(run_dir) / "tracking")}


def _scalar(value: Any) -> bool | int | float | str:
    # TensorBoard's hparams take only scalars and strings; containers are logged as their JSON text.
    if isinstance(value, (bool, int, float, str)):
        return value
    return "none" if value is None else json.dumps(value, sort_keys=True)


def flat_config(config: dict) -> dict:
    return {key: _scalar(value) for key, value in config.items()}


def start(accelerator, report_to: str, run_dir: str | Path, config: dict) -> None:
    """Start the trackers (main process) and log the run configuration."""
    if report_to == "none":
        return
    name = Path(run_dir).resolve().name
    init_kwargs = {"wandb": {"name": name}, "mlflow": {"run_name": name}}
    accelerator.init_trackers(PROJECT, config=flat_config(config), init_kwargs=init_kwargs)


def log_step(accelerator, step: int, loss: float, lr: float) -> None:
    if accelerator.trackers:
        accelerator.log({"train/loss": loss, "train/lr": lr}, step=step)


def log_row(accelerator, row: dict) -> None:
    """One metrics.jsonl row: validation values under val/, the rest under epoch/ (numbers only)."""
    if not accelerator.trackers:
        return
    values = {}
    for key, value in row.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values[f"val/{key[4:]}" if key.startswith("val_") else f"epoch/{key}"] = value
    accelerator.log(values, step=int(row.get("step", 0)))


def finish(accelerator) -> None:
    """Close the trackers (flush event files). Not accelerator.end_training(): that also tears down the
    process group, which the caller may still use."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
