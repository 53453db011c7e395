"""ScienceQA data: validate the benchmark's files and turn them into DATA_DIR/<split>.jsonl records.

Layouts accepted for SRC: problems.json + pid_splits.json directly in SRC, or in SRC/scienceqa/ (the benchmark's
own layout, with captions.json beside scienceqa/). Images: IMAGES/<qid>/ or IMAGES/<split>/<qid>/ (ScienceQA's
download layout) where IMAGES is --images, else SRC/images, else the images/ folder beside problems.json.

Defaults are chosen for partial copies of ScienceQA (like ../shared/scienceqa-sample: full split lists, a few
problems, only test images):
- a split qid with no entry in problems.json is counted and listed in the manifest (`strict=True` makes it an error);
- a split with no image on disk at all (its images were not downloaded) gives one warning and keeps its records
  with `image_paths: []` (`image` still records what problems.json declares);
- in a split that does have images on disk, a declared image that is missing is an error like any other bad item.
Bad items are errors; `skip_bad=True` turns each into a warning, drops the item and counts it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from mmcot_cli._version import __version__
from mmcot_cli.data.carve import Carve
from mmcot_cli.data.json_stream import iter_object
from mmcot_cli.data.leakage import check_split_overlap
from mmcot_cli.data.readers.common import duplicate_choice_warning, text_error
from mmcot_cli.data.readers.problem_index import ProblemIndex
from mmcot_cli.data.readers.scienceqa_images import find_image_paths
from mmcot_cli.data.records import (
    DEFAULT_SPLITS,
    MAX_CHOICES,
    carve_staged,
    parse_splits,
    staged_data_dir,
    write_split,
)
from mmcot_cli.errors import DataError, UnknownNameError
from mmcot_cli.io import atomic_open, open_input, read_json, write_json
from mmcot_cli.outputs import claim_output_dir
from mmcot_cli.progress import track

# Every problems.json entry must carry these (its own `split` field is optional: pid_splits.json is the authority).
PROBLEM_FIELDS: tuple[str, ...] = ("question", "choices", "answer", "hint", "image", "task", "grade", "subject",
                                   "topic", "category", "skill", "lecture", "solution")
_STR_FIELDS = ("question", "hint", "task", "grade", "subject", "topic", "category", "skill", "lecture", "solution")


@dataclass
class PrepareConfig:
    source: Path
    out: Path
    splits: tuple[str, ...] = DEFAULT_SPLITS
    captions: Path | None = None  # default: SRC/captions.json (or beside problems.json) if present
    images: Path | None = None  # default: SRC/images (or beside problems.json) if present
    skip_bad: bool = False
    strict: bool = False  # split qids missing from problems.json become errors
    allow_overlap: bool = False  # a qid in two prepared splits is leakage unless allowed (mmcot_cli.data.leakage)
    problems: Path | None = None  # the problems file, any name (default: SRC/problems.json or SRC itself, a file)
    carve: Carve | None = None  # write one split as seeded, stratified train/val/test parts (mmcot_cli.data.carve)

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.out = Path(self.out)
        if self.captions is not None:
            self.captions = Path(self.captions)
        if self.images is not None:
            self.images = Path(self.images)
        if self.problems is not None:
            self.problems = Path(self.problems)
        if isinstance(self.splits, str):
            self.splits = parse_splits(self.splits)
        else:
            self.splits = tuple(self.splits)


# --------------------------------------------------------------------------- finding and reading the source files

def find_source_files(source: str | os.PathLike, problems: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(problems file, pid_splits.json or None) in SRC or SRC/scienceqa/; `problems` (any name) or SRC itself
    when it is a file. Without pid_splits.json (beside the problems file or in SRC) each entry's own `split`
    field says its split."""
    source = Path(source)
    if problems is not None or source.is_file():
        path = Path(problems) if problems is not None else source
        if not path.is_file():
            open_input(path, "problems file").close()  # a FIFO or device: named as such (never opened)
            raise DataError(f"{path}: problems file not found")
        beside = [path.parent / "pid_splits.json"] + ([source / "pid_splits.json"] if source.is_dir() else [])
        return path, next((p for p in beside if p.is_file()), None)
    if not source.is_dir():
        raise DataError(f"{source}: not a directory (expected a ScienceQA data folder with problems.json)")
    for folder in (source, source / "scienceqa"):
        problems = folder / "problems.json"
        if problems.exists() and not problems.is_dir():
            open_input(problems, "problems file").close()  # a FIFO or device: named as such (never opened)
            splits = folder / "pid_splits.json"
            return problems, (splits if splits.is_file() else None)
    raise DataError(f"{source}: no problems.json here or in {source / 'scienceqa'} (a problems file of another "
                    f"name: --problems FILE)")


