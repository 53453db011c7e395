"""How `mmcot train` runs on the hardware: the device, the precision (`--precision`), determinism
(`--deterministic`) and torch.compile (`--compile`).

Precision: `auto` (the default) is bf16 autocast on a GPU that supports it and fp32 everywhere else, so CPU runs
compute exactly as before; `accelerate launch --mixed_precision bf16|fp16` is honoured by `auto` too. Weights and
optimizer state stay fp32 (autocast), so checkpoints do not depend on the precision. The loop writes
`with autocast(device, precision)` (mmcot_cli.model.precision) around the training forward and around validation
decoding, so encoder, fusion and decoder compute alike; Accelerate's own wrapper of `model.forward` (and its fp16
gradient scaler) computes in the same precision.

Determinism on a CPU: a rerun on the same machine is bit-identical anyway, but another CPU or thread count
computes other bits, and a model trained from scratch amplifies them into other scores (issue 24: `mmcot demo`
printed other tables on AVX2, AVX-512 and AMD machines). Three kernel families choose their code by the CPU:
ATen's vectorised ops (softmax, norms, reductions: AVX-512 vs AVX2 vs scalar), MKL's GEMMs (by ISA, by vendor,
by thread count) and oneDNN. `--deterministic` on a CPU pins all three (model.precision.pin_cpu_numerics): ATen's AVX2
kernels, MKL's conditional numerical reproducibility in its COMPATIBLE branch (the only one MKL applies on
non-Intel CPUs too) and oneDNN capped at AVX2. They are read when the first CPU kernel runs, so the pin is set
before any tensor op (`train` and `demo` do it first) and checked afterwards: torch must report the AVX2
capability and MKL must accept the branch, else the run records why it is not pinned. The thread count stays
part of the contract: softmax's backward pass (every attention layer) sums in another order on another number of
threads, so a run is the same on every x86-64 CPU at the same thread count (recorded in the run; set
OMP_NUM_THREADS to match another run; `mmcot demo` runs its pipelines on one thread each). The cost (mostly MKL's
SSE2-level GEMMs) is measured in benchmarks/bench_numerics.py.

On CUDA, `--deterministic` makes a rerun with the same seed
bit-identical on the same GPU and software: cuBLAS gets a fixed workspace (CUBLAS_WORKSPACE_CONFIG=:4096:8, set
by `import mmcot_cli` unless the environment has one: cuBLAS reads it at the first GPU matmul), PyTorch's deterministic algorithms are enforced (no warn-only escape: an op without a deterministic kernel
is an error, not a silent difference), cuDNN runs deterministic and without benchmark autotuning, and
scaled-dot-product attention (T5's attention in transformers 5, the fusion's attention) runs on its math kernel:
plain matmuls and softmax, the same operations as eager attention (the fused flash, memory-efficient and cuDNN
kernels are switched off; the latter two were the ones warning about non-deterministic backward passes). It
costs speed and memory, so it is off by default for `mmcot train`; `mmcot demo` always uses it. Every setting
is restored afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import os
from typing import Iterator

import torch

from mmcot_cli.errors import UsageError
from mmcot_cli.model.precision import pin_cpu_numerics
from mmcot_cli.training import tracking

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_ACCELERATE = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # Accelerate's names for them
CUBLAS_WORKSPACE = ":4096:8"


def launched() -> bool:
    """Started by torchrun / accelerate launch (several processes, or one under a launcher)."""
    return int(os.environ.get("LOCAL_RANK", -1)) != -1 or int(os.environ.get("WORLD_SIZE", 1)) > 1


def use_cuda(device: str) -> bool:
    """Whether training runs on the GPU: `auto` takes one when present; `cuda` without one is a usage error."""
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise UsageError("--device cuda: no CUDA GPU is available here (use cpu or auto)")
    return available and device != "cpu"


def resolve_precision(requested: str, cuda: bool) -> str:
    """fp32, bf16 or fp16 for `--precision` (auto: the launcher's choice, else bf16 on a bf16 GPU, else fp32)."""
    if requested != "auto":
        return requested
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher in ("bf16", "fp16"):
        return launcher
    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"


def make_accelerator(cfg):
    """The run's Accelerator: device, precision and tracker from the TrainConfig."""
    from accelerate import Accelerator

    cuda = use_cuda(cfg.device)
    # Under torchrun without a GPU, Accelerate only sets up a (gloo) process group when told it runs on CPU;
    # `accelerate launch` sets that itself.
    cpu = cfg.device == "cpu" or (launched() and not cuda)
    precision = resolve_precision(cfg.precision, cuda)
    if precision == "fp16" and not cuda:  # Accelerate would accept it and silently train in fp32
        raise UsageError("--precision fp16 needs a CUDA GPU (fp16 autocast with a gradient scaler); "
                         "on a CPU use fp32 (what --precision auto picks there) or bf16")
    if not launched():
        # Accelerate keeps one process-wide state and refuses a second Accelerator with another precision or
        # device; a single process that trains twice (a notebook, the tests, `mmcot demo --sequential`) may
        # legitimately change them, so start from a clean state.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    try:
        return Accelerator(mixed_precision=_ACCELERATE[precision], cpu=cpu,
                           **tracking.accelerator_kwargs(cfg.report_to, cfg.out_dir))
    except ValueError as e:  # e.g. fp16 without a GPU
        raise UsageError(f"precision {precision!r} is not available here: {e}") from None


def precision_name(accelerator) -> str:
    """fp32 / bf16 / fp16: what the Accelerator computes in."""
    return {"no": "fp32"}.get(str(accelerator.mixed_precision), str(accelerator.mixed_precision))


def training_numerics(cfg) -> dict | None:
    """`train --deterministic` on a CPU: pin the kernels (pin_cpu_numerics) and record the thread count, which
    stays part of the contract (module docstring). None when not asked for, or on a GPU."""
    if not cfg.deterministic or use_cuda(cfg.device):
        return None
    return {**pin_cpu_numerics(), "threads": torch.get_num_threads()}


@contextlib.contextmanager
def deterministic_mode(enabled: bool, cuda: bool = True) -> Iterator[None]:
    """Bit-identical reruns on CUDA for the duration (module docstring); a no-op when not enabled. `cuda` False
    (training on CPU) leaves the attention kernels alone: PyTorch's switches for them also steer CPU attention,
    whose default kernel is deterministic already, and switching it would change CPU results."""
    if not enabled:
        yield
        return
    cuda_backends = torch.backends.cuda
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             cuda_backends.flash_sdp_enabled(), cuda_backends.mem_efficient_sdp_enabled(),
             cuda_backends.cudnn_sdp_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    for enable in (cuda_backends.enable_flash_sdp, cuda_backends.enable_mem_efficient_sdp,
                   cuda_backends.enable_cudnn_sdp) if cuda else ():
        enable(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        cuda_backends.enable_flash_sdp(saved[4])
        cuda_backends.enable_mem_efficient_sdp(saved[5])
        cuda_backends.enable_cudnn_sdp(saved[6])


def enable_gradient_checkpointing(model) -> None:
    """`--gradient-checkpointing`: every transformer block of the text model (T5's encoder and decoder, a
    decoder-only LM's layers) recomputes its activations in the backward pass instead of keeping them. The
    fusion layers are not recomputed: transformers checkpoints a block's `forward`, and module hooks (where a
    decoder-only LM's fusion runs, mmcot_cli.model.causal_lm) stay outside it."""
    inner = getattr(model, "module", model)  # DDP / Accelerate wrapper
    hf_model = getattr(inner, "lm", inner)  # CausalFusionLM holds the LM; T5 is the LM
    hf_model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    hf_model.config.use_cache = False  # no KV cache in training forwards (generation passes use_cache itself)


def training_forward(model, cfg):
    """What the loop calls for the training forward pass: the model, or a torch.compile'd view of it sharing its
    parameters (`--compile`). Validation generation and saving use the model itself, so only training shapes
    are compiled; dynamic shapes because every batch is padded to its own length."""
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if not cfg.compile:
        return model
    return torch.compile(model, dynamic=True)



# --------------------------------------------------------------------------- FSDP2 (`--fsdp`)
# Accelerate's FSDP does not run on CPU (it keeps a CPU launch MULTI_CPU, i.e. DDP, whatever its FSDP config says),
# so mmcot shards the model itself with PyTorch's FSDP2 `fully_shard`, on CPU (gloo) and GPU (NCCL) alike:
# `accelerate launch --use_fsdp` asks for the same thing as `--fsdp`.


def fsdp_from_launcher(cfg) -> None:
    """`accelerate launch --use_fsdp` (ACCELERATE_USE_FSDP=true) turns on `--fsdp`; Accelerate is then told not to
    wrap the model itself (mmcot's fully_shard does)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        cfg.fsdp = True
        os.environ["ACCELERATE_USE_FSDP"] = "false"


def shard_model(model, accelerator):
    """FSDP2: every transformer block of the text model (the classes transformers never splits across devices:
    T5Block, LlamaDecoderLayer …) becomes one unit, the rest (embeddings, head, norms, fusion layers) the root.
    Parameters, gradients and optimizer state are then sharded over the processes. Returns the main process's
    unsharded copy (on the CPU) that checkpoints and RUN_DIR/model/ are saved from (`plain_model`); None elsewhere."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if accelerator.num_processes < 2:
        raise UsageError("--fsdp shards the model across processes: launch at least 2 (torchrun --nproc_per_node N "
                         "or accelerate launch --num_processes N)")
    shadow = copy.deepcopy(model).cpu() if accelerator.is_main_process else None
    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    hf_model = getattr(model, "lm", model)
    blocks = set(getattr(hf_model, "_no_split_modules", None) or ())
    for module in list(hf_model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return shadow


def plain_model(model, shadow):
    """What is saved: the model itself, or for an FSDP2 model the main process's copy loaded with the full
    weights gathered from every process (collective: every process calls it; the others get None)."""
    if not _fsdp_units(model):
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if shadow is not None:
        shadow.load_state_dict(full)
    return shadow


def _fsdp_units(model) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(model) -> Iterator[None]:
    """Every process holds the whole model for the duration (an FSDP2 model's shards all-gathered; a no-op
    otherwise): validation decodes a different number of steps on each process, so no forward may gather on its
    own."""
    units = _fsdp_units(model)
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


def optimizer_state(model, optimizer) -> dict:
    """The optimizer's state dict; for an FSDP2 model the full (unsharded) one, on every process (collective)."""
    if not _fsdp_units(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True,
                                                                                cpu_offload=True))


def restore_optimizer(model, optimizer, state: dict) -> None:
    """Load a state dict from `optimizer_state` (each FSDP2 process keeps its shard of the full one)."""
    if not _fsdp_units(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True))
