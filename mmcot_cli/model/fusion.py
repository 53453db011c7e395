"""The Multimodal-CoT fusion model: a T5 encoder-decoder whose encoder output is fused with image features.

    H  = T5 encoder(text)                        (B, L, d)
    Hv = Linear(image features)                  (B, P, D_img) → (B, P, d)
    A  = single-head attention(query=H, key=value=Hv)
    g  = sigmoid(Linear_2d→d([H; A]))
    fused = (1 − g)·H + g·A                      → the decoder cross-attends to `fused`

Text-only models (no image shape in the config) have no fusion layers at all and behave exactly like T5.

Fusion settings live in the config (`config.mmcot = {"image_shape": [P, D], ...}`) rather than in extra
`__init__` arguments, so `from_pretrained` / `save_pretrained` work unchanged (safetensors, no custom code).

Padded text positions: like the reference, every text position (padding included) queries the image; we do not
zero fused states at padding because the decoder's cross-attention masks padded encoder positions out with the
same `attention_mask`, so their values never reach the logits or the loss (labels use −100 for target padding).

Fuse once: `generate()` obtains the encoder through `get_encoder()`, which here returns a view that runs T5
encoder + fusion together. Generation therefore encodes and fuses once per example and then decodes with the KV
cache; `image_features` is dropped from the per-step decoder inputs (see `prepare_inputs_for_generation`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers import initialization as hf_init
from transformers.modeling_outputs import BaseModelOutput

from mmcot_cli.errors import DataError, MMCoTError


@contextlib.contextmanager
def quiet_hf():
    """Silence transformers' own tqdm bars (weights loading/writing): mmcot shows its own progress. Also drop
    the notice that an untied T5 head (FLAN-style lm_head) is not tied on load: transformers 5 forces
    tie_word_embeddings=True on every T5Config, so it fires on every correct load of such a model."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    loader_log = hf_logging.get_logger("transformers.modeling_utils")
    loader_log.addFilter(_untied_head_notice)
    try:
        yield
    finally:
        loader_log.removeFilter(_untied_head_notice)
        if was_enabled:
            hf_logging.enable_progress_bar()


def _untied_head_notice(record) -> bool:
    """Also transformers 5's multi-line "LOAD REPORT" table: what it lists mmcot checks and says in one line
    (weights_fit.check_nothing_missing: missing and misshapen tensors; unused ones, e.g. a run's fusion layers
    under a text-only config, are left out by design)."""
    message = record.getMessage()
    return "will NOT tie them" not in message and "LOAD REPORT" not in message


MMCOT_CONFIG_KEY = "mmcot"  # the config attribute holding the fusion settings and run metadata
MODEL_SUBDIR = "model"  # RUN_DIR/model/ holds the save_pretrained directory


def mmcot_settings(config) -> dict:
    """The mmcot dict stored in a model config ({} for a plain T5 config)."""
    return dict(getattr(config, MMCOT_CONFIG_KEY, None) or {})


def image_shape_of(config) -> tuple[int, int] | None:
    shape = mmcot_settings(config).get("image_shape")
    return (int(shape[0]), int(shape[1])) if shape else None


class ImageFusion(nn.Module):
    """Project image features to d_model, attend to them from the text states, and gate the result in."""

    def __init__(self, d_model: int, image_dim: int):
        super().__init__()
        self.image_proj = nn.Linear(image_dim, d_model)
        self.attention = nn.MultiheadAttention(d_model, num_heads=1, batch_first=True)
        self.gate = nn.Linear(2 * d_model, d_model)
        for module in self.modules():  # lets the model's _init_weights give these PyTorch's default init
            module._mmcot_fusion = True

    def forward(self, text_states: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        # text_states (B, L, d); image_features (B, P, D_img)
        image = self.image_proj(image_features.to(self.image_proj.weight.dtype))  # (B, P, d)
        attended, _ = self.attention(text_states, image, image, need_weights=False)  # (B, L, d): text queries
        gate = torch.sigmoid(self.gate(torch.cat([text_states, attended], dim=-1)))  # (B, L, 2d) → (B, L, d)
        return (1 - gate) * text_states + gate * attended  # (B, L, d)


class FusedEncoder(nn.Module):
    """What `get_encoder()` hands to `generate()`: T5 encoder + fusion in one call.

    It holds the model without registering it as a submodule, so parameter names and state dicts are unchanged.
    """

    main_input_name = "input_ids"

    def __init__(self, model: "MMCoTForConditionalGeneration"):
        super().__init__()
        object.__setattr__(self, "_model", model)

    def __getattr__(self, name):  # anything else (embed_tokens, config, dtype …) is the T5 encoder's
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._model.encoder, name)

    def forward(self, input_ids=None, attention_mask=None, image_features=None, inputs_embeds=None, **kwargs):
        return self._model.encode(input_ids=input_ids, attention_mask=attention_mask,
                                  image_features=image_features, inputs_embeds=inputs_embeds, **kwargs)


