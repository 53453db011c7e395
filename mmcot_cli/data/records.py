"""DATA_DIR: the record schema every reader writes, and reading and writing the folder (docs/FORMATS.md).

DATA_DIR/<split>.jsonl holds one record per problem (RECORD_FIELDS, keyed by qid) and DATA_DIR/manifest.json what
`mmcot prepare` read and kept. Every reader in mmcot_cli.data.records.readers writes through `write_data_dir`; every command
reads through `load_records`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from mmcot_cli.errors import DataError, UnknownSplitError
from mmcot_cli.io import iter_jsonl, read_json, staged_files, write_json, write_jsonl
from mmcot_cli.outputs import mark_output_dir

DEFAULT_SPLITS: tuple[str, ...] = ("train", "val", "test")
RECORD_FIELDS: tuple[str, ...] = ("qid", "split", "question", "hint", "caption", "choices", "answer", "lecture",
                                  "solution", "subject", "grade", "topic", "category", "skill", "task", "image",
                                  "image_paths")
MAX_CHOICES = 5  # option letters A–E, as the reference prompts use


def parse_splits(text: str) -> tuple[str, ...]:
    """"train, val,test" → ("train", "val", "test"), order kept; a repeated split is dropped silently (it would
    only redo the same work). The one split-list parser of every command (prepare, extract, generate)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    return tuple(dict.fromkeys(names))


def without_rationale(records: list[dict]) -> int:
    """How many records have no gold rationale (an empty `solution`, as some ScienceQA problems): they are kept,
    and the prepare summary counts them."""
    return sum(1 for r in records if not str(r.get("solution") or "").strip())


def write_data_dir(out: Path, records: Mapping[str, list[dict]], manifest: dict) -> None:
    """Stage every split file and the manifest, then rename them into DATA_DIR together: a write fault leaves
    none of them (every `mmcot prepare --format` writes through here). DATA_DIR then holds exactly this run's
    splits: a split file of an earlier prepare (other --splits, another source) is removed, never read again."""
    with staged_files(out) as stage:
        for split, rows in records.items():
            write_jsonl(stage / f"{split}.jsonl", rows)
        write_json(stage / "manifest.json", manifest)
        mark_output_dir(stage, "prepare")
    for stale in Path(out).glob("*.jsonl"):
        if stale.stem not in records:
            stale.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading DATA_DIR

def available_splits(data_dir: str | os.PathLike) -> list[str]:
    return sorted(p.stem for p in Path(data_dir).glob("*.jsonl"))


def load_records(data_dir: str | os.PathLike, split: str) -> list[dict]:
    """The records of DATA_DIR/<split>.jsonl, in file order; DataError names the file and line of a bad one."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found (create it with `mmcot prepare`)")
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        present = available_splits(data_dir)
        raise UnknownSplitError(str(data_dir), split, present)
    records = []
    for lineno, obj in iter_jsonl(path):
        missing = [k for k in RECORD_FIELDS if k not in obj]
        if missing:
            raise DataError(f"{path}:{lineno}: record missing {', '.join(missing)}")
        records.append(obj)
    return records


def load_manifest(data_dir: str | os.PathLike) -> dict:
    return read_json(Path(data_dir) / "manifest.json")
