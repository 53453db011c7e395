"""T5TextModel: the text-model seam (mmcot_cli.model.text.base) for T5, the paper's backbone, and how a T5 run
model (MMCoTForConditionalGeneration, mmcot_cli.model.fusion) is built, saved and loaded.

T5 specifics, all here: the encoder input is the tokenized source (right-padded), targets are the decoder labels,
`generate` returns the decoder ids after the start token, and the fusion sits on the encoder output.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import AutoConfig, AutoTokenizer, T5Config

from mmcot_cli.errors import DataError, MMCoTError, UsageError, first_line, torch_load_problem
from mmcot_cli.io import atomic_dir
from mmcot_cli.model.adapters import lora
from mmcot_cli.model.batching import Collator, Example, length_mask, pad_rows, tokenize_pairs
from mmcot_cli.model.fusion import (
    MMCoTForConditionalGeneration,
    first_non_finite,
    mmcot_settings,
    quiet_hf,
    with_mmcot_settings,
)
from mmcot_cli.model.generation import decode_generated
from mmcot_cli.model.t5_dirs import check_t5_dir, load_tokenizer
from mmcot_cli.model.text import greedy_t5
from mmcot_cli.model.weights_fit import check_nothing_missing, check_weights_fit

SEQ2SEQ = "seq2seq"


class T5TextModel:
    """One loaded T5 run model (`net`) and its tokenizer."""

    kind = SEQ2SEQ

    def __init__(self, net: MMCoTForConditionalGeneration, tokenizer):
        self.net, self.tokenizer = net, tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return self.net.image_shape

    @property
    def settings(self) -> dict[str, Any]:
        return {"kind": SEQ2SEQ, "fusion": "gated" if self.image_shape else None, "fusion_layer": None,
                "chat_template": False}

    def examples(self, qids: Sequence[str], sources: Sequence[str], targets: Sequence[str], max_input_len: int,
                 max_output_len: int) -> list[Example]:
        return tokenize_pairs(self.tokenizer, qids, sources, targets, max_input_len, max_output_len)

    def collator(self, features_by_qid=None, original_labels: int | None = None) -> Collator:
        if original_labels is not None:
            return Collator.original_labels(self.pad_id, original_labels, features_by_qid)
        return Collator(pad_token_id=self.pad_id, features_by_qid=features_by_qid)

    @staticmethod
    def loss(net, batch: dict[str, Any]) -> torch.Tensor:
        return net(**{k: v for k, v in batch.items() if k != "qids"}).loss

    def prompt_rows(self, sources: Sequence[str], max_input_len: int) -> list[tuple[int, ...]]:
        return self.tokenizer(list(sources), max_length=max_input_len, truncation=True, padding=False)["input_ids"]

    def prompt_batch(self, token_rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(row) for row in token_rows)
        return pad_rows(token_rows, self.pad_id, width), length_mask([len(row) for row in token_rows], width)

    def generate(self, input_ids, attention_mask, image_features=None, **kwargs) -> torch.Tensor:
        """The decoder ids, start token included (decode drops it as a special token)."""
        if image_features is not None:
            kwargs["image_features"] = image_features
        if greedy_t5.handles(self.net, kwargs):  # the common case, without generate()'s per-step overhead
            return greedy_t5.greedy_generate(self.net, input_ids, attention_mask, **kwargs)
        return self.net.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def decode(self, new_ids) -> list[str]:
        """As the original decodes (stage-1 rationales become stage-2 input verbatim)."""
        return decode_generated(self.tokenizer, new_ids)

    def save(self, out_dir: str | Path, meta: dict) -> Path:
        return save_t5_model(self.net, self.tokenizer, out_dir, meta)


# ----------------------------------------------------------------------------------------------------------------
# Building, saving and loading a T5 run model


def from_t5(t5: nn.Module, image_shape: Sequence[int] | None) -> MMCoTForConditionalGeneration:
    """Wrap a plain T5ForConditionalGeneration (e.g. from a custom text builder) as a fusion model."""
    config = with_mmcot_settings(T5Config.from_dict(t5.config.to_dict()), image_shape)
    model = MMCoTForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(t5.state_dict(), strict=False)
    missing = [k for k in missing if not k.startswith("fusion.")]
    if missing or unexpected:
        raise MMCoTError(f"text backbone weights do not fit T5: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def check_t5_fusion(fusion: str, fusion_layer: int | None) -> None:
    """T5 fuses on the encoder output: the decoder-only choices (--fusion prefix, --fusion-layer) do not apply."""
    if fusion != "gated":
        raise UsageError(f"--fusion {fusion}: T5 fuses with the gated fusion on its encoder output; the prefix "
                         "fusion is for decoder-only text backbones")
    if fusion_layer is not None:
        raise UsageError("--fusion-layer applies to decoder-only text backbones (T5 fuses on its encoder output)")


def pretrained_t5(name: str, weights: str, image_shape: Sequence[int] | None, random_init: bool):
    """(MMCoTForConditionalGeneration, tokenizer) from a hub id, the cache or a local directory of any hub layout
    (spiece.model and/or tokenizer.json, .bin or safetensors); `random_init` keeps only the architecture."""
    local = Path(weights).expanduser().is_dir()
    if local:
        check_t5_dir(weights)
    try:
        config = AutoConfig.from_pretrained(weights)
        if config.model_type != "t5":
            raise MMCoTError(f"text backbone {name!r} ({weights}) is a {config.model_type!r} model; "
                             "mmcot needs a T5 encoder-decoder (model_type 't5') or a decoder-only causal LM")
        config = with_mmcot_settings(config, image_shape)
        tokenizer = load_tokenizer(weights) if local else AutoTokenizer.from_pretrained(weights)
        with quiet_hf():  # config from the directory: untied (FLAN) heads stay untied and unscaled
            if random_init:
                model = MMCoTForConditionalGeneration(config)
            else:
                model, info = MMCoTForConditionalGeneration.from_pretrained(
                    weights, config=config, output_loading_info=True, ignore_mismatched_sizes=True)
                check_nothing_missing(weights, info)
    except (OSError, ValueError, pickle.UnpicklingError) as e:  # not cached and offline, misspelled id, damaged
        # files in a local dir, a pytorch_model.bin holding pickled code (refused by weights_only, never run)
        raise MMCoTError(f"cannot load text backbone {name!r} ({weights}): {torch_load_problem(e)}") from None
    return model, tokenizer


def finish_t5(model: MMCoTForConditionalGeneration, tokenizer, backbone_name: str,
              image_shape: Sequence[int] | None):
    with_mmcot_settings(model.config, image_shape, text_backbone=backbone_name)
    if model.config.decoder_start_token_id is None:
        model.config.decoder_start_token_id = model.config.pad_token_id
    return model, tokenizer


def save_t5_model(model: MMCoTForConditionalGeneration, tokenizer, out_dir: str | Path, mmcot_meta: dict,
                  merge_lora: bool = False) -> Path:
    """A save_pretrained directory (safetensors weights incl. the fusion head, tokenizer, config with the mmcot
    meta), written to a temporary sibling and renamed into place: an interrupted save never leaves a half model.
    A LoRA model (mmcot_cli.model.adapters.lora) saves its base weights + adapter, or with `merge_lora` merged."""
    out_dir = Path(out_dir)
    meta = dict(mmcot_meta, lora=lora.settings(model, merge_lora))
    if "feature_shape" in meta and meta["feature_shape"] is not None:
        meta["feature_shape"] = [int(x) for x in meta["feature_shape"]]
        if model.image_shape is not None and tuple(meta["feature_shape"]) != model.image_shape:
            raise MMCoTError(f"feature_shape {meta['feature_shape']} does not match the model's image shape "
                             f"{list(model.image_shape)}")
    bad = first_non_finite(model)
    if bad is not None:  # the divergence guard's last line: a NaN/inf model is never written
        raise MMCoTError(f"{out_dir}: not saved, parameter {bad} holds NaN or infinite values (training diverged; "
                         "try a lower --lr)")
    with_mmcot_settings(model.config, model.image_shape, **meta)
    with atomic_dir(out_dir) as tmp, quiet_hf():
        lora.save_text_model(model, tmp, merged=merge_lora)  # safetensors (the only format transformers 5 writes)
        tokenizer.save_pretrained(tmp)
    return out_dir


def load_t5_model(model_dir: Path, device: str | torch.device = "cpu"):
    """(model, tokenizer, meta) of a T5 run's model directory; safetensors only, every fusion weight required."""
    check_weights_fit(model_dir)  # a lost tensor or an edited config would otherwise load as random weights
    # A damaged (truncated, overwritten) weights or tokenizer file is one error line naming the directory.
    broken = (OSError, ValueError, RuntimeError, KeyError, SafetensorError)
    try:
        with quiet_hf():
            model = MMCoTForConditionalGeneration.from_pretrained(model_dir, use_safetensors=True)
        # from_pretrained tolerates missing fusion keys (pretrained T5 → fusion model); a saved run must have them.
        stored = set()
        for shard in model_dir.glob("*.safetensors"):
            with safe_open(shard, framework="pt") as fh:
                stored.update(fh.keys())
    except broken as e:
        raise DataError(f"{model_dir}: cannot load the model ({first_line(e)})") from None
    lora.load_adapter(model, model_dir)
    if model.image_shape is None and any(k.startswith("fusion.") for k in stored):
        raise DataError(f"{model_dir / 'config.json'}: no fusion settings (image_shape), but the weights hold "
                        "fusion layers; the config was edited or damaged (restore it; it would run text-only)")
    missing = sorted(k for k in model.state_dict() if k.startswith("fusion.") and k not in stored)
    if missing:
        raise DataError(f"{model_dir}: fusion weights missing from the checkpoint: {', '.join(missing[:4])}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except broken as e:
        raise DataError(f"{model_dir}: cannot load the tokenizer ({first_line(e)})") from None
    model.to(device).eval()
    return model, tokenizer, mmcot_settings(model.config)
