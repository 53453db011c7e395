"""The text-model seam: what training, generation, constrained answers, sampling, save/load and import need from a
text model, in one interface. T5 (text.t5) and decoder-only LMs (text.causal) implement it; code outside
mmcot_cli.model asks `text_model_for(net, tokenizer)` and never looks at the architecture.

A TextModel wraps one loaded `net` (the nn.Module that is trained, wrapped by DDP/Accelerate and saved) and its
tokenizer. Batches are dicts the net's forward takes (`loss`), prompt batches are (input_ids, attention_mask),
`generate` returns only the new token ids, and `decode` turns them into the texts the original would print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import torch

from mmcot_cli.model.batching import Example


class TextModel(Protocol):
    kind: str  # "seq2seq" (T5: fusion on the encoder output) or "causal" (decoder-only: layer K or a prefix)
    net: torch.nn.Module
    tokenizer: Any
    pad_id: int

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(P, D) of the image features the net fuses; None for a text-only model."""

    @property
    def settings(self) -> dict[str, Any]:
        """What the run records about the model's architecture (kind, fusion, fusion layer, chat template)."""

    # training
    def examples(self, qids: Sequence[str], sources: Sequence[str], targets: Sequence[str], max_input_len: int,
                 max_output_len: int) -> list[Example]:
        """Tokenized (source, target) pairs, truncated to the stage limits, unpadded."""

    def collator(self, features_by_qid=None, original_labels: int | None = None):
        """Examples → one padded training batch (labels −100 where nothing is learned), image features by qid.
        `original_labels` N: the original's labels instead (targets padded to N with the pad id, all in the loss;
        T5 only, a decoder-only model refuses it)."""

    @staticmethod
    def loss(net, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over the target tokens; `net` may be a DDP / Accelerate wrapper."""

    # generation
    def prompt_rows(self, sources: Sequence[str], max_input_len: int) -> list[tuple[int, ...]]:
        """Each source's prompt token ids (T5: the encoder input; causal: the chat/plain template's rows)."""

    def prompt_batch(self, token_rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of a generation batch (T5 pads right; decoder-only LMs pad left)."""

    def generate(self, input_ids, attention_mask, image_features=None, **kwargs) -> torch.Tensor:
        """Encode + fuse once, then decode with the KV cache; the new token ids only (each row's K samples
        side by side with num_return_sequences). Logits processors see the generated ids after one start column
        (answer_constraint's view on either architecture)."""

    def decode(self, new_ids) -> list[str]:
        """New token ids → stripped texts, special tokens dropped."""

    # files
    def save(self, out_dir: str | Path, meta: dict) -> Path:
        """The run's model directory, written whole or not at all (a NaN/inf model is never written)."""


def text_model_for(net, tokenizer) -> TextModel:
    """The seam's implementation for a built or loaded net (a DDP / Accelerate wrapper is looked through)."""
    from mmcot_cli.model.causal_lm import CausalFusionLM
    from mmcot_cli.model.text.causal import CausalTextModel
    from mmcot_cli.model.text.t5 import T5TextModel

    inner = getattr(net, "module", net)
    if isinstance(inner, CausalFusionLM):
        return CausalTextModel(inner, tokenizer)
    return T5TextModel(inner, tokenizer)


def training_collator(model, tokenizer, features_by_qid=None, meta=None, original_labels: int | None = None):
    """The training batches' collator of the model's seam (`original_labels`: TextModel.collator's). A decoder-only
    run also records its architecture settings (kind, fusion, fusion layer, chat template) in `meta` (RunMeta); T5
    runs record none (None there means T5: the gated fusion on the encoder output)."""
    text = text_model_for(model, tokenizer)
    if meta is not None and text.kind == "causal":
        settings = text.settings
        meta.text_kind, meta.fusion, meta.fusion_layer = settings["kind"], settings["fusion"], settings["fusion_layer"]
        meta.chat_template = settings["chat_template"]
    return text.collator(features_by_qid, original_labels)
