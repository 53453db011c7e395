"""LoRA (`--lora-r`, peft) from the CLI on tiny random-init models of both families (t5-scratch, llama-scratch):
only the adapters and the fusion layers train, the run saves base weights + adapter (peft's layout) and, with
`--merge-lora`, merged weights; `generate` loads either and both give the same logits and predictions; the
parameter counts show the reduction; bad options are one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mmcot_cli.training.checkpoints import list_checkpoints

TINY = ["--text-option", "d_model=32", "--text-option", "layers=2", "--text-option", "heads=2"]
FAMILIES = ("t5-scratch", "llama-scratch")


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

    root = tmp_path_factory.mktemp("lora")
    runner = CliRunner()

    def cli(*args, code=0):
        res = runner.invoke(app, ["-q", *[str(a) for a in args]], catch_exceptions=False)
        assert res.exit_code == code, res.output
        return res

    cli("prepare", sample_dir, "--out", root / "data")
    cli("extract", "-b", "patches", "--data", root / "data", "--out", root / "f", "--workers", "0")
    common = ["--stage", "answer", "--prompt-format", "QCM-A", "--data", root / "data", "--features", root / "f",
              "--epochs", "2", "--batch-size", "8", "--lr", "1e-2", "--max-input-len", "128", "--limit-val", "4",
              *TINY]
    for family in FAMILIES:
        cli("train", *common, "--text-model", family, "--out", root / family, "--lora-r", "4", "--lora-alpha", "8",
            "--merge-lora", "--keep-checkpoints", "10")
        cli("train", *common, "--text-model", family, "--out", root / f"{family}-full")
    cli("train", "--stage", "rationale", "--data", root / "data", "--features", root / "f", "--text-model",
        "llama-scratch", "--out", root / "rationale", "--epochs", "1", "--max-input-len", "128", "--max-output-len",
        "12", "--val-split", "none", "--lora-r", "2", "--lora-targets", "q_proj,v_proj", *TINY)
    return {"root": root, "cli": cli, "common": common}


def _load(path):
    from mmcot_cli.model.text.runs import load_run_model

    return load_run_model(path)[0]


def _logits(net, family: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    features = torch.randn(2, 49, 192, generator=gen)
    extra = ({"decoder_input_ids": torch.zeros(2, 3, dtype=torch.long)} if family == "t5-scratch"
             else {"fusion_mask": mask})
    with torch.no_grad():
        return net(input_ids=ids, attention_mask=mask, image_features=features, **extra).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_only_adapters_and_fusion_train_and_the_counts_show_it(world, family):
    root = world["root"]
    run, full = (json.loads((root / name / "run_config.json").read_text()) for name in (family, f"{family}-full"))
    net = _load(root / family)
    lora = sum(p.numel() for n, p in net.named_parameters() if "lora_" in n)
    fusion = sum(p.numel() for n, p in net.named_parameters() if n.startswith("fusion."))
    assert lora > 0 and fusion > 0 and not any("lora_" in n for n, _ in net.fusion.named_parameters())
    assert run["parameters"] == {"total": sum(p.numel() for p in net.parameters()), "trainable": lora + fusion}
    assert full["parameters"]["trainable"] == full["parameters"]["total"] == run["parameters"]["total"] - lora
    assert run["train_config"]["lora_r"] == 4 and full["train_config"]["lora_r"] == 0
    config = json.loads((root / family / "model" / "config.json").read_text())["mmcot"]["lora"]
    targets = ["k", "o", "q", "v", "wi", "wo"] if family == "t5-scratch" else [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]  # all-linear, fusion excluded
    assert config == {"r": 4, "alpha": 8.0, "dropout": 0.0, "targets": targets, "merged": False}
    assert json.loads((root / family / "merged" / "config.json").read_text())["mmcot"]["lora"]["merged"] is True
    # The base weights stay frozen: the first and the last checkpoint hold the same ones, the adapters moved.
    first, last = (c / "model" for c in (list_checkpoints(root / family)[0], list_checkpoints(root / family)[-1]))
    assert first != last
    a, b = load_file(str(first / "model.safetensors")), load_file(str(last / "model.safetensors"))
    frozen = [k for k in a if not k.startswith("fusion.")]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)
    a, b = (load_file(str(d / "adapter" / "adapter_model.safetensors")) for d in (first, last))
    assert any(not torch.equal(a[k], b[k]) for k in a if "lora_B" in k)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_and_merged_weights_load_and_agree(world, family):
    root, cli = world["root"], world["cli"]
    adapted, merged = _load(root / family), _load(root / family / "merged")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert max(p.abs().max().item() for n, p in adapted.named_parameters() if "lora_B" in n) > 0
    assert torch.allclose(_logits(adapted, family), _logits(merged, family), atol=1e-5)
    assert not torch.allclose(_logits(adapted, family), _logits(_load(root / f"{family}-full"), family), atol=1e-3)
    predictions = []
    for run, out in ((root / family, "a.jsonl"), (root / family / "merged", "m.jsonl")):
        cli("generate", "--run", run, "--data", root / "data", "--features", root / "f", "--split", "test",
            "--limit", "6", "--out", root / f"{family}-{out}")
        predictions.append([json.loads(line)["prediction"] for line in (root / f"{family}-{out}").open()])
    assert predictions[0] == predictions[1] and len(predictions[0]) == 6


def test_ask_loads_an_adapter_run_and_a_merged_one(world, sample_dir):
    root = world["root"]
    config = json.loads((root / "rationale" / "model" / "config.json").read_text())["mmcot"]["lora"]
    assert config["targets"] == ["q_proj", "v_proj"] and config["r"] == 2
    image = next(p for p in (sample_dir / "images").glob("*/image.png"))
    res = world["cli"]("ask", "--rationale-run", root / "rationale", "--answer-run", root / "llama-scratch" / "merged",
                       "--question", "Which is hot?", "--choices", "ice|fire", "--image", image, "--device", "cpu",
                       "--json")
    assert json.loads(res.stdout)["answer_letter"] in ("A", "B")


def test_the_adapter_is_peft_s_own_layout(world):
    """A user's peft loads RUN_DIR/model/adapter on top of RUN_DIR/model (the LM alone: no fusion here)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_dir = world["root"] / "llama-scratch" / "model"
    peft_lm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), model_dir / "adapter")
    ours = _load(model_dir).lm
    ids = torch.randint(5, 100, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(peft_lm.eval()(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--lora-r", "4", "--lora-targets", "nosuchlayer"], "--lora-targets"),
    (["--merge-lora"], "--merge-lora applies to LoRA training"),
    (["--lora-r", "4", "--lora-dropout", "1.5"], "--lora-dropout"),
    (["--lora-r", "-1"], "--lora-r"),
])
def test_bad_lora_options_are_one_line_and_write_nothing(world, tmp_path, extra, message):
    res = world["cli"]("train", *world["common"], "--text-model", "llama-scratch", "--out", tmp_path / "run",
                       *extra, code=2)
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "run").exists()
