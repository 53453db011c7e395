"""The divergence guard: a NaN or infinite loss, or weights that became NaN/inf, stop training with one line.

Reading a loss on the host after every step would stall a GPU once per step (the host waits for the device to
drain before it can queue the next step). So each optimizer step's mean loss stays on the device, and `check()`
reads all pending ones in a single transfer and scans the weights once: every `every` optimizer steps and before
anything that reads the weights or the logged losses (validation, a checkpoint, the end of an epoch). A bad step
may therefore have been applied to the weights in memory, but never saved: every save is preceded by a check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmcot_cli.errors import MMCoTError
from mmcot_cli.model.fusion import first_non_finite

CHECK_EVERY = 25  # optimizer steps between host checks when nothing else forces one


class TrainingDiverged(MMCoTError):
    """The loss or the weights became NaN or infinite."""


@dataclass
class PendingStep:
    epoch: int  # 0-based
    step: int  # optimizer step number (1-based, as logged)
    loss: torch.Tensor  # 0-d, on the device
    lr: float


@dataclass
class DivergenceGuard:
    every: int = CHECK_EVERY
    pending: list[PendingStep] = field(default_factory=list)

    def record(self, epoch: int, step: int, loss: torch.Tensor, lr: float) -> None:
        self.pending.append(PendingStep(epoch, step, loss.detach(), lr))

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def check(self, model, last_checkpoint: Path | None) -> list[tuple[int, float, float]]:
        """(step, loss, lr) of every pending step, in order, after one host transfer; TrainingDiverged for the
        first non-finite loss, or for non-finite weights."""
        if not self.pending:
            return []
        steps, self.pending = self.pending, []
        losses = torch.stack([s.loss.float() for s in steps]).tolist()
        last_good = last_checkpoint or "none written yet"
        for s, value in zip(steps, losses):
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss is {value} at epoch {s.epoch + 1}, optimizer step {s.step}; training stopped. "
                    f"Last good checkpoint: {last_good} (try a lower --lr or --precision bf16/fp32, then --resume)")
        bad = first_non_finite(model)  # a finite loss can still step to inf weights (a huge --lr)
        if bad is not None:
            raise TrainingDiverged(
                f"parameter {bad} became NaN or infinite by optimizer step {steps[-1].step} (checked every "
                f"{self.every} steps); training stopped. Last good checkpoint: {last_good} (try a lower --lr, "
                "then --resume)")
        return [(s.step, value, s.lr) for s, value in zip(steps, losses)]
