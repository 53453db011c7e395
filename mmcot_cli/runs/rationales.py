"""Stage 1 → stage 2 hand-off: generated rationales, always keyed by qid (never by list position).

`--rationales` names either a stage-1 run directory (its `preds-<split>.jsonl`, written by `mmcot generate`) or one
predictions file (any split's qids may be in it). Both `mmcot train --stage answer` and `mmcot generate` use this;
rows are parsed by `read_rationales`; this module also holds the per-split file resolution, the
"which qid is missing" error and the provenance (path + sha256) recorded in run_config.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mmcot_cli.errors import DataError
from mmcot_cli.io import iter_jsonl, sha256_file


@dataclass(frozen=True)
class Rationales:
    """Rationale text per qid from one predictions file, with its provenance."""

    path: Path
    sha256: str
    by_qid: dict[str, str]

    def provenance(self) -> dict:
        return {"path": str(self.path.resolve()), "sha256": self.sha256, "count": len(self.by_qid)}

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
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path):
        qid, pred = obj.get("qid"), obj.get("prediction")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            raise DataError(f"{path}:{lineno}: missing or invalid 'qid'")
        if not isinstance(pred, str):
            raise DataError(f"{path}:{lineno}: qid {qid}: missing or non-string 'prediction'")
        qid = str(qid)
        if qid in out:
            raise DataError(f"{path}:{lineno}: duplicate qid {qid}")
        out[qid] = pred
    return out


def rationale_file(source: str | Path, split: str) -> Path:
    """The predictions file for `split`: RUN_DIR/preds-<split>.jsonl for a run directory, else `source` itself."""
    source = Path(source)
    if source.is_dir():
        path = source / f"preds-{split}.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: file not found (run `mmcot generate --run {source} --split {split}` first)")
        return path
    if not source.is_file():
        raise DataError(f"{source}: no such rationale run directory or predictions file")
    return source


def load_rationales(source: str | Path, split: str) -> Rationales:
    """The `prediction` of every row of the rationale file for `split`, keyed by `qid`, with provenance."""
    path = rationale_file(source, split)
    return Rationales(path=path, sha256=sha256_file(path), by_qid=read_rationales(path))
