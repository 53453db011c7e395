"""Batched generation from prompts, shared by training (validation), `mmcot generate` and `mmcot ask`: the
device, length-sorted batches with per-batch padding, image features per batch, and decoding."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from transformers import LogitsProcessorList

from mmcot_cli.errors import UsageError
from mmcot_cli.model.answer_constraint import AnswerConstraints
from mmcot_cli.model.text.base import text_model_for
from mmcot_cli.progress import make_progress
from mmcot_cli.validate import parse_device


def resolve_device(device: str | None) -> torch.device:
    """torch.device for a --device string, through the one parser (mmcot_cli.validate.parse_device)."""

    return torch.device(parse_device(device))


def decode_generated(tokenizer, ids) -> list[str]:
    """Generated ids → texts as the original decodes them (stage-1 rationales become stage-2 input verbatim):
    special tokens dropped, tokenization spaces cleaned up (" ." → "."), stripped."""
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    return [text.strip() for text in texts]


def generate_texts(
    model,
    tokenizer,
    sources: Sequence[str],
    *,
    feature_batch: Callable[[list[int]], torch.Tensor] | None = None,
    batch_size: int = 16,
    max_input_len: int = 512,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    min_new_tokens: int | None = None,
    use_cache: bool = True,
    device: torch.device | str = "cpu",
    description: str = "generate",
    sampling: dict[str, Any] | None = None,
    constraints: AnswerConstraints | None = None,
) -> list[str] | list[list[str]]:
    """Generate one text per source, in the given order; with `sampling` (mmcot_cli.inference.sampling.Sampling.start())
    a list of its num_return_sequences texts per source.

    Sources are tokenized once, sorted by length (longest first, so the first batch shows memory trouble early)
    and batched with per-batch padding. `feature_batch(positions)` returns the (B, P, D) image features of those positions in `sources`.
    `constraints` (built for the same `sources`) keeps each answer sentence to its item's option letters.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not sources:
        return []
    text = text_model_for(model, tokenizer)  # T5 or decoder-only: prompt rows, padding side, what is decoded
    enc = text.prompt_rows(sources, max_input_len)
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
    k = int((sampling or {}).get("num_return_sequences", 1))
    texts: list[Any] = [None] * len(enc)
    model.eval()
    with torch.inference_mode(), make_progress() as progress:
        task = progress.add_task(description, total=len(order))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = text.prompt_batch([enc[i] for i in idx])
            kwargs: dict[str, Any] = dict(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                num_beams=num_beams, do_sample=False, use_cache=use_cache)
            kwargs.update(sampling or {})
            if min_new_tokens:
                kwargs["min_new_tokens"] = min_new_tokens
            if feature_batch is not None:
                kwargs["image_features"] = feature_batch(idx).to(device)
            if constraints is not None:
                kwargs["logits_processor"] = LogitsProcessorList([constraints.for_batch(idx)])
            decoded = text.decode(text.generate(**kwargs))
            for j, i in enumerate(idx):  # generate returns each input's K sequences next to each other
                texts[i] = decoded[j * k:(j + 1) * k] if sampling else decoded[j]
            progress.advance(task, len(idx))
    return texts  # type: ignore[return-value]


def feature_getter(store, qids: Sequence[str]) -> Callable[[list[int]], torch.Tensor]:
    """`feature_batch` for generate_texts: positions in `qids` → the store's (B, P, D) batch."""
    return lambda idx: store.get_batch([qids[i] for i in idx])
