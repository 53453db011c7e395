"""Tokenized examples, dynamic per-batch padding and a deterministic, resumable length-grouped batch sampler.

The reference padded every source to 512 tokens and every target to the stage maximum, and left pad ids in the
labels (so the loss trained on padding; `Collator.original_labels` does that under `--protocol original`). Here a
batch is padded only to its own longest member, label padding is -100 (ignored by the loss), and batches are built
from examples of similar length so little padding is left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

LABEL_PAD = -100  # ignored by the cross-entropy loss of transformers' seq2seq models


@dataclass(frozen=True)
class Example:
    """One tokenized training/eval pair. `labels` end with the tokenizer's EOS, like `input_ids`."""

    qid: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def length(self) -> int:
        # Cost of a seq2seq example grows with both sides; group on their sum.
        return len(self.input_ids) + len(self.labels)


def tokenize_pairs(tokenizer, qids: Sequence[str], sources: Sequence[str], targets: Sequence[str],
                   max_input_len: int, max_output_len: int) -> list[Example]:
    """Tokenize (source, target) pairs once, truncating to the stage limits (no padding here)."""
    if not (len(qids) == len(sources) == len(targets)):
        raise ValueError("qids, sources and targets must have the same length")
    enc_in = tokenizer(list(sources), max_length=max_input_len, truncation=True, padding=False)
    enc_out = tokenizer(list(targets), max_length=max_output_len, truncation=True, padding=False)
    return [Example(str(q), tuple(i), tuple(o))
            for q, i, o in zip(qids, enc_in["input_ids"], enc_out["input_ids"])]


def pad_rows(rows: Sequence[Sequence[int]], value: int, length: int) -> torch.Tensor:
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


@dataclass
class Collator:
    """Pad a list of Examples into tensors; optionally attach image features fetched by qid.

    `pad_input_to`/`pad_output_to` force fixed lengths (the reference's way, kept for the benchmark);
    by default each batch is padded to its own longest input and target. `label_pad` is what fills the labels
    past a target's end: -100 (ignored by the loss), or the pad id, which the loss then trains on (the original's
    labels: `original_labels`).
    """

    pad_token_id: int
    features_by_qid: Callable[[list[str]], torch.Tensor] | None = None  # qids → (B, P, D) float32
    pad_input_to: int | None = None
    pad_output_to: int | None = None
    label_pad: int = LABEL_PAD

    @classmethod
    def original_labels(cls, pad_token_id: int, max_output_len: int, features_by_qid=None) -> "Collator":
        """The original's labels (`--protocol original`): every target padded to max_output_len with the pad id
        and the loss computed over all of them, as its tokenizer(padding="max_length") targets are."""
        return cls(pad_token_id, features_by_qid, pad_output_to=max_output_len, label_pad=pad_token_id)

    def __call__(self, batch: Sequence[Example]) -> dict[str, Any]:
        in_len = self.pad_input_to or max(len(e.input_ids) for e in batch)
        out_len = self.pad_output_to or max(len(e.labels) for e in batch)
        input_ids = pad_rows([e.input_ids for e in batch], self.pad_token_id, in_len)
        out = {
            "qids": [e.qid for e in batch],
            "input_ids": input_ids,
            # From the lengths, not `!= pad_token_id`: exact even if a pad id occurs inside a sequence.
            "attention_mask": length_mask([len(e.input_ids) for e in batch], in_len),
            "labels": pad_rows([e.labels for e in batch], self.label_pad, out_len),
        }
        if self.features_by_qid is not None:
            out["image_features"] = self.features_by_qid(out["qids"])
        return out


