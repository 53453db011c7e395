"""ScienceQA's problems file read once, streamed (mmcot_cli.data.json_stream), and kept on disk rather than in
memory: what lets `prepare` read 200k problems in bounded memory while writing each split in its split list's
order (which is not the file's: trainval, minitrain …).

Each usable problem of a wanted qid is written as one JSON line to an anonymous temporary file (no name: nothing
is left behind, however the process ends) in the output folder, which `prepare` holds; memory keeps only qid →
offset, the reason of each bad problem, and (without pid_splits.json) the qids of each wanted split.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection

from mmcot_cli.data.json_stream import iter_object
from mmcot_cli.errors import DataError
from mmcot_cli.io import dumps, os_reason


class ProblemIndex:
    """Problems by qid: `get` a usable one from the spool file, `errors[qid]` says why one is not usable."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self._spool = tempfile.TemporaryFile(dir=self.folder)  # O_TMPFILE where the kernel has it: no name
        except OSError as e:
            raise DataError(f"{self.folder}: cannot write ({os_reason(e)})") from None
        self._at: dict[str, int] = {}
        self._end = 0
        self._writing = True
        self.errors: dict[str, str] = {}
        self.entry_splits: dict[str, list[str]] = {}  # split → qids, from each entry's own `split` field

    def __enter__(self) -> "ProblemIndex":
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):  # (what it still buffers is thrown away with it)
            self._spool.close()

    def __contains__(self, qid: str) -> bool:
        return qid in self._at or qid in self.errors

    def read(self, path: Path, check: Callable[[str, Any], str | None], wanted: Collection[str] | None,
             splits: Collection[str] | None = None) -> None:
        """Stream `path` (qid → problem); keep the problems of `wanted` qids (None: those whose own `split` field
        is one of `splits`, every entry needing one: a problems file without pid_splits.json). `check` gives a
        problem's reason to be unusable, or None. A later entry of the same qid replaces an earlier one."""
        for key, problem in iter_object(path, "a JSON object keyed by qid", "problems file"):
            qid = str(key)
            if wanted is None:
                split = problem.get("split") if isinstance(problem, dict) else None
                if not isinstance(split, str) or not split:
                    raise DataError(f"{path}: qid {qid}: no 'split' field, and no pid_splits.json beside "
                                    f"{path.name} to say its split")
                qids = self.entry_splits.setdefault(split, [])
                if splits is not None and split not in splits:
                    continue
                if qid not in self:
                    qids.append(qid)
            elif qid not in wanted:
                continue
            self._keep(qid, problem, check(qid, problem))

    def _keep(self, qid: str, problem: Any, error: str | None) -> None:
        self._at.pop(qid, None)
        self.errors.pop(qid, None)
        if error:
            self.errors[qid] = error
            return
        line = (dumps(problem) + "\n").encode("utf-8")
        try:
            self._spool.write(line)
        except OSError as e:
            raise DataError(f"{self.folder}: cannot write ({os_reason(e)})") from None
        self._at[qid] = self._end
        self._end += len(line)

    def get(self, qid: str) -> dict:
        """The usable problem `qid` (KeyError if it has none: see `errors` and `in`)."""
        at = self._at[qid]
        if self._writing:
            try:
                self._spool.flush()
            except OSError as e:
                raise DataError(f"{self.folder}: cannot write ({os_reason(e)})") from None
            self._writing = False
        self._spool.seek(at, os.SEEK_SET)
        return json.loads(self._spool.readline())
