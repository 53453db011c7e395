"""Training throughput and where a step's time goes: the original's way vs mmcot's batches vs `mmcot train` itself.

All variants train the same model (`MMCoTForConditionalGeneration`: T5 + the image fusion; FLAN-T5 shapes, ViT
features of shape (145, 1024) from a feature store) on examples built from the real ScienceQA sample's problems
(cycled; stage 1 QCM→LE rationale targets, stage 2 QCMG→A), through mmcot's own record → prompt → token code:

- original      the original's way: fp32, every batch padded to 512/512 (stage 1) or 512/64 (stage 2), random
                (not length-grouped) batches, plain AdamW (PyTorch's default implementation), grad clipping;
- bare          a bare forward/backward/step loop over mmcot's own batches (LengthGroupedBatchSampler + Collator:
                the same batches `mmcot train` builds), in --precision, fused AdamW on CUDA;
- train         `mmcot train` itself: the library `train()` on a DATA_DIR and FEATURES_DIR written for the run,
                with `--text-model DIR`, a checkpoint directory holding the same starting weights;
- bare-fp32, bare-unfused (foreach AdamW), bare-eager (eager attention instead of SDPA), bare-padded (512/512
  padding, random batches, --precision: the kernel ceiling), bare-tokens / train-tokens (--max-tokens-per-batch,
  default batch × (512 + output length): the original's padded volume), bare-deterministic
  (training.runtime.deterministic_mode), bare-compile / train-compile (torch.compile).

Each variant: `--warmup` steps, then `--steps` timed steps (samples/s, ms/step, model FLOP/s and % of the GPU's
dense bf16 peak, peak memory), then `--profile-steps` steps with a device sync around each phase: data (collation,
feature reads, host→device), forward, backward, optimizer, other (for `train`: the divergence check, logging,
progress). Model FLOPs count what the kernels compute (padding included: `model_tflops`) and what the real tokens
need (`useful_tflops`). Stage 1 targets are truncated at 512 tokens, stage 2 at 64, inputs at 512 (as both do).

Token lengths decide how much padding the original's way wastes, so the tokenizer matters. No FLAN-T5 tokenizer is
available offline; the default is the reference checkpoint's (shared/reference-checkpoint: a T5 SentencePiece
tokenizer with a 700-piece vocabulary), which splits words finer than FLAN-T5's 32k pieces: ScienceQA inputs come
out ~1.5× longer than FLAN-T5 would make them (130 vs ~85 tokens on average for QCM inputs), so mmcot's gain
from short batches is understated. `--tokenizer scratch` uses t5-scratch's word-level tokenizer trained on the
sample instead: about one token per word or punctuation mark, ~10-15% shorter than FLAN-T5 (slightly
favourable to mmcot). `--tokenizer DIR` takes any T5 tokenizer directory (a real FLAN-T5 one where available).

    python benchmarks/bench_train.py --device cpu --shape tiny                      # CI-sized
    python benchmarks/bench_train.py --device cuda --shape base --out base.json     # stages 1 and 2, batch 8
    python benchmarks/bench_train.py --device cuda --shape base \\
        --run rationale:8:original,bare,train,bare-fp32,bare-tokens,train-tokens --run rationale:32:bare-padded

Prints one JSON line per result as it arrives; `--out FILE` is rewritten after every result (a later crash or
timeout keeps the earlier ones). A CUDA out-of-memory is recorded for that variant and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_train_model import (  # noqa: E402
    SHAPES,
    ModelShape,
    build_model,
    save_model_dir,
    step_flops,
)

from mmcot_cli.model.batching import Collator, LengthGroupedBatchSampler  # noqa: E402
from mmcot_cli.training.runtime import deterministic_mode, resolve_precision  # noqa: E402
from mmcot_cli.training.timing import PHASES, StepTimer  # noqa: E402

STAGES = {"rationale": ("QCM-LE", 512), "answer": ("QCMG-A", 64)}  # prompt format, max output length
MAX_INPUT = 512
VARIANTS = ("original", "bare", "train", "bare-fp32", "bare-unfused", "bare-eager", "bare-padded", "bare-tokens",
            "train-tokens", "bare-deterministic", "bare-compile", "train-compile")
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12}


def find_shared(name: str) -> Path | None:
    for base in (REPO / "shared", REPO.parent / "shared"):
        if (base / name).exists():
            return base / name
    return None


# --------------------------------------------------------------------------------------------- device helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_info(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"device": "cpu", "device_name": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "peak_bf16_tflops": None}
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {"device": "cuda", "device_name": name, "cpu_count": os.cpu_count(),
            "peak_bf16_tflops": peak / 1e12 if peak else None, "bf16_supported": torch.cuda.is_bf16_supported()}


class PhaseTimer(StepTimer):
    """Syncs the device around each phase and adds up wall time per phase (profile steps only)."""

    def __init__(self, device: torch.device):
        self.device, self.enabled = device, False
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def phase(self, name: str):
        if not self.enabled:
            yield
            return
        sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.totals[name] += time.perf_counter() - t0


class Window:
    """Throughput over the timed steps, then phase totals over the profile steps."""

    def __init__(self, device, warmup: int, steps: int, profile: int):
        self.device, self.warmup, self.steps, self.profile = device, warmup, steps, profile
        self.timer = PhaseTimer(device)
        self.t0 = self.seconds = self.profile_t0 = None
        self.profile_seconds = 0.0

    def after_step(self, done: int) -> bool:
        """Call after step number `done` (1-based); True when the last profile step is done."""
        if done == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
        if done == self.warmup + self.steps:
            sync(self.device)
            self.seconds = time.perf_counter() - self.t0
            self.timer.enabled = True
            self.profile_t0 = time.perf_counter()
        if done == self.warmup + self.steps + self.profile:
            sync(self.device)
            self.profile_seconds = time.perf_counter() - self.profile_t0
            return True
        return False

    def phases_ms(self) -> dict:
        if not self.profile:
            return {}
        ms = {k: round(1000 * self.timer.totals.get(k, 0.0) / self.profile, 3) for k in PHASES}
        ms["other"] = round(1000 * self.profile_seconds / self.profile - sum(ms.values()), 3)
        return ms


class StopBench(Exception):
    """Raised from the train() timer once the profile steps are done (no epoch end, no checkpoint)."""


class TrainWindow(PhaseTimer):
    def __init__(self, window: Window):
        super().__init__(window.device)
        self.window = window
        window.timer = self

    def step_end(self, step: int) -> None:
        if self.window.after_step(step):
            raise StopBench


# --------------------------------------------------------------------------------------------- data


def write_inputs(work: Path, sample: Path, shape: ModelShape, copies: int) -> tuple[Path, Path, Path]:
    """DATA_DIR (the sample's problems × copies, unique qids, one train split), FEATURES_DIR (random rows of the
    shape's image features for every record), and a rationale file (gold solutions) for stage 2's QCMG-A."""
    import numpy as np

    from mmcot_cli.data.readers.scienceqa import records_from_problems
    from mmcot_cli.data.records import write_data_dir
    from mmcot_cli.features.store import import_features

    base = records_from_problems(sample / "problems.json")
    rows = [dict(r, qid=f"{r['qid']}-{k}", split="train") for k in range(copies) for r in base]
    data, feats, rationales = work / "data", work / "features", work / "rationales.jsonl"
    write_data_dir(data, {"train": rows}, {"source": str(sample), "created_by": "benchmarks/bench_train.py"})
    unique = np.random.default_rng(0).standard_normal((len(base), *shape.image), dtype=np.float32)

    class Tiled:  # the N rows import_features asks for, chunk by chunk, without materialising them all
        def __init__(self):
            self.shape = (len(rows), *shape.image)

        def __len__(self):
            return len(rows)

        def __getitem__(self, rows_slice):
            idx = range(*rows_slice.indices(len(rows)))
            return unique[[i % len(base) for i in idx]].astype(np.float16)

    import_features(feats, backbone="vit", split="train", qids=[r["qid"] for r in rows], features=Tiled(),
                    dtype="float16", source="random (benchmarks/bench_train.py)")
    rationales.write_text("".join(json.dumps({"qid": r["qid"], "prediction": f"Solution: {r['solution']}"}) + "\n"
                                  for r in rows))
    return data, feats, rationales


def stage_config(stage: str, data: Path, feats: Path, rationales: Path, out: Path, text_model: str, **kw):
    from mmcot_cli.training.config import TrainConfig

    fmt, out_len = STAGES[stage]
    return TrainConfig(stage=stage, data_dir=str(data), text_model=text_model, out_dir=str(out),
                       features=str(feats), rationales=str(rationales) if stage == "answer" else None,
                       prompt_format=fmt, max_output_len=out_len, max_input_len=MAX_INPUT, epochs=1, lr=5e-5,
                       val_split=None, eval_every=0, save_every=0, keep_checkpoints=1, seed=42, **kw)


def stage_examples(cfg, tokenizer):
    """Exactly what train() builds from cfg: records → prompts → tokenized examples (+ the feature store)."""
    from mmcot_cli.training.inputs import build_stage_data, read_stage_inputs

    inputs = read_stage_inputs(cfg.resolved())
    return build_stage_data(cfg.resolved(), inputs.train_records, inputs.train_pairs, tokenizer).examples, inputs.store


# --------------------------------------------------------------------------------------------- loops


def bare_loop(model, examples, batches, collator, device, precision: str, fused, window: Window, *,
              compile_model=False) -> None:
    params = [p for p in model.parameters()]
    if fused == "plain":  # the original's: one param group, PyTorch's default implementation
        optimizer = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
    else:
        optimizer = model.configure_optimizers(0.01, 5e-5, fused=fused)
    forward = torch.compile(model, dynamic=True) if compile_model else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    timer = window.timer
    model.train()
    try:
        for n, idx in enumerate(batches, start=1):
            with timer.phase("data"):
                cpu = collator([examples[i] for i in idx])
                batch = {k: v.to(device, non_blocking=True) for k, v in cpu.items() if torch.is_tensor(v)}
            with timer.phase("forward"), autocast:
                loss = forward(**batch).loss
            with timer.phase("backward"):
                loss.backward()
            with timer.phase("optimizer"):
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if window.after_step(n):
                break
    finally:
        optimizer.zero_grad(set_to_none=True)
        del optimizer


def train_loop(cfg, window: Window) -> None:
    from mmcot_cli.training.loop import train

    if "timer" not in inspect.signature(train).parameters:  # a tree from before the timer hook: whole run
        summary = train(cfg)  # samples/s over all its steps; no phase split
        window.seconds = summary["steps"] * cfg.batch_size / summary["samples_per_s"]
        window.legacy_steps = summary["steps"]
        return
    try:
        train(cfg, timer=TrainWindow(window))
    except StopBench:
        pass


# --------------------------------------------------------------------------------------------- one result


def batch_plan(examples, cfg, kind: str, budget: int | None, n_steps: int) -> list[list[int]]:
    lengths = [e.length for e in examples]
    sampler = LengthGroupedBatchSampler(lengths, cfg.batch_size, seed=cfg.seed,
                                        group_size=1 if kind == "random" else 50,
                                        max_tokens=budget if kind == "tokens" else None)
    batches = sampler.epoch_batches(0)
    return [batches[i % len(batches)] for i in range(n_steps)]


def measure(args, ctx, stage: str, batch_size: int, variant: str) -> dict:
    device, shape = ctx["device"], ctx["shape"]
    fmt, out_len = STAGES[stage]
    precision = "fp32" if variant in ("original", "bare-fp32") else ctx["precision"]
    tokens = variant.endswith("-tokens")
    budget = args.max_tokens_per_batch or batch_size * (MAX_INPUT + out_len)
    n_steps = args.warmup + args.steps + args.profile_steps
    inputs = ctx["inputs"][stage]
    common = dict(batch_size=batch_size, precision=precision, device=device.type,
                  max_tokens_per_batch=budget if tokens else None, compile=variant == "train-compile")
    n_records = len(inputs["all_examples"]) if tokens else n_steps * batch_size
    cfg = stage_config(stage, *inputs["paths"], Path(ctx["work"]) / f"run-{stage}-{batch_size}-{variant}",
                       ctx["text_model"], limit_train=n_records, **common)
    examples = inputs["all_examples"][:n_records]
    kind = "random" if variant in ("original", "bare-padded") else "tokens" if tokens else "grouped"
    batches = batch_plan(examples, cfg, kind, budget, n_steps)
    fixed = variant in ("original", "bare-padded")
    collator = Collator(pad_token_id=ctx["pad_id"], features_by_qid=inputs["store"].get_batch,
                        pad_input_to=MAX_INPUT if fixed else None, pad_output_to=out_len if fixed else None)
    window = Window(device, args.warmup, args.steps, args.profile_steps)
    model = ctx["model"]
    result = {"shape": ctx["shape_name"], "tokenizer": ctx["tokenizer_name"], "device": device.type, "stage": stage,
              "prompt_format": fmt, "batch_size": batch_size, "variant": variant,
              "precision": precision, "max_tokens_per_batch": budget if tokens else None}
    try:
        if variant.startswith("train"):
            model.to("cpu")  # train() loads its own copy (text_model); free the GPU for it
            if device.type == "cuda":
                torch.cuda.empty_cache()
            train_loop(cfg, window)
        else:
            model.to(device)
            attn = "eager" if variant == "bare-eager" else ctx["attn"]
            set_attention(model, attn)
            fused = "plain" if variant == "original" else (False if variant == "bare-unfused" else
                                                           (True if device.type == "cuda" else None))
            result["attn_implementation"] = attn
            with deterministic_mode(variant == "bare-deterministic", cuda=device.type == "cuda"):
                bare_loop(model, examples, batches, collator, device, precision, fused, window,
                          compile_model=variant == "bare-compile")
    except torch.cuda.OutOfMemoryError:
        result["error"] = "CUDA out of memory"
    except Exception as e:  # one variant failing (an unsupported option on this stack) must not end the run
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    finally:
        with contextlib.suppress(Exception):
            set_attention(model, ctx["attn"])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if "error" not in result:
        result.update(summarize(window, batches, examples, shape, device, fixed, out_len, ctx))
    return result


def summarize(window: Window, batches, examples, shape: ModelShape, device, fixed: bool, out_len: int, ctx) -> dict:
    timed = batches[window.warmup: window.warmup + window.steps]
    if getattr(window, "legacy_steps", None):  # whole-run fallback: every batch of the run
        timed = batches[: window.legacy_steps]
    samples = sum(len(b) for b in timed)
    flops = useful = 0.0
    in_tok = out_tok = real_in = real_out = 0
    for b in timed:
        lin = MAX_INPUT if fixed else max(len(examples[i].input_ids) for i in b)
        lout = out_len if fixed else max(len(examples[i].labels) for i in b)
        flops += step_flops(shape, len(b), lin, lout)
        useful += sum(step_flops(shape, 1, len(examples[i].input_ids), len(examples[i].labels)) for i in b)
        in_tok, out_tok = in_tok + len(b) * lin, out_tok + len(b) * lout
        real_in += sum(len(examples[i].input_ids) for i in b)
        real_out += sum(len(examples[i].labels) for i in b)
    seconds = window.seconds
    peak = ctx["info"]["peak_bf16_tflops"]
    out = {
        "samples_per_s": round(samples / seconds, 3), "ms_per_step": round(1000 * seconds / len(timed), 3),
        "steps_timed": len(timed), "samples_timed": samples,
        "phases_ms": window.phases_ms(),
        "model_tflops_per_s": round(flops / seconds / 1e12, 4), "useful_tflops_per_s": round(useful / seconds / 1e12, 4),
        "pct_of_bf16_peak": round(100 * flops / seconds / 1e12 / peak, 2) if peak else None,
        "padded_tokens_per_sample": round((in_tok + out_tok) / samples, 1),
        "real_tokens_per_sample": round((real_in + real_out) / samples, 1),
        "non_pad_share": round((real_in + real_out) / (in_tok + out_tok), 3),
        "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if device.type == "cuda" else None),
    }
    phases = out["phases_ms"]
    if phases:
        step_ms = sum(phases.values())
        out["host_overhead_pct"] = round(100 * max(phases["other"], 0) / step_ms, 2) if step_ms else None
        out["data_pct"] = round(100 * phases["data"] / step_ms, 2) if step_ms else None
    return out


def set_attention(model, name: str | None) -> None:
    if name and getattr(model.config, "_attn_implementation", None) != name:
        model.set_attn_implementation(name)


# --------------------------------------------------------------------------------------------- the run


def parse_plan(args) -> list[tuple[str, int, list[str]]]:
    """--run STAGE:BATCH:VARIANT,… (repeatable), else every --stage × --batch-size with --variants."""
    specs = args.run or [f"{st}:{b}:{args.variants}" for st in args.stage.split(",") for b in args.batch_size]
    plan = []
    for spec in specs:
        stage, batch, variants = spec.split(":")
        names = [v.strip() for v in variants.split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS] + ([stage] if stage not in STAGES else [])
        if unknown:
            raise SystemExit(f"--run {spec}: unknown {unknown[0]!r} (stages {', '.join(STAGES)}; variants "
                             f"{', '.join(VARIANTS)})")
        plan.append((stage, int(batch), names))
    return plan


def records_needed(plan, stage: str, n_steps: int, unique_lengths: list[int], budget_of) -> int:
    """Copies of the sample's problems so that every variant of `stage` has `n_steps` batches in one epoch."""
    from math import ceil

    copies = 1
    for st, batch, variants in plan:
        if st != stage:
            continue
        copies = max(copies, ceil(n_steps * batch / len(unique_lengths)))
        if any(v.endswith("-tokens") for v in variants):
            k = 1
            while LengthGroupedBatchSampler(unique_lengths * k, batch, max_tokens=budget_of(batch)).batches_per_epoch() \
                    <= n_steps:
                k += 1
            copies = max(copies, k)
    return copies


def prepare_stage(args, ctx, plan, stage: str) -> dict:
    from mmcot_cli.data.prompts import build_prompt
    from mmcot_cli.data.readers.scienceqa import records_from_problems

    fmt, out_len = STAGES[stage]
    tok = ctx["tokenizer"]
    pairs = [build_prompt(r, fmt) for r in records_from_problems(ctx["sample"] / "problems.json")]
    lengths = [len(i) + len(o) for i, o in zip(tok([p[0] for p in pairs], max_length=MAX_INPUT, truncation=True)
                                               ["input_ids"],
                                               tok([p[1] for p in pairs], max_length=out_len, truncation=True)
                                               ["input_ids"])]
    n_steps = args.warmup + args.steps + args.profile_steps
    copies = records_needed(plan, stage, n_steps, lengths,
                            lambda b: args.max_tokens_per_batch or b * (MAX_INPUT + out_len))
    work = Path(ctx["work"]) / stage
    paths = write_inputs(work, ctx["sample"], ctx["shape"], copies)
    cfg = stage_config(stage, *paths, work / "probe", ctx["text_model"], device=ctx["device"].type)
    examples, store = stage_examples(cfg, tok)
    return {"paths": paths, "all_examples": examples, "store": store, "copies": copies}


def scratch_tokenizer(sample: Path):
    """t5-scratch's word-level tokenizer, trained on the sample's stage 1 and stage 2 sources and targets."""
    from mmcot_plugins.scratch_t5 import train_tokenizer

    from mmcot_cli.data.prompts import build_prompt
    from mmcot_cli.data.readers.scienceqa import records_from_problems

    records = records_from_problems(sample / "problems.json")
    return train_tokenizer([t for fmt, _ in STAGES.values() for r in records for t in build_prompt(r, fmt)], 32000)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--stage", default="rationale,answer")
    ap.add_argument("--batch-size", type=int, action="append", help="repeatable (default 8)")
    ap.add_argument("--variants", default="original,bare,train")
    ap.add_argument("--run", action="append", help="STAGE:BATCH:VARIANT,... (repeatable; overrides the three above)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3 on CUDA, 1 on CPU)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--profile-steps", type=int, default=None, help="steps with per-phase syncs (default 5 / 2)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--max-tokens-per-batch", type=int, default=None)
    ap.add_argument("--sample", type=Path, default=find_shared("scienceqa-sample"))
    ap.add_argument("--tokenizer", default=find_shared("reference-checkpoint/checkpoint"),
                    help="a T5 tokenizer directory, or 'scratch' (module docstring)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file, rewritten after every result")
    args = ap.parse_args(argv)
    if args.sample is None or args.tokenizer is None:
        raise SystemExit("the ScienceQA sample / tokenizer were not found in shared/ or ../shared/; pass --sample "
                         "and --tokenizer")
    args.batch_size = args.batch_size or [8]
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.profile_steps = args.profile_steps if args.profile_steps is not None else (5 if cuda else 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = parse_plan(args)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        return run(args, plan, device, Path(args.work or tmp))


def run(args, plan, device: torch.device, work: Path) -> dict:
    from dataclasses import replace

    import transformers

    from mmcot_cli.model.t5_dirs import load_tokenizer

    t_start = time.perf_counter()
    tokenizer = scratch_tokenizer(args.sample) if str(args.tokenizer) == "scratch" else load_tokenizer(args.tokenizer)
    shape = SHAPES[args.shape]
    shape = replace(shape, vocab=shape.vocab or -(-len(tokenizer) // 128) * 128)
    model = build_model(shape, len(tokenizer), device)
    text_model = save_model_dir(model, tokenizer, work / "model")
    info = device_info(device)
    precision = resolve_precision(args.precision, device.type == "cuda")
    report = {"benchmark": "bench_train", "shape": args.shape, "model": shape.to_dict(),
              "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), **info,
              "precision": precision, "attn_implementation": model.config._attn_implementation,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "tokenizer": f"{args.tokenizer} ({len(tokenizer)} pieces)", "sample": str(args.sample),
              "warmup": args.warmup, "steps": args.steps, "profile_steps": args.profile_steps, "results": []}
    ctx = {"device": device, "shape": shape, "tokenizer": tokenizer, "pad_id": tokenizer.pad_token_id, "model": model,
           "attn": model.config._attn_implementation, "info": info, "work": work, "text_model": text_model,
           "precision": precision, "sample": args.sample, "inputs": {}, "shape_name": args.shape,
           "tokenizer_name": ("scratch" if str(args.tokenizer) == "scratch" else
                              f"{Path(args.tokenizer).parent.name}/{Path(args.tokenizer).name}")}
    for stage in dict.fromkeys(st for st, _, _ in plan):
        ctx["inputs"][stage] = prepare_stage(args, ctx, plan, stage)
    for stage, batch, variants in plan:
        for variant in variants:
            t0 = time.perf_counter()
            result = measure(args, ctx, stage, batch, variant)
            result["wall_s"] = round(time.perf_counter() - t0, 1)
            report["results"].append(result)
            report["comparisons"] = comparisons(report["results"])
            report["total_s"] = round(time.perf_counter() - t_start, 1)
            print(json.dumps(result), flush=True)
            if args.out:
                tmp = args.out.with_name(args.out.name + ".tmp")
                tmp.write_text(json.dumps(report, indent=1) + "\n")
                os.replace(tmp, args.out)
    return report


def comparisons(results: list[dict]) -> list[dict]:
    """samples/s ratios per (stage, batch): each variant vs the original's way, and train vs the bare loop."""
    groups: dict[tuple, dict] = defaultdict(dict)
    for r in results:
        if "samples_per_s" in r:
            groups[(r["stage"], r["batch_size"])][r["variant"]] = r["samples_per_s"]
    out = []
    for (stage, batch), sps in groups.items():
        row = {"stage": stage, "batch_size": batch}
        base = sps.get("original")
        for variant, value in sps.items():
            if base and variant != "original":
                row[f"{variant}_vs_original"] = round(value / base, 2)
        for a, b in (("train", "bare"), ("train-tokens", "bare-tokens"), ("train-compile", "bare-compile")):
            if a in sps and b in sps:
                row[f"{a}_vs_{b}"] = round(sps[a] / sps[b], 3)
        out.append(row)
    return out


if __name__ == "__main__":
    main()
