"""Constrained answer decoding: the answer sentence can only name one of the item's own options.

Every answer-giving target states "The answer is (X)." (mmcot_cli.data.prompts). Where the model writes it, only the
token sequences of that sentence for the item's option letters (A … the number of its choices) are allowed, so an
answer-stage prediction always names an option: score's `num_fail` is 0 by construction for the answer-first
outputs (the answer stage's QCMG-A / QCM-A, and AL/AE/ALE/AEL).

The sentence's tokens come from the run's own tokenizer (`tokenizer("The answer is (A).")`), so whatever its
vocabulary makes of "(A)." (T5's sentencepiece: "▁(", "A", ")."; t5-scratch: "▁(", "A", ")", "."; a vocabulary
with "▁(A" or "A)." pieces) the constraint follows it: the letters' token sequences form a trie, and decoding is
kept inside it.

- output A (answer only): the sentence is the whole target, forced from the first token (only the letter is the
  model's choice, among the item's letters), then </s>;
- AL/AE/ALE/AEL (answer, then BECAUSE: …): the sentence is forced first, the rest is free;
- LA/EA/LEA/ELA (rationale, then the answer): after "The answer is" a parenthesis may only open an item letter's
  sentence (the rationale itself may say "The answer is red."); once it is open, the letter is constrained, and the
  target ends (</s>) after the sentence. A model that never writes the sentence is not forced to.

Where the model would have written a valid answer anyway, greedy and beam decoding give the same text as without
the constraint (the model's choice is always among the allowed tokens); only answers naming no option, or a letter
beyond the item's choices, change: to the item's most likely letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import LogitsProcessor

from mmcot_cli.data.answers import OPTION_LETTERS
from mmcot_cli.data.prompts import split_format

ANSWER_SENTENCE = "The answer is ({letter})."  # the targets' answer sentence (mmcot_cli.data.prompts._OUTPUTS)


def answer_position(prompt_format: str) -> str | None:
    """"only" (output A), "first" (A…), "last" (…A) or None (the output gives no answer)."""
    out = split_format(prompt_format)[1]
    if out == "A":
        return "only"
    if out.startswith("A"):
        return "first"
    if out.endswith("A"):
        return "last"
    return None


def answer_budget_problem(tokenizer, prompt_format: str, max_new_tokens: int) -> str | None:
    """Why `max_new_tokens` cannot hold the answer sentence up to its letter, or None. A budget that ends before
    the letter gives outputs without an answer, scored wrong (or, with a --fallback, as draws): say so up front."""
    position = answer_position(prompt_format)
    if position is None:
        return None
    needed = len(tokenizer(ANSWER_SENTENCE.format(letter="A").split(")")[0], add_special_tokens=False)["input_ids"])
    if max_new_tokens >= needed:
        return None
    return (f"an answer budget of {max_new_tokens} new tokens (--max-new-tokens, default the run's max_output_len) "
            f"ends before the answer letter: \"{ANSWER_SENTENCE.format(letter='A')}\" "
            f"needs {needed} tokens up to its letter{' after the rationale' if position == 'last' else ''}, so no "
            "output can name an answer (raise --max-new-tokens)")


def letter_paths(tokenizer, letters: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """letter → token ids of its answer sentence in this tokenizer. A letter whose sentence does not survive the
    round trip (an <unk> in a vocabulary that never saw it) is left out: the model could not write it anyway."""
    paths = {}
    for letter in letters:
        text = ANSWER_SENTENCE.format(letter=letter)
        ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        decoded = tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)
        if ids and tokenizer.unk_token_id not in ids and decoded.strip() == text:
            paths[letter] = ids
    return paths


def _parenthesis_tokens(tokenizer) -> frozenset[int]:
    """Every token that opens a parenthesis ("(", "▁(", "▁(A", …): after "The answer is", the ones that do not
    start an item letter's sentence are refused."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return frozenset(i for i, piece in enumerate(pieces) if isinstance(piece, str) and piece.lstrip("▁").startswith("("))


