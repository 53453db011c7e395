"""Generation speed in one run: mmcot's `generate_texts` vs a bare T5 control vs the original's way.

Three sides decode the same prompts (random words of a word-level T5 tokenizer, realistic QCM lengths) with the
same weights, a forced number of new tokens (min_new_tokens = max_new_tokens, so every side does equal work):

- mmcot: `mmcot_cli.model.generation.generate_texts` (tokenizes, length-sorted batches, encoder + fusion once,
  decoding with the KV cache), exactly what `mmcot generate` / `ask` / validation run;
- bare_t5: `T5ForConditionalGeneration.generate` of the same shape without fusion, with the KV cache: the
  physical limit of per-token time for this model (no image, nothing of mmcot's);
- original: the reference's decoding (REFERENCE.md §3): no KV cache reuse (its `prepare_inputs_for_generation`
  took `past`, which generate never passed, so every step re-decoded the whole prefix) and the image fusion inside
  `forward`, i.e. at every step. Written here (PerStepFusionModel), not copied; its tokens must equal mmcot's.

For each side: seconds and samples/s at each length, time to first token (a 1-token generation: tokenizing,
encoding, fusion, the first step) and per-token time ((T(N) − T(1)) / (N − 1), per sample). The reference point
for time to first token is one encoder + fusion forward of the same batches. Extra rows: constrained answer
decoding (`--constrain-format`, answer-last: the per-step check is the costliest) and sampling with
`--num-samples K` (K texts per prompt), each as its cost over free greedy decoding at the same length.

Timings are interleaved (side after side, repeat after repeat) and the median is reported: on shared CPUs single
timings are noisy, so compare only figures from one run.

    python benchmarks/bench_generation.py                      # 2 threads, d_model 256, 4+4 layers, ViT 145x1024
    python benchmarks/bench_generation.py --device cuda --d-model 768 --layers 12 --heads 12 --batch-size 16

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import transformers
from mmcot_plugins.scratch_t5 import train_tokenizer
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from mmcot_cli.inference.sampling import Sampling
from mmcot_cli.model.answer_constraint import ANSWER_SENTENCE, AnswerConstraints
from mmcot_cli.model.batching import length_mask, pad_rows
from mmcot_cli.model.fusion import MMCoTForConditionalGeneration
from mmcot_cli.model.generation import decode_generated, generate_texts

TARGETS = {"speedup_vs_original": {64: 8.0, 128: 12.0, 256: 17.0}, "per_token_vs_bare": 1.15,
           "first_token_vs_encode_fusion": 1.15, "constrained_vs_free": 1.1}


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
    """The original's way: the text encoder runs once, the fusion in every forward call, no KV cache."""

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


def word_tokenizer(vocab: int):
    """A word-level T5 tokenizer (mmcot's t5-scratch): words w0 … wN are one token each, plus the answer sentence."""
    words = [f"w{i}" for i in range(vocab)]
    answers = [ANSWER_SENTENCE.format(letter=letter) for letter in "ABCDE"]
    return train_tokenizer([" ".join(words)] + answers, vocab_size=vocab + 200), words


