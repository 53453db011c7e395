"""Building, saving and loading a decoder-only run model (CausalFusionLM, mmcot_cli.model.causal_lm).

Pretrained LMs load exactly as users with internet load them: AutoConfig / AutoTokenizer / AutoModelForCausalLM
`from_pretrained` of a hub id (or the local cache, or a local directory), in float32 (mixed precision is the
trainer's); `random_init` keeps the architecture only. A run directory holds the LM's `save_pretrained` (its
config carries the `mmcot` settings: kind "causal", image_shape, fusion, fusion_layer, chat_template …), its
tokenizer, and the fusion layers in FUSION_WEIGHTS. Safetensors only; no remote code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmcot_cli.errors import DataError, MMCoTError, first_line, torch_load_problem
from mmcot_cli.io import atomic_dir, read_json
from mmcot_cli.model.adapters import lora
from mmcot_cli.model.causal_batching import CHAT_TEMPLATE_KWARGS, pad_id
from mmcot_cli.model.causal_lm import FUSION_WEIGHTS, CausalFusionLM
from mmcot_cli.model.fusion import MMCOT_CONFIG_KEY, first_non_finite, mmcot_settings, quiet_hf
from mmcot_cli.model.weights_fit import check_causal_weights_fit, check_nothing_missing
from mmcot_cli.registry.hookspecs import TextBuildOptions
from mmcot_cli.registry.manager import build_text_model, get_text_backbone

CAUSAL = "causal"


def is_causal_config(config) -> bool:
    """Whether transformers loads this config as a decoder-only causal LM. Bidirectional encoders (BERT, RoBERTa …)
    have a causal-LM head class too, but are decoders only when their config says `is_decoder`."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False) or config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or bool(getattr(config, "is_decoder", False))


def _settings(net: CausalFusionLM, tokenizer, **meta) -> dict:
    settings = mmcot_settings(net.lm.config)
    chat = bool(getattr(tokenizer, "chat_template", None))
    settings.update(kind=CAUSAL, image_shape=list(net.image_shape) if net.image_shape else None,
                    fusion=net.fusion_kind if net.image_shape else None, fusion_layer=net.fusion_layer,
                    chat_template=chat, chat_template_kwargs=dict(CHAT_TEMPLATE_KWARGS) if chat else None)
    settings.update(meta)
    return settings


def _pretrained(weights: str, name: str, random_init: bool):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(weights)
        if not is_causal_config(config):
            raise MMCoTError(f"text backbone {name!r} ({weights}) is a {config.model_type!r} model, not a "
                             "decoder-only causal LM")
        tokenizer = AutoTokenizer.from_pretrained(weights)
        with quiet_hf():
            if random_init:
                lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            else:
                lm, info = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32, output_loading_info=True,
                                                                ignore_mismatched_sizes=True)
                check_nothing_missing(weights, info)
    except (OSError, ValueError, pickle.UnpicklingError) as e:  # not cached and offline, misspelled id, damaged
        # files, a pytorch_model.bin holding pickled code (refused by weights_only, never run)
        raise MMCoTError(f"cannot load text backbone {name!r} ({weights}): {torch_load_problem(e)}") from None
    return lm, tokenizer


def is_causal_source(weights: str) -> bool:
    """Whether a hub id / local directory holds a decoder-only causal LM (False when its config cannot be read:
    the T5 path then reports why)."""
    from transformers import AutoConfig

    path = Path(weights).expanduser()
    if path.is_dir():
        raw = read_json(path / "config.json") if (path / "config.json").is_file() else None
        if not isinstance(raw, dict) or raw.get("model_type") in (None, "t5"):
            return False
    try:
        return is_causal_config(AutoConfig.from_pretrained(weights))
    except (OSError, ValueError, KeyError):
        return False


