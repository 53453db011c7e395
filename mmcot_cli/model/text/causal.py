"""CausalTextModel: the text-model seam (mmcot_cli.model.text.base) for decoder-only LMs. What training, generate,
ask and score need from a loaded model, in the seam's terms: tokenized examples, batches, the loss, left-padded
prompt batches, generation of only the new tokens, decoding, save/load/build.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from mmcot_cli.errors import UsageError
from mmcot_cli.model.batching import Example
from mmcot_cli.model.causal_batching import CausalCollator, PromptTemplate, causal_examples, left_padded, pad_id
from mmcot_cli.model.causal_dirs import CAUSAL, build_causal_model, load_causal_model, save_causal_model


class GeneratedOnly(LogitsProcessor):
    """A logits processor written for seq2seq decoder ids (a start token, then the generated ones) applied to a
    decoder-only LM, whose ids are the prompt then the generated ones: it sees one stand-in column, then the
    generated tokens, as it would on T5."""

    def __init__(self, inner: LogitsProcessor, prompt_width: int):
        self.inner, self.start = inner, max(0, prompt_width - 1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.inner(input_ids[:, self.start:], scores)


def _bpe_cleanup_notice(record) -> bool:
    return "Ignoring clean_up_tokenization_spaces" not in record.getMessage()


# The answer constraint decodes with clean_up_tokenization_spaces=True (T5's way); a byte-level BPE tokenizer skips
# that clean-up, which is right here, and would say so on stderr once per process.
logging.getLogger("transformers.tokenization_utils_tokenizers").addFilter(_bpe_cleanup_notice)


class CausalTextModel:
    """One loaded decoder-only model: `net` (CausalFusionLM, what is trained and wrapped), its tokenizer and
    prompt template."""

    kind = CAUSAL
    answer_lead: tuple[int, ...] = ()  # a continuation starts right after the prompt

    def __init__(self, net, tokenizer):
        self.net, self.tokenizer = net, tokenizer
        self.template = PromptTemplate.of(tokenizer, net.prefix_length)
        self.pad_id = pad_id(tokenizer)

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return self.net.image_shape

    @property
    def settings(self) -> dict[str, Any]:
        """What the run records of this model: fusion, fusion layer, chat template."""
        return {"kind": CAUSAL, "fusion": self.net.fusion_kind if self.image_shape else None,
                "fusion_layer": self.net.fusion_layer, "chat_template": self.template.chat}

    # ------------------------------------------------------------------ training

    def examples(self, qids: Sequence[str], sources: Sequence[str], targets: Sequence[str], max_input_len: int,
                 max_output_len: int) -> list[Example]:
        return causal_examples(self.tokenizer, self.template, qids, sources, targets, max_input_len, max_output_len)

    def collator(self, features_by_qid=None, original_labels: int | None = None) -> CausalCollator:
        if original_labels is not None:
            raise UsageError("--protocol original reproduces the original's T5 training (its labels are padded "
                             "T5 targets); a decoder-only backbone trains with --protocol mmcot")
        return CausalCollator(self.pad_id, self.net.prefix_length, features_by_qid)

    def collate(self, examples: Sequence[Example], image_features: torch.Tensor | None = None) -> dict[str, Any]:
        batch = self.collator()(examples)
        if image_features is not None:
            batch["image_features"] = image_features
        return batch

    @staticmethod
    def loss(net, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over the target tokens (`net` may be a DDP / Accelerate wrapper)."""
        return net(**{k: v for k, v in batch.items() if k != "qids"}).loss

    # ------------------------------------------------------------------ generation

    def prompt_rows(self, sources: Sequence[str], max_input_len: int) -> list[tuple[int, ...]]:
        return self.template.rows(sources, self.tokenizer, max_input_len)

    def prompt_batch(self, token_rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_padded(token_rows, self.pad_id)

    def generate(self, input_ids, attention_mask, image_features=None, **kwargs) -> torch.Tensor:
        """Only the new token ids (the KV cache holds the fused prompt)."""
        processors = kwargs.pop("logits_processor", None)
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(GeneratedOnly(p, input_ids.shape[1]) for p in processors)
        kwargs.setdefault("pad_token_id", self.pad_id)
        return self.net.generate(input_ids, attention_mask, image_features, **kwargs)

    def decode(self, new_ids) -> list[str]:
        """As the original decodes: special tokens dropped, stripped. No clean-up of spaces before punctuation:
        on a byte-level BPE vocabulary that would change the text the model wrote."""
        texts = self.tokenizer.batch_decode(new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [text.strip() for text in texts]

    # ------------------------------------------------------------------ files

    def save(self, out_dir: str | Path, meta: dict) -> Path:
        return save_causal_model(self.net, self.tokenizer, out_dir, meta)

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "cpu") -> tuple["CausalTextModel", dict]:
        net, tokenizer, meta = load_causal_model(model_dir, device)
        return cls(net, tokenizer), meta

    @classmethod
    def build(cls, text_backbone: str, image_shape: Sequence[int] | None, **options) -> "CausalTextModel":
        """options: fusion, fusion_layer, random_init, train_texts, text_options (causal_dirs.build_causal_model)."""
        net, tokenizer = build_causal_model(text_backbone, image_shape, **options)
        return cls(net, tokenizer)
