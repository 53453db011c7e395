"""Prompts and batches for a decoder-only LM: one token row holds the prompt and then the target.

- Prompt: the tokenizer's chat template where it has one (the source as the user's turn, then the assistant's
  header: `add_generation_prompt`), else the source as the tokenizer encodes it (its BOS, if it adds one). Which one
  is recorded in the run (`chat_template`). A long source is cut at its end, as T5's truncation does, so the
  template's head and tail survive. The prefix fusion puts its P image placeholders before the prompt.
- Target: its tokens, then EOS; the loss counts these only (prompt, placeholders and padding are -100).
- Training batches are right-padded (positions 0… as in the prompt); generation batches are left-padded, so
  every prompt ends where generation starts (transformers derives position ids from the attention mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from mmcot_cli.errors import UsageError
from mmcot_cli.model.batching import LABEL_PAD, Example, length_mask, pad_rows

# Template variables fixed so a prompt never depends on the day or on a model's default "thinking" mode: Llama 3's
# template writes today's date unless `date_string` is given; Qwen3's opens a reasoning block unless told not to.
CHAT_TEMPLATE_KWARGS = {"date_string": "26 Jul 2024", "enable_thinking": False}
_MARK = "\u0000MMCOT-SOURCE\u0000"


@dataclass(frozen=True)
class PromptTemplate:
    """The token ids around every source: head + source + tail; `chat` says whether a chat template made them."""

    head: tuple[int, ...]
    tail: tuple[int, ...]
    chat: bool
    placeholders: int = 0  # prefix fusion: image positions before the head
    placeholder_id: int = 0

    @classmethod
    def of(cls, tokenizer, placeholders: int = 0) -> "PromptTemplate":
        pad = pad_id(tokenizer)
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": _MARK}], tokenize=False,
                                                 add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS)
            head, tail = text.split(_MARK)
            enc = tokenizer([head, tail], add_special_tokens=False)["input_ids"]
            return cls(tuple(enc[0]), tuple(enc[1]), True, placeholders, pad)
        with_specials = tokenizer("", add_special_tokens=True)["input_ids"]  # e.g. [BOS]
        return cls(tuple(with_specials), (), False, placeholders, pad)

    def rows(self, sources: Sequence[str], tokenizer, max_input_len: int) -> list[tuple[int, ...]]:
        """The prompt row of every source (placeholders, head, the source cut to fit, tail)."""
        fixed = self.placeholders + len(self.head) + len(self.tail)
        room = max_input_len - fixed
        if room < 1:
            raise UsageError(f"--max-input-len {max_input_len} leaves no room for the source: the prompt's "
                             f"template and image prefix take {fixed} tokens")
        enc = tokenizer(list(sources), add_special_tokens=False)["input_ids"] if sources else []
        lead = (self.placeholder_id,) * self.placeholders
        return [lead + self.head + tuple(ids[:room]) + self.tail for ids in enc]


def pad_id(tokenizer) -> int:
    """The pad id; an LM without one (Llama 3) pads with EOS (padding is masked everywhere, so any id works)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(tokenizer.eos_token_id) if tokenizer.eos_token_id is not None else 0


def causal_examples(tokenizer, template: PromptTemplate, qids: Sequence[str], sources: Sequence[str],
                    targets: Sequence[str], max_input_len: int, max_output_len: int) -> list[Example]:
    """Examples whose input_ids are the prompt rows and labels the target ids + EOS (at most max_output_len)."""
    if not (len(qids) == len(sources) == len(targets)):
        raise ValueError("qids, sources and targets must have the same length")
    prompts = template.rows(sources, tokenizer, max_input_len)
    enc = tokenizer(list(targets), add_special_tokens=False)["input_ids"] if targets else []
    eos = (int(tokenizer.eos_token_id),)
    return [Example(str(q), p, tuple(t[:max(0, max_output_len - 1)]) + eos) for q, p, t in zip(qids, prompts, enc)]


def left_padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of prompt rows padded on the left to the longest."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids, mask


@dataclass
class CausalCollator:
    """Examples → the tensors CausalFusionLM.forward takes: prompt+target rows (right-padded), labels on the
    target only, and `fusion_mask`: the prompt positions (gated) or the image placeholders (prefix)."""

    pad_token_id: int
    placeholders: int = 0  # prefix fusion's P; 0 = gated / text-only
    features_by_qid: Callable[[list[str]], torch.Tensor] | None = None

    def __call__(self, batch: Sequence[Example]) -> dict[str, Any]:
        lengths = [len(e.input_ids) + len(e.labels) for e in batch]
        width = max(lengths)
        rows = [e.input_ids + e.labels for e in batch]
        labels = pad_rows([(LABEL_PAD,) * len(e.input_ids) + e.labels for e in batch], LABEL_PAD, width)
        if self.placeholders:
            fused = [self.placeholders] * len(batch)
        else:
            fused = [len(e.input_ids) for e in batch]
        out = {
            "qids": [e.qid for e in batch],
            "input_ids": pad_rows(rows, self.pad_token_id, width),
            "attention_mask": length_mask(lengths, width),
            "labels": labels,
            "fusion_mask": length_mask(fused, width).bool(),
        }
        if self.features_by_qid is not None:
            out["image_features"] = self.features_by_qid(out["qids"])
        return out
