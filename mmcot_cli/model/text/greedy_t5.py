"""Greedy decoding of a T5 fusion model in one short loop: the common case of `generate`, `ask` and validation.

Why not `model.generate()`: at mmcot's sizes a decoder step is a few small matmuls, and transformers' generate
loop (its per-step input preparation, cache bookkeeping, stopping criteria and output classes) costs as much
again (issue 27, benchmarks/bench_generation.py). This loop keeps only what greedy decoding needs: encoder +
fusion once, the decoder with its KV cache (cross-attention keys/values computed at the first step and reused),
the logits processors given, argmax. It returns exactly what `generate()` returns — the start token, then the
new ids, pad after each row's end — tests compare the two token for token.

Anything else (beams, sampling, a generation_config with its own processors) goes to `generate()`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

# Options this loop implements; any other generate() keyword sends the call to generate().
_HANDLED = {"max_new_tokens", "min_new_tokens", "num_beams", "do_sample", "use_cache", "logits_processor",
            "image_features"}
# generation_config keys that do not change greedy decoding's result (ids are read below).
_NEUTRAL_CONFIG = {"use_cache", "output_attentions", "output_hidden_states", "pad_token_id", "eos_token_id",
                   "decoder_start_token_id", "bos_token_id", "_from_model_config", "transformers_version"}


def handles(net, kwargs: dict[str, Any]) -> bool:
    """Whether this loop gives what generate() would for these keywords and the model's generation_config."""
    if not hasattr(net, "encode") or set(kwargs) - _HANDLED or kwargs.get("num_beams", 1) != 1 or kwargs.get("do_sample"):
        return False
    if not kwargs.get("use_cache", True) or kwargs.get("max_new_tokens") is None:
        return False
    extra = set(net.generation_config.to_diff_dict()) - _NEUTRAL_CONFIG
    return not extra and getattr(net.config, "decoder_start_token_id", None) is not None


def _eos_ids(net) -> torch.Tensor:
    eos = net.generation_config.eos_token_id
    if eos is None:
        eos = net.config.eos_token_id
    return torch.tensor([] if eos is None else ([eos] if isinstance(eos, int) else list(eos)), dtype=torch.long)


@torch.inference_mode()
def greedy_generate(net, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
                    min_new_tokens: int | None = None, image_features: torch.Tensor | None = None,
                    logits_processor=None, **_ignored) -> torch.Tensor:
    """(B, 1 + n) decoder ids as `net.generate(...)` returns them with num_beams=1, do_sample=False."""
    states = net.encode(input_ids=input_ids, attention_mask=attention_mask,
                        image_features=image_features).last_hidden_state
    batch, device = input_ids.shape[0], input_ids.device
    start = net.config.decoder_start_token_id
    pad = net.generation_config.pad_token_id
    pad = start if pad is None else pad
    eos = _eos_ids(net).to(device)
    cache = EncoderDecoderCache(DynamicCache(config=net.config), DynamicCache(config=net.config))
    ids = torch.full((batch, 1), start, dtype=torch.long, device=device)
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    pad_ids = torch.full((batch,), pad, dtype=torch.long, device=device)  # what an ended row gets
    scale = net.model_dim ** -0.5 if net.config.scale_decoder_outputs else None
    for step in range(max_new_tokens):
        hidden = net.decoder(input_ids=ids[:, -1:], encoder_hidden_states=states,
                             encoder_attention_mask=attention_mask, cache=cache, use_cache=True)[0][:, -1]
        if scale is not None:
            hidden = hidden * scale
        scores = net.lm_head(hidden).float()  # generate() processes float32 logits
        if min_new_tokens and step < min_new_tokens and eos.numel():
            scores[:, eos] = -float("inf")  # as MinNewTokensLengthLogitsProcessor
        if logits_processor:
            for processor in logits_processor:
                scores = processor(ids, scores)
        nxt = torch.where(unfinished, scores.argmax(-1), pad_ids)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if eos.numel():
            unfinished &= ~torch.isin(nxt, eos)
            if not bool(unfinished.any()):
                break
    return ids
