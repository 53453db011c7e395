"""The source formats `mmcot prepare` reads, in one registry: each format's reader, how it is detected, and how
`score`, `report` and `compare` treat data prepared from it.

Every reader writes the same DATA_DIR layout and record schema (mmcot_cli.data.records, docs/FORMATS.md) and
records its format in manifest.json, so the rest of the pipeline does not care where the data came from.

Adding a format: write its reader module here (SRC → records, through `write_data_dir`; readers/common.py has
the shared pieces), then add one `DataFormat` entry to FORMATS below. Nothing else changes: prepare's --format,
detection, scoring, the report and compare all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmcot_cli.data.carve import Carve
from mmcot_cli.data.readers.aokvqa import prepare_aokvqa
from mmcot_cli.data.readers.hub import has_parquet, looks_like_hub_id, prepare_hub
from mmcot_cli.data.readers.jsonl import prepare_jsonl
from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
from mmcot_cli.data.records import DEFAULT_SPLITS, load_manifest, load_records, without_rationale
from mmcot_cli.errors import DataError, UnknownNameError, UsageError
from mmcot_cli.io import open_input
from mmcot_cli.outputs import claim_output_dir

# How a prepared format is scored (mmcot_cli.evaluation.score_data.score_data) and shown by `report` and `compare`
# (mmcot_cli.evaluation.kinds: headline columns, breakdown, rationale categories):
#   "scienceqa"  accuracy by evaluate_acc.py category (NAT/SOC/LAN, TXT/IMG/NO, grades) and topic
#   "groups"     overall accuracy and accuracy per value of each record's `groups` field
#   "aokvqa"     "groups" plus A-OKVQA's multiple-choice and direct-answer accuracy (both difficult filterings)
# A new format reuses one of these by name; only a new way of scoring needs code outside its reader.
SCORING_KINDS = ("scienceqa", "groups", "aokvqa")


@dataclass(frozen=True)
class PrepareRequest:
    """What `mmcot prepare` was asked: the same for every format (each reader uses what applies to it)."""

    source: Path
    out: Path
    splits: tuple[str, ...] | None = None  # None: the format's default (ScienceQA: train,val,test; others: all)
    images: Path | None = None
    captions: Path | None = None
    skip_bad: bool = False
    strict: bool = False
    allow_overlap: bool = False
    problems: Path | None = None  # ScienceQA: problems.json of any name; Hub: the file that gives rows their qids
    carve: Carve | None = None  # one split written as seeded, stratified train/val/test (mmcot_cli.data.carve)


@dataclass(frozen=True)
class DataFormat:
    """One source format: its reader and how its prepared data is scored and reported."""

    name: str  # --format value; manifest.json's "format"
    description: str
    detect: Callable[[Path], bool]  # does SRC look like this format?
    prepare: Callable[[PrepareRequest], dict]  # SRC → DATA_DIR; returns the summary
    scoring: str  # one of SCORING_KINDS
    options: frozenset[str] = frozenset()  # format-only options of PrepareRequest (captions, strict)
    # Published results shown beside runs by `report`: a table name of mmcot_cli.reporting.published.PUBLISHED,
    # used only on that benchmark's own split (same split, size and qids); None: the format has none to cite.
    published_rows: str | None = None


def _prepare_scienceqa(req: PrepareRequest) -> dict:
    return prepare(PrepareConfig(source=req.source, out=req.out, splits=req.splits or DEFAULT_SPLITS,
                                 captions=req.captions, images=req.images, skip_bad=req.skip_bad, strict=req.strict,
                                 allow_overlap=req.allow_overlap, problems=req.problems, carve=req.carve))


def _prepare_aokvqa(req: PrepareRequest) -> dict:
    return prepare_aokvqa(req.source, req.out, req.splits, req.images, req.skip_bad, req.allow_overlap, req.carve)


def _prepare_hub(req: PrepareRequest) -> dict:
    return prepare_hub(str(req.source), req.out, req.splits, req.problems, req.skip_bad, req.allow_overlap,
                       req.carve)


def _prepare_jsonl(req: PrepareRequest) -> dict:
    return prepare_jsonl(req.source, req.out, req.splits, req.images, req.skip_bad, req.allow_overlap, req.carve)


def _is_scienceqa(source: Path) -> bool:
    if source.is_file():  # a problems file of any name
        return source.suffix == ".json" and not source.name.startswith("aokvqa_")
    # problems.json of any kind but a folder: one that is a FIFO or device is then named as such by the reader
    return source.is_dir() and any((folder / "problems.json").exists() and not (folder / "problems.json").is_dir()
                                   for folder in (source, source / "scienceqa"))


def _is_hub(source: Path) -> bool:
    return looks_like_hub_id(source) or has_parquet(source)


def _is_aokvqa(source: Path) -> bool:
    return source.is_dir() and any(source.glob("aokvqa_v1p0_*.json"))


def _is_jsonl(source: Path) -> bool:
    return source.suffix == ".jsonl" if source.is_file() else source.is_dir() and any(source.glob("*.jsonl"))


# The registry, in detection order (a folder that looks like several formats is the first).
FORMATS: dict[str, DataFormat] = {f.name: f for f in (
    DataFormat("scienceqa", "a folder with problems.json (or --problems FILE) + pid_splits.json",
               _is_scienceqa, _prepare_scienceqa, scoring="scienceqa", options=frozenset({"captions", "strict", "problems"}),
               published_rows="scienceqa"),
    DataFormat("hub", "derek-thomas/ScienceQA, lmms-lab/ScienceQA or their parquet files", _is_hub, _prepare_hub, scoring="scienceqa",
               options=frozenset({"problems"}), published_rows="scienceqa"),
    DataFormat("aokvqa", "a folder with aokvqa_v1p0_<split>.json", _is_aokvqa,
               _prepare_aokvqa, scoring="aokvqa"),
    DataFormat("jsonl", "*.jsonl, a line per problem (id, split, question, choices, answer)", _is_jsonl,
               _prepare_jsonl, scoring="groups"),
)}


def get_format(name: str) -> DataFormat:
    if name not in FORMATS:
        raise UnknownNameError("data format", name, list(FORMATS))
    return FORMATS[name]


def detect_format(source: str | Path) -> str:
    """The first registered format whose `detect` accepts SRC; DataError saying what was looked for otherwise."""
    if looks_like_hub_id(source):
        return "hub"
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: not a directory or file (expected a data folder or file in one of the formats: "
                        f"{', '.join(FORMATS)})")
    for fmt in FORMATS.values():
        if fmt.detect(source):
            return fmt.name
    looked_for = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    raise DataError(f"{source}: cannot tell its format; {_problems_hint(source)}pass --format "
                    f"{'|'.join(FORMATS)} (looked for {looked_for})")


def _problems_hint(source: Path) -> str:
    """"is NAME its problems file? …" for a folder holding a JSON file that may be a renamed problems.json."""
    known = ("pid_splits.json", "captions.json", "manifest.json")
    names = sorted(p.name for p in source.glob("*.json") if p.name not in known and not p.name.startswith("aokvqa_")
                   and p.is_file()) if source.is_dir() else []
    return f"is {names[0]} its problems file? pass --problems {source / names[0]}, or " if names else ""


def format_of(data_dir: str | Path) -> DataFormat:
    """The format a DATA_DIR was prepared from (manifest.json's "format"; ScienceQA's own manifest names none)."""
    manifest = Path(data_dir) / "manifest.json"
    name = load_manifest(data_dir).get("format") if manifest.is_file() else None
    return FORMATS.get(name or "scienceqa", FORMATS["scienceqa"])


def prepare_source(source: str | Path, out: str | Path, fmt: str | None = None, splits: tuple[str, ...] | None = None,
                   images: str | Path | None = None, captions: str | Path | None = None, skip_bad: bool = False,
                   strict: bool = False, allow_overlap: bool = False, problems: str | Path | None = None,
                   carve: Carve | None = None) -> dict:
    """Prepare SRC in format `fmt` (detected when None) into DATA_DIR `out`; returns the summary dict.
    `splits` None: train,val,test for ScienceQA, every split present for the others."""
    for given, what in ((source, "data source"), (problems, "problems file"), (captions, "captions file")):
        if given is not None and Path(given).exists() and not Path(given).is_dir():
            open_input(given, what).close()  # a FIFO or device: one line naming it, before any reader waits on it
    if fmt is None and problems is not None and not _is_hub(Path(source)):
        fmt = "scienceqa"  # SRC with a problems file of another name (--problems)
    fmt = get_format(fmt or detect_format(source))
    given = {"captions": captions is not None, "strict": strict, "problems": problems is not None}
    unsupported = [f"--{name}" for name, used in given.items() if used and name not in fmt.options]
    if unsupported:
        raise UsageError(f"{' and '.join(unsupported)} apply to other formats, not to format {fmt.name}")
    if carve is not None and splits is None:
        splits = (carve.split,)  # the carved split alone: its parts are named train/val/test
    request = PrepareRequest(Path(source), Path(out), splits, Path(images) if images is not None else None,
                             Path(captions) if captions is not None else None, skip_bad, strict, allow_overlap,
                             Path(problems) if problems is not None else None, carve)
    if fmt.name == "scienceqa":  # the ScienceQA reader checks and holds its output itself, its own inputs named
        return _carved_summary({"format": fmt.name, **fmt.prepare(request)}, request)
    src = request.source if request.source.exists() else None  # a Hub id is no path
    with claim_output_dir(request.out, "prepare", inputs={"SRC": src, "--images": request.images}):
        return _carved_summary({"format": fmt.name, **fmt.prepare(request)}, request)


def _carved_summary(summary: dict, req: PrepareRequest) -> dict:
    """The summary with the carved split's row replaced by its parts (their counts; the source split's
    bookkeeping, listed/missing/skipped, stays in `carved_from` and the warnings)."""
    if req.carve is None:
        return summary
    info = load_manifest(req.out)["carved_from"]
    source_row = summary["splits"].pop(req.carve.split)
    for part in info["counts"]:
        rows = load_records(req.out, part)
        summary["splits"][part] = {**{k: 0 for k in source_row}, "count": len(rows),
                                   "split_list": len(rows), "with_images": sum(1 for r in rows if r["image_paths"]),
                                   "without_rationale": without_rationale(rows)}
    summary["carved_from"] = info
    strata = ", ".join(info["strata"]) or "nothing (no subject, grade or image differs)"
    summary["warnings"].append(f"split {req.carve.split} carved into {', '.join(info['counts'])} (seed "
                               f"{info['seed']}, stratified by {strata}): these are not the source's official "
                               f"splits, and the manifest says so")
    return summary