def read_problems(path: str | os.PathLike) -> dict[str, Any]:
    """Every entry of a problems file, in memory (`prepare` streams it instead: ProblemIndex). Lone surrogates
    are left for problem_errors, so --skip-bad can skip the one problem holding one."""
    return {str(k): v for k, v in iter_object(path, "a JSON object keyed by qid", "problems file")}


def read_pid_splits(path: str | os.PathLike) -> dict[str, list[str]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{split: [qid, ...]}}, got {type(data).__name__}")
    out = {}
    for name, qids in data.items():
        if not isinstance(qids, list):
            raise DataError(f"{path}: split {name!r} is not a list of qids")
        for i, q in enumerate(qids):
            if isinstance(q, bool) or not isinstance(q, (str, int)) or str(q).strip() == "":
                raise DataError(f"{path}: split {name!r} item {i}: {q!r} is not a qid (a string or an integer)")
        out[name] = [str(q) for q in qids]
    return out


def read_captions(path: str | os.PathLike) -> tuple[dict[str, str], str | None]:
    """qid → caption from `{"captions": {qid: text}}`; a flat `{qid: text}` dict (what MM's extract_caption.py
    writes) is accepted too, returned with a note saying so."""
    data = read_json(path)
    note = None
    if isinstance(data, dict) and isinstance(data.get("captions"), dict):
        captions = data["captions"]
    elif isinstance(data, dict) and "captions" not in data and all(isinstance(v, str) for v in data.values()):
        captions = data
        note = f"{path}: no 'captions' key; read it as a flat {{qid: caption}} dict"
    else:
        raise DataError(f"{path}: expected {{\"captions\": {{qid: text}}}} (or a flat {{qid: text}} dict)")
    for qid, text in captions.items():
        if not isinstance(text, str):
            raise DataError(f"{path}: caption for qid {qid} is {type(text).__name__}, expected a string")
    return {str(k): v for k, v in captions.items()}, note


def default_captions_path(source: Path, problems_path: Path) -> Path | None:
    for candidate in (source / "captions.json", problems_path.parent / "captions.json"):
        if candidate.is_file():
            return candidate
    return None


def default_images_dir(source: Path, problems_path: Path) -> Path | None:
    for candidate in (source / "images", problems_path.parent / "images"):
        if candidate.is_dir():
            return candidate
    return None


# --------------------------------------------------------------------------- one problem

def problem_errors(qid: str, problem: Any) -> str | None:
    """Why this problems.json entry is unusable, or None. (One short phrase; callers add file and qid.)"""
    if not isinstance(problem, dict):
        return f"entry is {type(problem).__name__}, expected an object"
    missing = [f for f in PROBLEM_FIELDS if f not in problem]
    if missing:
        return f"missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(f) for f in missing)}"
    choices = problem["choices"]
    if not isinstance(choices, list):
        return f"'choices' is {type(choices).__name__}, expected a list"
    if not 2 <= len(choices) <= MAX_CHOICES:
        return f"'choices' has {len(choices)} items, expected 2 to {MAX_CHOICES}"
    if not all(isinstance(c, str) for c in choices):
        return "'choices' must be a list of strings"
    answer = problem["answer"]
    if not isinstance(answer, int) or isinstance(answer, bool):
        return f"'answer' is {answer!r}, expected an integer index"
    if not 0 <= answer < len(choices):
        return f"answer index {answer} out of range for {len(choices)} choices"
    for name in _STR_FIELDS:
        if not isinstance(problem[name], str):
            return f"{name!r} is {type(problem[name]).__name__}, expected a string"
    if problem["image"] is not None and not isinstance(problem["image"], str):
        return f"'image' is {type(problem['image']).__name__}, expected a file name or null"
    if problem["image"] and (Path(problem["image"]).name != problem["image"] or problem["image"] in (".", "..")):
        return f"'image' is {problem['image']!r}, expected a bare file name inside the problem's image folder"
    return text_error([qid, problem])


