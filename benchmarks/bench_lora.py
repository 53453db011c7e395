"""LoRA and gradient checkpointing on a Qwen2.5-0.5B-shaped decoder-only model, side by side in one run: training
samples/s, peak training memory and trainable parameters for full fine-tuning vs LoRA r=16 vs LoRA r=16 +
`--gradient-checkpointing`, at one batch.

The model is mmcot's own training model: a random-init Qwen2ForCausalLM of Qwen2.5-0.5B's shape (hidden 896,
MLP 4864, 14 heads with 2 KV heads, vocabulary 151 936, tied embeddings) in a CausalFusionLM with the paper's gated
fusion at the middle layer (image features 145×1024, ViT-L/14 patches), LoRA injected as `mmcot train --lora-r 16`
does (mmcot_cli.model.adapters.lora: every linear layer of the LM, fusion trained in full), the same AdamW, loss
on the target tokens only (the last --target-len tokens of each row), gradient clipping.

- trainable parameters: counted at the full 24-layer shape (built on the meta device, no memory) and at the
  measured shape;
- samples/s and peak memory: measured at --layers (default 2 on CPU to keep the run under ~2 minutes: say so when
  quoting; 24 is the real depth). Each variant runs in a fresh process. Peak memory on CUDA is
  torch.cuda.max_memory_allocated; on CPU it is the peak resident set size above the process's RSS before the
  model was built (weights + gradients + optimizer state + activations + allocator slack). The activation share
  is the peak less the static part (fp32 weights + gradient and two AdamW moments per trainable weight).

At 2 layers the embedding/head matrix (136 M of the 0.5B parameters) and its logits dominate, so the activation
saving of checkpointing is small there; the 512-token, 24-layer figures need a GPU:

    python benchmarks/bench_lora.py                                   # CPU: 2 layers, batch 2 × 256 tokens
    python benchmarks/bench_lora.py --device cuda --layers 24 --seq-len 512 --batch-size 8 --steps 5

Prints one JSON object (--out FILE also writes it).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

QWEN25_05B = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
              "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True,
              "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6}
IMAGE_SHAPE = (145, 1024)
VARIANTS = {"full": {"lora": False, "checkpointing": False}, "lora_r16": {"lora": True, "checkpointing": False},
            "lora_r16_checkpointing": {"lora": True, "checkpointing": True}}
TARGETS = {"lora_trainable_share_max": 0.05, "lora_peak_memory_saving_min": 0.40,
           "checkpointing_activation_saving_min": 0.30}  # the issue's: ≥ 30 % off activations, at 512 tokens


def build(layers: int, lora: bool, device: str = "cpu"):
    """mmcot's training model of the Qwen2.5-0.5B shape (random init) with `layers` decoder layers."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from mmcot_cli.model.adapters.lora import apply_lora
    from mmcot_cli.model.causal_lm import CausalFusionLM

    config = Qwen2Config(**{**QWEN25_05B, "num_hidden_layers": layers})
    with torch.device(device):
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        net = CausalFusionLM(lm, IMAGE_SHAPE, fusion="gated")
        if lora:
            apply_lora(net, r=16, alpha=32.0, dropout=0.0, targets="all-linear")
    return net


def counts(net) -> dict:
    from mmcot_cli.model.text.runs import parameter_counts

    out = parameter_counts(net)
    out["fusion"] = sum(p.numel() for p in net.fusion.parameters())
    out["trainable_share"] = round(out["trainable"] / out["total"], 5)
    return out


def _rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() // 1024


