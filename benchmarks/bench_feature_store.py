"""Peak RSS of reading random qids from a big feature store (memory-mapped, one row at a time) vs loading it
whole (what the original did with np.load / torch.load), each measured in a fresh subprocess.

    python benchmarks/bench_feature_store.py                      # 21,000 × 145 × 1024 float16 ≈ 6.2 GB on disk
    python benchmarks/bench_feature_store.py --n 4000 --reads 2000 --dir /tmp/store   # smaller

The store is generated on disk (deterministic random rows, written chunk by chunk so generation itself stays
small) unless --dir already holds one of the right size. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r'''
import json, random, sys, time
import numpy as np
mode, path, reads = sys.argv[1], sys.argv[2], int(sys.argv[3])


def vm(field):  # VmHWM (peak RSS) / VmRSS of this process image; ru_maxrss would inherit the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

import torch
torch.set_num_threads(1)  # as in a DataLoader worker; also keeps OpenMP spin-waits out of the timings
from mmcot_cli.features.store import open_store
base = vm("VmHWM")
t = time.perf_counter()
store = open_store(path)
qids = store.qids()
if mode == "mmap":
    rng = random.Random(0)
    batch = 32
    total = 0.0
    for start in range(0, reads, batch):  # a training loader's access pattern: random batches of qids
        x = store.get_batch([rng.choice(qids) for _ in range(min(batch, reads - start))])
        total += float(x[:, 0, 0].sum())
elif mode == "whole":
    from safetensors.numpy import load_file
    parts = [load_file(str(f.path))["features"] for f in store._files.values()]
    whole = np.concatenate(parts)  # one array of every row, as np.load("vit.npy") gave
    del parts
    total = float(whole[:, 0, 0].astype(np.float32).sum())
peak = vm("VmHWM")
print(json.dumps({"mode": mode, "peak_rss_mb": round(peak / 1024, 1), "peak_rss_before_reading_mb": round(base / 1024, 1),
                  "seconds": round(time.perf_counter() - t, 3), "rows": len(qids)}))
'''


class RandomRows:
    """(n, T, D) float16 rows generated on demand, so writing a 6 GB store needs only one chunk in RAM."""

    def __len__(self) -> int:
        return self.shape[0]

    def __init__(self, n: int, tokens: int, dim: int):
        self.shape = (n, tokens, dim)
        self.base = np.random.default_rng(0).standard_normal((tokens, dim), dtype=np.float32)

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        # distinct rows without generating 6 GB of random numbers: a shared random block plus a per-row offset
        offsets = np.arange(start, stop, dtype=np.float32)[:, None, None] * 1e-3
        return (self.base[None] + offsets).astype(np.float16)


def ensure_store(path: Path, n: int, tokens: int, dim: int, chunk_size: int) -> float:
    from mmcot_cli.features.store import FeatureStore, import_features

    if (path / "manifest.json").is_file():
        store = FeatureStore(path)
        if len(store) == n and store.feature_shape == (tokens, dim):
            return 0.0
        raise SystemExit(f"{path} holds a different store ({len(store)} rows, {store.feature_shape}); use --dir")
    t = time.perf_counter()
    import_features(path, backbone="vit", split="train", qids=[str(i + 1) for i in range(n)],
                    features=RandomRows(n, tokens, dim), dtype="float16", chunk_size=chunk_size,
                    weights="benchmark-random")
    return time.perf_counter() - t


def run_child(mode: str, path: Path, reads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(reads)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=21000, help="rows in the store")
    ap.add_argument("--tokens", type=int, default=145)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--reads", type=int, default=5000, help="random qids read in the mmap measurement")
    ap.add_argument("--chunk-size", type=int, default=512)
    ap.add_argument("--dir", type=Path, help="where to build/keep the store (default: a temp dir, removed)")
    ap.add_argument("--skip-whole", action="store_true", help="skip the load-everything baseline")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.dir or Path(tmp) / "store"
        gen_s = ensure_store(path, args.n, args.tokens, args.dim, args.chunk_size)
        size = sum(p.stat().st_size for p in path.rglob("*.safetensors"))
        result = {"rows": args.n, "shape": [args.tokens, args.dim], "dtype": "float16",
                  "store_gb": round(size / 1e9, 2), "generate_seconds": round(gen_s, 1)}
        result["baseline_imports_only"] = run_child("none", path, 0)
        result["mmap_random_reads"] = {**run_child("mmap", path, args.reads), "reads": args.reads}
        result["mmap_random_reads_10x_fewer"] = {**run_child("mmap", path, max(1, args.reads // 10)),
                                                 "reads": max(1, args.reads // 10)}
        if not args.skip_whole:
            result["load_whole"] = run_child("whole", path, 0)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