class MMCoTForConditionalGeneration(T5ForConditionalGeneration):
    """T5ForConditionalGeneration plus the gated image fusion on the encoder output."""

    # Loading a plain pretrained T5 checkpoint into a fusion model: the fusion head starts from fresh init.
    # (load_run_model checks separately that a saved run has all its fusion weights.)
    _keys_to_ignore_on_load_missing = [r"^fusion\."]

    def __init__(self, config: T5Config):
        super().__init__(config)
        shape = image_shape_of(config)
        self.fusion = ImageFusion(config.d_model, shape[1]) if shape else None
        if self.fusion is not None:
            # Second post_init initialises only the new fusion layers (already-initialised modules are flagged).
            self.post_init()

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return image_shape_of(self.config)

    def _init_weights(self, module):
        if getattr(module, "_mmcot_fusion", False):
            # PyTorch's default init (as the reference), not T5's initializer_factor-scaled normal (std 1.0).
            # hf_init functions skip tensors already loaded from a checkpoint.
            if isinstance(module, nn.Linear):
                hf_init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.weight.shape[1])
                    hf_init.uniform_(module.bias, -bound, bound)
            elif isinstance(module, nn.MultiheadAttention):
                hf_init.xavier_uniform_(module.in_proj_weight)
                hf_init.zeros_(module.in_proj_bias)
                hf_init.zeros_(module.out_proj.bias)
            return
        super()._init_weights(module)

    def check_image_features(self, image_features: torch.Tensor | None, batch_size: int | None = None) -> None:
        shape = self.image_shape
        if shape is None:
            if image_features is not None:
                raise MMCoTError("this is a text-only model (no fusion layers) but image features were given")
            return
        if image_features is None:
            raise MMCoTError(f"this model fuses image features of shape {list(shape)}; none were given")
        if tuple(image_features.shape[1:]) != shape:
            raise DataError(f"image features have shape {list(image_features.shape[1:])} per example; "
                            f"the model was built for {list(shape)}")
        if batch_size is not None and image_features.shape[0] != batch_size:
            raise DataError(f"{image_features.shape[0]} image feature rows for a batch of {batch_size} texts")

    def fuse(self, text_states: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        return self.fusion(text_states, image_features.to(text_states.device))

    def encode(self, input_ids=None, attention_mask=None, image_features=None, inputs_embeds=None,
               **kwargs) -> BaseModelOutput:
        """T5 encoder, then (for fusion models) the image fusion. Runs once per example in generate()."""
        kwargs.pop("return_dict", None)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)
        hidden = out.last_hidden_state  # (B, L, d)
        batch = hidden.shape[0]
        self.check_image_features(image_features, batch)
        if self.fusion is not None:
            hidden = self.fuse(hidden, image_features)  # (B, L, d) with image_features (B, P, D_img)
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=out.hidden_states, attentions=out.attentions)

    def get_encoder(self, modality: str | None = None):
        if modality is None:
            return FusedEncoder(self)
        return super().get_encoder(modality)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.BoolTensor | None = None,
        encoder_outputs=None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ):
        """As T5ForConditionalGeneration.forward, plus `image_features` (B, P, D_img) for fusion models.

        With `encoder_outputs` given (generation after the first step) the fused states are reused as they are.
        """
        if encoder_outputs is None:
            encoder_outputs = self.encode(input_ids=input_ids, attention_mask=attention_mask,
                                          image_features=image_features, inputs_embeds=inputs_embeds)
        return super().forward(
            attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs, cache=cache,
            decoder_inputs_embeds=decoder_inputs_embeds, labels=labels, use_cache=use_cache, **kwargs,
        )

    def configure_optimizers(self, weight_decay: float, lr: float, fused: bool | None = None) -> torch.optim.AdamW:
        return adamw(self, weight_decay, lr, fused)

    def prepare_inputs_for_generation(self, *args, **kwargs):
        # The fused encoder states are already in encoder_outputs: never re-attend to the image per step.
        kwargs.pop("image_features", None)
        return super().prepare_inputs_for_generation(*args, **kwargs)


def adamw(model: nn.Module, weight_decay: float, lr: float, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norm scales (1-D parameters), as the HF Trainer does. `fused`: one
    kernel for the whole update (CUDA; the parameters must already be on the GPU); None = PyTorch's default."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, fused=fused)


def with_mmcot_settings(config: T5Config, image_shape: Sequence[int] | None, **meta: Any) -> T5Config:
    settings = mmcot_settings(config)
    settings["image_shape"] = [int(image_shape[0]), int(image_shape[1])] if image_shape else None
    settings.update(meta)
    setattr(config, MMCOT_CONFIG_KEY, settings)
    return config


def first_non_finite(model) -> str | None:
    """The name of the first parameter holding NaN/inf, or None (one device sync for the whole model)."""
    params = [(name, p) for name, p in model.named_parameters()]
    if not params:
        return None
    # An FSDP2 parameter is a DTensor: each process scans its shard, and all of them decide on the same flags.
    flags = torch.stack([torch.isfinite(getattr(p, "_local_tensor", p)).all() for _, p in params])
    if any(hasattr(p, "device_mesh") for _, p in params):
        flags = flags.to(torch.int32)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
    if bool(flags.all()):
        return None
    return params[int((~flags).nonzero()[0])][0]