def run_variant(name: str, args) -> dict:
    """One variant in this (fresh) process: build, then warmup + timed optimizer steps at one batch."""
    from mmcot_cli.training.runtime import enable_gradient_checkpointing

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cuda = args.device == "cuda"
    before = _rss_kb()
    spec = VARIANTS[name]
    net = build(args.layers, spec["lora"]).to(args.device).train()
    if spec["checkpointing"]:
        enable_gradient_checkpointing(net)
    optimizer = net.configure_optimizers(0.01, 1e-4, fused=True if cuda else None)
    b, t = args.batch_size, args.seq_len
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, QWEN25_05B["vocab_size"], (b, t), generator=gen)
    labels = ids.clone()
    labels[:, : t - args.target_len] = -100  # the loss counts the target tokens only
    fusion_mask = torch.zeros(b, t, dtype=torch.bool)
    fusion_mask[:, : t - args.target_len] = True  # the prompt is fused
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "fusion_mask": fusion_mask,
             "image_features": torch.randn(b, *IMAGE_SHAPE, generator=gen)}
    batch = {k: v.to(args.device) for k, v in batch.items()}
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and args.bf16):
            loss = net(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    per_step = sorted(times)[len(times) // 2]
    params = counts(net)
    # fp32 weights, plus a gradient and AdamW's two moments per trainable weight; the rest of the peak is
    # activations (and, on CPU, allocator slack)
    static = (4 * params["total"] + 12 * params["trainable"]) / 2**20
    return {"variant": name, "parameters": params, "peak_memory_mib": round(peak, 1),
            "static_memory_mib": round(static, 1), "activation_memory_mib": round(peak - static, 1),
            "seconds_per_step": round(per_step, 3), "samples_per_s": round(b / per_step, 3),
            "final_loss": round(float(loss), 4)}


def _child(name: str, layers: int) -> dict:
    """One variant at `layers` decoder layers, in a fresh process."""
    cmd = [sys.executable, __file__, "--variant", name, *sys.argv[1:], "--layers", str(layers)]  # the last --layers wins
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_lora: variant {name} ({layers} layers) failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def activation_parts(shallow: dict, deep: dict, layers: int, deeper: int) -> dict:
    """Activation memory (peak less weights, gradients and optimizer state) of one variant at two depths, parted
    into what each decoder layer adds and what does not grow with depth (the logits and loss, the fusion)."""
    per_layer = (deep["activation_memory_mib"] - shallow["activation_memory_mib"]) / (deeper - layers)
    return {"per_layer_mib": round(per_layer, 2),
            "outside_layers_mib": round(shallow["activation_memory_mib"] - layers * per_layer, 1),
            "layers_mib_at_measured_depth": round(layers * per_layer, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--layers", type=int, default=2, help="decoder layers measured (24 = the real depth)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--target-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1, help="timed optimizer steps (the median is reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="CUDA: bf16 autocast (weights stay fp32)")
    ap.add_argument("--deeper", type=int, default=None, help="a second depth the LoRA variants also run at "
                    "(default: twice --layers), to part the activations that grow with the layers (what "
                    "checkpointing recomputes) from those that do not (the logits, loss and fusion)")
    ap.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one variant, in a child
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return
    started = time.perf_counter()
    deeper = args.deeper or 2 * args.layers
    if deeper <= args.layers:
        sys.exit(f"bench_lora: --deeper {deeper} must be more than --layers {args.layers}")
    rows = {name: _child(name, args.layers) for name in VARIANTS}  # each in a fresh process: its own peak
    deep = {name: _child(name, deeper) for name in ("lora_r16", "lora_r16_checkpointing")}
    full_shape = {name: counts(build(24, spec["lora"], device="meta")) for name, spec in VARIANTS.items()
                  if name != "lora_r16_checkpointing"}
    full, lora, ckpt = (rows[n] for n in VARIANTS)
    saving = 1 - lora["peak_memory_mib"] / full["peak_memory_mib"]
    further = 1 - ckpt["peak_memory_mib"] / lora["peak_memory_mib"]
    activations = 1 - ckpt["activation_memory_mib"] / lora["activation_memory_mib"]
    parts = {name: activation_parts(rows[name], deep[name], args.layers, deeper) for name in deep}
    per_layer = {name: part["per_layer_mib"] for name, part in parts.items()}
    layer_saving = 1 - per_layer["lora_r16_checkpointing"] / per_layer["lora_r16"]
    at_24 = {name: part["outside_layers_mib"] + 24 * part["per_layer_mib"] for name, part in parts.items()}
    saving_24 = 1 - at_24["lora_r16_checkpointing"] / at_24["lora_r16"]
    logits_mib = args.batch_size * args.seq_len * QWEN25_05B["vocab_size"] * 4 / 2**20
    result = {
        "benchmark": "bench_lora", "model": "Qwen2.5-0.5B shape, random init, gated fusion (145x1024 features)",
        "measured_layers": args.layers, "real_layers": 24, "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "threads": args.threads, "batch_size": args.batch_size, "seq_len": args.seq_len,
        "target_len": args.target_len, "steps": args.steps, "bf16": args.bf16,
        "torch": torch.__version__, "variants": rows,
        "parameters_at_24_layers": {"full": full_shape["full"], "lora_r16": full_shape["lora_r16"]},
        "lora_trainable_share_at_24_layers": full_shape["lora_r16"]["trainable_share"],
        "lora_peak_memory_saving": round(saving, 3),
        "checkpointing_further_saving": round(further, 3),
        "checkpointing_activation_saving": round(activations, 3),
        # activations parted by depth (measured at --layers and --deeper): per decoder layer, and outside the
        # layers (logits B×T×vocab in fp32, their log-softmax and gradient, loss, fusion: checkpointing keeps them)
        "deeper_layers": deeper, "variants_deeper": deep, "activation_parts": parts,
        "logits_tensor_mib": round(logits_mib, 1),
        "checkpointing_layer_activation_saving": round(layer_saving, 3),
        "activation_memory_mib_at_24_layers_estimated": {k: round(v, 1) for k, v in at_24.items()},
        "checkpointing_activation_saving_at_24_layers_estimated": round(saving_24, 3),
        "lora_speed_vs_full": round(lora["samples_per_s"] / full["samples_per_s"], 3),
        "checkpointing_speed_vs_lora": round(ckpt["samples_per_s"] / lora["samples_per_s"], 3),
        "targets": TARGETS,
        "meets": {"lora_trainable_share": full_shape["lora_r16"]["trainable_share"]
                  <= TARGETS["lora_trainable_share_max"],
                  "lora_peak_memory_saving": saving >= TARGETS["lora_peak_memory_saving_min"],
                  "checkpointing_activation_saving": activations >= TARGETS["checkpointing_activation_saving_min"],
                  "checkpointing_layer_activation_saving": layer_saving
                  >= TARGETS["checkpointing_activation_saving_min"],
                  "checkpointing_activation_saving_at_24_layers_estimated": saving_24
                  >= TARGETS["checkpointing_activation_saving_min"]},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
