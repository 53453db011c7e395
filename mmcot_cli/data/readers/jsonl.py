"""Generic JSONL (docs/FORMATS.md, "Your own data"): one problem per line, any number of splits per file.

    {"id": "q1", "split": "train", "question": "...", "choices": ["a", "b"], "answer": 1,
     "context": "...", "image": "images/q1.png", "rationale": "..." | ["...", ...], "subject": "..."}

`answer` is absent (or null) on every line of a predict-only split; `rationale` may instead be given as
`lecture` + `solution`; `"rationale": ""` (or none) means the problem has no rationale, as ScienceQA's empty
solutions (the prepare summary counts them); every other top-level key with a string value is a grouping field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmcot_cli.data.carve import Carve
from mmcot_cli.data.leakage import check_split_overlap
from mmcot_cli.data.readers.common import (
    BadItems,
    SplitResult,
    answer_error,
    choices_error,
    duplicate_choice_warning,
    make_record,
    settle_images,
    write_outputs,
)
from mmcot_cli.errors import DataError, UnknownNameError
from mmcot_cli.io import jsonl_lines
from mmcot_cli.progress import track

SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # DATA_DIR/<split>.jsonl: no path, no dot file
KNOWN_FIELDS = ("id", "split", "question", "choices", "answer", "context", "image", "rationale", "lecture",
                "solution")


def source_files(source: Path) -> list[Path]:
    """SRC itself (a .jsonl file) or every *.jsonl in the folder SRC, sorted."""
    if source.is_file():
        return [source]
    files = sorted(source.glob("*.jsonl")) if source.is_dir() else []
    if not files:
        raise DataError(f"{source}: no .jsonl file (expected a JSONL file or a folder of them)")
    return files


def _text_fields(row: dict) -> tuple[str | None, dict]:
    """(error, {context, lecture, solution, rationales}) from the optional text fields."""
    for name in ("context", "lecture", "solution"):
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"{name!r} must be a string", {}
    rationale = row.get("rationale")
    if rationale is not None and (row.get("lecture") or row.get("solution")):
        return "give either 'rationale' or 'lecture' + 'solution', not both", {}
    if isinstance(rationale, str):
        # "" = no rationale, as ScienceQA's empty solutions (a converted file keeps those problems)
        rationale = [rationale] if rationale.strip() else None
    if rationale is not None and (not isinstance(rationale, list) or not rationale
                                  or not all(isinstance(r, str) and r.strip() for r in rationale)):
        return "'rationale' must be a string (\"\" for none) or a non-empty list of non-empty strings", {}
    rationales = rationale or []
    return None, {"context": row.get("context") or "", "lecture": row.get("lecture") or "",
                  "solution": rationales[0] if rationales else (row.get("solution") or ""),
                  "rationales": rationales}


def row_error(row: Any) -> str | None:
    """Why a parsed line is unusable (image existence is checked later), or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for name in ("id", "split", "question", "choices"):
        if name not in row:
            return f"missing field {name!r}"
    if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)) or str(row["id"]).strip() == "":
        return f"'id' is {row['id']!r}, expected a non-empty string or an integer"
    if not isinstance(row["split"], str) or not SPLIT_NAME.fullmatch(row["split"]):
        return (f"'split' is {str(row['split'])[:40]!r}: a split name is letters, digits, '_', '-' or '.' "
                "(it names a file)")
    if not isinstance(row["question"], str) or not row["question"].strip():
        return "'question' must be a non-empty string"
    err = choices_error(row["choices"])
    if err:
        return err
    if row.get("answer") is not None:
        err = answer_error(row["answer"], len(row["choices"]))
        if err:
            return err
    if row.get("image") is not None and (not isinstance(row["image"], str) or not row["image"].strip()):
        return "'image' must be a path string or null"
    image = row.get("image")
    if image and not Path(image).expanduser().is_absolute() and ".." in Path(image).parts:
        return (f"'image' is {image[:80]!r}: a relative image path must stay inside the JSONL file's folder "
                "(no '..'; write an absolute path to use an image elsewhere)")
    for key, value in row.items():
        if key not in KNOWN_FIELDS and not isinstance(value, str):
            return f"unknown field {key!r} ({type(value).__name__}); grouping fields must be strings"
    return _text_fields(row)[0]


