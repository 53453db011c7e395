"""Two CPU processes (gloo) train a tiny model through `torchrun` and `accelerate launch`; the run loads and
generates. Runs by default; deselect with `-m "not distributed"`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import TINY_ARGS, make_records, write_split

pytestmark = pytest.mark.distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher(kind: str) -> list[str]:
    if kind == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                "127.0.0.1", "--master_port", str(_free_port())]
    # `accelerate launch` through this interpreter (the `accelerate` script on PATH may belong to another
    # environment, with another mmcot installed). Without GPUs it starts several processes only through its torch
    # launcher (--multi_gpu); mmcot then sets Accelerate up for CPU with the gloo backend.
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["torchrun", "accelerate"])
def test_two_process_training_saves_a_run_that_loads_and_generates(tmp_path: Path, kind: str):
    data = tmp_path / "data"
    write_split(data, "train", make_records("train", 12, 1))
    write_split(data, "val", make_records("val", 4, 101))
    out = tmp_path / "run"
    # CPU processes (gloo) even where a GPU is present: one GPU cannot host two NCCL ranks (tests/test_gpu.py).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = _launcher(kind) + ["-m", "mmcot_cli", "-q", "train", "--stage", "rationale", "--data", str(data),
                             "--text-model", "t5-scratch", "--out", str(out), "--epochs", "2", "--batch-size", "2",
                             "--lr", "3e-3", "--max-output-len", "8", "--save-every", "2", *TINY_ARGS, "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # exactly one JSON object: only rank 0 prints
    # 12 examples, batch 2 per process, 2 processes → 3 optimizer steps per epoch.
    assert summary["world_size"] == 2 and summary["steps"] == 6

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # written once, by the main process only
    run_cfg = json.loads((out / "run_config.json").read_text())
    assert run_cfg["world_size"] == 2
    assert not (out / "checkpoints" / "init").exists()
    state = json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "state.json").read_text())
    assert state["global_step"] == 6 and state["world_size"] == 2
    assert len(json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "rng.json").read_text())) == 2

    from mmcot_cli.model.text.runs import load_run_model

    model, tok, meta = load_run_model(out)
    assert meta["stage"] == "rationale"
    enc = tok(["Question: Which colour is the cup?"], return_tensors="pt")
    ids = model.generate(**enc, max_new_tokens=4)
    assert ids.shape[0] == 1 and isinstance(tok.decode(ids[0], skip_special_tokens=True), str)
    assert torch.isfinite(torch.tensor([r["train_loss"] for r in rows])).all()
