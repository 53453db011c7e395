"""Images/s of batched extraction (DataLoader workers + batches, `mmcot_cli.features.extract.extract`) vs the original's
one-image-at-a-time loop (open, preprocess, forward with batch 1), on the same images and backbone.

    python benchmarks/bench_extract.py --backbone resnet --random-init --images 64
    python benchmarks/bench_extract.py --backbone vit --random-init --images 32 --batch-size 16 --workers 4

Images: the real ScienceQA sample images (../shared/scienceqa-sample/images), cycled to --images items, or
generated PNGs when the sample is absent. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmcot_cli.data.images import load_rgb
from mmcot_cli.features.extract import ExtractConfig, default_workers, extract
from mmcot_cli.registry import manager as plugins
from mmcot_cli.registry.hookspecs import VisionBuildOptions

SAMPLE_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "scienceqa-sample" / "images"


def image_records(n: int, tmp: Path) -> list[dict]:
    paths = sorted(SAMPLE_IMAGES.glob("*/image.png")) if SAMPLE_IMAGES.is_dir() else []
    if not paths:
        rng = np.random.default_rng(0)
        for i in range(min(n, 16)):
            p = tmp / f"gen{i}.png"
            Image.fromarray(rng.integers(0, 256, (300 + 10 * i, 400, 3), dtype=np.uint8)).save(p)
            paths.append(p)
    return [{"qid": str(i), "image_paths": [str(paths[i % len(paths)])]} for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet")
    ap.add_argument("--variant")
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        records = image_records(args.images, Path(tmp))
        options = VisionBuildOptions(variant=args.variant, random_init=args.random_init, device=args.device)

        # Baseline: the original's way, one image at a time in the main process.
        encoder = plugins.get_vision_backbone(args.backbone).build(options)
        encoder.encode(torch.stack([encoder.preprocess(load_rgb(records[0]["image_paths"][0]))]))  # warm-up
        t = time.perf_counter()
        for rec in records:
            x = encoder.preprocess(load_rgb(rec["image_paths"][0]))[None]
            encoder.encode(x).to(torch.float16).cpu()
        loop_s = time.perf_counter() - t
        del encoder

        # Batched: the library path; its summary times the image loop without the model build.
        cfg = ExtractConfig(backbone=args.backbone, out=str(Path(tmp) / "store"), records={"bench": records},
                            splits=("bench",), batch_size=args.batch_size, workers=args.workers,
                            device=args.device, random_init=args.random_init, variant=args.variant)
        summary = extract(cfg)
        batched_s = len(records) / summary["images_per_second"]

    n = len(records)
    print(json.dumps({
        "backbone": args.backbone, "variant": args.variant, "images": n, "device": args.device,
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "one_at_a_time": {"seconds": round(loop_s, 3), "images_per_s": round(n / loop_s, 2)},
        "batched": {"seconds": round(batched_s, 3), "images_per_s": round(n / batched_s, 2),
                    "batch_size": args.batch_size, "workers": args.workers},
        "speedup": round(loop_s / batched_s, 2), "rows_written": summary["count"],
        "note": "both exclude building the model; batched includes DataLoader worker start-up and chunk writes",
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