def wrap_causal(lm, tokenizer, image_shape: Sequence[int] | None, backbone_name: str, *, fusion: str = "gated",
                fusion_layer: int | None = None):
    """(CausalFusionLM, tokenizer) around a built LM; an LM without a pad token pads with EOS (always masked)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.config.pad_token_id = pad_id(tokenizer)
    net = CausalFusionLM(lm, image_shape, fusion=fusion, fusion_layer=fusion_layer)
    setattr(lm.config, MMCOT_CONFIG_KEY, _settings(net, tokenizer, text_backbone=backbone_name))
    return net, tokenizer


def build_causal_model(text_backbone: str, image_shape: Sequence[int] | None, *, fusion: str = "gated",
                       fusion_layer: int | None = None, random_init: bool = False,
                       train_texts: Sequence[str] | None = None, text_options: dict | None = None):
    """(CausalFusionLM, tokenizer) for a registered name, a local directory or a hub id of a causal LM."""
    backbone = get_text_backbone(text_backbone)
    parsed = backbone.parse_options(text_options or {})
    if backbone.build is not None:
        options = TextBuildOptions(random_init=random_init, train_texts=train_texts, options=parsed)
        lm, tokenizer = build_text_model(backbone, options)
        if getattr(lm.config, "is_encoder_decoder", False):
            raise MMCoTError(f"text backbone {backbone.name!r} built an encoder-decoder, not a causal LM")
    else:
        lm, tokenizer = _pretrained(backbone.weights, text_backbone, random_init)
    return wrap_causal(lm, tokenizer, image_shape, backbone.name, fusion=fusion, fusion_layer=fusion_layer)


def save_causal_model(net: CausalFusionLM, tokenizer, out_dir: str | Path, mmcot_meta: dict,
                      merge_lora: bool = False) -> Path:
    """The run's model directory, written whole or not at all (a NaN/inf model is never written)."""
    out_dir = Path(out_dir)
    net = getattr(net, "module", net)
    bad = first_non_finite(net)
    if bad is not None:
        raise MMCoTError(f"{out_dir}: not saved, parameter {bad} holds NaN or infinite values (training diverged; "
                         "try a lower --lr)")
    setattr(net.lm.config, MMCOT_CONFIG_KEY,
            _settings(net, tokenizer, **mmcot_meta, lora=lora.settings(net, merge_lora)))
    with atomic_dir(out_dir) as tmp, quiet_hf():
        lora.save_text_model(net.lm, tmp, merged=merge_lora)  # base weights + adapter/, or merged weights
        tokenizer.save_pretrained(tmp)
        if net.fusion is not None:
            state = {k: v.detach().contiguous().cpu() for k, v in net.fusion.state_dict().items()}
            save_file(state, str(tmp / FUSION_WEIGHTS))
    return out_dir


def load_causal_model(model_dir: str | Path, device: str | torch.device = "cpu"):
    """(CausalFusionLM, tokenizer, meta) from a run's model directory; eval mode, on `device`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not isinstance(read_json(model_dir / "config.json"), dict):
        raise DataError(f"{model_dir / 'config.json'}: expected a JSON object (a model config)")
    check_causal_weights_fit(model_dir)  # a lost tensor or an edited config would load as random weights
    broken = (OSError, ValueError, RuntimeError, KeyError, SafetensorError)
    try:
        config = AutoConfig.from_pretrained(model_dir)
        meta = mmcot_settings(config)
        with quiet_hf():
            lm = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True, dtype=torch.float32)
        net = CausalFusionLM(lm, meta.get("image_shape"), fusion=meta.get("fusion") or "gated",
                             fusion_layer=meta.get("fusion_layer"))
        if net.fusion is not None:
            weights = model_dir / FUSION_WEIGHTS
            if not weights.is_file():
                raise DataError(f"{model_dir}: fusion weights missing ({FUSION_WEIGHTS})")
            net.fusion.load_state_dict(load_file(str(weights)))
        lora.load_adapter(net, model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except broken as e:
        raise DataError(f"{model_dir}: cannot load the model ({first_line(e)})") from None
    net.to(device).eval()
    return net, tokenizer, meta

