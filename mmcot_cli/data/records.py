"""DATA_DIR: the record schema every reader writes, and reading and writing the folder (docs/FORMATS.md).

DATA_DIR/<split>.jsonl holds one record per problem (RECORD_FIELDS, keyed by qid) and DATA_DIR/manifest.json what
`mmcot prepare` read and kept. Every reader in mmcot_cli.data.records.readers writes through `write_data_dir`; every command
reads through `load_records`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from mmcot_cli.data.carve import Carve, carve_records
from mmcot_cli.errors import DataError, UnknownSplitError, UsageError
from mmcot_cli.io import iter_jsonl, read_json, staged_files, write_json, write_jsonl
from mmcot_cli.output_guard import mark_output_dir
from mmcot_cli.validate import split_name_problem

DEFAULT_SPLITS: tuple[str, ...] = ("train", "val", "test")
RECORD_FIELDS: tuple[str, ...] = ("qid", "split", "question", "hint", "caption", "choices", "answer", "lecture",
                                  "solution", "subject", "grade", "topic", "category", "skill", "task", "image",
                                  "image_paths")
MAX_CHOICES = 5  # option letters A–E, as the reference prompts use


def parse_splits(text: str) -> tuple[str, ...]:
    """"train, val,test" → ("train", "val", "test"), order kept; a repeated split is dropped silently (it would
    only redo the same work). The one split-list parser of every command (prepare, extract, generate)."""
    return _plain(s.strip() for s in text.split(",") if s.strip())


def _plain(names) -> tuple[str, ...]:
    """The names, each a plain split name (a path such as "../x" would read or write outside DATA_DIR, the store
    or the run: UsageError), repeats dropped."""
    names = tuple(dict.fromkeys(names))
    for name in names:
        problem = split_name_problem(name)
        if problem:
            raise UsageError(problem)
    return names


def split_list(value) -> tuple[str, ...]:
    """A --split option's value as settings take it: "train,val" on the command line, or a recipe's list."""
    return parse_splits(value) if isinstance(value, str) else _plain(str(v) for v in value)


def without_rationale(records: list[dict]) -> int:
    """How many records have no gold rationale (an empty `solution`, as some ScienceQA problems): they are kept,
    and the prepare summary counts them."""
    return sum(1 for r in records if not str(r.get("solution") or "").strip())


def write_data_dir(out: Path, records: Mapping[str, list[dict]], manifest: dict, carve: Carve | None = None) -> None:
    """Stage every split file and the manifest, then rename them into DATA_DIR together: a write fault leaves
    none of them (every `mmcot prepare --format` writes through here or `staged_data_dir`). DATA_DIR then holds
    exactly this run's splits: a split file of an earlier prepare (other --splits, another source) is removed,
    never read again. `carve`: split carve.split is written as train/val/test parts instead (mmcot_cli.data.carve)."""
    if carve is not None:
        records, manifest = _carved(records, manifest, carve)
    with staged_data_dir(out) as stage:
        for split, rows in records.items():
            write_jsonl(stage / f"{split}.jsonl", rows)
        write_json(stage / "manifest.json", manifest)


@contextlib.contextmanager
def staged_data_dir(out: Path) -> Iterator[Path]:
    """A staging folder for a reader that writes DATA_DIR's split files (and manifest.json) as it reads: they are
    renamed into `out` together when the block succeeds, none of them when it fails; split files of an earlier
    prepare that this one did not write are then removed."""
    with staged_files(out) as stage:
        yield stage
        mark_output_dir(stage, "prepare")
        written = {p.stem for p in stage.glob("*.jsonl")}
    for stale in Path(out).glob("*.jsonl"):
        if stale.stem not in written:
            stale.unlink(missing_ok=True)


def write_split(stage: Path, split: str, rows: Iterable[dict]) -> int:
    """One split file of a staged DATA_DIR (staged_data_dir), written as `rows` come; returns their number."""
    return write_jsonl(stage / f"{split}.jsonl", rows)


def carve_staged(stage: Path, manifest: dict, carve: Carve) -> dict:
    """`carve` applied to split files already staged (staged_data_dir); returns the manifest. The carved split is
    read back whole (carving shuffles it); the other splits stay on disk."""
    staged = {p.stem: p for p in stage.glob("*.jsonl")}
    rows = [obj for _, obj in iter_jsonl(staged[carve.split])] if carve.split in staged else []
    others = {s: [] for s in staged if s != carve.split}
    records, manifest = _carved({**others, **({carve.split: rows} if carve.split in staged else {})}, manifest,
                                carve)
    staged[carve.split].unlink()
    for part in set(records) - set(others):
        write_jsonl(stage / f"{part}.jsonl", records[part])
    return manifest


def _carved(records: Mapping[str, list[dict]], manifest: dict, carve: Carve) -> tuple[dict, dict]:
    if carve.split not in records:
        raise DataError(f"--carve {carve.split}: no such split prepared (prepared: {', '.join(records)})")
    others = {s: rows for s, rows in records.items() if s != carve.split}
    parts, info = carve_records(records[carve.split], carve)
    clash = sorted(set(others) & set(parts))
    if clash:
        raise UsageError(f"--carve {carve.split} makes split {clash[0]}, which is prepared too (--splits "
                         f"{carve.split} prepares the carved split alone)")
    splits = {s: v for s, v in manifest.get("splits", {}).items() if s != carve.split}
    splits.update({p: {"count": len(rows), "with_images": sum(1 for r in rows if r["image_paths"])}
                   for p, rows in parts.items()})
    return {**others, **parts}, {**manifest, "splits": splits, "carved_from": info, "official_splits": False}


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
