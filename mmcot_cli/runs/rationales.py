"""Stage 1 → stage 2 hand-off: generated rationales, always keyed by qid (never by list position).

`--rationales` names either a stage-1 run directory (its `preds-<split>.jsonl`, written by `mmcot generate`) or one
predictions file (any split's qids may be in it). Both `mmcot train --stage answer` and `mmcot generate` use this;
rows are parsed by `read_rationales`; this module also holds the per-split file resolution, the
"which qid is missing" error and the provenance (path + sha256, and for a file converted from the original's
positional predictions by `mmcot rationales import --format mm-cot`, that file's path, sha256 and format)
recorded in run_config.json. The original's positional files themselves are refused here with the command that
converts them (runs/original_rationales.py): mapping positions to qids needs the split, which --rationales (one
source for several splits) does not name.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mmcot_cli.errors import DataError
from mmcot_cli.io import iter_jsonl, sha256_file

POSITIONAL_HINT = ("the original's positional predictions (no qids); map them to qids first: mmcot rationales "
                   "import FILE --format mm-cot --data DATA --split SPLIT --out RATIONALES.jsonl")


@dataclass(frozen=True)
class Rationales:
    """Rationale text per qid from one predictions file, with its provenance."""

    path: Path
    sha256: str
    by_qid: dict[str, str]
    imported_from: dict | None = None  # `rationales import --format mm-cot`: {format, path, sha256, split}

    def provenance(self) -> dict:
        info = {"path": str(self.path.resolve()), "sha256": self.sha256, "count": len(self.by_qid)}
        return {**info, "imported_from": self.imported_from} if self.imported_from else info

    def for_qids(self, qids: Iterable[str]) -> list[str]:
        """The rationale of each qid, in the given order; a missing qid is an error that names it."""
        qids = list(qids)
        missing = [q for q in qids if q not in self.by_qid]
        if missing:
            shown = ", ".join(missing[:5]) + (f" … ({len(missing)} missing in all)" if len(missing) > 5 else "")
            raise DataError(f"{self.path}: no rationale for qid {shown}")
        return [self.by_qid[q] for q in qids]


def read_rationales(path: str | Path) -> dict[str, str]:
    """qid → generated rationale from one predictions JSONL (`{qid, prediction, ...}`). Matching is by qid,
    never by position (the reference pairs by position).  A RUN_DIR → file: `rationale_file`."""
    return read_rationale_rows(path)[0]


def _imported_from(sources: list) -> dict | None:
    """The one origin every row names (`source` minus its index), or None."""
    origins = {json.dumps({k: v for k, v in s.items() if k != "index"}, sort_keys=True) if isinstance(s, dict)
               else "null" for s in sources}
    return json.loads(origins.pop()) if len(origins) == 1 else None


def read_rationale_rows(path: str | Path) -> tuple[dict[str, str], dict | None]:
    """(qid → rationale, the import origin shared by every row or None) of one predictions JSONL."""
    path = Path(path)
    out: dict[str, str] = {}
    sources = []
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).lstrip()
    except OSError:
        head = b""  # iter_jsonl below names what is wrong with the file
    if head.startswith(b"{") and b'"preds"' in head and b'"qid"' not in head:
        raise DataError(f"{path}: {POSITIONAL_HINT}")
    for lineno, obj in iter_jsonl(path):
        qid, pred = obj.get("qid"), obj.get("prediction")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            raise DataError(f"{path}:{lineno}: missing or invalid 'qid'")
        if not isinstance(pred, str):
            raise DataError(f"{path}:{lineno}: qid {qid}: missing or non-string 'prediction'")
        if obj.get("stage") == "answer":  # its text states the predicted answer: stage 2 would read it as given
            raise DataError(f"{path}:{lineno}: qid {qid}: an answer-stage prediction, not a stage-1 rationale; "
                            "give the rationale run's predictions (a run trained with --stage rationale)")
        qid = str(qid)
        if qid in out:
            raise DataError(f"{path}:{lineno}: duplicate qid {qid}")
        out[qid] = pred
        sources.append(obj.get("source"))
    return out, _imported_from(sources)


def rationale_file(source: str | Path, split: str) -> Path:
    """The predictions file for `split`: RUN_DIR/preds-<split>.jsonl for a run directory, else `source` itself."""
    source = Path(source)
    if source.is_dir():
        path = source / f"preds-{split}.jsonl"
        if not path.is_file():
            again = f"mmcot generate --run {shlex.quote(str(source))} --split {shlex.quote(split)}"
            raise DataError(f"{path}: file not found (run `{again}` first)")
        return path
    if not source.is_file():
        raise DataError(f"{source}: no such rationale run directory or predictions file")
    return source


def load_rationales(source: str | Path, split: str) -> Rationales:
    """The `prediction` of every row of the rationale file for `split`, keyed by `qid`, with provenance."""
    path = rationale_file(source, split)
    by_qid, imported_from = read_rationale_rows(path)
    return Rationales(path=path, sha256=sha256_file(path), by_qid=by_qid, imported_from=imported_from)
