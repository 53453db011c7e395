"""`mmcot train`'s RUN_DIR checks, before anything is written: a new run goes only where the output guard allows
and never over an existing run; `--resume` continues only a run trained with the same invariants."""

from __future__ import annotations

from pathlib import Path

from mmcot_cli.errors import UsageError
from mmcot_cli.outputs import check_output_dir
from mmcot_cli.runs.meta import RUN_CONFIG, RunMeta
from mmcot_cli.training.checkpoints import list_checkpoints
from mmcot_cli.training.config import TrainConfig


def _check_resume_config(run_dir: Path, cfg: TrainConfig, world_size: int) -> None:
    saved = RunMeta.load(run_dir)
    changed = cfg.changed_since(saved.train_config)
    if changed:
        key, before, now = changed
        raise UsageError(f"{run_dir}/{RUN_CONFIG}: --resume with a different {key} ({before!r} before, {now!r} now)")
    if saved.world_size != world_size:
        raise UsageError(f"{run_dir}: run was trained with {saved.world_size} processes, resumed with "
                         f"{world_size}; the data position is per process, so use the same number")


def check_run_dir(run_dir: Path, cfg: TrainConfig, world_size: int) -> list[Path]:
    """The run's checkpoints to resume from ([] for a new run); refuses to overwrite or to resume nothing."""
    check_output_dir(run_dir, "train", inputs={"--data": cfg.data_dir, "--features": cfg.features,
                                               "--rationales": cfg.rationales, "--rationale-source":
                                               None if cfg.rationale_source == "gold" else cfg.rationale_source})
    if not cfg.resume:
        if (run_dir / RUN_CONFIG).exists() or (run_dir / "model").exists():
            raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        return []
    if not (run_dir / RUN_CONFIG).is_file():
        raise UsageError(f"{run_dir}: nothing to resume (no {RUN_CONFIG})")
    _check_resume_config(run_dir, cfg, world_size)
    return list_checkpoints(run_dir)


# --------------------------------------------------------------------------- evaluation
