"""Decoder-only LMs (mmcot_cli.model.causal_lm / causal_batching / causal_dirs, plugins scratch_llama and
causal_family): tiny random-init Llama, Qwen2 and GPT-2 saved in the hub's layout and loaded back through the path
users take; the gated and prefix fusions; the loss on target tokens only; left-padded generation; save/load."""

import pytest
import torch
from causal_layouts import CORPUS, make_causal_dir

from mmcot_cli.errors import DataError, MMCoTError, UsageError
from mmcot_cli.model.causal_batching import CausalCollator, PromptTemplate, causal_examples, left_padded, pad_id
from mmcot_cli.model.causal_dirs import build_causal_model, load_causal_model, save_causal_model

SHAPE = (3, 8)
SOURCES = ["Question: Which colour is the ball?\nOptions: (A) red (B) blue\nAnswer:",
           "Question: Which of these states is farthest north? It is a long question.\nSolution:"]
TARGETS = ["The answer is (A).", "Solution: West Virginia is farthest north. The answer is (B)."]


def _scratch(fusion="gated", **kw):
    torch.manual_seed(0)
    return build_causal_model("llama-scratch", SHAPE, fusion=fusion, train_texts=CORPUS,
                              text_options={"d_model": 32, "layers": 2, "heads": 4}, **kw)


def _batch(net, tok, features):
    template = PromptTemplate.of(tok, net.prefix_length)
    examples = causal_examples(tok, template, ["1", "2"], SOURCES, TARGETS, 128, 32)
    batch = CausalCollator(pad_id(tok), net.prefix_length, lambda qids: features)(examples)
    batch.pop("qids")
    return examples, batch


def test_registered_decoder_only_names_map_to_their_hub_ids():
    from mmcot_cli.registry.manager import text_backbones

    backbones = text_backbones()
    assert backbones["qwen2.5-0.5b-instruct"].weights == "Qwen/Qwen2.5-0.5B-Instruct"
    assert backbones["qwen3-0.6b"].weights == "Qwen/Qwen3-0.6B"
    assert backbones["smollm2-1.7b"].weights == "HuggingFaceTB/SmolLM2-1.7B"
    assert backbones["llama-3.2-3b-instruct"].weights == "meta-llama/Llama-3.2-3B-Instruct"
    assert backbones["llama-scratch"].build is not None


def test_backbones_lists_each_text_backbones_kind_and_fusion(cli):
    import json

    listed = {b["name"]: b for b in json.loads(cli("backbones", "--json").stdout)["text"]}
    assert listed["llama-scratch"]["kind"] == listed["qwen3-0.6b"]["kind"] == "causal"
    assert "--fusion gated (at --fusion-layer" in listed["llama-scratch"]["fusion"]
    assert listed["t5-scratch"]["kind"] == "seq2seq" and listed["t5-scratch"]["fusion"].startswith("gated, on the")
    table = cli("backbones").stdout
    assert "fusion" in table and "prefix" in table and "encoder" in table


def test_llama_scratch_tokenizer_is_saved_in_the_hub_layout_and_loads_back(tmp_path):
    from transformers import AutoTokenizer

    net, tok = _scratch()
    save_causal_model(net, tok, tmp_path / "model", {"stage": "answer"})
    assert (tmp_path / "model" / "tokenizer.json").is_file()
    again = AutoTokenizer.from_pretrained(tmp_path / "model")
    text = "Question: Which colour? ünïcode never seen\nAnswer:"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again(text)["input_ids"][0] == tok.bos_token_id
    assert again.decode(again(text, add_special_tokens=False)["input_ids"]).strip() == text  # byte-level: no <unk>


def test_llama_scratch_options_are_checked():
    with pytest.raises(UsageError, match="kv_heads"):
        _scratch_opts = {"d_model": 32, "heads": 4, "kv_heads": 3}
        build_causal_model("llama-scratch", None, train_texts=CORPUS, text_options=_scratch_opts)
    with pytest.raises(UsageError, match="unknown llama-scratch option"):
        build_causal_model("llama-scratch", None, train_texts=CORPUS, text_options={"d_modle": 32})


