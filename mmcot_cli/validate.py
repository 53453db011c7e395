"""Option checks, one home each, so every command rejects bad values the same way (UsageError, exit 2, naming the
option): numbers (NaN, infinities, out-of-range values), the one --device parser (extract, generate, ask, …) and
the --alpha policies (mmcot_cli.data.images says what each does) and the --protocol names.
Library configs call these in __post_init__; the CLI needs no extra code."""

from __future__ import annotations

import math
import re
from typing import Any

from mmcot_cli.errors import UnknownNameError, UsageError

MAX_SEED = 2**32 - 1  # numpy's seed range; torch and random accept it too
# How transparent pixels become RGB (mmcot_cli.data.images): as the original's convert("RGB"), or onto white.
ALPHA_POLICIES = ("original", "white")
# --protocol: `mmcot` (this project's defaults) or `original` (every result-changing choice of the original code;
# docs/TRAINING.md "Protocols" lists them). generate and score take it; predictions and score objects record it.
PROTOCOLS = ("mmcot", "original")


_SPLIT_NAME = re.compile(r"^[^/\\\x00.][^/\\\x00]*$")


def split_name_problem(name: str) -> str | None:
    """Why `name` cannot be a split (each split is the file DATA_DIR/<split>.jsonl and names a feature store's
    splits/<split>.json, chunks and generate's preds-<split>.jsonl): a path ("../x", "a/b") or a hidden name would
    read or write outside those folders. None for a plain name."""
    if not isinstance(name, str) or not _SPLIT_NAME.match(name):
        return (f"split {name!r} is not a plain name (no '/', '\\' or leading '.'): a split is the file "
                "DATA_DIR/<split>.jsonl")
    return None


def check_split_name(option: str, value: str | None) -> str | None:
    """A --split-like option: None (none) or a plain split name (split_name_problem), else UsageError naming it."""
    problem = None if value is None else split_name_problem(value)
    if problem:
        raise UsageError(f"{option}: {problem}")
    return value


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def check_alpha(alpha: str, option: str = "--alpha") -> str:
    if alpha not in ALPHA_POLICIES:
        raise UnknownNameError(f"{option} policy", alpha, list(ALPHA_POLICIES))
    return alpha


def check_number(option: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 optional: bool = False) -> Any:
    """`value` if it is a finite number within the bounds (open bounds exclude the end); else UsageError.

    `optional` lets None through (an unset option)."""
    if value is None and optional:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option} must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer()):
            raise UsageError(f"{option} must be a whole number, got {value!r}")
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise UsageError(f"{option} must be {_range_text(low, high, low_open, high_open)}, got {value}")
    return value


def _range_text(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {low:g}"
    return f"{'<' if high_open else '≤'} {high:g}"


def positive_int(option: str, value: Any, optional: bool = False) -> Any:
    """A whole number ≥ 1 (batch sizes, epochs, token limits, beams, heads, layers …)."""
    return check_number(option, value, low=1, integer=True, optional=optional)


def non_negative_int(option: str, value: Any, optional: bool = False) -> Any:
    return check_number(option, value, low=0, integer=True, optional=optional)


def positive_float(option: str, value: Any, optional: bool = False) -> Any:
    """A finite number > 0 (learning rate, temperature …)."""
    return check_number(option, value, low=0, low_open=True, optional=optional)


def probability(option: str, value: Any, *, zero_ok: bool = False, optional: bool = False) -> Any:
    """A number in (0, 1] — top-p — or [0, 1] with zero_ok (warmup ratio, dropout)."""
    return check_number(option, value, low=0, high=1, low_open=not zero_ok, optional=optional)


def check_seed(option: str, value: Any, optional: bool = False) -> Any:
    return check_number(option, value, low=0, high=MAX_SEED, integer=True, optional=optional)


# --------------------------------------------------------------------------- --device
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
ACCEPTED = "auto, cpu, cuda, cuda:N or mps"


def check_device_name(option: str, text: str | None) -> str:
    """The --device spelling only (no torch, no hardware): the settings check of every command that takes it."""
    name = "auto" if text is None else str(text).strip().lower()
    if not _DEVICE_RE.match(name):
        raise UsageError(f"invalid {option} {text!r} (use {ACCEPTED})")
    return name


def parse_device(text: str | None, option: str = "--device") -> str:
    """A canonical device string ("cpu", "cuda:1" …); "auto" picks cuda when available, else cpu.

    Checked against the hardware (imports torch: call it inside commands that run a model)."""
    name = check_device_name(option, text)
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
