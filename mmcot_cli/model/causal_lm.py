"""Multimodal-CoT on a decoder-only LM (any AutoModelForCausalLM): the image features reach the prompt in one of two
ways, chosen by `fusion`:

- "gated" (the paper's): at the input of decoder layer K (`fusion_layer`), the prompt's hidden states H attend to the
  projected image features and a sigmoid gate mixes the result in, the same ImageFusion math as on T5's encoder
  output (mmcot_cli.model.fusion):  fused = (1 − g)·H + g·A,  g = sigmoid(W[H; A]).  Only prompt positions are
  fused; target positions are the LM's own and see the image through attention to the fused prompt in layers K….
- "prefix" (LLaVA-style, for comparison): the image features, projected into the embedding space by a two-layer
  MLP, replace P placeholder tokens placed before the prompt.

Fuse once: both act through a forward hook (a pre-hook on decoder layer K, a hook on the input embeddings) that
fires while `_pending` holds this batch's features. In generation with the KV cache they are consumed by the
prefill, so generated tokens attend to the fused prompt through the cache and no step re-attends to the image;
without the cache every step recomputes the whole sequence, so the prompt is fused at every step (same result).

The LM keeps its own classes, names and files: a run saves `save_pretrained` of the LM (config with the `mmcot`
settings) plus the fusion layers in FUSION_WEIGHTS beside it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mmcot_cli.errors import DataError, MMCoTError
from mmcot_cli.model.fusion import ImageFusion, adamw

FUSIONS = ("gated", "prefix")
FUSION_WEIGHTS = "fusion.safetensors"  # beside the LM's model.safetensors in RUN_DIR/model/


class PrefixProjector(nn.Module):
    """Image features (B, P, D_img) → P embeddings (B, P, d): LLaVA-1.5's two-layer GELU MLP."""

    def __init__(self, image_dim: int, d_model: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(image_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.mlp(image_features.to(self.mlp[0].weight.dtype))


def text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def decoder_layers(lm) -> nn.ModuleList:
    """The LM's stack of decoder layers (Llama/Qwen: model.layers; GPT-2: transformer.h; …): the ModuleList of
    the base model holding num_hidden_layers blocks."""
    count = text_config(lm.config).num_hidden_layers
    base = lm.base_model
    for module in (base, *base.children()):
        for child in module.children():
            if isinstance(child, nn.ModuleList) and len(child) == count:
                return child
    raise MMCoTError(f"{type(lm).__name__}: cannot find its {count} decoder layers for the gated fusion "
                     "(use --fusion prefix)")


def default_fusion_layer(num_layers: int) -> int:
    """The middle layer: the prompt's states are contextualised by the layers below, and the layers above still
    carry the image to the target positions."""
    return num_layers // 2


def _expand(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Features/masks of B prompts for B·k rows (beams or samples sit next to each other, as generate expands)."""
    return tensor if tensor.shape[0] == rows else tensor.repeat_interleave(rows // tensor.shape[0], dim=0)


def _fit(mask: torch.Tensor, length: int) -> torch.Tensor | None:
    """The fusion mask for a forward over `length` positions: None for a cached decoding step (shorter than the
    prompt), right-extended with False when generated tokens follow the prompt (generation without the cache)."""
    if length < mask.shape[1]:
        return None
    return nn.functional.pad(mask, (0, length - mask.shape[1]), value=False)


class CausalFusionLM(nn.Module):
    """A causal LM plus the image fusion (`fusion` None for a text-only model)."""

    def __init__(self, lm, image_shape: Sequence[int] | None, fusion: str = "gated", fusion_layer: int | None = None):
        super().__init__()
        if fusion not in FUSIONS:
            raise MMCoTError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        self.lm = lm
        self.image_shape = (int(image_shape[0]), int(image_shape[1])) if image_shape else None
        self.fusion_kind = fusion
        self.fusion_layer: int | None = None
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._one_shot = False
        self.fusion: nn.Module | None = None
        if self.image_shape is None:
            return
        d_model, dtype = text_config(lm.config).hidden_size, lm.get_input_embeddings().weight.dtype
        if fusion == "gated":
            layers = decoder_layers(lm)
            layer = default_fusion_layer(len(layers)) if fusion_layer is None else int(fusion_layer)
            if not 0 <= layer < len(layers):
                raise MMCoTError(f"--fusion-layer {layer}: this model has decoder layers 0 … {len(layers) - 1}")
            self.fusion_layer = layer
            self.fusion = ImageFusion(d_model, self.image_shape[1]).to(dtype)
            layers[layer].register_forward_pre_hook(self._fuse_hidden, with_kwargs=True)
        else:
            self.fusion = PrefixProjector(self.image_shape[1], d_model).to(dtype)
            lm.get_input_embeddings().register_forward_hook(self._place_prefix)

    @property
    def config(self):
        return self.lm.config

    def configure_optimizers(self, weight_decay: float, lr: float, fused: bool | None = None) -> torch.optim.AdamW:
        return adamw(self, weight_decay, lr, fused)

    @property
    def prefix_length(self) -> int:
        """Placeholder tokens before each prompt (the prefix fusion's P image positions; 0 otherwise)."""
        return self.image_shape[0] if self.fusion_kind == "prefix" and self.image_shape else 0

    def check_image_features(self, image_features: torch.Tensor | None, batch_size: int) -> None:
        if self.image_shape is None:
            if image_features is not None:
                raise MMCoTError("this is a text-only model (no fusion layers) but image features were given")
            return
        if image_features is None:
            raise MMCoTError(f"this model fuses image features of shape {list(self.image_shape)}; none were given")
        if tuple(image_features.shape[1:]) != self.image_shape:
            raise DataError(f"image features have shape {list(image_features.shape[1:])} per example; "
                            f"the model was built for {list(self.image_shape)}")
        if image_features.shape[0] != batch_size:
            raise DataError(f"{image_features.shape[0]} image feature rows for a batch of {batch_size} texts")

    # ---------------------------------------------------------------- the hooks

    def _take(self, rows: int, length: int):
        if self._pending is None:
            return None
        features, mask = self._pending
        mask = _fit(mask, length)
        if mask is None:
            return None
        if self._one_shot:
            self._pending = None
        return _expand(features, rows), _expand(mask, rows)

    def _fuse_hidden(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        taken = self._take(hidden.shape[0], hidden.shape[1])
        if taken is None:
            return None
        features, mask = taken
        fused = self.fusion(hidden, features.to(hidden.device))
        hidden = torch.where(mask.to(hidden.device)[..., None], fused.to(hidden.dtype), hidden)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def _place_prefix(self, module, args, embeds):
        taken = self._take(embeds.shape[0], embeds.shape[1])
        if taken is None:
            return None
        features, mask = taken
        prefix = self.fusion(features.to(embeds.device)).to(embeds.dtype)  # (B, P, d), row-major like the mask
        return embeds.masked_scatter(mask.to(embeds.device)[..., None].expand_as(embeds), prefix)

    def fusion_positions(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Where a prompt batch (left-padded, only prompts) is fused: every prompt position (gated), or the first
        P attended positions, where the placeholders sit (prefix)."""
        attended = attention_mask.bool()
        if self.fusion_kind == "prefix":
            return attended & (attention_mask.long().cumsum(-1) <= self.prefix_length)
        return attended

    # ---------------------------------------------------------------- forward / generate

    def forward(self, input_ids=None, attention_mask=None, image_features=None, fusion_mask=None, labels=None,
                **kwargs):
        """The LM's forward (loss over the labels that are not -100), with `image_features` (B, P, D_img) fused
        at `fusion_mask` (B, T) (the collator's: prompt positions, or the prefix placeholders)."""
        self.check_image_features(image_features, input_ids.shape[0])
        if self.fusion is not None:
            self._pending, self._one_shot = (image_features, fusion_mask.bool()), False
        try:
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        finally:
            self._pending = None

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, image_features=None, **kwargs) -> torch.Tensor:
        """Only the new token ids of each (left-padded) prompt's continuation(s)."""
        self.check_image_features(image_features, input_ids.shape[0])
        if self.fusion is not None:
            self._pending = (image_features, self.fusion_positions(attention_mask))
            self._one_shot = bool(kwargs.get("use_cache", True))
        try:
            out = self.lm.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        finally:
            self._pending = None
        return out[:, input_ids.shape[1]:]