def validate_problem(qid: str, problem: Any, where: str = "problems.json") -> None:
    """Raise DataError naming `where` and the qid if the entry is unusable."""
    err = problem_errors(qid, problem)
    if err:
        raise DataError(f"{where}: qid {qid}: {err}")


def problem_to_record(qid: str, problem: Mapping, split: str, caption: str = "",
                      image_paths: Sequence[str | os.PathLike] = ()) -> dict:
    """A DATA_DIR record (docs/FORMATS.md) from a validated problems.json entry."""
    return {
        "qid": str(qid),
        "split": split,
        "question": problem["question"],
        "hint": problem["hint"],
        "caption": caption or "",
        "choices": list(problem["choices"]),
        "answer": problem["answer"],
        "lecture": problem["lecture"],
        "solution": problem["solution"],
        "subject": problem["subject"],
        "grade": problem["grade"],
        "topic": problem["topic"],
        "category": problem["category"],
        "skill": problem["skill"],
        "task": problem["task"],
        "image": problem["image"],
        "image_paths": [str(p) for p in image_paths],
    }


# --------------------------------------------------------------------------- prepare

@dataclass
class _SplitResult:
    count: int = 0  # records written
    without_rationale: int = 0
    with_images: int = 0
    missing_problems: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)  # kept without image_paths (split has no images)
    skipped: list[dict] = field(default_factory=list)
    # (record index, qid, expected path, has no rationale) of declared images not on disk, settled at the end
    pending: list[tuple[int, str, Path, bool]] = field(default_factory=list)


@dataclass
class _Source:
    """The checked source files of one `prepare` run, and the findings shared across its splits."""

    problems_path: Path
    splits_path: Path
    problems: ProblemIndex
    images_dir: Path | None
    captions: dict[str, str]
    errors: list[str] = field(default_factory=list)  # per-item problems, in order; fatal unless skip_bad
    warnings: list[str] = field(default_factory=list)


def _split_records(src: _Source, split: str, qids: list[str], strict: bool, res: _SplitResult) -> Iterator[dict]:
    """One split's records, in split-list order, as they are made; bad items go to src.errors, notes to
    src.warnings, counts to `res`."""
    seen: set[str] = set()
    for qid in track(qids, f"checking {split}"):
        if qid in seen:
            src.errors.append(f"{src.splits_path}: split {split!r} lists qid {qid} twice")
            res.skipped.append({"qid": qid, "error": "duplicate qid in split list"})
            continue
        seen.add(qid)
        if qid not in src.problems:
            if strict:
                src.errors.append(f"{src.problems_path}: qid {qid} (split {split}) has no entry")
                res.skipped.append({"qid": qid, "error": "no entry in problems.json"})
            else:
                res.missing_problems.append(qid)
            continue
        error = src.problems.errors.get(qid)
        if error:
            src.errors.append(f"{src.problems_path}: qid {qid}: {error}")
            res.skipped.append({"qid": qid, "error": error})
            continue
        problem = src.problems.get(qid)
        duplicate = duplicate_choice_warning(str(src.problems_path), qid, problem["choices"])
        if duplicate and duplicate not in src.warnings:  # a problem listed in two splits warns once
            src.warnings.append(duplicate)
        paths, expected = find_image_paths(src.images_dir, qid, problem, (problem.get("split"), split))
        no_rationale = not str(problem["solution"] or "").strip()
        if expected is not None:
            res.pending.append((res.count, qid, expected, no_rationale))
        res.with_images += bool(paths)
        res.without_rationale += no_rationale
        res.count += 1
        yield problem_to_record(qid, problem, split, src.captions.get(qid, ""), paths)


