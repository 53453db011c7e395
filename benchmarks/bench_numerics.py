"""What the portable CPU kernels cost, and that they give the same bits: native vs portable, side by side.

`mmcot demo` and `mmcot train --deterministic` on a CPU pin ATen's AVX2 kernels, MKL's COMPATIBLE branch and
oneDNN's AVX2 cap (mmcot_cli.model.precision.pin_cpu_numerics) so a seed gives the same numbers on every x86-64
CPU. This benchmark measures, in fresh processes (the kernels are chosen at a process's first tensor op), rounds
alternating native and portable:

- train     the demo's T5 (d_model 128, 2+2 layers, 4 heads, vocabulary 244, tied head) at the demo's batch (32 ×
            96 input / 48 target tokens), forward + backward + AdamW, one thread (the demo's pipelines): samples/s;
- generate  greedy decoding of 48 new tokens for 64 prompts with the KV cache, one thread: tokens/s;
- bits      the trained weights' SHA-256 under each variant and under forced other kernels
            (ATEN_CPU_CAPABILITY=default, MKL_ENABLE_INSTRUCTIONS=AVX2): portable is one hash, native is not;
- demo      (`--demo quick|default|tiny`) the whole `mmcot demo` with the portable kernels vs `--native-kernels`,
            wall seconds.

    python benchmarks/bench_numerics.py                     # train, generate, bits: ~2 min on 2 cores
    python benchmarks/bench_numerics.py --demo quick        # + two quick demos per round
    python benchmarks/bench_numerics.py --parts             # + each setting alone: which one costs

Prints one JSON object on one line (per-round figures, medians, portable ÷ native ratios, the CPU and its flags).
With the default --steps, `bits.portable.default` is comparable between machines: the same hash on another CPU
is the cross-machine check (benchmarks/gpu_check.sh runs it on the GPU machine's CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")
FORCED = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# --parts: one of the portable settings at a time, to see which costs what
PARTS = {"aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"}, "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"},
         "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}


def workload(steps: int, new_tokens: int) -> dict:
    """Runs in the child: pin (portable) or not, then time training and generation; return figures + hash."""
    import torch

    record = None
    if os.environ.get("BENCH_PORTABLE") == "1":
        from mmcot_cli.model.precision import pin_cpu_numerics

        record = pin_cpu_numerics()
    from transformers import T5Config, T5ForConditionalGeneration

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=244, d_model=128, d_ff=512, d_kv=32, num_layers=2, num_decoder_layers=2, num_heads=4,
                   dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0,
                   pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [(torch.randint(2, 244, (32, 96)), torch.randint(2, 244, (32, 48))) for _ in range(4)]
    for ids, labels in batches[:1]:  # warm-up step (allocator, kernels' first use)
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    t = time.perf_counter()
    for step in range(steps):
        ids, labels = batches[step % len(batches)]
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    train_s = time.perf_counter() - t
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()

    model.eval()
    prompts = torch.randint(2, 244, (64, 96))
    with torch.no_grad():
        model.generate(input_ids=prompts[:8], max_new_tokens=4, min_new_tokens=4, do_sample=False)
        t = time.perf_counter()
        model.generate(input_ids=prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        gen_s = time.perf_counter() - t
    return {"train_samples_per_s": round(32 * steps / train_s, 2),
            "generate_tokens_per_s": round(64 * new_tokens / gen_s, 1),
            "weights_sha256": weights[:16], "capability": torch.backends.cpu.get_cpu_capability(),
            "pinned": (record or {}).get("pinned", False)}


def child(variant: str, steps: int, new_tokens: int, forced: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV}
    env.update(BENCH_PORTABLE="1" if variant == "portable" else "0", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins")]), **(FORCED if forced else {}),
               **PARTS.get(variant, {}))
    code = (f"import json, sys; sys.path[:0] = [{str(REPO / 'benchmarks')!r}]; from bench_numerics import workload; "
            f"print(json.dumps(workload({steps}, {new_tokens})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit(f"{variant}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def demo_seconds(variant: str, size: str, where: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins")]))
    args = [sys.executable, "-m", "mmcot_cli", "--quiet", "demo", "--out", str(where / variant), "--json"]
    args += [] if size == "default" else [f"--{size}"]
    args += ["--native-kernels"] if variant == "native" else []
    t = time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=7200)
    if out.returncode:
        raise SystemExit(f"demo {variant}: {out.stderr[-2000:]}")
    return round(time.perf_counter() - t, 1)


def cpu() -> dict:
    info = {"cpu_count": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = text.splitlines()
        info["model"] = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags"))
        info["vector_flags"] = sorted(f for f in flags if f.startswith(("avx", "amx")))
    except (OSError, StopIteration):
        pass
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--demo", choices=("tiny", "quick", "default"), default=None)
    ap.add_argument("--parts", action="store_true", help="also time each portable setting alone")
    args = ap.parse_args()
    variants = ("native", "portable", *(PARTS if args.parts else ()))

    rounds: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row = {}
            for variant in variants if r % 2 == 0 else variants[::-1]:
                row[variant] = child(variant, args.steps, args.new_tokens)
                if args.demo and variant in ("native", "portable"):
                    row[variant]["demo_s"] = demo_seconds(variant, args.demo, Path(tmp) / f"r{r}")
            rounds.append(row)
            print(json.dumps({"round": r, **row}), file=sys.stderr)
        forced = {v: child(v, args.steps, args.new_tokens, forced=True) for v in ("native", "portable")}

    def median(variant: str, key: str) -> float | None:
        values = [row[variant][key] for row in rounds if key in row[variant]]
        return statistics.median(values) if values else None

    keys = ["train_samples_per_s", "generate_tokens_per_s"] + (["demo_s"] if args.demo else [])
    medians = {v: {k: median(v, k) for k in keys} for v in variants}
    nat, por = medians["native"], medians["portable"]
    cost = {"train_time": round(nat["train_samples_per_s"] / por["train_samples_per_s"], 2),
            "generate_time": round(nat["generate_tokens_per_s"] / por["generate_tokens_per_s"], 2)}
    for part in PARTS if args.parts else ():
        cost[f"{part}_train_time"] = round(nat["train_samples_per_s"] / medians[part]["train_samples_per_s"], 2)
        cost[f"{part}_generate_time"] = round(nat["generate_tokens_per_s"] / medians[part]["generate_tokens_per_s"], 2)
    if args.demo:
        cost[f"demo_{args.demo}_time"] = round(medians["portable"]["demo_s"] / medians["native"]["demo_s"], 2)
    bits = {v: {"default": rounds[0][v]["weights_sha256"], "forced_other_kernels": forced[v]["weights_sha256"],
                "same": rounds[0][v]["weights_sha256"] == forced[v]["weights_sha256"]} for v in ("native", "portable")}
    import torch

    print(json.dumps({"bench": "numerics", "torch": torch.__version__, "cpu": cpu(), "threads": 1,
                      "steps": args.steps, "new_tokens": args.new_tokens, "rounds": rounds, "median": medians,
                      "portable_over_native": cost, "bits": bits, "forced": FORCED}))


if __name__ == "__main__":
    main()
