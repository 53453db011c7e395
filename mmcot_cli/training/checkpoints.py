"""The trainer's files in RUN_DIR besides the model: resume checkpoints and metrics.jsonl.

A checkpoint (checkpoints/step-N/) is written at an optimizer-step boundary and holds what resuming needs: the
model directory, optimizer, scheduler, every process's RNG state and the data position (state.json, written last:
its presence marks a complete checkpoint).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from mmcot_cli.errors import DataError, torch_load_problem
from mmcot_cli.io import (
    append_jsonl,
    read_json,
    read_log,
    uniform_modes,
    write_fault,
    write_json,
    write_jsonl,
)
from mmcot_cli.model.text.runs import save_run_model
from mmcot_cli.training.runtime import restore_optimizer

CHECKPOINT_PREFIX = "step-"


def rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def list_checkpoints(run_dir: Path) -> list[Path]:
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir()
             if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(run_dir: Path, *, model, tokenizer, meta: dict, optimizer_state: dict, scheduler, state: dict,
                    rng_states: list[dict], keep: int) -> Path:
    """Write checkpoints/step-N/ (model dir, optimizer state, scheduler, per-process RNG, position) atomically."""
    ckpt_root = run_dir / "checkpoints"
    final = ckpt_root / f"{CHECKPOINT_PREFIX}{state['global_step']:08d}"
    tmp = ckpt_root / f".{final.name}.tmp"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_run_model(model, tokenizer, tmp / "model", meta)
        # Optimizer state is tensors + plain containers; it is read back with torch.load(weights_only=True).
        torch.save(optimizer_state, tmp / "optimizer.pt")
        write_json(tmp / "scheduler.json", scheduler.state_dict())
        write_json(tmp / "rng.json", rng_states)
        write_json(tmp / "state.json", state)  # written last: its presence marks a complete checkpoint
        uniform_modes(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except Exception as e:  # ENOSPC, EACCES …: one line; earlier checkpoints stay for --resume
        reason = str(e) if isinstance(e, DataError) else write_fault(e)
        if reason is None:
            raise
        raise DataError(f"{final}: cannot write the checkpoint ({reason}); earlier checkpoints are kept, "
                        "--resume continues from the last one") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_optimizer_state(ckpt: Path, model, optimizer, scheduler) -> None:
    try:
        state = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / overwritten file: pickle, zip and torch errors of many kinds
        raise DataError(f"{ckpt / 'optimizer.pt'}: cannot read the optimizer state ({torch_load_problem(e)}); remove "
                        f"{ckpt} to resume from the checkpoint before it") from None
    restore_optimizer(model, optimizer, state)  # an FSDP2 process keeps its shard
    scheduler.load_state_dict(read_json(ckpt / "scheduler.json"))


def truncate_metrics(path: Path, last_step: int) -> None:
    """On resume, drop rows logged after the checkpoint (they will be logged again), and a last row cut short
    by a crash or power loss (the log is append-only: only its last line can be torn)."""
    if not path.is_file():
        return
    rows, _torn = read_log(path)
    write_jsonl(path, [r for r in rows if _step(r) <= last_step])


def _step(row: dict) -> int:
    try:
        return int(row.get("step", 0))
    except (TypeError, ValueError):
        return 0


def append_metrics(path: Path, row: dict) -> None:
    """One metrics.jsonl row, strict JSON (a non-finite value is written as null)."""
    append_jsonl(path, row)
