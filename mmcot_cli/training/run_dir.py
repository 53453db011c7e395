"""`mmcot train`'s RUN_DIR: held (locked) by the run for its whole life; checked before anything is written: a new
run goes only where the output guard allows and never over an existing run; `--resume` continues only a run
trained with the same invariants on the same data (the inputs' fingerprints in run_config.json)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from mmcot_cli.errors import UsageError
from mmcot_cli.output_guard import check_output_dir
from mmcot_cli.outputs import claim_output_dir
from mmcot_cli.runs.meta import RUN_CONFIG, RunMeta
from mmcot_cli.training.config import TrainConfig

# checkpoints (torch) and inputs (numpy) are imported where used: `mmcot train` holds RUN_DIR through
# hold_run_dir before torch loads, so a second writer is refused at once.


def _main_process() -> bool:
    """Rank 0 of a multi-process run (torchrun / accelerate launch set RANK): the only one that writes RUN_DIR."""
    return int(os.environ.get("RANK", "0")) == 0


def _inputs(cfg: TrainConfig) -> dict:
    return {"--data": cfg.data_dir, "--features": cfg.features, "--rationales": cfg.rationales,
            "--rationale-source": None if cfg.rationale_source == "gold" else cfg.rationale_source}


@contextlib.contextmanager
def hold_run_dir(cfg: TrainConfig) -> Iterator[None]:
    """Hold RUN_DIR for the block (the main process; the others write nothing). A killed run's debris goes."""
    if not _main_process():
        yield
        return
    with claim_output_dir(cfg.out_dir, "train", inputs=_inputs(cfg)):
        yield


def _check_resume_config(run_dir: Path, cfg: TrainConfig, world_size: int) -> RunMeta:
    saved = RunMeta.load(run_dir)
    changed = cfg.changed_since(saved.train_config)
    if changed:
        key, before, now = changed
        raise UsageError(f"{run_dir}/{RUN_CONFIG}: --resume with a different {key} ({before!r} before, {now!r} now)")
    if saved.world_size != world_size:
        raise UsageError(f"{run_dir}: run was trained with {saved.world_size} processes, resumed with "
                         f"{world_size}; the data position is per process, so use the same number")
    return saved


def _check_resume_inputs(run_dir: Path, cfg: TrainConfig, saved: RunMeta, checkpoints: list[Path]) -> None:
    """Refuse to continue on other data than the run started on (fewer records would shift every epoch and
    the learning-rate schedule) unless --allow-changed-data, which is recorded in run_config.json."""
    from mmcot_cli.training.inputs import IMAGES_INPUT, input_fingerprints

    if not saved.inputs:  # a run from before fingerprints were recorded
        return
    now = input_fingerprints(cfg)
    changed = {label: {"path": now[label]["path"], "before": saved.inputs[label].get("sha256"),
                       "now": now[label]["sha256"]}
               for label in now if label in saved.inputs and saved.inputs[label].get("sha256") != now[label]["sha256"]}
    if not changed:
        return
    if not cfg.allow_changed_data:
        if list(changed) == [IMAGES_INPUT]:
            c = changed[IMAGES_INPUT]
            raise UsageError(f"{run_dir}: --resume with the feature store {c['path']} extracted from other images "
                             "than the run trained on (same qids and chunks, other image contents: image digests "
                             f"sha256 {str(c['before'])[:12]}… then, {c['now'][:12]}… now); pass the store it "
                             "trained on, or --resume --allow-changed-data to continue on these features")
        label, c = next(iter(changed.items()))
        more = f" (and {len(changed) - 1} more input{'s' if len(changed) > 2 else ''})" if len(changed) > 1 else ""
        raise UsageError(f"{run_dir}: --resume with changed {label} {c['path']}{more}: sha256 {str(c['before'])[:12]}… "
                         f"when the run started, {c['now'][:12]}… now; --resume --allow-changed-data continues on "
                         f"the new data (recorded in {RUN_CONFIG})")
    if _main_process():
        saved.changed_inputs = [*(saved.changed_inputs or []), {
            "resumed_from": checkpoints[-1].name if checkpoints else None, "changed": changed}]
        saved.inputs = {**saved.inputs, **now}
        saved.save(run_dir)


def check_run_dir(run_dir: Path, cfg: TrainConfig, world_size: int) -> list[Path]:
    """The run's checkpoints to resume from ([] for a new run); refuses to overwrite or to resume nothing."""
    from mmcot_cli.training.checkpoints import list_checkpoints

    check_output_dir(run_dir, "train", inputs=_inputs(cfg))
    if not cfg.resume:
        if (run_dir / RUN_CONFIG).exists() or (run_dir / "model").exists():
            raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        return []
    if not (run_dir / RUN_CONFIG).is_file():
        raise UsageError(f"{run_dir}: nothing to resume (no {RUN_CONFIG})")
    saved = _check_resume_config(run_dir, cfg, world_size)
    checkpoints = list_checkpoints(run_dir)
    _check_resume_inputs(run_dir, cfg, saved, checkpoints)
    return checkpoints