def length_mask(lengths: Sequence[int], length: int) -> torch.Tensor:
    return (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()


class LengthGroupedBatchSampler:
    """Batches of similar-length examples, a pure function of (seed, epoch), shardable across processes.

    Per epoch: a seeded permutation is cut into mega-batches of `batch_size * group_size` examples, each
    mega-batch is sorted by length and cut into batches, and the batch order is shuffled again so long and short
    batches interleave. Because the whole epoch's batch list is recomputed from (seed, epoch), resuming needs only
    the epoch and the number of batches already consumed.

    With `max_tokens` (`--max-tokens-per-batch`) batches are sized by tokens instead of examples: all examples are
    sorted by length once and cut greedily into batches whose padded size (examples × the longest input + target
    length) stays within the budget, so short examples come in large batches. That composition is fixed, so every
    epoch has the same number of batches; each epoch shuffles their order (longest first, as above).

    With `num_replicas > 1` the epoch's batch list is padded (by repeating its first batches) to a multiple of
    `num_replicas` and process `rank` takes every `num_replicas`-th batch, so all processes run the same number of
    steps (data-parallel all-reduce needs that).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int = 42, shuffle: bool = True,
                 group_size: int = 50, num_replicas: int = 1, rank: int = 0, max_tokens: int | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} replicas")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.group_size = max(1, group_size)
        self.num_replicas = num_replicas
        self.rank = rank
        self.max_tokens = max_tokens
        self._token_batches: list[list[int]] | None = None
        self.epoch = 0
        self.start_batch = 0  # batches of this process to skip at the start of the epoch (resume)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All batches of `epoch` across processes, in order."""
        n = len(self.lengths)
        if n == 0:
            return []
        if self.max_tokens:
            batches = [list(b) for b in self.token_batches()]
            if self.shuffle:
                first = batches.pop(0)  # the longest
                random.Random(f"{self.seed}:{epoch}").shuffle(batches)
                batches = [first] + batches
            return batches
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: (-self.lengths[i], i))
            return [order[i: i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = random.Random(f"{self.seed}:{epoch}")  # string seeds hash deterministically (not via hash())
        order = list(range(n))
        rng.shuffle(order)
        mega = self.batch_size * self.group_size
        batches: list[list[int]] = []
        for start in range(0, n, mega):
            group = sorted(order[start: start + mega], key=lambda i: (-self.lengths[i], i))
            batches.extend(group[i: i + self.batch_size] for i in range(0, len(group), self.batch_size))
        # The longest batch goes first so an out-of-memory shows at step 1, not hours later.
        longest = max(range(len(batches)), key=lambda b: (max(self.lengths[i] for i in batches[b]), -b))
        first = batches.pop(longest)
        rng.shuffle(batches)
        return [first] + batches

    def token_batches(self) -> list[list[int]]:
        """The fixed token-budget batches, longest first (computed once)."""
        if self._token_batches is None:
            order = sorted(range(len(self.lengths)), key=lambda i: (-self.lengths[i], i))
            batches: list[list[int]] = []
            for i in order:
                # Sorted longest first: a batch's first example is its longest.
                if batches and (len(batches[-1]) + 1) * self.lengths[batches[-1][0]] <= self.max_tokens:
                    batches[-1].append(i)
                else:
                    batches.append([i])
            self._token_batches = batches
        return self._token_batches

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of `epoch` (all of them, ignoring start_batch)."""
        batches = self.global_batches(epoch)
        if self.num_replicas > 1 and batches:
            short = (-len(batches)) % self.num_replicas
            batches = batches + [batches[i % len(batches)] for i in range(short)]
            batches = batches[self.rank:: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_batches(self.epoch)[self.start_batch:]

    def __len__(self) -> int:
        """Batches this process yields in the current epoch (after any resume skip)."""
        return max(0, self.batches_per_epoch() - self.start_batch)

    def batches_per_epoch(self) -> int:
        if self.max_tokens:
            n_global = len(self.token_batches())
        else:
            n_global = -(-len(self.lengths) // self.batch_size)  # every mega-batch but the last splits evenly
        if self.num_replicas > 1:
            return -(-n_global // self.num_replicas)
        return n_global
