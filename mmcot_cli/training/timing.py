"""Hooks the training loop calls so a benchmark can see where the time goes (benchmarks/bench_train.py).

The loop wraps its phases in `timer.phase(name)` — "data" (next batch, host→device copy), "forward", "backward",
"optimizer" (clipping, step, scheduler) — and calls `timer.step_end(step)` after each optimizer step. Everything
else in a step (the divergence check, logging, the progress bar) is "other". This base class does nothing and
costs one empty context manager per phase; a benchmark passes a subclass to `train(cfg, timer=...)`.
"""

from __future__ import annotations

import contextlib

PHASES = ("data", "forward", "backward", "optimizer")


class StepTimer:
    def phase(self, name: str):
        return contextlib.nullcontext()

    def step_end(self, step: int) -> None:
        """Called after optimizer step `step` (1-based) and its host check, before validation/checkpoints."""
