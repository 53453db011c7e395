"""`mmcot prepare` for every source format: ScienceQA (mmcot_cli.data), A-OKVQA and generic JSONL (this package).

All three write the same DATA_DIR layout and record schema (docs/FORMATS.md), so the rest of the pipeline does not
care where the data came from.
"""

from __future__ import annotations

from pathlib import Path

from mmcot_cli.errors import DataError, UnknownNameError, UsageError

FORMATS = ("scienceqa", "aokvqa", "jsonl")


def detect_format(source: str | Path) -> str:
    """scienceqa (problems.json here or in scienceqa/), aokvqa (aokvqa_v1p0_*.json), or jsonl (a .jsonl file or
    a folder of them); DataError saying what was looked for otherwise."""
    source = Path(source)
    if source.is_file():
        if source.suffix == ".jsonl":
            return "jsonl"
        raise DataError(f"{source}: cannot tell the format of this file (a generic JSONL file ends in .jsonl); "
                        f"pass --format {'|'.join(FORMATS)}")
    if not source.is_dir():
        raise DataError(f"{source}: not a directory or file (expected a ScienceQA or A-OKVQA folder, or a JSONL "
                        "file)")
    if (source / "problems.json").is_file() or (source / "scienceqa" / "problems.json").is_file():
        return "scienceqa"
    if any(source.glob("aokvqa_v1p0_*.json")):
        return "aokvqa"
    if any(source.glob("*.jsonl")):
        return "jsonl"
    raise DataError(f"{source}: found neither problems.json (ScienceQA), aokvqa_v1p0_<split>.json (A-OKVQA) nor "
                    f"*.jsonl (generic); pass --format {'|'.join(FORMATS)} to see what that format expects")


def prepare_source(source: str | Path, out: str | Path, fmt: str | None = None, splits: tuple[str, ...] | None = None,
                   images: str | Path | None = None, captions: str | Path | None = None, skip_bad: bool = False,
                   strict: bool = False, allow_overlap: bool = False) -> dict:
    """Prepare SRC in format `fmt` (detected when None) into DATA_DIR `out`; returns the summary dict.
    `splits` None: train,val,test for ScienceQA, every split present for the others."""
    source, out = Path(source), Path(out)
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise UnknownNameError("data format", fmt, list(FORMATS))
    images = Path(images) if images is not None else None
    if fmt == "scienceqa":
        from mmcot_cli.data.readers.scienceqa import PrepareConfig, prepare
        from mmcot_cli.data.records import DEFAULT_SPLITS

        summary = prepare(PrepareConfig(source=source, out=out, splits=splits or DEFAULT_SPLITS, captions=captions,
                                        images=images, skip_bad=skip_bad, strict=strict,
                                        allow_overlap=allow_overlap))
        return {"format": "scienceqa", **summary}
    if captions is not None or strict:
        raise UsageError(f"--captions and --strict apply to ScienceQA only, not to format {fmt}")
    from mmcot_cli.outputs import check_output_dir

    check_output_dir(out, "prepare", inputs={"SRC": source, "--images": images})  # before reading anything
    if fmt == "aokvqa":
        from mmcot_cli.data.readers.aokvqa import prepare_aokvqa

        return prepare_aokvqa(source, out, splits, images, skip_bad, allow_overlap)
    from mmcot_cli.data.readers.jsonl import prepare_jsonl

    return prepare_jsonl(source, out, splits, images, skip_bad, allow_overlap)
