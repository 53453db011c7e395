"""`mmcot extract`: vision features for DATA_DIR splits into a memory-mapped feature store (and `--merge`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mmcot_cli.cli.app import print_json, warn
from mmcot_cli.cli.options import settings_command
from mmcot_cli.errors import UsageError
from mmcot_cli.features.settings import ExtractConfig
from mmcot_cli.progress import err_console
from mmcot_cli.registry.weights import require_backbone_weights


@settings_command("extract")
def extract_command(
    cfg: ExtractConfig,
    merge_dir: Optional[Path] = typer.Option(None, "--merge", help="Compact FEATURES_DIR (e.g. after --shard runs) "
                                             "into few large shards; no other option applies.", metavar="DIR"),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Extract vision features, one row per problem with an image (the question image, else choice_0.png).

    Work is cut into chunks written atomically: rerunning the same command after an interruption resumes;
    adding another split to the same --out extends the store. Problems without an image get no row (readers
    return zeros of the backbone's shape).
    """
    from mmcot_cli.features.extract import extract, merge  # numpy, and torch once a model is built

    if merge_dir is not None:
        if cfg.backbone or cfg.data_dir or cfg.out or cfg.alpha:
            raise UsageError("--merge FEATURES_DIR takes no --backbone/--data/--out/--alpha")
        summary = merge(merge_dir)
        if json_out:
            print_json(summary)
        else:
            err_console.print(f"merged {summary['path']}: {summary['count']} rows, "
                              f"{len(summary['files_written'])} shard file(s) written")
        return
    cfg.check_inputs()
    if not (Path(cfg.out) / "manifest.json").exists():  # a new store: weights that cannot be had fail before torch
        require_backbone_weights(cfg.backbone, cfg.weights, cfg.variant, cfg.random_init)
    summary = extract(cfg)
    for name in summary["reextracted_files"]:
        warn(f"{name}: truncated or corrupted; removed and extracted again")
    for b in summary["bad"]:
        warn(f"skipped qid {b['qid']}: cannot read image {b['path']}: {b['error']}")
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"Features {summary['path']}")
    for col in ("backbone", "split", "rows", "shape", "dtype", "alpha", "extracted now", "chunks skipped", "complete"):
        table.add_column(col)
    table.add_row(summary["backbone"], summary["split"], str(summary["count"]),
                  "×".join(map(str, summary["shape"])), summary["dtype"], summary["alpha"], str(summary["extracted"]),
                  str(summary["chunks_skipped"]), "yes" if summary["complete"] else "no (more --shard runs)")
    err_console.print(table)
    if summary["limit"] is not None:
        of = ", ".join(f"{split} {min(n, summary['limit']):,} of {n:,}" for split, n in summary["images_in_splits"].items())
        err_console.print(f"--limit {summary['limit']}: the first images of each split only ({of}); the store "
                          "records it, and train / generate say so when a record needs a row beyond them",
                          highlight=False)
