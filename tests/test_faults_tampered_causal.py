"""Fault class 6 (issue 26) for decoder-only runs (`--text-model llama-scratch`): a model.safetensors that lost a
tensor, a config.json edited after training (another intermediate_size, more layers, the fusion settings gone) or
a fusion.safetensors that lost a tensor is one line naming the directory and the tensor in every command that
loads such a run (generate, ask, train --resume), never an LM whose missing parts were initialised randomly."""

from __future__ import annotations

import json
import shutil

import pytest
from faultkit import assert_one_error, checksums, leftovers, mmcot, world  # noqa: F401 (fixture)

LLAMA = ["--text-model", "llama-scratch", "--text-option", "d_model=32", "--text-option", "layers=2",
         "--text-option", "heads=2"]
TRAIN = ["-q", "train", "--stage", "answer", "--prompt-format", "QCM-A", *LLAMA, "--batch-size", "8",
         "--limit-train", "8", "--val-split", "none", "--save-every", "1"]


@pytest.fixture(scope="module")
def causal_run(world, tmp_path_factory):
    """A tiny llama-scratch answer run with gated fusion (and a resume checkpoint) on the faults world."""
    out = tmp_path_factory.mktemp("causal") / "run"
    res = mmcot(*TRAIN, "--data", world.data, "--features", world.feats, "--out", out, "--epochs", "1")
    assert res.exit_code == 0, res.stderr
    return out


def _drop(model_dir, file, name):
    from safetensors.torch import load_file, save_file

    state = load_file(model_dir / file)
    del state[name]
    save_file(state, model_dir / file, metadata={"format": "pt"})


def _edit(model_dir, **changes):
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "mmcot":
            config["mmcot"].update(value)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


TAMPERINGS = {
    "lost-tensor": (lambda d: _drop(d, "model.safetensors", "model.layers.1.mlp.up_proj.weight"),
                    "weights missing from model.safetensors: model.layers.1.mlp.up_proj.weight"),
    "other-intermediate_size": (lambda d: _edit(d, intermediate_size=64), "config.json gives [32, 64]"),
    "more-layers": (lambda d: _edit(d, num_hidden_layers=3), "model.layers.2."),
    "fewer-layers": (lambda d: _edit(d, num_hidden_layers=1, mmcot={"fusion_layer": 0}), "has no place for"),
    "lost-fusion-tensor": (lambda d: _drop(d, "fusion.safetensors", "gate.weight"),
                           "fusion weights missing from fusion.safetensors: fusion.gate.weight"),
    "fusion-settings-gone": (lambda d: _edit(d, mmcot={"image_shape": None}), "no fusion settings"),
    "fusion-file-gone": (lambda d: (d / "fusion.safetensors").unlink(), "fusion weights missing"),
}


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_generate_refuses_a_tampered_causal_run(world, causal_run, tmp_path, kind):
    run = tmp_path / "run"
    shutil.copytree(causal_run, run)
    tamper, needle = TAMPERINGS[kind]
    tamper(run / "model")
    before = checksums(run)
    res = mmcot("generate", "--run", run, "--data", world.data, "--features", world.feats, "--device", "cpu",
                "--out", tmp_path / "p.jsonl")
    assert_one_error(res, 1, str(run / "model"), needle)
    assert not (tmp_path / "p.jsonl").exists() and checksums(run) == before


@pytest.mark.parametrize("kind", ["lost-tensor", "other-intermediate_size"])
def test_ask_refuses_a_tampered_causal_run(causal_run, tmp_path, kind):
    run = tmp_path / "run"
    shutil.copytree(causal_run, run)
    tamper, needle = TAMPERINGS[kind]
    tamper(run / "model")
    res = mmcot("ask", "--rationale-run", run, "--answer-run", run, "--question", "Q?", "--choices", "a|b",
                "--device", "cpu")
    assert_one_error(res, 1, str(run / "model"), needle)
    assert res.stdout == ""


@pytest.mark.parametrize("kind", ["lost-tensor", "more-layers", "lost-fusion-tensor"])
def test_resume_refuses_a_tampered_causal_checkpoint(world, causal_run, tmp_path, kind):
    run = tmp_path / "run"
    shutil.copytree(causal_run, run)
    (ckpt_model,) = (run / "checkpoints").glob("*/model")
    tamper, needle = TAMPERINGS[kind]
    tamper(ckpt_model)
    before = checksums(run)
    res = mmcot(*TRAIN, "--data", world.data, "--features", world.feats, "--out", run, "--epochs", "2", "--resume")
    assert_one_error(res, 1, str(ckpt_model), needle)
    assert checksums(run) == before and leftovers(run) == []


def test_an_untampered_causal_run_still_loads_and_resumes(world, causal_run, tmp_path):
    from mmcot_cli.model.text.runs import load_run_model

    model, _, meta = load_run_model(causal_run)
    assert meta["stage"] == "answer" and meta["kind"] == "causal" and model.fusion is not None
    run = tmp_path / "run"
    shutil.copytree(causal_run, run)
    res = mmcot(*TRAIN, "--data", world.data, "--features", world.feats, "--out", run, "--epochs", "2", "--resume")
    assert res.exit_code == 0, res.stderr
