"""ScienceQA as the Hugging Face Hub serves it: parquet files with the images inside (derek-thomas/ScienceQA:
data/<split>-NNNNN-of-NNNNN-*.parquet; lmms-lab/ScienceQA: <config>/<split>-*.parquet, configs ScienceQA-FULL and
ScienceQA-IMG), read through the `datasets` library from a Hub id (its cached snapshot; downloaded unless
HF_HUB_OFFLINE=1) or from a local folder holding the same files.

Rows have ScienceQA's problem fields (question, choices, answer, hint, task, grade, subject, topic, category,
skill, lecture, solution) and `image` (PNG/JPEG bytes or null) but no qid. Split `validation` becomes `val`, as
in pid_splits.json. Each image is written once, to DATA_DIR/images/<qid>/image.png, so extract reads files.

qids (mmcot_cli.data.readers.qid_recovery): with `--problems problems.json` (ScienceQA's own file, pid_splits.json
beside it if present), every row gets its original qid by matching its text and metadata; otherwise rows are
numbered `<split>-<row>` and the manifest says so (`qids: "row-number"`), which keeps report's published rows away.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mmcot_cli.data.carve import Carve
from mmcot_cli.data.leakage import check_split_overlap
from mmcot_cli.data.readers.common import (
    BadItems,
    SplitResult,
    answer_error,
    choices_error,
    duplicate_choice_warning,
    write_outputs,
)
from mmcot_cli.data.readers.qid_recovery import QidMatcher
from mmcot_cli.data.readers.scienceqa import problem_to_record
from mmcot_cli.errors import DataError, UnknownNameError
from mmcot_cli.progress import track

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
PARQUET_NAME = re.compile(r"(?P<split>[A-Za-z0-9_]+?)(-\d{5}-of-\d{5}.*)?\.parquet")
HUB_SPLITS = {"validation": "val"}  # Hub split name → ScienceQA's (pid_splits.json) name
TEXT_FIELDS = ("question", "hint", "task", "grade", "subject", "topic", "category", "skill", "lecture", "solution")
SCIENCEQA_METADATA = ("task", "grade", "subject", "topic", "category", "skill")
PREFERRED_CONFIG = "ScienceQA-FULL"  # lmms-lab: the full set (ScienceQA-IMG is its image subset)


def looks_like_hub_id(source: str | os.PathLike) -> bool:
    """`owner/name` (or `owner/name/config`) that is not a path on disk."""
    text = str(source)
    return not Path(text).exists() and HUB_ID.fullmatch(text) is not None


def has_parquet(source: Path) -> bool:
    return source.is_dir() and any(source.rglob("*.parquet"))


def resolve_source(source: str) -> tuple[Path, str]:
    """(local folder with the parquet files, how it was found) for a folder or a Hub id."""
    if Path(source).is_dir():
        return Path(source), "local folder"
    parts = source.split("/")
    repo_id, config = "/".join(parts[:2]), (parts[2] if len(parts) > 2 else None)
    from huggingface_hub import snapshot_download

    try:  # HF_HUB_OFFLINE=1: the cached snapshot only, at once (no network wait)
        folder = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=["*.parquet", "*/*.parquet",
                                                                                       "*/*/*.parquet"]))
    except Exception as e:  # noqa: BLE001 - any hub failure (offline, unknown id, auth) is one line
        offline = " (offline: HF_HUB_OFFLINE=1 uses the local cache only)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise DataError(f"{repo_id}: cannot get this dataset from the Hugging Face Hub{offline}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; or pass a local folder "
                        f"holding its parquet files") from None
    return (folder / config if config else folder), f"Hub dataset {repo_id} (snapshot {folder.name})"


def split_files(folder: Path) -> dict[str, list[Path]]:
    """{hub split: parquet files}. A folder of configs (lmms-lab) uses ScienceQA-FULL, or the only config."""
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise DataError(f"{folder}: no .parquet file (expected the Hub layout data/<split>-00000-of-00001.parquet)")
    configs = sorted({f.parent.relative_to(folder).parts[0] for f in files if f.parent != folder
                      and f.parent.name != "data"})
    if len(configs) > 1:
        if PREFERRED_CONFIG not in configs:
            raise DataError(f"{folder}: several configs ({', '.join(configs)}); pass the one to read, e.g. "
                            f"{folder / configs[0]}")
        files = [f for f in files if f.relative_to(folder).parts[0] == PREFERRED_CONFIG]
    out: dict[str, list[Path]] = {}
    for f in files:
        match = PARQUET_NAME.fullmatch(f.name)
        out.setdefault(match.group("split") if match else f.stem, []).append(f)
    return out


def load_splits(files: dict[str, list[Path]]):
    """The `datasets` DatasetDict of the parquet files, images left as bytes (written out once, not decoded)."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # its "Generating split" bars in a log are noise; prepare prints its own lines
    try:
        dsd = datasets.load_dataset("parquet", data_files={s: [str(f) for f in fs] for s, fs in files.items()})
    except Exception as e:  # noqa: BLE001 - a broken or foreign parquet file is one line
        raise DataError(f"{next(iter(files.values()))[0].parent}: cannot read the parquet files "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    for split, ds in dsd.items():
        missing = [c for c in ("question", "choices", "answer") if c not in ds.column_names]
        if missing:
            raise DataError(f"{files[split][0]}: no column {', '.join(missing)} (not ScienceQA's Hub schema: "
                            f"image, question, choices, answer, hint, {', '.join(SCIENCEQA_METADATA)}, lecture, "
                            f"solution)")
        if "image" in ds.column_names and isinstance(ds.features["image"], datasets.Image):
            dsd[split] = ds.cast_column("image", datasets.Image(decode=False))
    return dsd


def image_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None and value.get("path") and Path(value["path"]).is_file():
            data = Path(value["path"]).read_bytes()
        return data or None
    return bytes(value) if isinstance(value, (bytes, bytearray)) else None


def image_name(data: bytes) -> str:
    return "image.jpg" if data[:3] == b"\xff\xd8\xff" else "image.png"


def row_error(row: dict) -> str | None:
    error = choices_error(row.get("choices")) or answer_error(row.get("answer"), len(row.get("choices") or []))
    if error:
        return error
    for name in TEXT_FIELDS:
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"{name!r} is {type(row[name]).__name__}, expected a string"
    return None


def hub_record(qid: str, split: str, row: dict, image_paths: list[str], image: str | None) -> dict:
    """The record ScienceQA's own reader writes for the same problem (a missing metadata column gives "")."""
    problem = {name: row.get(name) or "" for name in TEXT_FIELDS}
    problem.update(choices=list(row["choices"]), answer=int(row["answer"]), image=image)
    return problem_to_record(qid, problem, split, "", image_paths)


def read_split(hub_split: str, split: str, ds, matcher: QidMatcher | None, stage: Path, final_images: Path,
               bad: BadItems, warnings: list[str]) -> SplitResult:
    res = SplitResult(listed=len(ds))
    rows: Iterator[dict] = iter(ds)
    for i, row in enumerate(track(rows, f"reading {hub_split}", total=len(ds))):
        qid = matcher.qid(split, row) if matcher is not None else f"{split}-{i}"
        where = f"{hub_split} row {i}"
        error = row_error(row) or (f"no qid in {matcher.where} has this row's question, choices and metadata"
                                   if qid is None else None)
        if error:
            bad.add(res, where, qid, error)
            continue
        data = image_bytes(row.get("image"))
        paths, name = [], None
        if data:
            name = image_name(data)
            (stage / qid).mkdir(parents=True, exist_ok=True)
            (stage / qid / name).write_bytes(data)
            paths = [str(final_images / qid / name)]
        warning = duplicate_choice_warning(where, qid, row["choices"])
        if warning:
            warnings.append(warning)
        res.records.append(hub_record(qid, split, row, paths, name))
    return res


def prepare_hub(source: str, out: Path, splits: tuple[str, ...] | None, problems: Path | None, skip_bad: bool,
                allow_overlap: bool, carve: Carve | None = None) -> dict:
    """Hub id or local parquet folder → DATA_DIR; returns the prepare summary."""
    folder, found = resolve_source(str(source))
    files = split_files(folder)
    names = {hub: HUB_SPLITS.get(hub, hub) for hub in files}
    wanted = splits if splits is not None else tuple(names.values())
    for split in wanted:
        if split not in names.values():
            raise UnknownNameError(f"split (in {folder})", split, list(names.values()))
    matcher = QidMatcher.from_problems(problems) if problems is not None else None
    dsd = load_splits({hub: fs for hub, fs in files.items() if names[hub] in wanted})
    bad, warnings = BadItems(skip_bad), []
    out = Path(out)
    final_images = out.resolve() / "images"
    stage = Path(tempfile.mkdtemp(prefix=".images.", suffix=".tmp", dir=out))
    try:
        results = {names[hub]: read_split(hub, names[hub], ds, matcher, stage, final_images, bad,
                                             warnings)
                   for hub, ds in dsd.items()}
        bad.check(warnings, results, source)
        check_split_overlap({s: [r["qid"] for r in res.records] for s, res in results.items()}, str(folder),
                            allow_overlap)
        if matcher is None:
            warnings.append(f"{source}: the Hub rows carry no qid; numbered <split>-<row> (pass --problems "
                            f"problems.json, ScienceQA's own file, to recover the original qids). report shows no "
                            f"published ScienceQA rows beside runs on these data")
        else:
            warnings.extend(matcher.notes())
        manifest = {"format": "hub", "source": str(source), "found": found, "folder": str(folder.resolve()),
                    "files": {names[h]: [str(f.relative_to(folder)) for f in fs] for h, fs in files.items()},
                    "images_dir": str(final_images),
                    "qids": "recovered" if matcher is not None else "row-number",
                    "qids_from": str(Path(problems).resolve()) if problems is not None else None,
                    "official_splits": matcher is not None}
        shutil.rmtree(final_images, ignore_errors=True)  # an earlier prepare's images
        os.replace(stage, final_images)
        return write_outputs(out, results, manifest, warnings, carve)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