def test_fusion_layer_out_of_range_is_refused():
    with pytest.raises(MMCoTError, match="decoder layers 0 … 1"):
        _scratch(fusion_layer=2)


@pytest.mark.parametrize("fusion", ["gated", "prefix"])
def test_loss_counts_target_tokens_only(fusion):
    net, tok = _scratch(fusion)
    features = torch.randn(2, *SHAPE)
    examples, batch = _batch(net, tok, features)
    for row, e in enumerate(examples):
        labels = batch["labels"][row].tolist()
        start = len(e.input_ids)
        assert labels[:start] == [-100] * start and labels[start:start + len(e.labels)] == list(e.labels)
        assert set(labels[start + len(e.labels):]) <= {-100}
        assert e.labels[-1] == tok.eos_token_id
    logits = net(**{k: v for k, v in batch.items() if k != "labels"}).logits
    manual = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                               batch["labels"][:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(net(**batch).loss, manual, atol=1e-6)


@pytest.mark.parametrize("fusion", ["gated", "prefix"])
def test_generation_continues_what_training_sees_and_uses_the_image(fusion):
    """Greedy tokens through the KV cache (fused once, in the prefill) are the argmax of the training forward over
    prompt + those tokens (prompt fused, targets not); without the cache the same; other images change them."""
    net, tok = _scratch(fusion)
    net.eval()
    features = torch.randn(2, *SHAPE) * 5
    template = PromptTemplate.of(tok, net.prefix_length)
    rows = template.rows(SOURCES, tok, 128)
    ids, mask = left_padded(rows, pad_id(tok))
    assert mask[0, 0] == 0 and mask[:, -1].all()  # left-padded: every prompt ends where generation starts
    new = net.generate(ids, mask, features, max_new_tokens=6, do_sample=False)
    assert new.shape == (2, 6)
    assert torch.equal(new, net.generate(ids, mask, features, max_new_tokens=6, do_sample=False, use_cache=False))
    for i in range(2):
        examples = causal_examples(tok, template, ["q"], [SOURCES[i]], ["x"], 128, 32)
        forced = [type(examples[0])("q", examples[0].input_ids, tuple(new[i].tolist()))]
        batch = CausalCollator(pad_id(tok), net.prefix_length, lambda q: features[i:i + 1])(forced)
        batch.pop("qids"), batch.pop("labels")
        logits = net(**batch).logits[0]
        start = len(rows[i]) - 1
        assert logits[start:start + 6].argmax(-1).tolist() == new[i].tolist()
        alone = net.generate(ids[i:i + 1, -len(rows[i]):], mask[i:i + 1, -len(rows[i]):], features[i:i + 1],
                             max_new_tokens=6, do_sample=False)
        assert alone.tolist() == new[i:i + 1].tolist()  # left padding changes nothing
    fused = net.fusion_positions(mask)
    first = net(input_ids=ids, attention_mask=mask, image_features=features, fusion_mask=fused).logits[:, -1]
    other = net(input_ids=ids, attention_mask=mask, image_features=-features, fusion_mask=fused).logits[:, -1]
    assert not torch.allclose(first, other)


def test_samples_expand_the_image_with_their_prompt():
    net, tok = _scratch()
    net.eval()
    rows = PromptTemplate.of(tok).rows(SOURCES, tok, 128)
    ids, mask = left_padded(rows, pad_id(tok))
    features = torch.randn(2, *SHAPE)
    torch.manual_seed(1)
    out = net.generate(ids, mask, features, max_new_tokens=4, do_sample=True, num_return_sequences=3)
    assert out.shape == (6, 4)


@pytest.mark.parametrize("family,chat", [("llama", False), ("qwen2", True), ("gpt2", False)])
def test_hub_layout_dirs_load_train_save_and_load_back(tmp_path, family, chat):
    src = make_causal_dir(tmp_path / family, family, chat=chat)
    net, tok = build_causal_model(str(src), SHAPE, fusion="gated", fusion_layer=0)
    assert net.fusion_layer == 0 and tok.pad_token_id is not None
    template = PromptTemplate.of(tok)
    assert template.chat is chat
    if chat:  # the assistant header ends the prompt; the target ends with the template's EOS
        assert tok.decode(list(template.tail)).endswith("assistant\n")
    features = torch.randn(2, *SHAPE)
    examples, batch = _batch(net, tok, features)
    net.train()
    net(**batch).loss.backward()
    assert net.fusion.gate.weight.grad is not None
    net.eval()
    save_causal_model(net, tok, tmp_path / "run" / "model", {"stage": "answer"})
    again, tok2, meta = load_causal_model(tmp_path / "run" / "model")
    assert meta["kind"] == "causal" and meta["fusion"] == "gated" and meta["fusion_layer"] == 0
    assert meta["chat_template"] is chat
    ids, mask = left_padded([e.input_ids for e in examples], pad_id(tok))
    assert torch.equal(net.generate(ids, mask, features, max_new_tokens=4, do_sample=False),
                       again.generate(ids, mask, features, max_new_tokens=4, do_sample=False))


def test_missing_fusion_weights_and_non_causal_configs_are_one_error(tmp_path):
    net, tok = _scratch()
    save_causal_model(net, tok, tmp_path / "model", {})
    (tmp_path / "model" / "fusion.safetensors").unlink()
    with pytest.raises(DataError, match="fusion weights missing"):
        load_causal_model(tmp_path / "model")
    from t5_layouts import make_t5_dir

    t5 = make_t5_dir(tmp_path / "t5", tokenizer="json", weights="safetensors", tied=True)
    with pytest.raises(MMCoTError, match="not a decoder-only causal LM"):
        build_causal_model(str(t5), SHAPE)


@pytest.mark.parametrize("fusion", ["gated", "prefix"])
def test_constrained_answers_name_an_option_even_from_a_random_model(fusion):
    from mmcot_cli.model.answer_constraint import AnswerConstraints
    from mmcot_cli.model.text.causal import CausalTextModel

    model = CausalTextModel(*_scratch(fusion))
    model.net.eval()
    ids, mask = model.prompt_batch(model.prompt_rows(SOURCES, 128))
    constraints = AnswerConstraints(model.tokenizer, "QCM-A", [2, 3])
    new = model.generate(ids, mask, torch.randn(2, *SHAPE), max_new_tokens=12, do_sample=False,
                         logits_processor=[constraints.for_batch([0, 1])])
    texts = model.decode(new)
    assert texts[0] in ("The answer is (A).", "The answer is (B).")
    assert texts[1] in ("The answer is (A).", "The answer is (B).", "The answer is (C).")
    assert all(model.tokenizer.eos_token_id in row for row in new.tolist())  # the sentence is the whole answer


@pytest.mark.parametrize("fusion", ["gated", "prefix", "t5"])
def test_gradient_checkpointing_gives_the_same_gradients(fusion):
    """--gradient-checkpointing recomputes the blocks in backward; the gated fusion at layer K's input is
    recomputed with them and must see the same image features (the fusion's own gradients included)."""
    from mmcot_cli.model.text.runs import build_model
    from mmcot_cli.training.runtime import enable_gradient_checkpointing

    features = torch.randn(2, *SHAPE)
    if fusion == "t5":
        torch.manual_seed(0)
        net, tok = build_model("t5-scratch", SHAPE, train_texts=CORPUS,
                               text_options={"d_model": 32, "layers": 2, "heads": 4, "dropout": 0.0})
        enc = tok(SOURCES, return_tensors="pt", padding=True)
        labels = tok(TARGETS, return_tensors="pt", padding=True)["input_ids"]
        batch = {**enc, "labels": labels.masked_fill(labels == tok.pad_token_id, -100), "image_features": features}
    else:
        net, tok = _scratch(fusion)
        _, batch = _batch(net, tok, features)

    def grads():
        net.zero_grad()
        net.train()
        net(**batch).loss.backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    plain = grads()
    enable_gradient_checkpointing(net)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and any("fusion" in n for n in plain)
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name
