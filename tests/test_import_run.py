"""`mmcot import-run`: the original's checkpoints as runs. The parity test runs the imported model on the shared
fixture (made by the original model class under transformers 4.30) and compares with that code's own outputs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED

from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.model.original_checkpoint import ImportRunConfig, import_run

FIXTURE = SHARED / "reference-checkpoint"


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURE / "expected.jsonl").is_file():
        pytest.skip("../shared/reference-checkpoint not present")
    return FIXTURE


@pytest.fixture(scope="module")
def imported(fixture_dir, tmp_path_factory):
    from mmcot_cli.model.text.runs import load_run_model

    out = tmp_path_factory.mktemp("imp") / "run"
    summary = import_run(ImportRunConfig(checkpoint=str(fixture_dir / "checkpoint"), stage="rationale",
                                         backbone="detr", out=str(out)))
    model, tokenizer, meta = load_run_model(out)
    return summary, model, tokenizer, meta, out


def _features(fixture_dir, qid):
    feats = np.load(fixture_dir / "features.npy", mmap_mode="r")
    name_map = json.loads((fixture_dir / "name_map.json").read_text())
    if qid in name_map:
        return torch.from_numpy(np.array(feats[int(name_map[qid])]))[None]
    return torch.zeros(1, 100, 256)  # problems without an image: zeros, as the original feeds them


def test_parity_with_the_original_on_all_150_rows(fixture_dir, imported):
    _, model, tokenizer, _, _ = imported
    rows = [json.loads(line) for line in (fixture_dir / "expected.jsonl").read_text().splitlines()]
    assert len(rows) == 150
    worst, mismatched = 0.0, []
    with torch.inference_mode():
        for row in rows:
            # the original tokenizes with max_length 512 (input_len) and truncation
            ids = tokenizer(row["source"], max_length=512, truncation=True, return_tensors="pt").input_ids
            mask = torch.ones_like(ids)
            image = _features(fixture_dir, row["qid"])
            labels = torch.tensor([row["target_ids"]])
            logits = model(input_ids=ids, attention_mask=mask, image_features=image, labels=labels).logits
            logprobs = logits.log_softmax(-1)[0].gather(-1, labels[0, :, None])[:, 0]
            worst = max(worst, (logprobs - torch.tensor(row["target_logprobs"])).abs().max().item())
            out = model.generate(input_ids=ids, attention_mask=mask, image_features=image, do_sample=False,
                                 num_beams=1, min_new_tokens=24, max_new_tokens=24)
            if out[0].tolist() != row["generated_ids"]:
                mismatched.append(row["qid"])
    assert worst < 1e-4
    assert mismatched == []


def test_imported_run_records_its_source(fixture_dir, imported):
    import hashlib

    summary, model, _, meta, out = imported
    digest = hashlib.sha256((fixture_dir / "checkpoint" / "pytorch_model.bin").read_bytes()).hexdigest()
    assert summary["source"]["files"] == {"pytorch_model.bin": digest}
    assert summary["layout"] == "v2" and summary["tied_head"] is False and summary["image_shape"] == [100, 256]
    run_cfg = json.loads((out / "run_config.json").read_text())
    assert run_cfg["imported_from"]["path"] == str((fixture_dir / "checkpoint").resolve())
    assert meta["vision_backbone"] == "detr" and meta["prompt_format"] == "QCM-E"
    # the untied FLAN head survives save/load and is not scaled
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert model.config.scale_decoder_outputs is False


def _copy_checkpoint(fixture_dir, dest: Path, state: dict, *, safetensors: bool = False) -> Path:
    dest.mkdir(parents=True)
    for f in (fixture_dir / "checkpoint").iterdir():
        if f.name != "pytorch_model.bin":
            shutil.copy(f, dest / f.name)
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"))
    else:
        torch.save(state, dest / "pytorch_model.bin")
    return dest


def _state(fixture_dir) -> dict:
    return torch.load(fixture_dir / "checkpoint" / "pytorch_model.bin", weights_only=True)


def test_v1_layout_and_safetensors_import_the_same_model(fixture_dir, imported, tmp_path):
    from mmcot_cli.model.text.runs import load_run_model

    v1 = {k.removeprefix("encoder.") if any(m in k for m in ("image_dense", "mha_layer", "gate_dense")) else k: v
          for k, v in _state(fixture_dir).items()}
    v1.pop("encoder.embed_tokens.weight")
    v1.pop("decoder.embed_tokens.weight")
    assert "image_dense.weight" in v1
    ckpt = _copy_checkpoint(fixture_dir, tmp_path / "v1", v1, safetensors=True)
    summary = import_run(ImportRunConfig(checkpoint=str(ckpt), stage="answer", backbone="detr",
                                         out=str(tmp_path / "run")))
    assert summary["layout"] == "v1" and summary["prompt_format"] == "QCMG-A"
    model = load_run_model(tmp_path / "run")[0]
    reference = imported[1].state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


@pytest.mark.parametrize("change, message", [
    (lambda s: s.__setitem__("encoder.extra.weight", torch.zeros(2)), "unexpected key(s) for this T5 config: "
                                                                      "encoder.extra.weight"),
    (lambda s: s.pop("decoder.final_layer_norm.weight"), "missing from the checkpoint: decoder.final_layer_norm"),
    (lambda s: s.pop("encoder.mha_layer.in_proj_bias"), "fusion key(s) missing from the checkpoint: "
                                                         "encoder.mha_layer.in_proj_bias"),
    (lambda s: s.__setitem__("lm_head.weight", torch.zeros(3, 3)), "lm_head.weight has shape [3, 3]"),
    (lambda s: s.__setitem__("image_dense.weight", torch.zeros(64, 256)), "fusion layers in both key layouts"),
])
def test_bad_keys_are_named(fixture_dir, tmp_path, change, message):
    state = _state(fixture_dir)
    change(state)
    ckpt = _copy_checkpoint(fixture_dir, tmp_path / "ckpt", state)
    with pytest.raises(DataError, match=None) as err:
        import_run(ImportRunConfig(checkpoint=str(ckpt), stage="rationale", backbone="detr",
                                   out=str(tmp_path / "run")))
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()


def test_width_mismatch_names_both(fixture_dir, tmp_path):
    with pytest.raises(DataError) as err:
        import_run(ImportRunConfig(checkpoint=str(fixture_dir / "checkpoint"), stage="rationale", backbone="vit",
                                   out=str(tmp_path / "run")))
    assert "width 256" in str(err.value) and "vit produces width 1024" in str(err.value)
    with pytest.raises(UsageError, match="--backbone"):
        import_run(ImportRunConfig(checkpoint=str(fixture_dir / "checkpoint"), stage="rationale",
                                   out=str(tmp_path / "run")))


def test_pickle_that_is_not_a_flat_state_dict_is_refused(fixture_dir, tmp_path):
    ckpt = _copy_checkpoint(fixture_dir, tmp_path / "ckpt", {"model": {"a": torch.zeros(1)}})
    with pytest.raises(DataError, match="expected a tensor"):
        import_run(ImportRunConfig(checkpoint=str(ckpt), stage="rationale", backbone="detr",
                                   out=str(tmp_path / "run")))


def test_checkpoint_without_fusion_keys_is_a_text_only_run(fixture_dir, tmp_path):
    from mmcot_cli.model.text.runs import load_run_model

    state = {k: v for k, v in _state(fixture_dir).items()
             if not any(m in k for m in ("image_dense", "mha_layer", "gate_dense"))}
    ckpt = _copy_checkpoint(fixture_dir, tmp_path / "ckpt", state)
    with pytest.raises(UsageError, match="text-only"):
        import_run(ImportRunConfig(checkpoint=str(ckpt), stage="rationale", backbone="detr",
                                   out=str(tmp_path / "r0")))
    summary = import_run(ImportRunConfig(checkpoint=str(ckpt), stage="rationale", out=str(tmp_path / "run")))
    assert summary["layout"] == "text-only" and summary["image_shape"] is None
    model = load_run_model(tmp_path / "run")[0]
    assert model.fusion is None
    assert torch.equal(model.lm_head.weight, state["lm_head.weight"])


def test_tied_t5_checkpoint_keeps_the_tie_and_the_scaling(tmp_path):
    """A T5 v1.0 (UnifiedQA-style) checkpoint: tied lm_head, decoder output scaled by d_model^-0.5."""
    from t5_layouts import make_t5_dir
    from transformers import T5ForConditionalGeneration

    from mmcot_cli.model.text.runs import load_run_model

    ckpt = make_t5_dir(tmp_path / "uqa", tokenizer="spiece", weights="bin", tied=True)
    summary = import_run(ImportRunConfig(checkpoint=str(ckpt), stage="answer", out=str(tmp_path / "run")))
    assert summary["tied_head"] is True and summary["source"]["tokenizer"] == "spiece.model"
    assert json.loads((tmp_path / "run" / ".mmcot-output.json").read_text())["command"] == "import-run"
    model = load_run_model(tmp_path / "run")[0]
    t5 = T5ForConditionalGeneration.from_pretrained(ckpt).eval()
    assert t5.config.scale_decoder_outputs and model.config.scale_decoder_outputs
    assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
    ids = torch.tensor([[5, 6, 7, 1]])
    labels = torch.tensor([[8, 9, 1]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids, labels=labels).logits, t5(input_ids=ids, labels=labels).logits,
                              atol=1e-5)


def test_image_tokens_option_sets_p(fixture_dir, tmp_path):
    """P is stored nowhere in the checkpoint: --image-tokens overrides the backbone's declared token count."""
    summary = import_run(ImportRunConfig(checkpoint=str(fixture_dir / "checkpoint"), stage="rationale",
                                         backbone="detr", image_tokens=7, out=str(tmp_path / "run")))
    assert summary["image_shape"] == [7, 256]
    run_config = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert run_config["feature_shape"] == [7, 256] and run_config["max_output_len"] == 511


def test_an_uncached_hub_id_offline_is_one_error(tmp_path, monkeypatch):
    """A hub id goes through the Hugging Face cache (tests/test_hub_import.py); offline and not cached, it says so."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="not in the Hugging Face cache .*HF_HUB_OFFLINE"):
        import_run(ImportRunConfig(checkpoint="cooelf/mm-cot/mm-cot-base-rationale", stage="rationale",
                                   out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()
