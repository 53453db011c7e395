"""Start-up cost of the CLI commands that batch scripts run thousands of times, vs `python -c "import torch"`.

Each command runs as its own subprocess (stdout/stderr discarded) `--repeat` times; the JSON object gives per
command the fastest and median wall time, the least CPU time and the peak RSS (os.wait4 rusage of that very
child). Commands that only read text (`--help`, `score`, `prompts`, `backbones`) must not pay for torch: goal
< 0.5 s and < 150 MB.

    python benchmarks/bench_startup.py [--repeat 5] [--mmcot PATH_TO_mmcot]

Inputs: a DATA_DIR prepared (once, not timed) from ../shared/scienceqa-sample, or from a small synthetic
benchmark when the sample is absent, and a ScienceQA results JSON answering option 0 everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "scienceqa-sample"


def run_once(argv: list[str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, exit code, CPU seconds) of one child process. CPU time (user + system) barely
    moves when other processes share the machine; wall time does."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux
    return wall, usage.ru_maxrss / 1024, proc.returncode, usage.ru_utime + usage.ru_stime


def measure(argv: list[str], repeat: int) -> dict:
    runs = [run_once(argv) for _ in range(repeat)]
    codes = {run[2] for run in runs}
    walls = [run[0] for run in runs]
    return {"argv": " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)),
            "wall_s_min": round(min(walls), 3), "wall_s_median": round(statistics.median(walls), 3),
            "cpu_s_min": round(min(run[3] for run in runs), 3),
            "peak_rss_mib": round(max(run[1] for run in runs), 1), "exit_codes": sorted(codes)}


def prepare_inputs(mmcot: str, tmp: Path) -> tuple[Path, Path]:
    """A DATA_DIR with a `test` split and a results JSON for it."""
    source = SAMPLE
    if not (SAMPLE / "problems.json").is_file():
        from mmcot_cli.demo.synthetic import generate_synthetic

        source = tmp / "synthetic"
        generate_synthetic(source, n_problems=60, seed=0)
    data = tmp / "data"
    proc = subprocess.run([mmcot, "-q", "prepare", str(source), "--out", str(data), "--splits", "test"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"cannot prepare the inputs: {proc.stderr.strip()}")
    qids = [json.loads(line)["qid"] for line in (data / "test.jsonl").read_text().split("\n") if line.strip()]
    results = tmp / "results.json"
    results.write_text(json.dumps({"results": {q: 0 for q in qids}}))
    return data, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mmcot", default=shutil.which("mmcot") or "mmcot", help="the console script to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        data, results = prepare_inputs(args.mmcot, Path(tmp_name))
        commands = {
            "baseline: python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "baseline: python -c 'pass'": [sys.executable, "-c", "pass"],
            "mmcot --help": [args.mmcot, "--help"],
            "mmcot score": [args.mmcot, "score", str(results), "--data", str(data), "--json"],
            "mmcot prompts": [args.mmcot, "prompts", str(data), "-n", "50"],
            "mmcot backbones": [args.mmcot, "backbones", "--json"],
        }
        out = {name: measure(argv, args.repeat) for name, argv in commands.items()}
    print(json.dumps({"repeat": args.repeat, "cpus": os.cpu_count(), "goal": {"wall_s": 0.5, "peak_rss_mib": 150},
                      "commands": out}, indent=2))


if __name__ == "__main__":
    main()
