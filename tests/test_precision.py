"""--precision you can see (mmcot_cli.model.precision): training forward, validation decoding and generation all
run inside one `autocast(device, precision)`, so the fusion layer computes in the precision the decoder does."""

from __future__ import annotations

import torch
from test_train import TINY_ARGS, data_dir  # noqa: F401  (fixture)

from mmcot_cli.model import fusion
from mmcot_cli.model.precision import autocast, inference_precision, supports


def _features(data_dir, tmp_path):
    from mmcot_cli.features.store import import_features
    from mmcot_cli.io import read_jsonl

    qids = [str(r["qid"]) for split in ("train", "val") for r in read_jsonl(data_dir / f"{split}.jsonl")]
    feats = tmp_path / "feats"
    import_features(feats, backbone="patches", split="all", qids=qids,
                    features=torch.randn(len(qids), 4, 8, generator=torch.Generator().manual_seed(0)).numpy(),
                    dtype="float32")
    return feats


def test_training_and_validation_fuse_in_the_training_precision(cli, data_dir, tmp_path, monkeypatch):  # noqa: F811
    seen: dict[tuple[str, bool], set] = {}
    original = fusion.ImageFusion.forward

    def spy(self, text_states, image_features):
        out = original(self, text_states, image_features)
        seen.setdefault(("train" if torch.is_grad_enabled() else "val", torch.is_autocast_enabled("cpu")),
                        set()).add(self.gate(torch.cat([text_states, text_states], -1)).dtype)
        return out

    monkeypatch.setattr(fusion.ImageFusion, "forward", spy)
    feats = _features(data_dir, tmp_path)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        seen.clear()
        res = cli("train", "--stage", "rationale", "--data", data_dir, "--text-model", "t5-scratch", "--features",
                  feats, "--out", tmp_path / precision, "--epochs", "1", "--batch-size", "6", "--max-output-len",
                  "6", "--precision", precision, "--json", *TINY_ARGS)
        assert res.exit_code == 0, res.output
        on = precision != "fp32"
        assert seen == {("train", on): {dtype}, ("val", on): {dtype}}, (precision, seen)


def test_inference_precision_choices():
    cpu = torch.device("cpu")
    assert inference_precision("run", "bf16", cpu) == ("bf16", None)
    assert inference_precision("run", None, cpu) == ("fp32", None)
    used, note = inference_precision("run", "fp16", cpu)
    assert used == "fp32" and "fp16" in note
    assert supports(cpu, "bf16") and not supports(cpu, "fp16")
    with autocast(cpu, "bf16"):
        assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
