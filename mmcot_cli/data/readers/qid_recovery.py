"""Original ScienceQA qids for Hub rows, which carry none (mmcot_cli.data.readers.hub).

How: each row is matched to the problems.json entries of the same split (pid_splits.json beside problems.json
when present, else each entry's own `split`) on everything the row holds: question, choices, answer, hint,
lecture, solution, task, grade, subject, topic, category, skill, and whether it has an image. A row whose key
matches one entry gets that qid. Entries sharing one key (the same question text and metadata, differing only
in an image the Hub rows do not let us compare) are handed out in qid order to the rows in row order: the split's
set of qids is then exact and every row has its own problem's text and metadata, but two such rows may have
their qids swapped; the manifest and a warning count them. A row that matches no unused entry is a bad item.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from mmcot_cli.data.readers.scienceqa import read_pid_splits, read_problems
from mmcot_cli.errors import DataError

KEY_FIELDS = ("question", "hint", "lecture", "solution", "task", "grade", "subject", "topic", "category", "skill")


def problem_key(problem: dict, has_image: bool) -> tuple:
    return (tuple(str(problem.get(f) or "") for f in KEY_FIELDS), tuple(problem.get("choices") or ()),
            int(problem.get("answer", -1)), bool(has_image))


def _qid_order(qid: str) -> tuple:
    return (len(qid), qid)


class QidMatcher:
    """qid of a Hub row, by content, from ScienceQA's problems.json (see the module docstring)."""

    def __init__(self, problems: dict[str, Any], split_of: dict[str, str], where: str):
        self.where = where
        self._free: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
        for qid in sorted(problems, key=_qid_order):
            problem = problems[qid]
            if isinstance(problem, dict) and qid in split_of:
                key = problem_key(problem, bool(problem.get("image")))
                self._free[split_of[qid]][key].append(qid)
        self._shared = {split: {k for k, v in keys.items() if len(v) > 1} for split, keys in self._free.items()}
        self.in_shared_key: dict[str, int] = defaultdict(int)

    @classmethod
    def from_problems(cls, path: str | os.PathLike) -> "QidMatcher":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: --problems file not found")
        problems = read_problems(path)
        splits_path = path.parent / "pid_splits.json"
        if splits_path.is_file():
            split_of = {q: s for s, qids in read_pid_splits(splits_path).items()
                        if s in ("train", "val", "test") for q in qids}
        else:
            split_of = {q: str(p["split"]) for q, p in problems.items() if isinstance(p, dict) and p.get("split")}
        if not split_of:
            raise DataError(f"{path}: no split for its problems (no pid_splits.json beside it and no 'split' "
                            f"field in its entries)")
        return cls(problems, split_of, str(path))

    def qid(self, split: str, row: dict) -> str | None:
        """The qid for this row of `split` (its key's next unused entry), or None."""
        key = problem_key(row, bool(row.get("image")))
        free = self._free.get(split, {}).get(key)
        if not free:
            return None
        if key in self._shared.get(split, ()):
            self.in_shared_key[split] += 1
        return free.pop(0)

    def notes(self) -> list[str]:
        return [f"split {split}: {n} rows share their text and metadata with another problem; their qids were "
                f"given in qid order (the split's qid set is exact; two such rows' qids may be swapped)"
                for split, n in self.in_shared_key.items() if n]
