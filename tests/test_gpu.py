"""The pipeline on a CUDA GPU (marker `gpu`: skipped with the reason where none is present; `pytest -m gpu` runs
only these). Tiny models, so they take seconds on a GPU: train (bf16 by default, and fp32), generate, extract and
ask on cuda; a --deterministic rerun and a crash + --resume giving bit-identical weights and outputs; the
two-process path (needs two GPUs)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from faultkit import TINY_TEXT, build_world, mmcot

from mmcot_cli.training.checkpoints import list_checkpoints

pytestmark = pytest.mark.gpu
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """faultkit's tiny world (synthetic benchmark, patches features, a tiny answer run), built on this machine."""
    return build_world(tmp_path_factory.mktemp("gpu-world"))


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def _identical(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _train(world, out: Path, *extra: str):
    return mmcot("-q", "train", "--stage", "rationale", "--data", world.data, "--features", world.feats,
                 "--text-model", "t5-scratch", "--out", out, "--device", "cuda", "--epochs", "2", "--batch-size", "8",
                 "--val-split", "val", "--limit-val", "4", "--max-output-len", "16", "--save-every", "2", *TINY_TEXT,
                 *extra)


def test_train_on_cuda_defaults_to_bf16_and_the_run_generates_on_cuda(world, tmp_path):
    run = tmp_path / "run"
    res = _train(world, run)
    assert res.exit_code == 0, res.stderr
    meta = json.loads((run / "run_config.json").read_text())
    assert meta["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_loss"] is not None and r["train_loss"] == r["train_loss"] for r in rows)
    preds = tmp_path / "preds.jsonl"
    res = mmcot("-q", "generate", "--run", run, "--data", world.data, "--split", "test", "--device", "cuda",
                "--out", preds)
    assert res.exit_code == 0, res.stderr
    assert len(preds.read_text().splitlines()) == len((world.data / "test.jsonl").read_text().splitlines())


def test_fp32_on_cuda_and_fused_adamw(world, tmp_path, monkeypatch):
    from mmcot_cli.training import loop as train_mod

    fused = []
    real = train_mod.setup_trainer

    def spy(*args, **kwargs):
        t = real(*args, **kwargs)
        fused.append(t.optimizer.optimizer.defaults.get("fused"))
        return t

    monkeypatch.setattr(train_mod, "setup_trainer", spy)
    res = _train(world, tmp_path / "run", "--precision", "fp32")
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["precision"] == "fp32"
    assert fused == [True]


def _cfg(world, out: Path, **kw):
    from mmcot_cli.training.config import TrainConfig

    return TrainConfig(stage="rationale", data_dir=str(world.data), features=str(world.feats), text_model="t5-scratch",
                       out_dir=str(out), device="cuda", epochs=2, batch_size=8, val_split="val", limit_val=4,
                       max_output_len=16, save_every=2, keep_checkpoints=10, deterministic=True,
                       text_options={"d_model": 16, "layers": 1, "heads": 2, "d_ff": 32}, **kw)


def test_deterministic_reruns_are_bit_identical_and_resume_matches(world, tmp_path, monkeypatch):
    from mmcot_cli.training import loop as train_mod

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out in (a, b):
        train_mod.train(_cfg(world, out))
    assert _identical(a / "model", b / "model")
    rows = [[{k: v for k, v in json.loads(line).items() if k != "samples_per_s"}
             for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 2
    outs = []
    for run in (a, b):
        preds = tmp_path / f"{run.name}.jsonl"
        assert mmcot("-q", "generate", "--run", run, "--data", world.data, "--split", "test", "--device", "cuda",
                     "--out", preds).exit_code == 0
        outs.append(preds.read_text())
    assert outs[0] == outs[1]

    # A crash after the checkpoint at step 2, then --resume: the same weights at every later checkpoint as run a.
    real_save = train_mod.save_checkpoint

    def crash_after_step_2(run_dir, **kwargs):
        path = real_save(run_dir, **kwargs)
        if kwargs["state"]["global_step"] == 2:
            raise RuntimeError("simulated crash")
        return path

    monkeypatch.setattr(train_mod, "save_checkpoint", crash_after_step_2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_mod.train(_cfg(world, c))
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    train_mod.train(_cfg(world, c, resume=True))
    assert [p.name for p in list_checkpoints(a)] == [p.name for p in list_checkpoints(c)]
    assert _identical(list_checkpoints(a)[-1] / "model", list_checkpoints(c)[-1] / "model")


def test_extract_and_ask_on_cuda(world, tmp_path):
    feats = tmp_path / "vit"
    res = mmcot("-q", "extract", "--backbone", "vit", "--variant", "vit_base_patch16_224", "--random-init", "--data",
                world.data, "--split", "test", "--device", "cuda", "--out", feats, "--workers", "0")
    assert res.exit_code == 0, res.stderr
    assert (feats / "manifest.json").is_file()
    image = next(p for p in sorted(world.bench.rglob("*.png")))
    res = mmcot("ask", "--rationale-run", world.run, "--answer-run", world.run, "--question", "Which colour?",
                "--choices", "red|blue", "--image", image, "--device", "cuda", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)


@pytest.mark.skipif(torch.cuda.device_count() < 2,
                    reason="the two-process GPU path needs two GPUs (one GPU cannot host two NCCL ranks); the "
                           "CPU two-process tests (test_train_distributed.py) cover the logic")
def test_two_processes_on_two_gpus(world, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'plugins'}"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "mmcot_cli", "-q", "train", "--stage", "rationale", "--data",
           str(world.data), "--features", str(world.feats), "--text-model", "t5-scratch", "--out", str(out),
           "--epochs", "1", "--batch-size", "4", "--val-split", "none", *TINY_TEXT, "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["world_size"] == 2 and (out / "model" / "model.safetensors").is_file()
