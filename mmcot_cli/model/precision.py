"""The one autocast context of training, validation and generation (`--precision`): written `with autocast(...)`
where the forward runs, so encoder, fusion and decoder always compute in the same precision. Weights stay fp32."""

from __future__ import annotations

import contextlib

import torch

from mmcot_cli.errors import UsageError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device | str, precision: str):
    """torch.autocast for bf16/fp16 on `device`'s type; a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in DTYPES:
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def supports(device: torch.device, precision: str) -> bool:
    """Whether autocast in `precision` runs on `device`: fp16 needs a GPU; bf16 a GPU with it, or the CPU."""
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported()
    return device.type == "cpu" and precision == "bf16"


def inference_precision(requested: str, recorded: str | None, device: torch.device) -> tuple[str, str | None]:
    """(precision, warning) for generate/ask: `run` takes what the run trained in (RunMeta.precision), falling
    back to fp32 with a warning where this device lacks it; an explicit choice the device lacks is a usage error."""
    if requested == "run":
        wanted = recorded or "fp32"
        if supports(device, wanted):
            return wanted, None
        return "fp32", f"the run trained in {wanted}, which {device.type} lacks: generating in fp32"
    if not supports(device, requested):
        raise UsageError(f"--precision {requested} is not available on {device} "
                         f"({'fp16 needs a CUDA GPU' if requested == 'fp16' else 'this GPU lacks bf16'})")
    return requested, None
