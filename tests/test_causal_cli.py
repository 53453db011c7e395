"""Decoder-only text backbones from the CLI, end to end on the ScienceQA sample: `prepare`, `extract -b patches`,
`train --text-model llama-scratch` (rationale stage gated, answer stage prefix), `generate` (KV cache, constrained
answers, --num-samples), `score`, `ask`, `report`; the run records kind, fusion and layer; resume is bit-exact."""

from __future__ import annotations

import json

import pytest
import torch

from mmcot_cli.training import loop as train_mod
from mmcot_cli.training.checkpoints import list_checkpoints
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.training.loop import train

TINY = ["--text-option", "d_model=32", "--text-option", "layers=2", "--text-option", "heads=2"]
COMMON = ["--epochs", "1", "--batch-size", "8", "--lr", "3e-3", "--max-input-len", "256", *TINY]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_dir):
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    root = tmp_path_factory.mktemp("causal")
    runner = CliRunner()

    def cli(*args):
        res = runner.invoke(app, ["-q", *[str(a) for a in args]], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res

    cli("prepare", sample_dir, "--out", root / "data")
    cli("extract", "-b", "patches", "--data", root / "data", "--out", root / "f", "--workers", "0")
    data = ["--data", root / "data", "--features", root / "f", "--text-model", "llama-scratch"]
    cli("train", "--stage", "rationale", *data, "--out", root / "rr", *COMMON, "--max-output-len", "24",
        "--limit-val", "4")
    cli("generate", "--run", root / "rr", "--data", root / "data", "--split", "train,val,test")
    cli("train", "--stage", "answer", *data, "--rationales", root / "rr", "--fusion", "prefix", "--out", root / "ra",
        *COMMON, "--gradient-checkpointing")
    return {"root": root, "cli": cli}


def test_runs_record_the_decoder_only_settings(world):
    root = world["root"]
    rr = json.loads((root / "rr" / "run_config.json").read_text())
    ra = json.loads((root / "ra" / "run_config.json").read_text())
    assert (rr["text_kind"], rr["fusion"], rr["fusion_layer"], rr["chat_template"]) == ("causal", "gated", 1, False)
    assert (ra["text_kind"], ra["fusion"], ra["fusion_layer"]) == ("causal", "prefix", None)
    model_cfg = json.loads((root / "rr" / "model" / "config.json").read_text())
    assert model_cfg["model_type"] == "llama" and model_cfg["mmcot"]["kind"] == "causal"
    assert (root / "rr" / "model" / "fusion.safetensors").is_file()
    assert (root / "rr" / "model" / "tokenizer.json").is_file()
    from mmcot_cli.model.text.runs import load_run_model

    net, _, _ = load_run_model(root / "ra")  # trained with --gradient-checkpointing; every run counts parameters
    total = sum(p.numel() for p in net.parameters())
    assert ra["parameters"] == {"total": total, "trainable": total} and ra["train_config"]["gradient_checkpointing"]
    assert rr["parameters"]["total"] == rr["parameters"]["trainable"] != total  # another fusion, another count


def test_generate_constrained_samples_score_ask_report(world, sample_dir):
    root, cli = world["root"], world["cli"]
    rows = [json.loads(line) for line in (root / "rr" / "preds-test.jsonl").read_text().splitlines()]
    assert len(rows) == 50 and all(r["stage"] == "rationale" for r in rows)
    cli("generate", "--run", root / "ra", "--data", root / "data", "--split", "test")
    answers = [json.loads(line) for line in (root / "ra" / "preds-test.jsonl").read_text().splitlines()]
    assert all(r["constrained"] and r["answer_letter"] is not None for r in answers)  # every answer names an option
    assert all(r["prediction"].startswith("The answer is (") for r in answers)
    cli("generate", "--run", root / "ra", "--data", root / "data", "--split", "test", "--limit", "4",
        "--num-samples", "3", "--out", root / "samples.jsonl")
    samples = [json.loads(line) for line in (root / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all(len(r["samples"]) == 3 for r in samples)
    assert all(text.startswith("The answer is (") for r in samples for text in r["samples"])
    scored = json.loads(cli("score", root / "ra" / "preds-test.jsonl", "--data", root / "data", "--json").stdout)
    assert 0 <= scored["acc_average"] <= 100
    image = next(p for p in (sample_dir / "images").glob("*/image.png"))
    asked = json.loads(cli("ask", "--rationale-run", root / "rr", "--answer-run", root / "ra", "--question",
                           "Which is hot?", "--choices", "ice|fire", "--image", image, "--device", "cpu",
                           "--json").stdout)
    assert asked["answer_letter"] in ("A", "B")
    cli("report", root / "rr", root / "ra", "--data", root / "data", "--out", root / "report.html")
    page = (root / "report.html").read_text()
    assert "llama-scratch, decoder-only, gated fusion at layer 1" in page
    assert "llama-scratch, decoder-only, prefix fusion" in page


def test_t5_refuses_the_decoder_only_fusion_options(world, cli, tmp_path):
    data = world["root"] / "data"
    for extra in (["--fusion", "prefix"], ["--fusion-layer", "1"]):
        res = cli("train", "--stage", "rationale", "--data", data, "--text-model", "t5-scratch", "--out",
                  tmp_path / "run", *extra)
        assert res.exit_code == 2, res.output
        assert "decoder-only" in res.stderr and not (tmp_path / "run").exists()
    res = cli("train", "--stage", "rationale", "--data", data, "--text-model", "llama-scratch", "--out",
              tmp_path / "run", "--fusion", "cross")
    assert res.exit_code == 2 and "--fusion must be one of gated, prefix" in res.stderr
    res = cli("train", "--stage", "rationale", "--data", data, "--text-model", "llama-scratch", "--out",
              tmp_path / "run", "--features", world["root"] / "f", "--fusion-layer", "9", *TINY)
    assert res.exit_code != 0 and "decoder layers 0 … 1" in res.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("lora", [{}, {"lora_r": 4, "lora_dropout": 0.1}], ids=["full", "lora"])
def test_crash_then_resume_matches_an_uninterrupted_run(world, tmp_path, monkeypatch, lora):
    from safetensors.torch import load_file

    root = world["root"]
    kw = dict(stage="rationale", data_dir=str(root / "data"), features=str(root / "f"), text_model="llama-scratch",
              epochs=2, batch_size=8, grad_accum=2, save_every=2, keep_checkpoints=10, lr=3e-3, max_input_len=128,
              max_output_len=12, val_split=None, limit_train=32,
              text_options={"d_model": 32, "layers": 2, "heads": 2, "dropout": 0.1}, **lora)
    straight = train(TrainConfig(out_dir=str(tmp_path / "straight"), **kw))
    real_save = train_mod.save_checkpoint

    def crash_after_step_2(run_dir, **kwargs):
        path = real_save(run_dir, **kwargs)
        if kwargs["state"]["global_step"] == 2:
            raise RuntimeError("simulated crash")
        return path

    monkeypatch.setattr(train_mod, "save_checkpoint", crash_after_step_2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TrainConfig(out_dir=str(tmp_path / "crashed"), **kw))
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    resumed = train(TrainConfig(out_dir=str(tmp_path / "crashed"), resume=True, **kw))
    assert resumed["resumed_from"].endswith("step-00000002") and resumed["steps"] == straight["steps"] == 4
    names = ("model.safetensors", "fusion.safetensors") + (("adapter/adapter_model.safetensors",) if lora else ())
    for name in names:
        a = load_file(str(list_checkpoints(tmp_path / "straight")[-1] / "model" / name))
        b = load_file(str(list_checkpoints(tmp_path / "crashed")[-1] / "model" / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_two_processes_train_a_decoder_only_run_deterministically(world, tmp_path):
    """torchrun, 2 CPU processes (gloo), --deterministic: the main process builds llama-scratch (its tokenizer is
    trained once) and the other loads that copy; the run loads in one process and generates."""
    import os
    import subprocess
    import sys

    from test_train_distributed import _launcher

    root, out = world["root"], tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": ""}
    cmd = _launcher("torchrun") + [
        "-m", "mmcot_cli", "-q", "train", "--stage", "rationale", "--data", str(root / "data"), "--features",
        str(root / "f"), "--text-model", "llama-scratch", "--out", str(out), "--epochs", "1", "--batch-size", "4",
        "--lr", "3e-3", "--max-input-len", "128", "--max-output-len", "8", "--limit-train", "16", "--val-split",
        "none", "--deterministic", *TINY, "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert not (out / "checkpoints" / "init").exists()
    res = subprocess.run([sys.executable, "-m", "mmcot_cli", "-q", "generate", "--run", str(out), "--data",
                          str(root / "data"), "--split", "test", "--limit", "3", "--device", "cpu"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len((out / "preds-test.jsonl").read_text().splitlines()) == 3