def make_prompts(n: int, words: list[str], min_len: int, max_len: int, image_shape, seed: int):
    """Prompts of min_len..max_len random words (ScienceQA QCM prompts are ~100-300 tokens) and their features."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g).tolist()
    prompts = [" ".join(words[int(i)] for i in torch.randint(0, len(words), (k,), generator=g)) for k in lengths]
    return prompts, torch.randn(n, *image_shape, generator=g)


def padded_batches(tokenizer, prompts, feats, batch_size: int, device):
    """What generate_texts builds: length-sorted (longest first) batches padded to their longest member."""
    enc = tokenizer(prompts, padding=False)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(enc[i]) for i in idx)
        batches.append((idx, pad_rows([enc[i] for i in idx], tokenizer.pad_token_id, width).to(device),
                        length_mask([len(enc[i]) for i in idx], width).to(device), feats[idx].to(device)))
    return order, batches


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Sides:
    """The timed callables: each takes a number of new tokens and returns the decoded texts."""

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.tokenizer, words = word_tokenizer(args.vocab)
        shape = tuple(int(x) for x in args.image_shape.split(","))
        config = T5Config(vocab_size=len(self.tokenizer), d_model=args.d_model, d_kv=args.d_model // args.heads,
                          d_ff=4 * args.d_model, num_layers=args.layers, num_decoder_layers=args.layers,
                          num_heads=args.heads, feed_forward_proj="relu", decoder_start_token_id=0, pad_token_id=0,
                          eos_token_id=1)
        bare_config = T5Config.from_dict(config.to_dict())
        config.mmcot = {"image_shape": list(shape)}
        torch.manual_seed(args.seed)
        dtype = getattr(torch, args.dtype)
        self.model = MMCoTForConditionalGeneration(config).eval().to(device=device, dtype=dtype)
        self.original = PerStepFusionModel(config).eval().to(device=device, dtype=dtype)
        self.original.load_state_dict(self.model.state_dict())
        self.bare = T5ForConditionalGeneration(bare_config).eval().to(device=device, dtype=dtype)
        self.bare.load_state_dict({k: v for k, v in self.model.state_dict().items() if not k.startswith("fusion.")})
        self.prompts, self.feats = make_prompts(args.samples, words, args.min_input, args.max_input, shape, args.seed)
        self.order, self.batches = padded_batches(self.tokenizer, self.prompts, self.feats, args.batch_size, device)
        self.constraints = AnswerConstraints(self.tokenizer, args.constrain_format, [4] * args.samples)

    def mmcot(self, new_tokens: int, **extra):
        return generate_texts(self.model, self.tokenizer, self.prompts, feature_batch=lambda idx: self.feats[idx],
                              batch_size=self.args.batch_size, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              device=self.device, **extra)

    def constrained(self, new_tokens: int):
        return self.mmcot(new_tokens, constraints=self.constraints)

    def sampled(self, new_tokens: int):
        return self.mmcot(new_tokens, sampling=Sampling(num_samples=self.args.num_samples, seed=0).start())

    def _generate(self, model, new_tokens: int, use_cache: bool, fused: bool):
        texts: list = [None] * len(self.prompts)
        with torch.inference_mode():
            for idx, ids, mask, feats in self.batches:
                extra = {"image_features": feats} if fused else {}
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=False, num_beams=1, use_cache=use_cache,
                                     **extra)
                for i, text in zip(idx, decode_generated(self.tokenizer, out)):
                    texts[i] = text
        return texts

    def bare_t5(self, new_tokens: int):
        return self._generate(self.bare, new_tokens, True, False)

    def original_way(self, new_tokens: int):
        return self._generate(self.original, new_tokens, False, True)

    def encode_fusion(self, _new_tokens: int = 0):
        """One encoder + fusion forward of every batch: the floor for time to first token."""
        with torch.inference_mode():
            for _, ids, mask, feats in self.batches:
                self.model.encode(input_ids=ids, attention_mask=mask, image_features=feats)


def timed(fn, new_tokens: int, device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    out = fn(new_tokens)
    _sync(device)
    return time.perf_counter() - start, out


def measure(jobs: dict, new_tokens: int, repeats: int, device) -> tuple[dict, dict]:
    """Interleaved repeats of every job at one length: median seconds per job, and each job's last output."""
    times: dict = {name: [] for name in jobs}
    outs: dict = {}
    for _ in range(repeats):
        for name, fn in jobs.items():
            t, outs[name] = timed(fn, new_tokens, device)
            times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}, outs


def side_row(seconds: float, first: float, new_tokens: int, samples: int) -> dict:
    per_token = (seconds - first) / max(1, new_tokens - 1) / samples
    return {"seconds": round(seconds, 4), "samples_per_s": round(samples / seconds, 3),
            "per_token_ms_per_sample": round(per_token * 1000, 4)}


