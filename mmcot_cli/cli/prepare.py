"""`mmcot prepare` (ScienceQA folder → DATA_DIR) and `mmcot prompts` (DATA_DIR → the exact model inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.table import Table

from mmcot_cli.cli.app import print_json, stdout_is_utf8, warn, write_stdout
from mmcot_cli.cli.options import settings_command
from mmcot_cli.data.carve import Carve
from mmcot_cli.data.prompts import (
    STAGE_PRESETS,
    format_jsonl_row,
    prompt_rows,
    stage_format,
    uses_rationale,
    writes_rationale,
)
from mmcot_cli.data.readers import FORMATS, prepare_source
from mmcot_cli.data.records import load_records, parse_splits
from mmcot_cli.data.teacher import expand_rationales
from mmcot_cli.errors import UsageError
from mmcot_cli.progress import err_console
from mmcot_cli.runs.rationales import load_rationales
from mmcot_cli.settings import setting
from mmcot_cli.validate import check_seed, check_split_name, non_negative_int

_STAGES = " or ".join(f"{stage} ({preset.prompt_format})" for stage, preset in STAGE_PRESETS.items())


def _no_negative(flag, value):
    return non_negative_int(flag, value)


@dataclass
class PrepareSettings:
    """`mmcot prepare`'s options (mmcot_cli.settings): the arguments of data.readers.prepare_source."""

    source: Path = setting(help="ScienceQA from the Hub (derek-thomas/ScienceQA, lmms-lab/ScienceQA, or a folder of "
                           "their parquet files), a ScienceQA folder (problems.json + pid_splits.json, here or in "
                           "scienceqa/) or problems file, an A-OKVQA folder (aokvqa_v1p0_<split>.json) or a generic "
                           "JSONL file/folder.", argument=True, metavar="SOURCE")
    out: Path = setting(help="DATA_DIR to write <split>.jsonl and manifest.json into.", short="-o",
                        metavar="DATA_DIR")
    fmt: str | None = setting(None, f"{', '.join(FORMATS)} (default: detected).", flag="--format",
                              metavar="FORMAT")  # the format registry names the known ones
    splits: str | None = setting(None, "Comma-separated split names (ScienceQA default train,val,test, minitrain … "
                                 "work too; other formats: every split present).", metavar="SPLITS")
    captions: Path | None = setting(None, 'Caption file {"captions": {qid: text}}. Default: SRC/captions.json if '
                                    "present.", metavar="FILE")
    images: Path | None = setting(None, "ScienceQA: image folder (<qid>/ or <split>/<qid>/ inside; default "
                                  "SRC/images). A-OKVQA: COCO_DIR (train2017/, val2017/, test2017/). JSONL: base folder for "
                                  "relative image paths (default: the file's).", metavar="DIR")
    problems: Path | None = setting(None, "ScienceQA's problems file, any name (pid_splits.json beside it, else each "
                                    "entry's 'split'). With a Hub source: gives every row its original qid "
                                    "(matched by content).", metavar="FILE")
    carve: str | None = setting(None, "Carve one split into train/val/test, seeded and stratified by "
                                "subject/grade/image: SPLIT or SPLIT:TRAIN/VAL/TEST shares (default 80/10/10). The "
                                "manifest marks them as not the official splits.", metavar="SPEC")
    seed: int = setting(0, "Shuffle seed of --carve.", check=check_seed)
    skip_bad: bool = setting(False, "Skip bad items with a warning each instead of failing.")
    strict: bool = setting(False, "Treat split qids that have no problems.json entry as errors (default: count "
                           "them and list them in manifest.json).")
    allow_overlap: bool = setting(False, "Allow a qid in two of the prepared splits (by default leakage is an "
                                  "error; trainval ⊇ train and mini* ⊆ their split are always fine).")


