"""The fusion model: formula parity, fuse-once generation with KV cache, save/load, text backbones."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

from mmcot_cli.errors import DataError, MMCoTError, UnknownBackboneError, UsageError
from mmcot_cli.model.fusion import MMCoTForConditionalGeneration
from mmcot_cli.model.text.runs import build_model, load_run_model, resolve_model_dir, save_run_model

P, D_IMG = 5, 12
TEXTS = [
    "Question: Which magnet is stronger? Context: N/A Options: (A) north (B) south",
    "Solution: Magnets attract when opposite poles face each other.",
    "The answer is (A).",
    "Question: What color is the big shape? Options: (A) red (B) blue (C) green",
]


def tiny_config(image_shape=(P, D_IMG), **kw) -> T5Config:
    config = T5Config(vocab_size=64, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **kw)
    config.mmcot = {"image_shape": list(image_shape) if image_shape else None}
    return config


def tiny_model(image_shape=(P, D_IMG)) -> MMCoTForConditionalGeneration:
    torch.manual_seed(0)
    return MMCoTForConditionalGeneration(tiny_config(image_shape)).eval()


def fixed_inputs(batch=3, length=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a padded row
    ids[1, 6:] = 0
    image = torch.randn(batch, P, D_IMG, generator=g)
    return ids, mask, image


def test_fused_states_match_the_formula():
    model = tiny_model()
    ids, mask, image = fixed_inputs()
    with torch.no_grad():
        fused = model.get_encoder()(input_ids=ids, attention_mask=mask, image_features=image).last_hidden_state
        H = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        f = model.fusion
        d = model.config.d_model
        # The paper's formula written out with plain tensor ops on the same weights.
        Hv = image @ f.image_proj.weight.T + f.image_proj.bias
        Wq, Wk, Wv = f.attention.in_proj_weight.split(d)
        bq, bk, bv = f.attention.in_proj_bias.split(d)
        q, k, v = H @ Wq.T + bq, Hv @ Wk.T + bk, Hv @ Wv.T + bv
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
        A = (weights @ v) @ f.attention.out_proj.weight.T + f.attention.out_proj.bias
        g = torch.sigmoid(torch.cat([H, A], dim=-1) @ f.gate.weight.T + f.gate.bias)
        expected = (1 - g) * H + g * A
    assert fused.shape == (3, 9, 32)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fused, H, atol=1e-3)  # the image actually changes the states


def test_fusion_layers_use_pytorch_default_init_not_t5_std_one():
    model = tiny_model()
    bound = 1 / math.sqrt(D_IMG)  # kaiming_uniform(a=√5) bound for fan_in = D_IMG
    assert model.fusion.image_proj.weight.abs().max() <= bound + 1e-6
    assert model.fusion.gate.weight.abs().max() <= 1 / math.sqrt(64) + 1e-6
    assert torch.all(model.fusion.attention.in_proj_bias == 0)


def test_text_only_model_has_no_fusion_and_equals_t5():
    model = tiny_model(image_shape=None)
    assert model.fusion is None
    assert not any(name.startswith("fusion") for name, _ in model.named_parameters())
    t5 = T5ForConditionalGeneration(tiny_config(None)).eval()
    t5.load_state_dict(model.state_dict())
    ids, mask, _ = fixed_inputs()
    dec = torch.tensor([[0, 5, 7]] * 3)
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        ref = t5(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
    torch.testing.assert_close(ours, ref)
    with pytest.raises(MMCoTError, match="text-only"):
        model(input_ids=ids, attention_mask=mask, image_features=torch.zeros(3, P, D_IMG), decoder_input_ids=dec)


def test_wrong_or_missing_image_features_are_clear_errors():
    model = tiny_model()
    ids, mask, image = fixed_inputs()
    with pytest.raises(DataError, match=r"shape \[5, 7\].*\[5, 12\]"):
        model(input_ids=ids, attention_mask=mask, image_features=torch.zeros(3, 5, 7), labels=ids)
    with pytest.raises(MMCoTError, match="none were given"):
        model(input_ids=ids, attention_mask=mask, labels=ids)


def test_padding_does_not_change_results():
    """Padded text positions query the image too, but the decoder masks them out: padding is invisible."""
    model = tiny_model()
    ids, mask, image = fixed_inputs()
    dec = torch.tensor([[0, 9, 4, 11]])
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, image_features=image,
                        decoder_input_ids=dec.repeat(3, 1)).logits[1]
        alone = model(input_ids=ids[1:2, :6], attention_mask=mask[1:2, :6], image_features=image[1:2],
                      decoder_input_ids=dec).logits[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_labels_minus_100_are_ignored_by_the_loss():
    model = tiny_model()
    ids, mask, image = fixed_inputs()
    labels = torch.tensor([[5, 6, 1, -100], [7, 1, -100, -100], [8, 9, 10, 1]])
    with torch.no_grad():
        loss = model(input_ids=ids, attention_mask=mask, image_features=image, labels=labels).loss
        logits = model(input_ids=ids, attention_mask=mask, image_features=image,
                       decoder_input_ids=model._shift_right(labels)).logits
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_fuses_once_and_kv_cache_matches_no_cache(num_beams):
    model = tiny_model()
    ids, mask, image = fixed_inputs()
    calls = []
    model.fusion.register_forward_hook(lambda *a: calls.append(1))
    encoder_calls = []
    model.encoder.register_forward_hook(lambda *a: encoder_calls.append(1))
    kw = dict(input_ids=ids, attention_mask=mask, image_features=image, max_new_tokens=12, min_new_tokens=12,
              num_beams=num_beams, do_sample=False)
    cached = model.generate(**kw, use_cache=True)
    assert len(calls) == 1 and len(encoder_calls) == 1  # encoder + fusion once for the whole generate call
    uncached = model.generate(**kw, use_cache=False)
    assert len(calls) == 2
    assert cached.shape == (3, 13)
    assert torch.equal(cached, uncached)


def test_save_load_round_trip_identical_logits(tmp_path):
    model = tiny_model()
    tokenizer = build_model("t5-scratch", None, train_texts=TEXTS,
                            text_options={"d_model": 32, "layers": 1, "heads": 2})[1]
    meta = {"text_backbone": "t5-scratch", "vision_backbone": "patches", "feature_shape": [P, D_IMG],
            "prompt_format": "QCM-E", "stage": "rationale"}
    run = tmp_path / "run"
    save_run_model(model, tokenizer, run / "model", meta)
    files = {p.name for p in (run / "model").iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    loaded, tok2, meta2 = load_run_model(run)  # RUN_DIR or RUN_DIR/model both work
    assert resolve_model_dir(run) == resolve_model_dir(run / "model")
    assert {k: meta2[k] for k in meta} == meta and meta2["image_shape"] == [P, D_IMG]
    assert tok2("The answer is (A).").input_ids == tokenizer("The answer is (A).").input_ids
    ids, mask, image = fixed_inputs()
    dec = torch.tensor([[0, 3, 4]] * 3)
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, image_features=image, decoder_input_ids=dec).logits
        b = loaded(input_ids=ids, attention_mask=mask, image_features=image, decoder_input_ids=dec).logits
    assert torch.equal(a, b)
    # Saving again over an existing directory replaces it atomically.
    save_run_model(loaded, tok2, run / "model", {**meta, "stage": "answer"})
    assert load_run_model(run)[2]["stage"] == "answer"


def test_load_refuses_checkpoint_without_fusion_weights(tmp_path):
    t5 = T5ForConditionalGeneration(tiny_config(None))
    t5.config.mmcot = {"image_shape": [P, D_IMG]}  # claims fusion, but has only T5 weights
    t5.save_pretrained(tmp_path / "model")
    with pytest.raises(DataError, match="fusion weights missing"):
        load_run_model(tmp_path)
    with pytest.raises(DataError, match="not a run directory"):
        load_run_model(tmp_path / "nowhere")


def test_build_from_local_pretrained_dir_keeps_t5_weights(tmp_path):
    torch.manual_seed(3)
    t5 = T5ForConditionalGeneration(tiny_config(None))
    _, tokenizer = build_model("t5-scratch", None, train_texts=TEXTS, text_options={"d_model": 32, "heads": 2})
    t5.save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    model, tok = build_model(str(tmp_path / "t5"), (P, D_IMG))
    assert isinstance(model, MMCoTForConditionalGeneration) and model.image_shape == (P, D_IMG)
    assert torch.equal(model.shared.weight, t5.shared.weight)
    assert torch.equal(model.encoder.block[1].layer[1].DenseReluDense.wi.weight,
                       t5.encoder.block[1].layer[1].DenseReluDense.wi.weight)
    assert model.fusion.image_proj.weight.abs().max() <= 1 / math.sqrt(D_IMG) + 1e-6
    assert model.config.mmcot["text_backbone"] == str(tmp_path / "t5")


def test_unknown_text_backbone():
    with pytest.raises(UnknownBackboneError) as e:
        build_model("no-such-backbone", None)
    assert "t5-scratch" in str(e.value) and "flan-alpaca-base" in str(e.value)


def test_t5_family_names_map_to_hub_ids():
    from mmcot_cli.registry.manager import get_text_backbone

    assert get_text_backbone("unifiedqa-t5-base").weights == "allenai/unifiedqa-t5-base"
    assert get_text_backbone("flan-t5-large").weights == "google/flan-t5-large"
    assert get_text_backbone("flan-alpaca-base").weights == "declare-lab/flan-alpaca-base"


def test_scratch_backbone_sizes_and_tokenizer(tmp_path):
    model, tok = build_model("t5-scratch", (P, D_IMG), train_texts=TEXTS * 3,
                             text_options={"d_model": 48, "layers": 1, "heads": 3, "d_ff": 96, "vocab_size": 300})
    cfg = model.config
    assert (cfg.d_model, cfg.num_layers, cfg.num_decoder_layers, cfg.num_heads, cfg.d_ff) == (48, 1, 1, 3, 96)
    assert cfg.vocab_size == len(tok) <= 300
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    text = "Question: Which magnet is stronger? The answer is (A)."
    ids = tok(text).input_ids
    assert ids[-1] == 1 and tok.unk_token_id not in ids
    assert len(ids) == 15  # one piece per word and punctuation mark (+ </s>), not characters
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.unk_token_id not in tok("A zebra Quokka xylophone 42!").input_ids  # unseen words spell out
    tok.save_pretrained(tmp_path / "tok")
    again = AutoTokenizer.from_pretrained(tmp_path / "tok")  # offline, no remote code
    assert again(text).input_ids == ids


def test_scratch_backbone_option_errors():
    with pytest.raises(UsageError, match="unknown t5-scratch option"):
        build_model("t5-scratch", None, train_texts=TEXTS, text_options={"dmodel": 8})
    with pytest.raises(UsageError, match="not divisible"):
        build_model("t5-scratch", None, train_texts=TEXTS, text_options={"d_model": 30, "heads": 4})
    with pytest.raises(MMCoTError, match="training texts"):
        build_model("t5-scratch", None)


def test_non_t5_backbone_is_refused(tmp_path):
    from transformers import BartConfig

    BartConfig(vocab_size=32, d_model=16, encoder_layers=1, decoder_layers=1).save_pretrained(tmp_path / "bart")
    with pytest.raises(MMCoTError, match="'bart' model; mmcot needs a T5"):
        build_model(str(tmp_path / "bart"), None)


def test_encoder_view_exposes_t5_encoder_attributes():
    model = tiny_model()
    view = model.get_encoder()
    assert view.embed_tokens is model.encoder.embed_tokens
    assert not list(view.parameters(recurse=False))  # a view: no parameters of its own, state dict unchanged
    assert not any(k.startswith("_model") for k in model.state_dict())


def test_damaged_run_files_are_one_line_errors(tmp_path):
    import shutil

    model = tiny_model()
    tokenizer = build_model("t5-scratch", None, train_texts=TEXTS,
                            text_options={"d_model": 32, "layers": 1, "heads": 2})[1]
    good = tmp_path / "good"
    save_run_model(model, tokenizer, good / "model", {"prompt_format": "QCM-E", "stage": "rationale"})

    def damaged(i: int, name: str, content: bytes):
        run = tmp_path / f"damaged{i}"
        shutil.copytree(good, run)
        (run / "model" / name).write_bytes(content)
        return run

    weights = (good / "model" / "model.safetensors").read_bytes()
    cases = [("model.safetensors", weights[:1000], "cannot load the model"),
             ("config.json", b"{bad", "config.json:1:2: invalid JSON"),
             ("config.json", b"[1, 2]", "expected a JSON object"),
             ("tokenizer.json", b"garbage", "cannot load the tokenizer")]
    for i, (name, content, message) in enumerate(cases):
        with pytest.raises(DataError, match=message) as err:
            load_run_model(damaged(i, name, content))
        assert "\n" not in str(err.value)
