"""`mmcot prepare` (ScienceQA folder → DATA_DIR) and `mmcot prompts` (DATA_DIR → the exact model inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mmcot_cli.cli.app import command, print_json, stdout_is_utf8, warn, write_stdout
from mmcot_cli.data.carve import Carve
from mmcot_cli.data.prompts import format_jsonl_row, prompt_rows, uses_rationale, writes_rationale
from mmcot_cli.data.readers import FORMATS, prepare_source
from mmcot_cli.data.records import load_records, parse_splits
from mmcot_cli.data.teacher import expand_rationales
from mmcot_cli.errors import UsageError
from mmcot_cli.progress import err_console
from mmcot_cli.runs.rationales import load_rationales


@command("prepare")
def prepare_command(
    source: Path = typer.Argument(..., help="ScienceQA from the Hub (derek-thomas/ScienceQA, lmms-lab/ScienceQA, "
                                  "or a folder of their parquet files), a ScienceQA folder (problems.json + "
                                  "pid_splits.json, here or in scienceqa/) or problems file, an A-OKVQA folder "
                                  "(aokvqa_v1p0_<split>.json) or a generic JSONL file/folder."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"{', '.join(FORMATS)} (default: detected)."),
    out: Path = typer.Option(..., "--out", "-o", help="DATA_DIR to write <split>.jsonl and manifest.json into."),
    splits: Optional[str] = typer.Option(None, "--splits", help="Comma-separated split names (ScienceQA default "
                                         "train,val,test, minitrain … work too; other formats: every split "
                                         "present)."),
    captions: Optional[Path] = typer.Option(None, "--captions", help='Caption file {"captions": {qid: text}}. '
                                            "Default: SRC/captions.json if present."),
    images: Optional[Path] = typer.Option(None, "--images", help="ScienceQA: image folder (<qid>/ or <split>/<qid>/ "
                                          "inside; default SRC/images). A-OKVQA: COCO_DIR ({split}2017/<id>.jpg). "
                                          "JSONL: base folder for relative image paths (default: the file's)."),
    problems: Optional[Path] = typer.Option(None, "--problems", help="ScienceQA's problems file, any name "
                                            "(pid_splits.json beside it, else each entry's 'split'). With a Hub "
                                            "source: gives every row its original qid (matched by content)."),
    carve: Optional[str] = typer.Option(None, "--carve", help="Carve one split into train/val/test, seeded and "
                                        "stratified by subject/grade/image: SPLIT or SPLIT:TRAIN/VAL/TEST shares "
                                        "(default 80/10/10). The manifest marks them as not the official splits."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed of --carve."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip bad items with a warning each instead of failing."),
    strict: bool = typer.Option(False, "--strict", help="Treat split qids that have no problems.json entry as "
                                "errors (default: count them and list them in manifest.json)."),
    allow_overlap: bool = typer.Option(False, "--allow-overlap", help="Allow a qid in two of the prepared splits "
                                       "(by default leakage is an error; trainval ⊇ train and mini* ⊆ their "
                                       "split are always fine)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Validate a ScienceQA, A-OKVQA or generic JSONL source and write one JSONL per split plus manifest.json.

    Split qids without a problems.json entry are reported (not an error unless --strict). Images: when none of a
    split's images are on disk (that split was not downloaded) you get one warning and the records keep
    image_paths []; when the split has images but a declared one is missing, that item is an error (or skipped
    with --skip-bad). Nothing is written unless every check passes.
    """
    summary = prepare_source(source, out, fmt, parse_splits(splits) if splits is not None else None, images=images,
                             captions=captions, skip_bad=skip_bad, strict=strict, allow_overlap=allow_overlap,
                             problems=problems, carve=Carve.parse(carve, seed) if carve is not None else None)
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


@command("prompts")
def prompts_command(
    data_dir: Path = typer.Argument(..., help="A DATA_DIR written by `mmcot prepare`."),
    split: str = typer.Option("test", "--split", help="Which split file to read."),
    prompt_format: str = typer.Option("QCM-LE", "--format", "--prompt-format", "-f",
                                      help="INPUT-OUTPUT, e.g. QCM-LE, QCM-A, QCMG-A (as `train --prompt-format`)."),
    use_caption: bool = typer.Option(False, "--use-caption", help="Append the image caption to the context."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=0, help="Only the first N records."),
    rationales: Optional[Path] = typer.Option(None, "--rationales", help="Generated rationales for QCMG/CQMG "
                                              "(predictions JSONL, or a RUN_DIR with preds-<split>.jsonl), by qid."),
    rationale_source: Optional[str] = typer.Option(
        None, "--rationale-source", help="One line per training example, as `train --stage rationale "
        "--rationale-source` builds them: gold (A-OKVQA's three rationales give three) or a rationale-set FILE."),
) -> None:
    """Print one {qid, source, target} JSON line per record (per training example with --rationale-source):
    the text the model reads and writes. `train`'s stage presets are QCM-E (rationale) and QCMG-A (answer)."""
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