@settings_command("prepare")
def prepare_command(
    cfg: PrepareSettings,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Validate a ScienceQA, A-OKVQA or generic JSONL source and write one JSONL per split plus manifest.json.

    Split qids without a problems.json entry are reported (not an error unless --strict). Images: when none of a
    split's images are on disk (that split was not downloaded) you get one warning and the records keep
    image_paths []; when the split has images but a declared one is missing, that item is an error (or skipped
    with --skip-bad). Nothing is written unless every check passes.
    """
    carve = Carve.parse(cfg.carve, cfg.seed) if cfg.carve is not None else None
    summary = prepare_source(cfg.source, cfg.out, cfg.fmt, parse_splits(cfg.splits) if cfg.splits is not None
                             else None, images=cfg.images, captions=cfg.captions, skip_bad=cfg.skip_bad,
                             strict=cfg.strict, allow_overlap=cfg.allow_overlap, problems=cfg.problems, carve=carve)
    for message in summary["warnings"]:
        warn(message)
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"Prepared {summary['out']} ({summary['format']})")
    # missing = split-list qids with no problems.json entry; no image file = declared images not on disk.
    # no rationale = records kept without a gold rationale (empty solution / "rationale": "").
    for col in ("split", "records", "listed", "missing", "with images", "no image file", "no rationale", "skipped"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name, s in summary["splits"].items():
        table.add_row(name, str(s["count"]), str(s["split_list"]), str(s["missing_problems"]),
                      str(s["with_images"]), str(s["missing_images"]), str(s["without_rationale"]), str(s["skipped"]))
    err_console.print(table)


@dataclass
class PromptsSettings:
    """`mmcot prompts`' options (mmcot_cli.settings)."""

    data_dir: Path = setting(help="A DATA_DIR written by `mmcot prepare`.", argument=True, metavar="DATA_DIR")
    split: str = setting("test", "Which split file to read.", metavar="SPLIT", check=check_split_name)
    stage: str = setting("rationale", f"Show what `train --stage STAGE` trains on: {_STAGES}.",
                         choices=tuple(STAGE_PRESETS), metavar="STAGE")
    prompt_format: str | None = setting(None, "INPUT-OUTPUT, e.g. QCM-LE, QCM-A (as `train --prompt-format`; "
                                        "default: the --stage preset's, as train).", flag="--format",
                                        aliases=("--prompt-format",), short="-f", metavar="FORMAT")
    use_caption: bool = setting(False, "Append the image caption to the context.")
    limit: int | None = setting(None, "Only the first N records.", short="-n", check=_no_negative)
    rationales: Path | None = setting(None, "Generated rationales for QCMG/CQMG (predictions JSONL, or a RUN_DIR "
                                      "with preds-<split>.jsonl), by qid.", metavar="PATH")
    rationale_source: str | None = setting(None, "One line per training example, as `train --stage rationale "
                                           "--rationale-source` builds them: gold (A-OKVQA's three rationales give "
                                           "three) or a rationale-set FILE.", metavar="SOURCE")


@settings_command("prompts")
def prompts_command(cfg: PromptsSettings) -> None:
    """Print one {qid, source, target} JSON line per record (per training example with --rationale-source):
    the text the model reads and writes. By default what `train --stage rationale` trains on (QCM-E); --stage
    answer shows QCMG-A, with the gold rationale unless --rationales gives the generated ones train reads."""
    prompt_format = stage_format(cfg.stage, cfg.prompt_format)
    data_dir, split, use_caption = cfg.data_dir, cfg.split, cfg.use_caption
    limit, rationales, rationale_source = cfg.limit, cfg.rationales, cfg.rationale_source
    takes_rationale = uses_rationale(prompt_format)  # an unknown format exits 2 before any data is read
    if rationales is not None and not takes_rationale:
        raise UsageError(f"--rationales only applies to QCMG-*/CQMG-* formats, not {prompt_format}")
    if rationale_source is not None and not writes_rationale(prompt_format):
        raise UsageError(f"--rationale-source sets rationale targets; {prompt_format}'s target has none (L or E)")
    records = load_records(data_dir, split)
    if limit is not None:
        records = records[:limit]
    if rationale_source is not None:  # the rationale stage's training examples (mmcot_cli.training.inputs)
        records = expand_rationales(records, rationale_source)[0]
    given = load_rationales(rationales, split).by_qid if rationales is not None else None
    # Build everything first so an error mid-way does not leave a truncated stream behind.
    lines = [format_jsonl_row(row, not stdout_is_utf8()) for row in prompt_rows(records, prompt_format, use_caption, given,
                                                           str(rationales) if rationales else "rationales")]
    write_stdout("".join(line + "\n" for line in lines))
