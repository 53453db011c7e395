"""benchmarks/bench_train.py in its tiniest form: the JSON it writes has every key the GPU run will be read by.
No timing is asserted (numbers go in benchmarks/, never in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT, SHARED


def test_bench_train_tiny_writes_the_documented_json(sample_dir, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'plugins'}"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_train.py"), "--device", "cpu", "--shape", "tiny",
         "--run", "answer:2:original,bare,train", "--warmup", "1", "--steps", "1", "--profile-steps", "1",
         "--threads", "1", "--sample", str(sample_dir), "--tokenizer", str(SHARED / "reference-checkpoint" /
                                                                             "checkpoint"), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]  # one JSON line per result, as it arrives
    report = json.loads(out.read_text())
    assert report["results"] == lines
    for key in ("device", "device_name", "peak_bf16_tflops", "model", "parameters_m", "precision",
                "attn_implementation", "torch", "transformers", "tokenizer", "results", "comparisons", "total_s"):
        assert key in report, key
    assert report["device"] == "cpu" and report["peak_bf16_tflops"] is None and report["precision"] == "fp32"
    assert [r["variant"] for r in report["results"]] == ["original", "bare", "train"]
    for r in report["results"]:
        for key in ("samples_per_s", "ms_per_step", "model_tflops_per_s", "useful_tflops_per_s",
                    "pct_of_bf16_peak", "peak_memory_gib", "non_pad_share", "host_overhead_pct", "data_pct"):
            assert key in r, (r["variant"], key)
        assert set(r["phases_ms"]) == {"data", "forward", "backward", "optimizer", "other"}
        assert r["samples_per_s"] > 0 and r["steps_timed"] == 1 and r["samples_timed"] == 2
    original, bare, train = report["results"]
    # The original pads every batch to 512/64; mmcot's batches to their own longest member.
    assert original["padded_tokens_per_sample"] == 512 + 64
    assert bare["padded_tokens_per_sample"] < 512 + 64
    assert bare["padded_tokens_per_sample"] == train["padded_tokens_per_sample"]  # the same batches
    (row,) = report["comparisons"]
    assert {"bare_vs_original", "train_vs_original", "train_vs_bare"} <= set(row)
