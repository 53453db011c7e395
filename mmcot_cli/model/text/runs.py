"""A run's model, whatever its text backbone: build it from a backbone name (a registered one, a local directory or
a hub id), save it into RUN_DIR/model/ and load it back. T5 goes to text.t5, decoder-only LMs to
mmcot_cli.model.causal_dirs; callers get (net, tokenizer[, meta]) and `text_model_for` for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from mmcot_cli.errors import DataError
from mmcot_cli.io import read_json
from mmcot_cli.model.causal_dirs import (
    CAUSAL,
    build_causal_model,
    is_causal_source,
    load_causal_model,
    save_causal_model,
    wrap_causal,
)
from mmcot_cli.model.causal_lm import CausalFusionLM
from mmcot_cli.model.fusion import MMCOT_CONFIG_KEY, MODEL_SUBDIR
from mmcot_cli.model.text.t5 import (
    check_t5_fusion,
    finish_t5,
    from_t5,
    load_t5_model,
    pretrained_t5,
    save_t5_model,
)
from mmcot_cli.registry.hookspecs import TextBuildOptions
from mmcot_cli.registry.manager import build_text_model, get_text_backbone
from mmcot_cli.registry.weights import require_text_weights


def build_model(text_backbone: str, image_shape: Sequence[int] | None, *, random_init: bool = False,
                train_texts: Sequence[str] | None = None, text_options: dict | None = None, fusion: str = "gated",
                fusion_layer: int | None = None):
    """(net, tokenizer) for a registered text backbone name, a local directory or a hub id.

    `image_shape` (P, D_img) adds the fusion layers; None builds a text-only model. Pretrained backbones load with
    `from_pretrained` (the hub for users with internet, the cache or a local directory otherwise); the fusion
    layers start from PyTorch's default init. `random_init` keeps the architecture but not the weights. A
    decoder-only LM becomes a CausalFusionLM with `fusion` at `fusion_layer`; T5 fuses on its encoder output.
    """
    backbone = get_text_backbone(text_backbone)
    parsed = backbone.parse_options(text_options or {})  # options the backbone does not declare: exit 2
    causal = {"fusion": fusion, "fusion_layer": fusion_layer}
    if backbone.build is not None:
        options = TextBuildOptions(random_init=random_init, train_texts=train_texts, options=parsed)
        lm, tokenizer = build_text_model(backbone, options)  # a plugin's failure: one line naming it
        if getattr(lm.config, "is_encoder_decoder", True) is False:  # a decoder-only builder (llama-scratch)
            return wrap_causal(lm, tokenizer, image_shape, backbone.name, **causal)
        check_t5_fusion(fusion, fusion_layer)
        return finish_t5(from_t5(lm, image_shape), tokenizer, backbone.name, image_shape)
    require_text_weights(text_backbone)
    if is_causal_source(backbone.weights):
        return build_causal_model(text_backbone, image_shape, random_init=random_init, train_texts=train_texts,
                                  text_options=text_options, **causal)
    check_t5_fusion(fusion, fusion_layer)
    model, tokenizer = pretrained_t5(text_backbone, backbone.weights, image_shape, random_init)
    return finish_t5(model, tokenizer, backbone.name, image_shape)


def parameter_counts(model) -> dict[str, int]:
    """{"total", "trainable"} parameters of a run model (fusion layers included; a DDP wrapper is looked through):
    train's summary, --json and run_config.json."""
    params = list(getattr(model, "module", model).parameters())
    return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}


def save_run_model(model, tokenizer, out_dir: str | Path, mmcot_meta: dict, merge_lora: bool = False) -> Path:
    """RUN_DIR/model (or any `out_dir`), written whole or not at all. `mmcot_meta` holds at least: text_backbone,
    vision_backbone, feature_shape, prompt_format, stage. A LoRA model writes its base weights + adapter, or with
    `merge_lora` the merged weights (mmcot_cli.model.adapters.lora)."""
    model = getattr(model, "module", model)  # unwrap DDP/accelerate wrappers
    if isinstance(model, CausalFusionLM):
        return save_causal_model(model, tokenizer, out_dir, mmcot_meta, merge_lora)
    return save_t5_model(model, tokenizer, out_dir, mmcot_meta, merge_lora)


def resolve_model_dir(run_or_model_dir: str | Path) -> Path:
    """RUN_DIR → RUN_DIR/model; a model directory itself is accepted too."""
    path = Path(run_or_model_dir).expanduser()
    if (path / MODEL_SUBDIR / "config.json").is_file():
        return path / MODEL_SUBDIR
    if (path / "config.json").is_file():
        return path
    raise DataError(f"{path}: not a run directory (no {MODEL_SUBDIR}/config.json) nor a model directory")


def load_run_model(run_or_model_dir: str | Path, device: str | torch.device = "cpu"):
    """(net, tokenizer, meta) from a RUN_DIR or its model/ directory; eval mode, on `device`.

    Loads safetensors only (never pickle) and no remote code. meta = the config's mmcot dict: text_backbone,
    vision_backbone, feature_shape / image_shape, prompt_format, stage, ...
    """
    model_dir = resolve_model_dir(run_or_model_dir)
    if not any(model_dir.glob("*.safetensors")):
        raise DataError(f"{model_dir}: no safetensors weights (pickle checkpoints are not loaded)")
    raw = read_json(model_dir / "config.json")
    if not isinstance(raw, dict):  # a damaged config: named with line:column
        raise DataError(f"{model_dir / 'config.json'}: expected a JSON object (a model config)")
    if isinstance(raw.get(MMCOT_CONFIG_KEY), dict) and raw[MMCOT_CONFIG_KEY].get("kind") == CAUSAL:
        return load_causal_model(model_dir, device)
    return load_t5_model(model_dir, device)
