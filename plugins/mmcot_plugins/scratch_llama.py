"""Built-in text backbone `llama-scratch`: a small random-init Llama (decoder-only) with a byte-level BPE tokenizer
trained on the training texts by `tokenizers`.

Everything runs offline. The tokenizer is saved in the hub's layout (tokenizer.json, tokenizer_config.json) and
loads back with AutoTokenizer as any hub model's does: byte-level BPE (no text maps to an unknown token), a space
before the first word (so a sentence tokenizes the same at a text's start as inside it), <s> before every prompt,
</s> ending every target, <pad> for padding, no chat template.

Options (TextBuildOptions.options, `mmcot train --text-option key=value`): d_model (128), layers (4), heads (4),
kv_heads (heads), d_ff (4·d_model), vocab_size (2000, an upper bound), dropout (0.0, attention dropout).
"""

from __future__ import annotations

from typing import Iterable

from mmcot_cli.errors import MMCoTError, UsageError
from mmcot_cli.registry.hookspecs import BackboneOption, TextBackbone, TextBuildOptions, hookimpl

NAME = "llama-scratch"
OPTIONS = (
    BackboneOption("d_model", int, 128, "model width", minimum=1),
    BackboneOption("layers", int, 4, "decoder layers", minimum=1),
    BackboneOption("heads", int, 4, "attention heads (must divide d_model)", minimum=1),
    BackboneOption("kv_heads", int, None, "key/value heads (must divide heads; default heads)", minimum=1),
    BackboneOption("d_ff", int, None, "feed-forward width (default 4·d_model)", minimum=1),
    BackboneOption("vocab_size", int, 2000, "tokenizer vocabulary upper bound (at least 260)", minimum=260),
    BackboneOption("dropout", float, 0.0, "attention dropout rate", minimum=0, maximum=1),
)
DEFAULTS = {o.name: o.default for o in OPTIONS}
PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2
MAX_POSITIONS = 4096


def _options(raw: dict) -> dict:
    opts = {**DEFAULTS, **_BACKBONE.parse_options(raw)}  # unknown keys and unparsable values: exit 2
    opts["kv_heads"] = opts["kv_heads"] or opts["heads"]
    if opts["d_model"] % opts["heads"] or (opts["d_model"] // opts["heads"]) % 2:
        raise UsageError(f"{NAME}: d_model {opts['d_model']} must be divisible by heads {opts['heads']} into an "
                         "even head width (rotary embeddings)")
    if opts["heads"] % opts["kv_heads"]:
        raise UsageError(f"{NAME}: heads {opts['heads']} is not divisible by kv_heads {opts['kv_heads']}")
    opts["d_ff"] = opts["d_ff"] or 4 * opts["d_model"]
    return opts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A PreTrainedTokenizerFast (byte-level BPE) whose merges are learnt from `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise MMCoTError(f"{NAME}: no training text to build a tokenizer from")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer=trainer)
    bos = core.token_to_id(BOS)
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                        special_tokens=[(BOS, bos)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=MAX_POSITIONS, clean_up_tokenization_spaces=True)


def build(options: TextBuildOptions):
    from transformers import LlamaConfig, LlamaForCausalLM

    opts = _options(dict(options.options))
    if not options.train_texts:
        raise MMCoTError(f"{NAME} trains its tokenizer on the training texts; none were given")
    tokenizer = train_tokenizer(options.train_texts, opts["vocab_size"])
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=opts["d_model"], intermediate_size=opts["d_ff"],
        num_hidden_layers=opts["layers"], num_attention_heads=opts["heads"], num_key_value_heads=opts["kv_heads"],
        max_position_embeddings=MAX_POSITIONS, attention_dropout=opts["dropout"], tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


_BACKBONE = TextBackbone(
    name=NAME, weights="",
    description="small random-init Llama, decoder-only (d_model/layers/heads/kv_heads/d_ff/vocab_size options), "
                "with a byte-level BPE tokenizer trained on the training texts; fully offline",
    build=build, options=OPTIONS, kind="causal",
)


@hookimpl
def register_text_backbones(register):
    register(_BACKBONE)
