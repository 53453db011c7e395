"""Text backbones in the layouts the hub has: each trains and generates from the CLI; broken dirs are one line."""

import json

import pytest
import torch
from t5_layouts import make_t5_dir

RECORD = {"hint": "", "caption": "", "lecture": "Colours are seen with the eyes.", "subject": "natural science",
          "grade": "grade3", "topic": "colour", "category": "Colours", "skill": "colour", "task": "closed choice",
          "image": None, "image_paths": []}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    for split, n in (("train", 8), ("val", 4)):
        rows = [{**RECORD, "qid": f"{split}{i}", "split": split, "question": "Which colour is the ball?",
                 "choices": ["red", "blue"], "answer": i % 2, "solution": f"The ball is {['red', 'blue'][i % 2]}."}
                for i in range(n)]
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


@pytest.mark.parametrize("tokenizer, weights, tied", [
    ("spiece", "bin", True),  # UnifiedQA: spiece.model only, pytorch_model.bin, tied head
    ("json", "safetensors", False),  # FLAN-style, tokenizer.json only
    ("both", "bin", False),
    ("both", "safetensors", True),
])
def test_layout_trains_and_generates(cli, tmp_path, data_dir, tokenizer, weights, tied):
    from mmcot_cli.model.text.runs import load_run_model

    text = make_t5_dir(tmp_path / "t5", tokenizer=tokenizer, weights=weights, tied=tied)
    run = tmp_path / "run"
    res = cli("-q", "train", "--stage", "rationale", "--data", data_dir, "--text-model", text, "--out", run,
              "--epochs", "1", "--batch-size", "4", "--val-split", "none", "--max-output-len", "8", "--json")
    assert res.exit_code == 0, res.output
    res = cli("-q", "generate", "--run", run, "--data", data_dir, "--split", "val", "--max-new-tokens", "6", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["splits"]["val"]["count"] == 4
    model = load_run_model(run)[0]
    assert (model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()) is tied
    assert model.config.scale_decoder_outputs is tied


def test_untied_head_loads_as_stored(tmp_path):
    """transformers 5 reports tie_word_embeddings=True for every T5 config; the head must still be the file's."""
    from safetensors.torch import load_file

    from mmcot_cli.model.text.runs import build_model

    text = make_t5_dir(tmp_path / "t5", tokenizer="json", weights="safetensors", tied=False)
    model, _ = build_model(str(text), None)
    stored = load_file(str(text / "model.safetensors"))
    assert torch.equal(model.lm_head.weight, stored["lm_head.weight"])
    assert torch.equal(model.shared.weight, stored["shared.weight"])


def _break(path, how):
    if how == "no config":
        (path / "config.json").unlink()
    elif how == "not t5":
        (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif how == "no weights":
        (path / "pytorch_model.bin").unlink()
    elif how == "no tokenizer":
        (path / "spiece.model").unlink()
    elif how == "bad tokenizer":
        (path / "spiece.model").write_bytes(b"not a sentencepiece model")


@pytest.mark.parametrize("how, message", [
    ("no config", "not a T5 checkpoint directory (no config.json)"),
    ("not t5", "a 'bert' model; mmcot needs a T5 encoder-decoder"),
    ("no weights", "no weights (expected *.safetensors or pytorch_model.bin)"),
    ("no tokenizer", "no tokenizer (expected tokenizer.json or spiece.model)"),
    ("bad tokenizer", "cannot load the tokenizer"),
])
def test_unusable_directory_is_one_line(cli, tmp_path, data_dir, how, message):
    text = make_t5_dir(tmp_path / "t5", tokenizer="spiece", weights="bin", tied=True)
    _break(text, how)
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", text, "--out", tmp_path / "r")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(text) in lines[0], res.stderr


def test_spiece_only_without_protobuf_says_what_to_install(cli, tmp_path, data_dir, monkeypatch):
    from mmcot_cli.model import t5_dirs

    text = make_t5_dir(tmp_path / "t5", tokenizer="spiece", weights="bin", tied=True)
    monkeypatch.setattr(t5_dirs, "_installed", lambda module: module != "google.protobuf")
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", text, "--out", tmp_path / "r")
    assert res.exit_code == 1
    assert "spiece.model only; reading it needs protobuf (pip install protobuf)" in res.stderr
