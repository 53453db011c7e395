"""Which CPU kernels the demo computes with: the portable ones by default, so that the same seed prints the same
tables on every x86-64 CPU (mmcot_cli.model.precision.pin_cpu_numerics has the why and the cost)."""

from __future__ import annotations

import os


def pin_demo_numerics(train_device: str, portable: bool = True, threads: int | None = 1) -> dict | None:
    """The demo trains with `--deterministic`: on a CPU, pin its kernels (model.precision.pin_cpu_numerics) here,
    before extraction runs the first tensor op and before the pipelines' processes start (they inherit the
    environment), so the same seed prints the same tables on every x86-64 CPU at `threads` per pipeline (recorded
    with the pin, as `train` records its own; None: torch's default). None on a GPU."""
    from mmcot_cli.model.precision import pin_cpu_numerics  # torch: only when the demo runs
    from mmcot_cli.training.runtime import use_cuda

    if use_cuda(train_device):
        return None
    if not portable:
        return {"pinned": False, "reason": "--native-kernels: this CPU's fastest kernels; the digits depend on the "
                                           "CPU (vendor, AVX2/AVX-512) and the thread count", "threads": threads}
    return {**pin_cpu_numerics(), "threads": threads}


def pipeline_threads(cfg) -> int | None:
    """A DemoConfig's torch threads per pipeline: --threads; else 1 with the portable kernels (softmax's backward
    pass, in every attention layer, sums in another order on another thread count, so one fixed count is what
    makes the tables the same on every machine; tiny models gain little from more); else half the CPUs side by
    side, torch's default one after the other (None: leave it)."""
    if cfg.threads:
        return cfg.threads
    if cfg.portable_kernels and not cfg.device.startswith("cuda"):
        return 1
    return max(1, (os.cpu_count() or 2) // len(cfg.modes)) if cfg.parallel and len(cfg.modes) > 1 else None
