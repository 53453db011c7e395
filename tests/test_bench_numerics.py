"""benchmarks/bench_numerics.py's workload is the demo's model and settings, and its figures are what it says
(the timed comparison of native and portable kernels is a benchmark, not a test)."""

from __future__ import annotations

import importlib.util

import torch
from conftest import REPO_ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_numerics", REPO_ROOT / "benchmarks" / "bench_numerics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workload_trains_and_generates_and_hashes_what_it_trained(monkeypatch):
    bench = _bench()
    monkeypatch.delenv("BENCH_PORTABLE", raising=False)
    threads = torch.get_num_threads()
    try:
        first = bench.workload(steps=1, new_tokens=2)
        again = bench.workload(steps=1, new_tokens=2)
        longer = bench.workload(steps=2, new_tokens=2)
    finally:
        torch.set_num_threads(threads)
    assert first["train_samples_per_s"] > 0 and first["generate_tokens_per_s"] > 0
    assert first["pinned"] is False  # native: not asked to pin
    assert first["weights_sha256"] == again["weights_sha256"] != longer["weights_sha256"]  # the trained weights
    assert set(bench.PARTS) == {"aten_avx2", "mkl_compatible", "onednn_avx2"}
    assert all(set(env) <= set(bench.KERNEL_ENV) for env in bench.PARTS.values())  # cleared between variants