def _record(row: dict, base: Path) -> tuple[dict, Path | None]:
    """(record, expected image path if declared but not on disk)."""
    _, text = _text_fields(row)
    groups = {k: v for k, v in row.items() if k not in KNOWN_FIELDS}
    image_paths, missing, name = [], None, None
    if row.get("image"):
        path = Path(row["image"]).expanduser()
        path = path if path.is_absolute() else base / path
        name = path.name
        if path.is_file():
            image_paths = [str(path.resolve())]
        else:
            missing = path
    record = make_record("jsonl", str(row["id"]), row["split"], row["question"], row["choices"], row.get("answer"),
                         image=name, image_paths=image_paths, groups=groups, **text)
    return record, missing


def read_rows(files: list[Path], bad: BadItems) -> tuple[list[tuple[str, dict]], list[tuple[Any, dict]]]:
    """(where, row) of every parseable, valid line; bad lines go to `bad` and, as (split, {qid, error}), to the
    second list (for the manifest)."""
    rows, rejected = [], []
    for path in files:
        for line in jsonl_lines(path):
            where, row = line.where, line.value
            if line.error is not None:  # strict and safe: deep nesting, NaN, 1e999, a lone surrogate: a bad line
                bad.errors.append(str(line.error))
                rejected.append((None, {"qid": None, "error": f"line {line.lineno}: invalid JSON"}))
                continue
            err = row_error(row)
            if err:
                qid = row.get("id") if isinstance(row, dict) else None
                bad.add(None, where, qid, err)
                rejected.append((row.get("split") if isinstance(row, dict) else None, {"qid": qid, "error": err}))
                continue
            rows.append((where, row))
    return rows, rejected


def prepare_jsonl(source: Path, out: Path, splits: tuple[str, ...] | None, images: Path | None,
                  skip_bad: bool, allow_overlap: bool = False, carve: Carve | None = None) -> dict:
    files = source_files(source)
    bad, warnings = BadItems(skip_bad), []
    rows, rejected = read_rows(files, bad)
    if not rows:  # every line bad (a binary file, garbage): say why the first one is
        first = f" (the first bad line: {bad.errors[0]})" if bad.errors else ""
        raise DataError(f"{source}: no usable problems{first}")
    present = list(dict.fromkeys(row["split"] for _, row in rows))
    for split in splits or ():
        if split not in present:
            raise UnknownNameError(f"split (in {source})", split, present)
    wanted = tuple(splits or present)
    results = {split: SplitResult() for split in wanted}
    for split, item in rejected:
        if isinstance(split, str) and split in results:
            results[split].skipped.append(item)
            results[split].listed += 1
    seen: dict[str, dict[str, str]] = {split: {} for split in wanted}  # split → {id: where}
    for where, row in track(rows, "checking"):
        res = results.get(row["split"])
        if res is None:
            continue
        res.listed += 1
        qid = str(row["id"])
        if qid in seen[row["split"]]:  # features are stored by id, so an id is unique within a split
            bad.add(res, where, qid, f"duplicate id in split {row['split']} (first at {seen[row['split']][qid]})")
            continue
        seen[row["split"]][qid] = where
        duplicate = duplicate_choice_warning(where, qid, row["choices"])
        if duplicate:
            warnings.append(duplicate)
        base = images if images is not None else Path(where.rsplit(":", 1)[0]).parent
        record, missing = _record(row, base)
        if missing is not None:
            res.pending_images.append((qid, missing))
        res.records.append(record)
    # an id in two splits is leakage (an error even with --skip-bad), unless --allow-overlap
    check_split_overlap({split: list(seen[split]) for split in wanted}, str(source), allow_overlap)
    for split, res in results.items():
        _check_answers(res, seen[split], bad)
        settle_images(split, res, bad, str(images or "the JSONL file's folder"), warnings)
    bad.check(warnings, results, source)
    group_fields = sorted({k for res in results.values() for r in res.records for k in r["groups"]})
    manifest = {"format": "jsonl", "source": str(source.resolve()), "files": [str(f.resolve()) for f in files],
                "images_dir": str(images.resolve()) if images is not None else None, "group_fields": group_fields}
    return write_outputs(out, results, manifest, warnings, carve)


def _check_answers(res: SplitResult, wheres: dict[str, str], bad: BadItems) -> None:
    """A split is predict-only when no line has an answer; otherwise every line needs one."""
    with_answer = sum(r["answer"] is not None for r in res.records)
    if 0 < with_answer < len(res.records):
        for r in [r for r in res.records if r["answer"] is None]:
            bad.add(res, wheres[r["qid"]], r["qid"], "no 'answer' (other lines of its split have one; a "
                    "predict-only split has none)")
        res.records = [r for r in res.records if r["answer"] is not None]
        kept = {r["qid"] for r in res.records}
        res.pending_images = [(q, p) for q, p in res.pending_images if q in kept]
