"""The one --device parser: every command that takes --device (extract, generate, ask, …) accepts the same
strings and gives the same one-line UsageError (exit 2) for an unknown device or a GPU that is not there."""

from __future__ import annotations

import re

from mmcot_cli.errors import UsageError

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
ACCEPTED = "auto, cpu, cuda, cuda:N or mps"


def parse_device(text: str | None, option: str = "--device") -> str:
    """A canonical device string ("cpu", "cuda:1" …); "auto" picks cuda when available, else cpu.

    Checked against the hardware (imports torch: call it inside commands that run a model)."""
    name = "auto" if text is None else str(text).strip().lower()
    if not _DEVICE_RE.match(name):
        raise UsageError(f"invalid {option} {text!r} (use {ACCEPTED})")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"{option} {name}: no CUDA GPU is available here (use cpu or auto)")
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise UsageError(f"{option} {name}: only {count} CUDA GPU(s) here (cuda:0 … cuda:{count - 1})")
    if name == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise UsageError(f"{option} mps: no Apple GPU (MPS) is available here (use cpu or auto)")
    return name
