"""Data leakage: a qid in two of the splits being prepared (e.g. train and test) is an error.

ScienceQA's pid_splits.json has splits that overlap by design: trainval = train ∪ val, and minitrain / minival /
minitest are samples of train / val / test. An overlap between such a pair is expected when the smaller split lies
wholly inside the larger one; every other overlap (including a "subset" that is not one of these pairs, e.g. test
inside train) is leakage unless the user allows it explicitly (`prepare --allow-overlap`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from mmcot_cli.errors import DataError

# (subset, superset) pairs of ScienceQA's pid_splits.json.
SUBSET_SPLITS = {("train", "trainval"), ("val", "trainval"), ("minitrain", "train"), ("minitrain", "trainval"),
                 ("minival", "val"), ("minival", "trainval"), ("minitest", "test")}


def _by_design(a: str, qa: set, b: str, qb: set) -> bool:
    return ((a, b) in SUBSET_SPLITS and qa <= qb) or ((b, a) in SUBSET_SPLITS and qb <= qa)


def check_split_overlap(split_qids: Mapping[str, Sequence[str]], where: str, allow: bool = False) -> None:
    """Raise DataError naming the first qid found in two splits (and both splits), unless `allow`.

    `where` names the file the split lists come from (pid_splits.json, a JSONL file …)."""
    if allow:
        return
    names = list(split_qids)
    sets = {name: set(map(str, split_qids[name])) for name in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sets[a] & sets[b]
            if not common or _by_design(a, sets[a], b, sets[b]):
                continue
            first = next(str(q) for q in split_qids[a] if str(q) in common)
            more = f" (and {len(common) - 1} more)" if len(common) > 1 else ""
            raise DataError(f"{where}: qid {first} is in both split {a!r} and split {b!r}{more}: data leakage "
                            f"(--allow-overlap to prepare them anyway)")
