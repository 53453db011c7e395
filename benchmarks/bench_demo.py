"""Run the full offline demo and print one JSON object: multimodal vs its text-only baseline (same run, same data,
same schedule), the chance level, rationale ROUGE-L, and wall time per stage.

    python benchmarks/bench_demo.py [--quick] [--out DIR] [--backbone patches] [--seed 0]

The expected outcome (docs/DEMO.md): multimodal IMG accuracy ≥ 90, text-only IMG within ~10 points of chance,
multimodal rationale ROUGE-L clearly above text-only. `meets_expected_outcome` checks exactly that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the --quick size instead of the default")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    parser.add_argument("--backbone", default="patches")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from mmcot_cli import progress
    from mmcot_cli.demo.run import DemoConfig, run_demo

    progress.set_enabled(False)
    out = args.out or tempfile.mkdtemp(prefix="mmcot-bench-demo-")
    start = time.perf_counter()
    r = run_demo(DemoConfig(out=out, size="quick" if args.quick else "default", backbone=args.backbone,
                            seed=args.seed))
    wall = time.perf_counter() - start

    def pick(mode: str) -> dict:
        s = r[mode]
        return {
            "acc_has_image": s["acc_has_image"], "acc_has_text": s["acc_has_text"],
            "acc_no_context": s["acc_no_context"], "acc_average": s["acc_average"], "num_fail": s["num_fail"],
            "rationale_rouge_l": s["rationale"]["rouge_l"],
            "rationale_rouge_l_image_questions": r["rationale_image_questions"][mode]["rouge_l"],
            "seconds": r["seconds"][mode],
        }

    mm, txt = pick("multimodal"), pick("text_only")
    chance_img = r["chance"]["acc_has_image"]
    result = {
        "size": "quick" if args.quick else "default",
        "backbone": args.backbone,
        "benchmark": {k: r["benchmark"][k] for k in ("count", "images", "splits")},
        "test_image_questions": r["multimodal"]["counts"]["acc_has_image"]["total"],
        "multimodal": mm,
        "text_only_baseline": txt,
        "chance": {"acc_has_image": chance_img, "acc_average": r["chance"]["acc_average"]},
        "img_gain_over_text_only": round(mm["acc_has_image"] - txt["acc_has_image"], 2),
        "text_only_img_minus_chance": round(txt["acc_has_image"] - chance_img, 2),
        "rouge_l_gain": round(mm["rationale_rouge_l"] - txt["rationale_rouge_l"], 2),
        "meets_expected_outcome": bool(mm["acc_has_image"] >= 90 and abs(txt["acc_has_image"] - chance_img) <= 10
                                       and mm["rationale_rouge_l"] > txt["rationale_rouge_l"] + 5),
        "seconds_total": round(wall, 1),
        "seconds_setup": {k: v for k, v in r["seconds"].items() if not isinstance(v, dict)},
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "out": out,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
