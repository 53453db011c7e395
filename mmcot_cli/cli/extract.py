"""`mmcot extract`: vision features for DATA_DIR splits into a memory-mapped feature store (and `--merge`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mmcot_cli.cli.app import command, print_json, warn
from mmcot_cli.data.records import parse_splits
from mmcot_cli.errors import UsageError
from mmcot_cli.progress import err_console

# The library (numpy, and torch once a model is built) is imported when the command runs, not for `--help`.
CHUNK_SIZE_HELP = "Images per resumable chunk file (default: 256)."  # tests check it shows store.DEFAULT_CHUNK_SIZE


@command("extract")
def extract_command(
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Vision backbone (see `mmcot backbones`)."),
    data: Optional[Path] = typer.Option(None, "--data", help="DATA_DIR written by `mmcot prepare`."),
    split: str = typer.Option("test", "--split", help="Comma-separated splits, e.g. train,val,test."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="FEATURES_DIR (created, or added to / resumed)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Read images from IMAGES/<qid>/<file> instead of "
                                          "the paths recorded in DATA_DIR."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per forward pass."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader workers decoding images "
                                          "(default: min(4, CPUs))."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 …"),
    dtype: str = typer.Option("float16", "--dtype", help="Stored dtype: float16 or float32."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: extract only chunks with index % N == K "
                                        "(K from 0, e.g. ${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT})."),
    random_init: bool = typer.Option(False, "--random-init", help="Random weights; never touches the network."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Local path or hub id / pretrained tag instead "
                                          "of the backbone's default weights."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Backbone variant (e.g. clip ViT-L-14)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Record unreadable images in the manifest (they read "
                                  "as zeros) and go on, instead of failing."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help=CHUNK_SIZE_HELP, show_default=False),
    alpha: Optional[str] = typer.Option(None, "--alpha", help="Transparent pixels: 'original' drops alpha as the "
                                        "original's convert(\"RGB\") (colour under them kept, often black: features "
                                        "match the released files) or 'white' composites onto white (default: the "
                                        "store's policy when adding to one, else the backbone's: original for "
                                        "detr/vit/clip/resnet, white otherwise)."),
    merge_dir: Optional[Path] = typer.Option(None, "--merge", help="Compact FEATURES_DIR (e.g. after --shard runs) "
                                             "into few large shards; no other option applies."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Extract vision features, one row per problem with an image (the question image, else choice_0.png).

    Work is cut into chunks written atomically: rerunning the same command after an interruption resumes;
    adding another split to the same --out extends the store. Problems without an image get no row (readers
    return zeros of the backbone's shape).
    """
    from mmcot_cli.features.extract import ExtractConfig, extract, merge, parse_shard
    from mmcot_cli.features.store import DEFAULT_CHUNK_SIZE

    if merge_dir is not None:
        if backbone or data or out or alpha:
            raise UsageError("--merge FEATURES_DIR takes no --backbone/--data/--out/--alpha")
        summary = merge(merge_dir)
        if json_out:
            print_json(summary)
        else:
            err_console.print(f"merged {summary['path']}: {summary['count']} rows, "
                              f"{len(summary['files_written'])} shard file(s) written")
        return
    if not backbone or not out:
        raise UsageError("--backbone and --out are required (or --merge FEATURES_DIR)")
    cfg = ExtractConfig(
        backbone=backbone, out=str(out), data_dir=str(data) if data else None,
        splits=parse_splits(split),
        images_dir=str(images) if images else None, batch_size=batch_size, workers=workers, device=device,
        dtype=dtype, shard=parse_shard(shard), random_init=random_init, weights=weights, variant=variant,
        skip_bad=skip_bad, chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size, alpha=alpha,
    )
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
