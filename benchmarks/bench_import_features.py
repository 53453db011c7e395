"""Peak RSS of `mmcot import-features` on a release-sized feature file vs loading that file whole (what the
original does: torch.load("vit.pth") / np.load("detr.npy")), each in a fresh subprocess.

    python benchmarks/bench_import_features.py                       # 11,208 × 145 × 1024 float32 vit.pth, 6.6 GB
    python benchmarks/bench_import_features.py --rows 2000 --format npy --dir /tmp/bench   # smaller

Generates the file (deterministic random rows, written through a memory map so generation stays small), a
DATA_DIR with one record per row (and a few image-less records that must import as zeros) and name_map.json
in --dir, runs both measurements, checks a sample of stored rows against the file, and deletes everything it
generated unless --keep. Needs about 2 × the file size of free disk (file + store; 3 × while making a .pth).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r'''
import json, sys, time
mode, file, root = sys.argv[1], sys.argv[2], sys.argv[3]


def vm(field):  # VmHWM (peak RSS) of this process image; ru_maxrss would inherit the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

import numpy as np
import torch
from mmcot_cli import progress
from mmcot_cli.features.original_features import ImportFeaturesConfig, import_feature_file
progress.set_enabled(False)
base = vm("VmHWM")
t = time.perf_counter()
if mode == "import":
    import_feature_file(ImportFeaturesConfig(file=file, name_map=f"{root}/name_map.json", data_dir=f"{root}/data",
                                             splits=("train",), backbone="vit", out=f"{root}/store"))
else:  # the original: the whole array in memory
    whole = torch.load(file, weights_only=True) if file.endswith(".pth") else np.load(file)
    float(whole[:, 0, 0].sum())
print(json.dumps({"mode": mode, "peak_rss_mb": round(vm("VmHWM") / 1024, 1),
                  "peak_rss_after_imports_mb": round(base / 1024, 1), "seconds": round(time.perf_counter() - t, 1)}))
'''

RECORD = {"split": "train", "question": "q", "hint": "", "caption": "", "choices": ["a", "b"], "answer": 0,
          "lecture": "", "solution": "", "subject": "natural science", "grade": "grade1", "topic": "t",
          "category": "c", "skill": "s", "task": "closed choice"}


def make_inputs(root: Path, rows: int, tokens: int, dim: int, fmt: str, without_image: int = 50) -> Path:
    npy = root / "vit.npy"
    arr = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(rows, tokens, dim))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 256):
        stop = min(rows, start + 256)
        arr[start:stop] = rng.standard_normal((stop - start, tokens, dim), dtype=np.float32)
    arr.flush()
    del arr
    name_map = {str(i + 1): str(rows - 1 - i) for i in range(rows)}  # reversed: rows are not in record order
    (root / "name_map.json").write_text(json.dumps(name_map))
    (root / "data").mkdir()
    with open(root / "data" / "train.jsonl", "w") as fh:
        for i in range(rows + without_image):
            qid = str(i + 1)
            image = "image.png" if i < rows else None
            fh.write(json.dumps({**RECORD, "qid": qid, "image": image,
                                 "image_paths": [f"images/{qid}/image.png"] if image else []}) + "\n")
    if fmt == "npy":
        return npy
    import torch

    pth = root / "vit.pth"
    torch.save(torch.from_numpy(np.load(npy, mmap_mode="r+")), pth)  # streams the mapped pages out
    npy.unlink()
    return pth


def measure(mode: str, file: Path, root: Path) -> dict:
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(file), str(root)], capture_output=True, text=True,
                         cwd=repo, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_rows(file: Path, root: Path, rows: int, samples: int = 64) -> bool:
    from mmcot_cli.features.original_features import open_feature_file
    from mmcot_cli.features.store import open_store

    rf, store = open_feature_file(file), open_store(root / "store")
    name_map = json.loads((root / "name_map.json").read_text())
    picks = np.random.default_rng(1).choice(rows, size=min(samples, rows), replace=False)
    ok = all(np.array_equal(store.read(str(i + 1)), rf.read_rows([int(name_map[str(i + 1)])])[0]) for i in picks)
    return ok and store.read(str(rows + 1)) is None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=11208)
    ap.add_argument("--tokens", type=int, default=145)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--format", choices=("pth", "npy"), default="pth")
    ap.add_argument("--dir", default=None, help="Work directory (default: a new one under /tmp).")
    ap.add_argument("--keep", action="store_true", help="Keep the generated files.")
    args = ap.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mmcot-bench-import-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        file = make_inputs(root, args.rows, args.tokens, args.dim, args.format)
        made = time.perf_counter() - t
        result = {"file": file.name, "shape": [args.rows, args.tokens, args.dim], "dtype": "float32",
                  "file_gb": round(file.stat().st_size / 1e9, 2), "generate_seconds": round(made, 1),
                  "import": measure("import", file, root), "whole_file_load": measure("whole", file, root),
                  "goal_peak_rss_mb": 1536}
        result["stored_rows_equal_file_rows"] = check_rows(file, root, args.rows)
        result["import_meets_goal"] = result["import"]["peak_rss_mb"] < result["goal_peak_rss_mb"]
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