def run_benchmark(args) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    sides = Sides(args, device)
    main = {"mmcot": sides.mmcot, "bare_t5": sides.bare_t5, "original": sides.original_way}
    extra = {"constrained": sides.constrained, f"num_samples_{args.num_samples}": sides.sampled}
    for fn in (*main.values(), *extra.values(), sides.encode_fusion):  # warm-up (allocator, kernels, first calls)
        fn(2)
    lengths = [int(x) for x in args.new_tokens.split(",")]
    first, _ = measure({**main, "encode_fusion": sides.encode_fusion}, 1, args.repeats, device)
    n = args.samples
    report_first = {name: round(first[name] * 1000, 2) for name in (*main, "encode_fusion")}
    results = []
    for new_tokens in lengths:
        secs, outs = measure({**main, **extra}, new_tokens, args.repeats, device)
        row = {"new_tokens": new_tokens}
        row.update({name: side_row(secs[name], first[name], new_tokens, n) for name in main})
        row["speedup_vs_original"] = round(secs["original"] / secs["mmcot"], 2)
        row["per_token_vs_bare"] = round(row["mmcot"]["per_token_ms_per_sample"]
                                         / row["bare_t5"]["per_token_ms_per_sample"], 3)
        row["identical_to_original"] = outs["mmcot"] == outs["original"]
        row["constrained"] = {"seconds": round(secs["constrained"], 4),
                              "vs_free": round(secs["constrained"] / secs["mmcot"], 3)}
        k = args.num_samples
        row[f"num_samples_{k}"] = {"seconds": round(secs[f"num_samples_{k}"], 4),
                                   "vs_free": round(secs[f"num_samples_{k}"] / secs["mmcot"], 3),
                                   "per_text_vs_free": round(secs[f"num_samples_{k}"] / secs["mmcot"] / k, 3)}
        target = TARGETS["speedup_vs_original"].get(new_tokens)
        row["target_speedup"] = target
        results.append(row)
    return {
        "benchmark": "generation: mmcot generate_texts vs bare T5 generate vs the original's way",
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "model": {"d_model": args.d_model, "layers": args.layers, "heads": args.heads, "vocab": len(sides.tokenizer),
                  "params_m": round(sum(p.numel() for p in sides.model.parameters()) / 1e6, 2),
                  "image_shape": [int(x) for x in args.image_shape.split(",")], "dtype": args.dtype},
        "data": {"samples": n, "batch_size": args.batch_size, "repeats": args.repeats,
                 "input_tokens": [args.min_input, args.max_input], "constrain_format": args.constrain_format,
                 "num_samples": args.num_samples},
        "first_token_ms": report_first,
        "first_token_vs_encode_fusion": round(first["mmcot"] / first["encode_fusion"], 3),
        "targets": {k: ({str(n): v for n, v in t.items()} if isinstance(t, dict) else t) for k, t in TARGETS.items()},
        "results": results,
    }


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000, help="words in the tokenizer")
    ap.add_argument("--image-shape", default="145,1024", help="P,D of the image features (ViT: 145,1024)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--min-input", type=int, default=120, help="prompt tokens (QCM prompts are ~100-300)")
    ap.add_argument("--max-input", type=int, default=260)
    ap.add_argument("--new-tokens", default="64,128,256", help="comma-separated forced rationale lengths")
    ap.add_argument("--constrain-format", default="QCM-LEA", help="an answer-giving format for the constrained row")
    ap.add_argument("--num-samples", type=int, default=4, help="K of the sampling row (generate --num-samples)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed runs per side (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (0: torch's choice)")
    return ap.parse_args(argv)


def main() -> None:
    print(json.dumps(run_benchmark(parse_args()), indent=2))


if __name__ == "__main__":
    main()