@dataclass(frozen=True)
class _Trie:
    children: dict[tuple[int, ...], frozenset[int]]  # prefix → the tokens that may follow it
    leaves: frozenset[tuple[int, ...]]  # whole sentences
    lead: tuple[int, ...]  # where a "last" constraint starts: the tokens of "The answer is" (or the common prefix)
    # at `lead`: the tokens refused there (ones opening a parenthesis that names no item letter); None: `lead` is
    # the letters' common prefix, after which only the trie is allowed
    refused: frozenset[int] | None
    depth: int  # longest sentence

    @classmethod
    def of(cls, paths: Sequence[tuple[int, ...]], lead: tuple[int, ...], parens: frozenset[int]) -> "_Trie":
        children: dict[tuple[int, ...], set[int]] = {}
        for path in paths:
            for k in range(len(path)):
                children.setdefault(path[:k], set()).add(path[k])
        refused = None
        if not lead or not all(len(p) > len(lead) and p[:len(lead)] == lead for p in paths):
            common = 0
            while all(len(p) > common and p[common] == paths[0][common] for p in paths):
                common += 1
            lead = paths[0][:common]
        else:
            refused = parens - children[lead]
        return cls({k: frozenset(v) for k, v in children.items()}, frozenset(paths), lead, refused,
                   max(len(p) for p in paths))


class AnswerConstraint(LogitsProcessor):
    """The logits processor for one batch: item i's answer sentence may name only its own letters."""

    def __init__(self, tries: Sequence[_Trie | None], position: str, eos_token_id: int):
        self.tries, self.position, self.eos = list(tries), position, eos_token_id

    def rule(self, trie: _Trie | None, generated: Sequence[int]) -> tuple[str, frozenset[int]] | None:
        """("allow", tokens) or ("refuse", tokens) for the next token after `generated` (decoder ids after the
        start token), or None (any token)."""
        if trie is None:
            return None
        if self.position in ("only", "first"):
            tail = tuple(generated)
            if tail in trie.children:
                return "allow", trie.children[tail]
            return ("allow", frozenset({self.eos})) if tail in trie.leaves and self.position == "only" else None
        # "last": the sentence ends the text. Its lead ("The answer is") may also occur inside the rationale
        # ("The answer is red."), so there only a parenthesis naming another letter is refused; once the model
        # opens the parenthesis the letter is constrained, and </s> follows the sentence.
        n = len(generated)
        for start in range(max(0, n - trie.depth), n - len(trie.lead) + 1):  # longest tail first
            tail = tuple(generated[start:])
            if tail in trie.leaves:
                return "allow", frozenset({self.eos})
            if tail == trie.lead and trie.refused is not None:
                return "refuse", trie.refused
            if tail in trie.children:
                return "allow", trie.children[tail]
        return None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        per_item = max(1, input_ids.shape[0] // max(1, len(self.tries)))  # beams / samples sit next to each other
        for row in range(input_ids.shape[0]):
            rule = self.rule(self.tries[row // per_item], input_ids[row, 1:].tolist())
            if rule is None:
                continue
            kind, tokens = rule
            ids = torch.tensor(sorted(tokens), dtype=torch.long, device=scores.device)
            if kind == "allow":
                masked = torch.full_like(scores[row], float("-inf"))
                masked[ids] = scores[row, ids]
                scores[row] = masked
            elif len(ids):
                scores[row, ids] = float("-inf")
        return scores


class AnswerConstraints:
    """Constrained answers for a list of sources (their items' number of choices); `for_batch(positions)` gives
    the logits processor of one generate batch."""

    def __init__(self, tokenizer, prompt_format: str, num_choices: Sequence[int]):
        self.position = answer_position(prompt_format)
        if self.position is None:
            raise ValueError(f"prompt format {prompt_format} gives no answer to constrain")
        paths = letter_paths(tokenizer, OPTION_LETTERS)
        lead = tuple(tokenizer(ANSWER_SENTENCE.split(" (")[0], add_special_tokens=False)["input_ids"])
        parens = _parenthesis_tokens(tokenizer) if self.position == "last" else frozenset()
        tries: dict[int, _Trie | None] = {}
        for n in set(num_choices):
            usable = [paths[letter] for letter in OPTION_LETTERS[:n] if letter in paths]
            tries[n] = _Trie.of(usable, lead, parens) if usable else None
        self.tries = [tries[n] for n in num_choices]
        self.eos = tokenizer.eos_token_id

    def for_batch(self, positions: Sequence[int]) -> AnswerConstraint:
        return AnswerConstraint([self.tries[i] for i in positions], self.position, self.eos)