def _not_an_image(path: Path) -> str:
    """Why a declared image's expected path holds no image file: absent, or something else there (a FIFO, which
    no reader may open, a device, a folder)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "not found"
    if stat.S_ISDIR(mode):
        return "is a directory, not an image file"
    return f"is not a regular file ({'a FIFO' if stat.S_ISFIFO(mode) else 'a device or socket'})"


def _settle_images(cfg: PrepareConfig, src: _Source, split: str, res: _SplitResult, staged: Path) -> None:
    """The image policy once a split is written: none of its images on disk (not downloaded) keeps the records
    and warns once; some on disk makes each missing one a bad item, dropped from the staged file."""
    if not res.pending:
        return
    if res.with_images == 0:
        res.missing_images = [qid for _, qid, _, _ in res.pending]
        if src.images_dir is None:
            where, hint = f"{cfg.source} (no images folder)", "download the split's images, or pass --images"
        else:
            where, hint = (f"{src.images_dir} (looked in <qid>/ and <folder>/<qid>/ for every folder)",
                           "they are not on disk under any name there: download them, or pass --images")
        src.warnings.append(f"split {split}: none of its {len(res.pending)} declared images are in {where}; "
                            f"records kept with image_paths [] ({hint})")
        return
    for _, qid, expected, no_rationale in res.pending:
        why = _not_an_image(expected)
        src.errors.append(f"{expected}: declared image of qid {qid} (split {split}) {why}")
        res.skipped.append({"qid": qid, "error": f"image {why}: {expected}"})
        res.count -= 1
        res.without_rationale -= no_rationale
    if cfg.skip_bad:  # (otherwise the first error ends the run and nothing is written)
        drop = {i for i, _, _, _ in res.pending}
        with open_input(staged) as rows, atomic_open(staged, "wb") as kept:
            kept.writelines(row for i, row in enumerate(rows) if i not in drop)


def _open_source(cfg: PrepareConfig, folder: Path, stack: contextlib.ExitStack
                 ) -> tuple[_Source, dict[str, list[str]], Path | None]:
    """Read and check pid_splits.json, stream problems.json into a ProblemIndex (in `folder`), read captions and
    check the images folder: (source, split lists, captions path)."""
    problems_path, splits_path = find_source_files(cfg.source, cfg.problems)
    if not cfg.splits:
        raise DataError("no splits requested")
    pid_splits = read_pid_splits(splits_path) if splits_path is not None else None
    if pid_splits is not None:
        _check_splits(cfg, splits_path, pid_splits)
    problems = stack.enter_context(ProblemIndex(folder))
    wanted = None if pid_splits is None else {q for s in cfg.splits for q in pid_splits[s]}
    problems.read(problems_path, problem_errors, wanted, cfg.splits)
    if pid_splits is None:
        pid_splits = problems.entry_splits
        if not pid_splits:
            raise DataError(f"{problems_path}: no pid_splits.json beside it and no entry to take a split from")
        _check_splits(cfg, problems_path, pid_splits)
    warnings: list[str] = []
    captions_path = cfg.captions if cfg.captions is not None else default_captions_path(cfg.source, problems_path)
    captions: dict[str, str] = {}
    if captions_path is not None:
        captions, note = read_captions(captions_path)
        if note:
            warnings.append(note)
    images_dir = cfg.images if cfg.images is not None else default_images_dir(cfg.source, problems_path)
    if images_dir is not None and not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder not found")
    src = _Source(problems_path=problems_path, splits_path=splits_path or problems_path, problems=problems,
                  images_dir=images_dir, captions=captions, warnings=warnings)
    return src, pid_splits, captions_path


def _check_splits(cfg: PrepareConfig, where: Path, pid_splits: Mapping[str, list[str]]) -> None:
    for split in cfg.splits:
        if split not in pid_splits:
            raise UnknownNameError(f"split (in {where})", split, list(pid_splits))


def prepare(cfg: PrepareConfig) -> dict:
    """Validate a ScienceQA folder and write DATA_DIR/<split>.jsonl + manifest.json; returns a summary dict
    (per-split counts and `warnings`, each one line). problems.json is streamed and each split written as it is
    read, into a staging folder: nothing reaches DATA_DIR unless every check passes; DATA_DIR is held (locked)
    meanwhile."""
    with claim_output_dir(cfg.out, "prepare", inputs={"SRC": cfg.source, "--images": cfg.images,
                                                       "--captions": cfg.captions}):
        with contextlib.ExitStack() as stack:
            return _prepare(cfg, stack)


def _prepare(cfg: PrepareConfig, stack: contextlib.ExitStack) -> dict:
    src, pid_splits, captions_path = _open_source(cfg, cfg.out, stack)
    check_split_overlap({s: pid_splits[s] for s in cfg.splits}, str(src.splits_path), cfg.allow_overlap)
    results = {split: _SplitResult() for split in cfg.splits}
    with staged_data_dir(cfg.out) as stage:
        for split, res in results.items():
            write_split(stage, split, _split_records(src, split, pid_splits[split], cfg.strict, res))
            _settle_images(cfg, src, split, res, stage / f"{split}.jsonl")
        errors, warnings = src.errors, src.warnings
        if errors and cfg.skip_bad and not any(res.count for res in results.values()):
            raise DataError(f"{cfg.source}: no usable problems (the first bad item: {errors[0]})")
        if errors and not cfg.skip_bad:
            more = f" (and {len(errors) - 1} more bad item{'s' if len(errors) > 2 else ''}; --skip-bad skips " \
                   f"them)" if len(errors) > 1 else " (--skip-bad skips bad items)"
            raise DataError(errors[0] + more)
        warnings.extend(f"skipped: {e}" for e in errors)
        for split, res in results.items():
            if res.missing_problems:
                warnings.append(f"split {split}: {len(res.missing_problems)} of {len(pid_splits[split])} qids have "
                                f"no entry in {src.problems_path.name} (listed in manifest.json as "
                                f"missing_problems)")
        manifest = _manifest(cfg, src, captions_path, results)
        if cfg.carve is not None:
            manifest = carve_staged(stage, manifest, cfg.carve)
        write_json(stage / "manifest.json", manifest)
    return {
        "out": str(cfg.out),
        "source": manifest["source"],
        "images_dir": manifest["images_dir"],
        "captions": manifest["captions"],
        "splits": {
            split: {"count": res.count, "split_list": len(pid_splits[split]),
                    "missing_problems": len(res.missing_problems), "with_images": res.with_images,
                    "missing_images": len(res.missing_images), "skipped": len(res.skipped),
                    "without_rationale": res.without_rationale}
            for split, res in results.items()
        },
        "skipped": sum(len(r.skipped) for r in results.values()),
        "warnings": warnings,
    }


def _manifest(cfg: PrepareConfig, src: "_Source", captions_path, results: dict) -> dict:
    return {
        "source": str(cfg.source.resolve()),
        "problems": str(src.problems_path.resolve()),
        "pid_splits": str(src.splits_path.resolve()),
        "images_dir": str(src.images_dir.resolve()) if src.images_dir is not None else None,
        "captions": str(Path(captions_path).resolve()) if captions_path is not None else None,
        "splits": {
            split: {"count": res.count, "with_images": res.with_images,
                    "missing_problems": res.missing_problems, "missing_images": res.missing_images,
                    "skipped": res.skipped}
            for split, res in results.items()
        },
        "created_by": f"mmcot {__version__} prepare",
    }


def records_from_problems(problems_path: str | os.PathLike, qids: Iterable[str] | None = None,
                          captions: Mapping[str, str] | None = None, split: str = "") -> list[dict]:
    """Records straight from a problems.json (no images resolved), e.g. to score against the raw benchmark file.
    Every entry used must be valid; `qids` missing from the file raise DataError."""
    problems = read_problems(problems_path)
    captions = captions or {}
    out = []
    for qid in (qids if qids is not None else problems):
        qid = str(qid)
        if qid not in problems:
            raise DataError(f"{problems_path}: no entry for qid {qid}")
        validate_problem(qid, problems[qid], str(problems_path))
        problem = problems[qid]
        out.append(problem_to_record(qid, problem, split or problem.get("split") or "", captions.get(qid, "")))
    return out
