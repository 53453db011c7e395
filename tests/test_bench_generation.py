"""benchmarks/bench_generation.py in its tiniest form: one run prints one JSON object with every side (mmcot,
bare T5, the original's way), time to first token, per-token time, and the constrained and --num-samples rows.
No timing is asserted (numbers go in benchmarks/ and the README, never in tests); the decoded texts are: mmcot's
fuse-once + KV cache decoding must give the original's way's texts token for token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_bench_generation_tiny_prints_every_side_and_row():
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'plugins'}"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_generation.py"), "--device", "cpu", "--d-model", "32",
         "--layers", "1", "--heads", "2", "--vocab", "300", "--image-shape", "5,16", "--samples", "3",
         "--batch-size", "2", "--min-input", "5", "--max-input", "12", "--new-tokens", "3,6", "--repeats", "1",
         "--num-samples", "2", "--threads", "1"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # the whole stdout is one JSON object
    for key in ("device", "torch", "transformers", "model", "data", "first_token_ms", "first_token_vs_encode_fusion",
                "targets", "results"):
        assert key in report, key
    assert set(report["first_token_ms"]) == {"mmcot", "bare_t5", "original", "encode_fusion"}
    assert all(v > 0 for v in report["first_token_ms"].values())
    assert report["targets"]["speedup_vs_original"] == {"64": 8.0, "128": 12.0, "256": 17.0}
    assert [r["new_tokens"] for r in report["results"]] == [3, 6]
    for row in report["results"]:
        for side in ("mmcot", "bare_t5", "original"):
            assert set(row[side]) == {"seconds", "samples_per_s", "per_token_ms_per_sample"}, side
            assert row[side]["seconds"] > 0 and row[side]["samples_per_s"] > 0
        for key in ("speedup_vs_original", "per_token_vs_bare", "target_speedup"):
            assert key in row, key
        assert row["identical_to_original"] is True  # fuse once + KV cache = per-step fusion without a cache
        assert row["constrained"]["seconds"] > 0 and "vs_free" in row["constrained"]
        assert set(row["num_samples_2"]) == {"seconds", "vs_free", "per_text_vs_free"}
