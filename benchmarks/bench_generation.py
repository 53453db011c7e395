"""Rationale-generation throughput: fuse once + KV cache (this project) vs the reference's decoding.

The reference (REFERENCE.md §3) decoded without a working KV cache (its `prepare_inputs_for_generation` took
`past`, which generate never passed, so every step re-decoded the whole prefix) and, in its first release, applied
the image fusion inside `forward`, i.e. at every decoding step. The baseline here emulates exactly that: the same
weights, a model variant whose fusion runs inside every decoder call, and `use_cache=False`.

Both sides decode the same padded batches of the same random-init model (a fixed number of new tokens via
min_new_tokens = max_new_tokens, so both do equal work) and must produce identical tokens.

    python benchmarks/bench_generation.py                 # defaults: CPU-friendly small model
    python benchmarks/bench_generation.py --device cuda --d-model 768 --layers 12 --heads 12 --batch-size 16

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from mmcot_cli.model.fusion import MMCoTForConditionalGeneration


class _TextEncoder(torch.nn.Module):
    """The plain T5 encoder for generate(): drops image_features (the baseline fuses later, per step)."""

    main_input_name = "input_ids"

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, "_model", model)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, image_features=None, **kwargs):
        kwargs.pop("return_dict", None)
        return self._model.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                   **kwargs)


class PerStepFusionModel(MMCoTForConditionalGeneration):
    """Reference-style decoding: the text encoder runs once, but the fusion runs in every forward call."""

    def get_encoder(self, modality=None):
        return _TextEncoder(self) if modality is None else super().get_encoder(modality)

    def forward(self, input_ids=None, attention_mask=None, image_features=None, encoder_outputs=None, **kwargs):
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        fused = self.fuse(encoder_outputs.last_hidden_state, image_features)
        return T5ForConditionalGeneration.forward(
            self, attention_mask=attention_mask, encoder_outputs=BaseModelOutput(last_hidden_state=fused), **kwargs)

    def prepare_inputs_for_generation(self, *args, **kwargs):
        # Keep image_features in every step's inputs (the reference re-attended the image each step).
        return T5ForConditionalGeneration.prepare_inputs_for_generation(self, *args, **kwargs)


def make_batches(n: int, batch_size: int, vocab: int, min_len: int, max_len: int, image_shape, seed: int):
    """Length-sorted batches of random prompts with realistic ScienceQA QCM lengths, padded per batch."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g).tolist()
    lengths.sort(reverse=True)
    batches = []
    for start in range(0, n, batch_size):
        chunk = lengths[start:start + batch_size]
        width = max(chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, length in enumerate(chunk):
            ids[row, :length] = torch.randint(3, vocab, (length,), generator=g)
            ids[row, length - 1] = 1  # </s>
            mask[row, :length] = 1
        feats = torch.randn(len(chunk), *image_shape, generator=g)
        batches.append((ids, mask, feats))
    return batches


def run(model, batches, new_tokens: int, use_cache: bool, device) -> tuple[float, list[torch.Tensor]]:
    outs = []
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        for ids, mask, feats in batches:
            outs.append(model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                       image_features=feats.to(device), max_new_tokens=new_tokens,
                                       min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                                       use_cache=use_cache).cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--image-shape", default="100,256", help="P,D of the image features (detr: 100,256)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--min-input", type=int, default=120, help="prompt tokens (QCM prompts are ~100-300)")
    ap.add_argument("--max-input", type=int, default=260)
    ap.add_argument("--new-tokens", default="128,192", help="comma-separated rationale lengths to measure")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (best is reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice; "
                    "1 avoids thread thrashing on small shared CPUs)")
    args = ap.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    image_shape = tuple(int(x) for x in args.image_shape.split(","))
    config = T5Config(vocab_size=args.vocab, d_model=args.d_model, d_kv=args.d_model // args.heads,
                      d_ff=4 * args.d_model, num_layers=args.layers, num_decoder_layers=args.layers,
                      num_heads=args.heads, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    config.mmcot = {"image_shape": list(image_shape)}
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    ours = MMCoTForConditionalGeneration(config).eval().to(device=device, dtype=dtype)
    baseline = PerStepFusionModel(config).eval().to(device=device, dtype=dtype)
    baseline.load_state_dict(ours.state_dict())
    batches = make_batches(args.samples, args.batch_size, args.vocab, args.min_input, args.max_input, image_shape,
                           args.seed)
    run(ours, batches[:1], 4, True, device)  # warm-up (allocator, kernels)
    run(baseline, batches[:1], 4, False, device)

    results = []
    for new_tokens in (int(x) for x in args.new_tokens.split(",")):
        # Interleaved repeats, best time of each: shared CPUs make single timings noisy.
        times_ours, times_base = [], []
        for _ in range(args.repeats):
            t, out_ours = run(ours, batches, new_tokens, True, device)
            times_ours.append(t)
            t, out_base = run(baseline, batches, new_tokens, False, device)
            times_base.append(t)
        t_ours, t_base = min(times_ours), min(times_base)
        results.append({
            "new_tokens": new_tokens,
            "fuse_once_kv_cache": {"seconds": round(t_ours, 3), "samples_per_s": round(args.samples / t_ours, 3),
                                   "all_seconds": [round(t, 3) for t in times_ours]},
            "reference_per_step_fusion_no_cache": {"seconds": round(t_base, 3),
                                                   "samples_per_s": round(args.samples / t_base, 3),
                                                   "all_seconds": [round(t, 3) for t in times_base]},
            "speedup": round(t_base / t_ours, 2),
            "identical_tokens": all(torch.equal(a, b) for a, b in zip(out_ours, out_base)),
        })
    print(json.dumps({
        "benchmark": "rationale generation samples/s",
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"),
        "model": {"d_model": args.d_model, "layers": args.layers, "heads": args.heads, "vocab": args.vocab,
                  "params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 2),
                  "image_shape": list(image_shape), "dtype": args.dtype},
        "data": {"samples": args.samples, "batch_size": args.batch_size, "repeats": args.repeats,
                 "input_tokens": [args.min_input, args.max_input]},
        "target_speedup": 8.0,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
