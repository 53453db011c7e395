"""Built-in text backbone `t5-scratch`: a small random-init T5 with a tokenizer trained on the training texts.

Everything runs offline. The tokenizer is a T5 tokenizer (Unigram model, pad=0, eos=1, unk=2, "▁" word
boundaries, optional <extra_id_N> sentinels at the end of the vocabulary) whose pieces come from word frequencies
in the training texts: whole words (with "▁") and punctuation first, then every seen character as a fallback, so
no text maps to <unk>. On repetitive text this gives far shorter sequences than a SentencePiece-trained unigram
vocabulary of the same size (which splits common words into characters).

Options (TextBuildOptions.options, `mmcot train --text-option key=value`): d_model (128), layers (2), heads (4),
d_ff (4·d_model), vocab_size (4000, an upper bound), dropout (0.1), extra_ids (0).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Iterable

from mmcot_cli.errors import MMCoTError, UsageError
from mmcot_cli.registry.hookspecs import BackboneOption, TextBackbone, TextBuildOptions, hookimpl

NAME = "t5-scratch"
OPTIONS = (
    BackboneOption("d_model", int, 128, "model width", minimum=1),
    BackboneOption("layers", int, 2, "encoder and decoder layers", minimum=1),
    BackboneOption("heads", int, 4, "attention heads (must divide d_model)", minimum=1),
    BackboneOption("d_ff", int, None, "feed-forward width (default 4·d_model)", minimum=1),
    BackboneOption("vocab_size", int, 4000, "tokenizer vocabulary upper bound", minimum=1),
    BackboneOption("dropout", float, 0.1, "dropout rate", minimum=0, maximum=1),
    BackboneOption("extra_ids", int, 0, "<extra_id_N> sentinel tokens", minimum=0),
)
DEFAULTS = {o.name: o.default for o in OPTIONS}
SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in every T5 vocabulary
_UNITS = re.compile(r"\w+|[^\w\s]", re.UNICODE)  # a word, or one punctuation/symbol character


def _options(raw: dict) -> dict:
    opts = {**DEFAULTS, **_BACKBONE.parse_options(raw)}  # unknown keys and unparsable values: exit 2
    if opts["d_model"] % opts["heads"]:
        raise UsageError(f"{NAME}: d_model {opts['d_model']} is not divisible by heads {opts['heads']}")
    opts["d_ff"] = opts["d_ff"] or 4 * opts["d_model"]
    return opts


def word_pieces(texts: Iterable[str]) -> tuple[Counter, Counter]:
    """Counts of vocabulary pieces (first unit of each whitespace word gets "▁") and of single characters."""
    pieces: Counter = Counter()
    chars: Counter = Counter()
    for text in texts:
        for word in text.split():
            for i, unit in enumerate(_UNITS.findall(word)):
                pieces["▁" + unit if i == 0 else unit] += 1
            chars.update(word)
    return pieces, chars


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4000, extra_ids: int = 0):
    """A T5 tokenizer whose Unigram vocabulary is built from word frequencies in `texts`."""
    from transformers import T5Tokenizer

    pieces, chars = word_pieces(texts)
    if not pieces:
        raise MMCoTError(f"{NAME}: no training text to build a tokenizer from")
    # Fallback pieces first so they always fit: "▁" and every character seen (bare and word-initial).
    # Printable ASCII is always present so new words at inference (`mmcot ask`) never become <unk>.
    fallback = Counter({"▁": sum(chars.values())})
    for ch in string.ascii_letters + string.digits + string.punctuation:
        fallback[ch] = 1
    for ch, n in chars.items():
        fallback[ch] += n
    budget = vocab_size - len(SPECIALS) - extra_ids - len(fallback)
    if budget < 0:
        raise UsageError(f"{NAME}: vocab_size {vocab_size} is smaller than the {len(fallback)} characters seen "
                         f"plus {len(SPECIALS) + extra_ids} special tokens")
    chosen = Counter(dict(pc for pc in pieces.most_common() if pc[0] not in fallback)).most_common(budget)
    # Scores are log-probabilities; Viterbi then prefers one whole-word piece over a chain of characters.
    total = sum(n for _, n in chosen) + sum(fallback.values())
    vocab = [(tok, 0.0) for tok in SPECIALS]
    vocab += [(p, math.log(n / total)) for p, n in chosen]
    vocab += [(p, math.log(n / total) - 10.0) for p, n in sorted(fallback.items())]  # last resort only
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]  # T5 keeps sentinels at the end
    return T5Tokenizer(vocab=vocab, extra_ids=extra_ids)


def build(options: TextBuildOptions):
    from transformers import T5Config, T5ForConditionalGeneration

    opts = _options(dict(options.options))
    if not options.train_texts:
        raise MMCoTError(f"{NAME} trains its tokenizer on the training texts; none were given")
    tokenizer = train_tokenizer(options.train_texts, opts["vocab_size"], opts["extra_ids"])
    config = T5Config(
        vocab_size=len(tokenizer), d_model=opts["d_model"], d_kv=opts["d_model"] // opts["heads"],
        d_ff=opts["d_ff"], num_layers=opts["layers"], num_decoder_layers=opts["layers"], num_heads=opts["heads"],
        dropout_rate=opts["dropout"], feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0, tie_word_embeddings=True,
    )
    return T5ForConditionalGeneration(config), tokenizer


_BACKBONE = TextBackbone(
    name=NAME, weights="",
    description="small random-init T5 (d_model/layers/heads/d_ff/vocab_size options) with a word-level "
                "tokenizer trained on the training texts; fully offline",
    build=build, options=OPTIONS,
)


@hookimpl
def register_text_backbones(register):
    register(_BACKBONE)
