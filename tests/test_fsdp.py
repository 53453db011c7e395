"""`mmcot train --fsdp`: two CPU processes (gloo) under torchrun train with the model sharded by PyTorch's FSDP2
(fully_shard; Accelerate's own FSDP does not run on CPU), validate, checkpoint, resume bit-exactly from an
earlier checkpoint, and the run loads in one process for `generate`. Both families (llama-scratch with the gated
fusion at a sharded decoder layer, under torchrun --fsdp; t5-scratch with the fusion on its encoder output, under
`accelerate launch --use_fsdp --fsdp_version 2`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_distributed import _launcher

from mmcot_cli.training.checkpoints import list_checkpoints

pytestmark = pytest.mark.distributed
TINY = ["--text-option", "d_model=32", "--text-option", "layers=2", "--text-option", "heads=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_dir):
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    root = tmp_path_factory.mktemp("fsdp")
    runner = CliRunner()
    for args in (["prepare", sample_dir, "--out", root / "data"],
                 ["extract", "-b", "patches", "--data", root / "data", "--out", root / "f", "--workers", "0"]):
        res = runner.invoke(app, ["-q", *[str(a) for a in args]], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    return root


def _train(root: Path, family: str, out: Path, launcher: str, *extra: str) -> dict:
    # `accelerate launch --use_fsdp` asks for the same sharding as --fsdp (mmcot applies it itself)
    start = _launcher(launcher)
    if launcher == "accelerate":  # instead of --multi_gpu (one of them only); it starts the processes as well
        start = [*start[:3], "--use_fsdp", "--fsdp_version", "2", *start[4:]]
    flag = [] if launcher == "accelerate" else ["--fsdp"]
    cmd = start + [
        "-m", "mmcot_cli", "-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", "--data",
        str(root / "data"), "--features", str(root / "f"), "--text-model", family, "--out", str(out), "--epochs",
        "2", "--batch-size", "4", "--lr", "3e-3", "--max-input-len", "128", "--limit-train", "16", "--limit-val",
        "3", "--keep-checkpoints", "10", *flag, *TINY, "--json", *extra]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    model = list_checkpoints(run)[-1] / "model"
    return {f"{p.name}:{k}": v for p in sorted(model.glob("*.safetensors")) for k, v in load_file(str(p)).items()}


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rows]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("family, launcher", [("llama-scratch", "torchrun"), ("t5-scratch", "accelerate")])
def test_fsdp_trains_resumes_bit_exactly_and_loads_in_one_process(world, tmp_path, family, launcher):
    straight = _train(world, family, tmp_path / "straight", launcher)
    assert straight["world_size"] == 2 and straight["steps"] == 4  # 16 examples, 4 per process → 2 steps/epoch
    run_config = json.loads((tmp_path / "straight" / "run_config.json").read_text())
    assert run_config["train_config"]["fsdp"] is True
    assert run_config["parameters"]["total"] == run_config["parameters"]["trainable"] > 0  # counted whole, not a shard
    assert [r["epoch"] for r in _rows(tmp_path / "straight")] == [1, 2]

    # A crash after the epoch-1 checkpoint: the last one is gone; --resume redoes epoch 2 from step 2.
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "straight", crashed)
    shutil.rmtree(list_checkpoints(crashed)[-1])
    resumed = _train(world, family, crashed, launcher, "--resume")
    assert resumed["resumed_from"].endswith("step-00000002") and resumed["steps"] == 4
    a, b = _weights(tmp_path / "straight"), _weights(crashed)
    assert a.keys() == b.keys() and any(k.startswith("fusion") or ":fusion." in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(crashed) == _rows(tmp_path / "straight")

    res = subprocess.run([sys.executable, "-m", "mmcot_cli", "-q", "generate", "--run", str(crashed), "--data",
                          str(world / "data"), "--features", str(world / "f"), "--split", "test", "--limit", "3",
                          "--device", "cpu"], env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (crashed / "preds-test.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["prediction"].startswith("The answer is (") for r in rows)


@pytest.mark.timeout(400)
def test_fsdp_with_lora_and_checkpointing_trains_resumes_bit_exactly_and_generates_in_one_process(world, tmp_path):
    """`--fsdp --lora-r 4 --gradient-checkpointing` on llama-scratch: only the adapters and the fusion train, the
    run saves base + adapter from the gathered weights, --resume continues bit-exactly, one process generates."""
    lora = ["--lora-r", "4", "--gradient-checkpointing"]
    straight = _train(world, "llama-scratch", tmp_path / "straight", "torchrun", *lora)
    assert straight["world_size"] == 2 and straight["steps"] == 4
    run_config = json.loads((tmp_path / "straight" / "run_config.json").read_text())
    params = run_config["parameters"]
    assert run_config["train_config"]["fsdp"] is True and run_config["train_config"]["lora_r"] == 4
    assert 0 < params["trainable"] < params["total"]  # adapters + fusion, counted whole (not one shard)
    model = list_checkpoints(tmp_path / "straight")[-1] / "model"
    assert list(model.rglob("adapter_model.safetensors")), sorted(p.name for p in model.rglob("*"))

    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "straight", crashed)
    shutil.rmtree(list_checkpoints(crashed)[-1])
    resumed = _train(world, "llama-scratch", crashed, "torchrun", *lora, "--resume")
    assert resumed["resumed_from"].endswith("step-00000002") and resumed["steps"] == 4
    weights = [{str(p.relative_to(list_checkpoints(run)[-1])) + ":" + k: v
                for p in sorted((list_checkpoints(run)[-1] / "model").rglob("*.safetensors"))
                for k, v in load_file(str(p)).items()} for run in (tmp_path / "straight", crashed)]
    assert weights[0].keys() == weights[1].keys() and any("lora_" in k for k in weights[0])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert _rows(crashed) == _rows(tmp_path / "straight")

    res = subprocess.run([sys.executable, "-m", "mmcot_cli", "-q", "generate", "--run", str(crashed), "--data",
                          str(world / "data"), "--features", str(world / "f"), "--split", "test", "--limit", "3",
                          "--device", "cpu"], env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (crashed / "preds-test.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["prediction"].startswith("The answer is (") for r in rows)
