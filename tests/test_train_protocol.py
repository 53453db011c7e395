"""`mmcot train --protocol original|mmcot`: each of the original's training choices takes effect (fp32 even where
the launcher asks for bf16, random batches, pad-id labels in the loss, its validation rougeL), flags that contradict
the protocol are refused in one line, and the protocol is recorded in run_config.json."""

from __future__ import annotations

import json

import pytest
import torch
from test_train import TINY, TINY_ARGS, data_dir, tiny_cfg  # noqa: F401 (data_dir is a fixture)

from mmcot_cli.errors import UsageError
from mmcot_cli.evaluation.original_metrics import original_validation_rouge_l
from mmcot_cli.evaluation.rationale_metrics import rouge_l
from mmcot_cli.model.batching import LABEL_PAD, Collator, Example
from mmcot_cli.training import loop as train_mod
from mmcot_cli.training.inputs import StageData
from mmcot_cli.training.runtime import make_accelerator, precision_name
from mmcot_cli.training.validation import compute_metric


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_protocol_sets_precision_and_batches(tmp_path, data_dir):  # noqa: F811
    mmcot = tiny_cfg(data_dir, tmp_path / "a").resolved()
    original = tiny_cfg(data_dir, tmp_path / "b", protocol="original").resolved()
    assert (mmcot.protocol, mmcot.precision, mmcot.group_by_length) == ("mmcot", "auto", True)
    assert (original.protocol, original.precision, original.group_by_length) == ("original", "fp32", False)
    # options that agree with the protocol are accepted
    agreed = tiny_cfg(data_dir, tmp_path / "c", protocol="original", precision="fp32", group_by_length=False)
    assert agreed.resolved().precision == "fp32"
    assert tiny_cfg(data_dir, tmp_path / "d", group_by_length=False).resolved().group_by_length is False


@pytest.mark.parametrize("option, message", [
    ({"precision": "bf16"}, "--precision bf16 contradicts --protocol original"),
    ({"precision": "fp16"}, "--precision fp16 contradicts --protocol original"),
    ({"group_by_length": True}, "--group-by-length contradicts --protocol original"),
    ({"max_tokens_per_batch": 500}, "--max-tokens-per-batch builds length-sorted batches, which contradicts"),
])
def test_original_refuses_contradicting_options(tmp_path, data_dir, option, message):  # noqa: F811
    with pytest.raises(UsageError, match=message):
        tiny_cfg(data_dir, tmp_path / "r", protocol="original", **option).resolved()


def test_cli_conflict_is_one_line_and_writes_nothing(tmp_path, cli, data_dir):  # noqa: F811
    out = tmp_path / "run"
    res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--out", out,
              "--protocol", "original", "--precision", "bf16", *TINY_ARGS)
    assert res.exit_code == 2
    assert "--precision bf16 contradicts --protocol original" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()


def test_original_trains_fp32_where_the_launcher_asks_for_bf16(tmp_path, data_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    mmcot = make_accelerator(tiny_cfg(data_dir, tmp_path / "a", device="cpu").resolved())
    assert precision_name(mmcot) == "bf16"
    original = make_accelerator(tiny_cfg(data_dir, tmp_path / "b", device="cpu", protocol="original").resolved())
    assert precision_name(original) == "fp32"


def test_original_labels_pad_to_the_output_length_with_the_pad_id_and_count_in_the_loss():
    from transformers import T5Config, T5ForConditionalGeneration

    batch = [Example("a", (5, 6, 1), (7, 1)), Example("b", (5, 1), (7, 8, 9, 1))]
    mmcot = Collator(pad_token_id=0)(batch)
    original = Collator.original_labels(0, 6)(batch)
    assert mmcot["labels"].tolist() == [[7, 1, LABEL_PAD, LABEL_PAD], [7, 8, 9, 1]]
    assert original["labels"].tolist() == [[7, 1, 0, 0, 0, 0], [7, 8, 9, 1, 0, 0]]
    assert original["input_ids"].tolist() == mmcot["input_ids"].tolist()  # sources: padding masked, unchanged
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=20, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
                                             decoder_start_token_id=0, pad_token_id=0)).eval()

    def loss_and_logits(b):
        out = t5(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
        return out.loss, out.logits

    own, _ = loss_and_logits(mmcot)
    theirs, logits = loss_and_logits(original)
    every = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), original["labels"].reshape(-1))
    assert theirs.item() == pytest.approx(every.item(), rel=1e-5)  # all 12 positions, the 4 pads included
    assert abs(theirs.item() - own.item()) > 1e-3


