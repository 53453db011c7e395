"""Model shapes, FLOP counts and the text-backbone plugin of benchmarks/bench_train.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelShape:
    d_model: int
    num_layers: int  # encoder and decoder each
    num_heads: int
    d_kv: int
    d_ff: int
    vocab: int  # 0 = the tokenizer's size (tiny)
    image: tuple[int, int]  # image feature rows P × dim D
    gated: bool = True  # FLAN-T5's gated-gelu feed-forward (3 matrices) vs relu (2)

    def to_dict(self) -> dict:
        return asdict(self)


SHAPES = {
    # FLAN-T5 base / large (untied lm_head, gated-gelu), ViT features (145 × 1024) as the original's vit.pth.
    "base": ModelShape(d_model=768, num_layers=12, num_heads=12, d_kv=64, d_ff=2048, vocab=32128, image=(145, 1024)),
    "large": ModelShape(d_model=1024, num_layers=24, num_heads=16, d_kv=64, d_ff=2816, vocab=32128,
                        image=(145, 1024)),
    # CI-sized, for CPU: same structure, small everything.
    "tiny": ModelShape(d_model=64, num_layers=2, num_heads=4, d_kv=16, d_ff=128, vocab=0, image=(49, 256)),
}


def t5_config(shape: ModelShape, vocab: int):
    from transformers import T5Config

    config = T5Config(vocab_size=shape.vocab or vocab, d_model=shape.d_model, d_kv=shape.d_kv, d_ff=shape.d_ff,
                      num_layers=shape.num_layers, num_decoder_layers=shape.num_layers, num_heads=shape.num_heads,
                      feed_forward_proj="gated-gelu" if shape.gated else "relu", dropout_rate=0.1, pad_token_id=0,
                      eos_token_id=1, decoder_start_token_id=0)
    config.tie_word_embeddings = False  # FLAN's own lm_head (T5Config's constructor forces True in transformers 5)
    return config


def build_model(shape: ModelShape, vocab: int, device):
    """MMCoTForConditionalGeneration of `shape` with the fusion head, random init (on `device`: fast), fp32."""
    import torch

    from mmcot_cli.model.fusion import MMCoTForConditionalGeneration, with_mmcot_settings

    torch.manual_seed(0)
    with torch.device(device):
        return MMCoTForConditionalGeneration(with_mmcot_settings(t5_config(shape, vocab), shape.image))


def save_model_dir(model, tokenizer, path) -> str:
    """A local checkpoint directory (config, safetensors, tokenizer) that `mmcot train --text-model DIR` loads,
    as it loads a downloaded FLAN-T5: no second random init, the same weights as the bare loops start from."""
    from mmcot_cli.model.fusion import quiet_hf

    with quiet_hf():
        model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def step_flops(s: ModelShape, batch: int, lin: int, lout: int) -> float:
    """Model FLOPs of one training step (forward + backward = 3 × forward) for `batch` sequences padded to
    `lin` input and `lout` target tokens: every matmul (2·m·n·k), attention scores and values, the LM head and
    the fusion (image projection, single-head attention over P image rows, gate)."""
    d, inner, ff = s.d_model, s.num_heads * s.d_kv, (3 if s.gated else 2) * s.d_model * s.d_ff
    vocab = s.vocab or 1000
    p, dimg = s.image
    enc = s.num_layers * (lin * 2 * (4 * d * inner + ff) + 4 * lin * lin * inner)
    dec = s.num_layers * (lout * 2 * (4 * d * inner + 2 * d * inner + ff) + lin * 2 * 2 * d * inner
                          + 4 * lout * lout * inner + 4 * lout * lin * inner)
    head = 2 * lout * d * vocab
    fusion = 2 * p * dimg * d + 2 * lin * d * d * 2 + 2 * 2 * p * d * d + 4 * lin * p * d + 2 * lin * 2 * d * d
    return 3.0 * batch * (enc + dec + head + fusion)
