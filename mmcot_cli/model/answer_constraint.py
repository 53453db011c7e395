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
- LA/EA/LEA/ELA (rationale, then the answer): once the model writes "The answer is", the rest of the sentence is
  constrained (its letter among the item's) and the target ends (</s>) after it.

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


@dataclass(frozen=True)
class _Trie:
    children: dict[tuple[int, ...], frozenset[int]]  # prefix → the tokens that may follow it
    leaves: frozenset[tuple[int, ...]]  # whole sentences
    start: int  # length of the letters' common prefix (what triggers a "last" constraint)
    depth: int  # longest sentence

    @classmethod
    def of(cls, paths: Sequence[tuple[int, ...]], trigger: tuple[int, ...]) -> "_Trie":
        """The trie of `paths`; a "last" constraint starts after `trigger` (the tokens of "The answer is") when
        every path starts with it, else after the paths' common prefix."""
        children: dict[tuple[int, ...], set[int]] = {}
        for path in paths:
            for k in range(len(path)):
                children.setdefault(path[:k], set()).add(path[k])
        common = 0
        while all(len(p) > common and p[common] == paths[0][common] for p in paths):
            common += 1
        if trigger and all(p[:len(trigger)] == trigger for p in paths):
            common = min(common, len(trigger))
        return cls({k: frozenset(v) for k, v in children.items()}, frozenset(paths), common,
                   max(len(p) for p in paths))


class AnswerConstraint(LogitsProcessor):
    """The logits processor for one batch: item i's answer sentence may name only `letters[i]`."""

    def __init__(self, tries: Sequence[_Trie | None], position: str, eos_token_id: int):
        self.tries, self.position, self.eos = list(tries), position, eos_token_id

    def allowed(self, trie: _Trie | None, generated: Sequence[int]) -> frozenset[int] | None:
        """The tokens allowed next after `generated` (decoder ids after the start token), or None (any)."""
        if trie is None:
            return None
        if self.position in ("only", "first"):
            tails = [tuple(generated)]
        else:  # "last": the sentence ends the text, once its common start has been written
            n = len(generated)
            tails = [tuple(generated[s:]) for s in range(max(0, n - trie.depth), n - trie.start + 1)]
        for tail in tails:
            if tail in trie.children:
                return trie.children[tail]
            if tail in trie.leaves and self.position != "first":
                return frozenset({self.eos})
        return None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        per_item = max(1, input_ids.shape[0] // max(1, len(self.tries)))  # beams / samples sit next to each other
        for row in range(input_ids.shape[0]):
            allowed = self.allowed(self.tries[row // per_item], input_ids[row, 1:].tolist())
            if allowed is not None:
                keep = torch.tensor(sorted(allowed), device=scores.device)
                masked = torch.full_like(scores[row], float("-inf"))
                masked[keep] = scores[row, keep]
                scores[row] = masked
        return scores


class AnswerConstraints:
    """Constrained answers for a list of sources (their items' number of choices); `for_batch(positions)` gives
    the logits processor of one generate batch."""

    def __init__(self, tokenizer, prompt_format: str, num_choices: Sequence[int]):
        self.position = answer_position(prompt_format)
        if self.position is None:
            raise ValueError(f"prompt format {prompt_format} gives no answer to constrain")
        paths = letter_paths(tokenizer, OPTION_LETTERS)
        trigger = tuple(tokenizer(ANSWER_SENTENCE.split(" (")[0], add_special_tokens=False)["input_ids"])
        tries: dict[int, _Trie | None] = {}
        for n in set(num_choices):
            usable = [paths[letter] for letter in OPTION_LETTERS[:n] if letter in paths]
            tries[n] = _Trie.of(usable, trigger) if usable else None
        self.tries = [tries[n] for n in num_choices]
        self.eos = tokenizer.eos_token_id

    def for_batch(self, positions: Sequence[int]) -> AnswerConstraint:
        return AnswerConstraint([self.tries[i] for i in positions], self.position, self.eos)