def test_train_original_takes_effect_in_the_loop_and_is_recorded(tmp_path, data_dir, monkeypatch):  # noqa: F811
    seen = {"labels": [], "precisions": set(), "group_size": []}
    loss = train_mod._compute_loss
    autocast = train_mod.autocast
    sampler = train_mod.LengthGroupedBatchSampler

    def spy_loss(model, batch):
        seen["labels"].append(batch["labels"].clone())
        return loss(model, batch)

    def spy_autocast(device, precision):
        seen["precisions"].add(precision)
        return autocast(device, precision)

    def spy_sampler(*args, **kw):
        seen["group_size"].append(kw["group_size"])
        return sampler(*args, **kw)

    monkeypatch.setattr(train_mod, "_compute_loss", spy_loss)
    monkeypatch.setattr(train_mod, "autocast", spy_autocast)
    monkeypatch.setattr(train_mod, "LengthGroupedBatchSampler", spy_sampler)
    out = tmp_path / "orig"
    summary = train_mod.train(tiny_cfg(data_dir, out, protocol="original", epochs=1))
    assert summary["protocol"] == "original" and summary["precision"] == "fp32"
    assert seen["precisions"] == {"fp32"} and seen["group_size"] == [1]
    labels = torch.cat(seen["labels"])
    assert labels.shape[1] == 12 and (labels == 0).any() and not (labels == LABEL_PAD).any()
    recorded = json.loads((out / "run_config.json").read_text())["train_config"]
    assert (recorded["protocol"], recorded["precision"], recorded["group_by_length"]) == ("original", "fp32", False)

    seen.update(labels=[], group_size=[])
    train_mod.train(tiny_cfg(data_dir, tmp_path / "own", epochs=1))
    assert seen["group_size"] == [50] and (torch.cat([x.flatten() for x in seen["labels"]]) == LABEL_PAD).any()


def test_original_selects_on_its_validation_rouge_l():
    records = [{"qid": "1", "choices": ["a", "b"], "answer": 0}, {"qid": "2", "choices": ["a", "b"], "answer": 1}]
    examples = [Example("1", (1,), (1,)), Example("2", (1,), (1,))]
    # the two differ where a target is empty: mmcot skips the pair, the original's validation scores it 0
    targets = {"1": "Solution: The boxes are running.", "2": ""}
    preds = {"1": "Solution: the box runs.", "2": "Solution: cats ran fast"}
    data = StageData(examples=examples, records=records, sources=["", ""], targets=targets)
    original = compute_metric("rationale", preds, data, "original")
    assert original == pytest.approx(original_validation_rouge_l([preds["1"], preds["2"]],
                                                                 [targets["1"], targets["2"]]))
    assert original == pytest.approx(compute_metric("rationale", preds, data) / 2) and original > 1
    assert compute_metric("rationale", preds, data) == pytest.approx(
        rouge_l([preds["1"], preds["2"]], [targets["1"], targets["2"]]))


def test_decoder_only_backbones_refuse_the_original_labels():
    from mmcot_cli.model.text.causal import CausalTextModel

    with pytest.raises(UsageError, match="--protocol original reproduces the original's T5 training"):
        CausalTextModel.collator(object(), original_labels=12)
