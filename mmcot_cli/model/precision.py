"""How the forward computes. The one autocast context of training, validation and generation (`--precision`):
written `with autocast(...)` where the forward runs, so encoder, fusion and decoder always compute in the same
precision; weights stay fp32. And the portable CPU kernels (`pin_cpu_numerics`) that `train --deterministic`, the
demo and `generate` of such a run compute with, so a seed gives the same bits on every x86-64 CPU
(mmcot_cli.training.runtime's docstring has the why and the cost)."""

from __future__ import annotations

import contextlib
import os

import torch

from mmcot_cli.errors import UsageError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The CPU kernels `--deterministic` pins (module docstring): the same bits on every x86-64 CPU with AVX2.
REPRODUCIBLE_CPU_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}
_MKL_CBWR_COMPATIBLE = 3  # mkl_cbwr_set's value for MKL_CBWR=COMPATIBLE (mkl_service.h)


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


def pin_cpu_numerics() -> dict:
    """Make this process (and the processes it starts afterwards) compute with the reproducible CPU kernels of
    REPRODUCIBLE_CPU_ENV. Call it before the first tensor op. Returns what took effect, for the run's record:
    {"pinned": bool, "capability": torch's CPU capability, "mkl": the MKL branch or None, "env": {...},
    "reason": why not, when not}."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {"pinned": False, "capability": torch.backends.cpu.get_cpu_capability(), "mkl": None, "env": {},
                "reason": f"{platform.machine()} CPU: the reproducible kernels are x86-64 ones (AVX2); results can "
                          "differ from x86-64 machines and between CPUs of this kind"}
    previous = {name: os.environ.get(name) for name in REPRODUCIBLE_CPU_ENV}
    os.environ.update(REPRODUCIBLE_CPU_ENV)  # for this process's ATen and oneDNN, and for every child process
    capability = torch.backends.cpu.get_cpu_capability()  # fixed at the first CPU op: this reads what it took
    problems = []
    # MKL's own switch says whether it was still free to change; not tried when ATen is not pinned (it cannot be
    # undone, and half a pin is worth nothing)
    mkl = _set_mkl_compatible_branch() if capability == "AVX2" else None
    if capability != "AVX2":
        problems.append("this CPU has no AVX2" if "avx2" not in _cpu_flags() else
                        f"a CPU kernel ran before the pin, with ATen's {capability} kernels")
    if mkl is False:
        problems.append("MKL had run already in its own code branch")
    if problems:
        for name, value in previous.items():  # not in effect here: leave the environment as it was
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        hint = " ".join(f"{k}={v}" for k, v in REPRODUCIBLE_CPU_ENV.items())
        return {"pinned": False, "capability": capability, "mkl": None, "env": {},
                "reason": "; ".join(problems) + f" (set {hint} in the environment before starting)"}
    record = {"pinned": True, "capability": capability, "mkl": "COMPATIBLE" if mkl else None,
              "env": dict(REPRODUCIBLE_CPU_ENV)}
    overridden = {k: v for k, v in previous.items() if v is not None and v != REPRODUCIBLE_CPU_ENV[k]}
    return {**record, "overridden": overridden} if overridden else record


def _set_mkl_compatible_branch() -> bool | None:
    """Switch MKL to its COMPATIBLE branch in this process: True when done (or already so), False when MKL had
    run in another branch (it refuses to change then), None when torch has no MKL (no MKL GEMMs to pin)."""
    import ctypes

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        cbwr_set = lib.mkl_serv_cbwr_set
    except (OSError, AttributeError):
        return None
    cbwr_set.restype = ctypes.c_int
    return cbwr_set(_MKL_CBWR_COMPATIBLE) == 0  # MKL_CBWR_SUCCESS; -8: MKL_CBWR_ERR_MODE_CHANGE_FAILURE


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"avx2"}  # unknown (not Linux): do not claim the CPU lacks it
