"""Training throughput: this project's collation vs the reference's fixed-length padding.

Both arms train the same random-init T5 (t5-small shape by default) on the same examples, with the same optimizer
(AdamW) and batch size, on prompts built from the real ScienceQA sample (../shared/scienceqa-sample), so the
length distribution is real:

- reference: every source padded to 512 tokens and every target to the stage maximum (512 rationale / 64 answer),
  batches in shuffled order (what `padding="max_length"` in the original code does);
- mmcot: each batch padded to its own longest source and target, batches grouped by length
  (`LengthGroupedBatchSampler` + `Collator`, exactly what `mmcot train` uses).

Prints one JSON object: samples/s and the share of non-pad token positions per arm, and the speed-up.

    python benchmarks/bench_collation.py                      # both stages, t5-small shape, 64 examples
    python benchmarks/bench_collation.py --stage rationale --model tiny --examples 32
    python benchmarks/bench_collation.py --tokenizer /path/to/t5-small   # a real T5 SentencePiece tokenizer
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmcot_cli.data.prompts import STAGE_PRESETS  # noqa: E402
from mmcot_cli.model.batching import Collator, LengthGroupedBatchSampler, tokenize_pairs  # noqa: E402

SAMPLE = REPO.parent / "shared" / "scienceqa-sample"
STAGES = {stage: (p.prompt_format, p.max_output_len) for stage, p in STAGE_PRESETS.items()}
MODELS = {  # T5 shapes (vocab 32128 as t5-small, whatever the tokenizer, so the output layer costs the same)
    "small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    "tiny": dict(d_model=128, d_kv=32, d_ff=512, num_layers=2, num_heads=4),
}


def load_pairs(stage: str, n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    from mmcot_cli.data.prompts import build_prompt
    from mmcot_cli.data.readers.scienceqa import records_from_problems

    records = records_from_problems(SAMPLE / "problems.json")
    fmt = STAGES[stage][0]
    pairs = [(str(r["qid"]),) + build_prompt(r, fmt) for r in records]
    rng = random.Random(seed)
    # More examples than the sample has: cycle through it (the length distribution stays the sample's).
    picked = [pairs[i % len(pairs)] for i in range(n)]
    rng.shuffle(picked)
    return [p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked]


def make_tokenizer(path: str | None, texts: list[str]):
    if path:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path), path
    from mmcot_plugins.scratch_t5 import train_tokenizer

    return train_tokenizer(texts, vocab_size=8000), "t5-scratch (word-level, trained on the sample)"


def build_model(size: str, vocab: int):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=max(vocab, 32128), dropout_rate=0.1, feed_forward_proj="relu", pad_token_id=0,
                   eos_token_id=1, decoder_start_token_id=0, **MODELS[size])
    return T5ForConditionalGeneration(cfg)


def run_arm(model_state, size, vocab, examples, batches, collator, warmup: int = 1) -> dict:
    model = build_model(size, vocab)
    model.load_state_dict(model_state)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    real = padded = 0
    seconds = 0.0
    samples = 0
    for step, idx in enumerate(batches):
        batch = collator([examples[i] for i in idx])
        t0 = time.perf_counter()
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if step >= warmup:  # the first step pays one-off allocation costs
            seconds += dt
            samples += len(idx)
            real += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            padded += batch["input_ids"].numel() + batch["labels"].numel()
    return {"samples_per_s": round(samples / seconds, 3), "timed_samples": samples, "seconds": round(seconds, 2),
            "non_pad_share": round(real / padded, 4), "tokens_per_batch": round(padded / max(1, len(batches) - warmup))}


def bench_stage(stage: str, args) -> dict:
    qids, sources, targets = load_pairs(stage, args.examples, args.seed)
    tokenizer, tok_name = make_tokenizer(args.tokenizer, sources + targets)
    out_max = STAGES[stage][1]
    examples = tokenize_pairs(tokenizer, qids, sources, targets, 512, out_max)
    vocab = len(tokenizer)
    state = build_model(args.model, vocab).state_dict()
    bs = args.batch_size

    # Reference: shuffled order, fixed lengths. Labels use -100 here too; the loss masking does not change cost.
    order = list(range(len(examples)))
    random.Random(args.seed).shuffle(order)
    ref_batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    ref = run_arm(state, args.model, vocab, examples, ref_batches,
                  Collator(pad_token_id=tokenizer.pad_token_id, pad_input_to=512, pad_output_to=out_max))

    sampler = LengthGroupedBatchSampler([e.length for e in examples], bs, seed=args.seed)
    ours = run_arm(state, args.model, vocab, examples, sampler.epoch_batches(0),
                   Collator(pad_token_id=tokenizer.pad_token_id))
    in_lens = sorted(len(e.input_ids) for e in examples)
    out_lens = sorted(len(e.labels) for e in examples)
    return {
        "prompt_format": STAGES[stage][0],
        "max_output_len": out_max,
        "tokenizer": tok_name,
        "input_tokens": {"mean": round(sum(in_lens) / len(in_lens), 1), "median": in_lens[len(in_lens) // 2],
                         "max": in_lens[-1]},
        "target_tokens": {"mean": round(sum(out_lens) / len(out_lens), 1), "median": out_lens[len(out_lens) // 2],
                          "max": out_lens[-1]},
        "reference_fixed_padding": ref,
        "mmcot_dynamic_length_grouped": ours,
        "speedup": round(ours["samples_per_s"] / ref["samples_per_s"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=["rationale", "answer", "both"], default="both")
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--examples", type=int, default=64, help="training examples per arm (cycled from the sample)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tokenizer", default=None, help="local tokenizer dir (default: t5-scratch on the sample)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (SAMPLE / "problems.json").is_file():
        sys.exit(f"benchmark needs the ScienceQA sample at {SAMPLE}")
    if args.threads:
        torch.set_num_threads(args.threads)
    stages = ["rationale", "answer"] if args.stage == "both" else [args.stage]
    result = {
        "benchmark": "training collation: dynamic padding + length grouping vs fixed 512/stage-max padding",
        "model": f"random-init T5, {args.model} shape {MODELS[args.model]}",
        "batch_size": args.batch_size, "examples": args.examples, "device": "cpu",
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "stages": {s: bench_stage(s, args) for s in stages},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
