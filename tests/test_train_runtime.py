"""How `mmcot train` runs (CPU side of issue 16): --precision, --deterministic, DataLoader workers, token-sized
batches, and the divergence guard that checks on the device and syncs only every N steps.

The same things on a GPU: tests/test_gpu.py (marker `gpu`)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from test_train import TINY_ARGS, data_dir, tiny_cfg  # noqa: F401  (data_dir is a fixture)

from mmcot_cli.model.batching import LengthGroupedBatchSampler
from mmcot_cli.training import loop as train_mod
from mmcot_cli.training.checkpoints import list_checkpoints
from mmcot_cli.training.guards import DivergenceGuard, TrainingDiverged
from mmcot_cli.training.loop import train
from mmcot_cli.training.runtime import deterministic_mode, resolve_precision


def _weights(run) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ------------------------------------------------------------------------------------------- precision


def test_precision_auto_is_fp32_on_cpu_and_recorded(cli, data_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("bf16", cuda=False) == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # `accelerate launch --mixed_precision fp16`
    assert resolve_precision("auto", cuda=True) == "fp16" and resolve_precision("fp32", cuda=True) == "fp32"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")

    common = ["train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--epochs", "1",
              "--batch-size", "4", "--val-split", "none", *TINY_ARGS]
    assert cli(*common, "--out", tmp_path / "auto").exit_code == 0
    meta = json.loads((tmp_path / "auto" / "run_config.json").read_text())
    assert meta["precision"] == "fp32" and meta["train_config"]["precision"] == "auto"
    assert cli(*common, "--out", tmp_path / "bf16", "--precision", "bf16").exit_code == 0
    meta = json.loads((tmp_path / "bf16" / "run_config.json").read_text())
    assert meta["precision"] == "bf16" and meta["train_config"]["precision"] == "bf16"


@pytest.mark.parametrize("flags,needle", [
    (["--precision", "fp17"], "--precision must be one of"),
    (["--device", "tpu"], "--device must be one of"),
    (["--max-tokens-per-batch", "0"], "--max-tokens-per-batch"),
    (["--max-tokens-per-batch", "500", "--no-group-by-length"], "cannot be combined"),
    (["--workers", "-1"], "--workers"),
])
def test_runtime_usage_errors_exit_2_before_anything_is_written(cli, data_dir, tmp_path, flags, needle):  # noqa: F811
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out",
              tmp_path / "r", *TINY_ARGS, *flags)
    assert res.exit_code == 2 and needle in res.stderr, res.stderr
    assert not (tmp_path / "r").exists()


def test_device_cuda_without_a_gpu_is_a_usage_error(cli, data_dir, tmp_path):  # noqa: F811
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out",
              tmp_path / "r", "--device", "cuda", *TINY_ARGS)
    assert res.exit_code == 2 and "no CUDA GPU" in res.stderr


@pytest.mark.parametrize("flags", [["--precision", "fp16"]])
def test_fp16_on_a_cpu_is_a_usage_error(cli, data_dir, tmp_path, flags):  # noqa: F811
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out",
              tmp_path / "r", "--device", "cpu", *TINY_ARGS, *flags)
    assert res.exit_code == 2 and "fp16 needs a CUDA GPU" in res.stderr, res.stderr
    assert not (tmp_path / "r" / "run_config.json").exists()


# ------------------------------------------------------------------------------------------- determinism


def test_deterministic_mode_is_strict_inside_and_restored_after():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled())
    with deterministic_mode(True, cuda=False):  # CPU training: CPU attention kernels (deterministic) untouched
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() == before[2]
        assert torch.backends.cuda.mem_efficient_sdp_enabled() == before[3]
    with deterministic_mode(True, cuda=True):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()  # no warn-only escape
        assert not torch.backends.cuda.flash_sdp_enabled() and not torch.backends.cuda.cudnn_sdp_enabled()
        assert not torch.backends.cuda.mem_efficient_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
            torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()) == before
    with deterministic_mode(False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]


def test_deterministic_training_runs_strict_and_reruns_identically(data_dir, tmp_path, monkeypatch):  # noqa: F811
    seen = []
    real = train_mod._compute_loss

    def spy(model, batch):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real(model, batch)

    monkeypatch.setattr(train_mod, "_compute_loss", spy)
    kw = dict(epochs=1, val_split=None, deterministic=True)
    train(tiny_cfg(data_dir, tmp_path / "a", **kw))
    train(tiny_cfg(data_dir, tmp_path / "b", **kw))
    assert seen and all(seen)
    assert not torch.are_deterministic_algorithms_enabled() or torch.is_deterministic_algorithms_warn_only_enabled()
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    meta = json.loads((tmp_path / "a" / "run_config.json").read_text())
    assert meta["train_config"]["deterministic"] is True


# ------------------------------------------------------------------------------------------- the loader


def test_worker_processes_give_the_same_run_as_the_main_thread(data_dir, tmp_path):  # noqa: F811
    """--workers N collates in DataLoader processes (the GPU default): same batches, same weights, and the
    global RNG (dropout) is not touched by creating the loader."""
    kw = dict(epochs=2, val_split=None)
    train(tiny_cfg(data_dir, tmp_path / "main", workers=0, **kw))
    train(tiny_cfg(data_dir, tmp_path / "workers", workers=2, **kw))
    assert _same_weights(tmp_path / "main", tmp_path / "workers")


# ------------------------------------------------------------------------------------------- token batches


def test_token_budget_batches_are_fixed_within_budget_and_shuffled_per_epoch():
    rng = random.Random(5)
    lengths = [rng.randrange(5, 200) for _ in range(300)]
    s = LengthGroupedBatchSampler(lengths, 8, seed=3, max_tokens=800)
    b0, b1 = s.epoch_batches(0), s.epoch_batches(1)
    for batches in (b0, b1):
        assert sorted(i for b in batches for i in b) == list(range(300))  # every example once per epoch
        assert len(batches) == s.batches_per_epoch()
        for b in batches:  # within budget (a single over-long example would be a batch of its own)
            assert len(b) * max(lengths[i] for i in b) <= 800 or len(b) == 1
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest first
    assert sorted(map(sorted, b0)) == sorted(map(sorted, b1)) and b0 != b1  # same batches, new order
    sizes = [len(b) for b in b0]
    assert max(sizes) > 3 * min(sizes)  # short examples come in larger batches
    shards = [LengthGroupedBatchSampler(lengths, 8, seed=3, max_tokens=800, num_replicas=2, rank=r)
              for r in (0, 1)]
    assert len(shards[0].epoch_batches(0)) == len(shards[1].epoch_batches(0)) == shards[0].batches_per_epoch()


def test_training_with_a_token_budget_and_its_resume_invariant(data_dir, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    summary = train(tiny_cfg(data_dir, out, epochs=1, val_split=None, max_tokens_per_batch=150))
    assert summary["steps"] >= 2
    with pytest.raises(Exception, match="max_tokens_per_batch"):
        train(tiny_cfg(data_dir, out, epochs=2, val_split=None, max_tokens_per_batch=300, resume=True))


# ------------------------------------------------------------------------------------------- the guard


def test_guard_syncs_only_every_n_steps_and_at_epoch_ends(data_dir, tmp_path, monkeypatch):  # noqa: F811
    checks = []
    real = DivergenceGuard.check

    def counting(self, model, last):
        checks.append(len(self.pending))
        return real(self, model, last)

    monkeypatch.setattr(DivergenceGuard, "check", counting)
    monkeypatch.setattr(train_mod, "DivergenceGuard", lambda: DivergenceGuard(every=4))
    # 12 examples, batch 2 → 6 optimizer steps per epoch, 2 epochs: host checks after steps 4, 6 (epoch end),
    # 8 and 12 (both); never once per step.
    train(tiny_cfg(data_dir, tmp_path / "r", epochs=2, batch_size=2, val_split=None, save_every=0))
    assert [n for n in checks if n] == [4, 2, 2, 4]
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(r["train_loss"], float) for r in rows)  # every step's loss reached the log


def test_nan_between_checks_names_its_own_step(data_dir, tmp_path, monkeypatch):  # noqa: F811
    calls = {"n": 0}
    real = train_mod._compute_loss

    def nan_on_fifth_batch(model, batch):
        calls["n"] += 1
        loss = real(model, batch)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(train_mod, "_compute_loss", nan_on_fifth_batch)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1, optimizer step 5;.*none written yet"):
        train(tiny_cfg(data_dir, out, epochs=1, batch_size=2, val_split=None, save_every=0))
    assert not list_checkpoints(out) and not (out / "model").exists()  # nothing was saved after the bad step


# ------------------------------------------------------------------------------------------- compile, demo device


@pytest.mark.slow
def test_compile_trains_the_same_model_as_eager(data_dir, tmp_path, monkeypatch):  # noqa: F811
    """--compile: the training forward goes through torch.compile (validation and saving use the plain model)
    and learns the same weights as eager mode, up to kernel rounding."""
    compiled = []
    real_compile = torch.compile

    def spy(model, **kwargs):
        compiled.append(kwargs)
        return real_compile(model, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    kw = dict(epochs=1, val_split=None, text_options={"d_model": 32, "layers": 1, "heads": 2, "vocab_size": 400,
                                                      "dropout": 0.0})
    train(tiny_cfg(data_dir, tmp_path / "eager", **kw))
    assert not compiled
    train(tiny_cfg(data_dir, tmp_path / "compiled", compile=True, **kw))
    assert compiled == [{"dynamic": True}]
    a, b = _weights(tmp_path / "eager"), _weights(tmp_path / "compiled")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4, rtol=1e-3), name


def test_demo_device_cuda_without_a_gpu_is_a_usage_error(cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = cli("demo", "--tiny", "--device", "cuda", "--out", tmp_path / "demo")
    assert res.exit_code == 2 and "no CUDA GPU" in res.stderr
    assert not (tmp_path / "demo").exists()
