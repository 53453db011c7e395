"""`mmcot import-run` and `mmcot import-features`: the original Multimodal-CoT release's checkpoints and
vision-feature files (local, or hub ids through the Hugging Face cache) become ordinary mmcot runs and feature
stores."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mmcot_cli.cli.app import command, print_json
from mmcot_cli.data.records import parse_splits
from mmcot_cli.errors import UsageError
from mmcot_cli.model.original_checkpoint import ImportRunConfig, import_run
from mmcot_cli.progress import err_console

REVISION_HELP = ("Hub ids: the branch, tag or commit to read [default: main]; the commit it resolves to is "
                 "recorded.")


@command("import-run")
def import_run_command(
    checkpoint: str = typer.Argument(..., help="The original's checkpoint directory (config.json, "
                                     "pytorch_model.bin or *.safetensors, tokenizer files), or a hub id with the "
                                     "folder inside the repo, e.g. cooelf/mm-cot/models/mm-cot-base-rationale "
                                     "(downloaded into the Hugging Face cache; HF_HUB_OFFLINE=1 reads the cache "
                                     "only)."),
    stage: str = typer.Option(..., "--stage", help="rationale (stage 1) or answer (stage 2)."),
    out: Path = typer.Option(..., "--out", help="RUN_DIR to write (must not exist or be empty)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Vision backbone whose features the "
                                           "checkpoint fuses (detr, vit, clip, resnet …); omit for text-only."),
    image_tokens: Optional[int] = typer.Option(None, "--image-tokens", help="Image tokens P per example "
                                               "(default: the backbone's declared feature shape)."),
    prompt_format: Optional[str] = typer.Option(None, "--prompt-format", help="Default: QCM-E (rationale), "
                                                "QCMG-A (answer), as the original scripts."),
    use_caption: bool = typer.Option(False, "--use-caption", help="The checkpoint was trained with captions "
                                     "in the context (the original's --use_caption)."),
    revision: Optional[str] = typer.Option(None, "--revision", help=REVISION_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Import a fine-tuned checkpoint of the original Multimodal-CoT as a RUN_DIR for generate/ask/score."""

    summary = import_run(ImportRunConfig(checkpoint=checkpoint, stage=stage, out=str(out), backbone=backbone,
                                         image_tokens=image_tokens, prompt_format=prompt_format,
                                         use_caption=use_caption, revision=revision))
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"Imported {summary['source']['path']}", show_header=False)
    for key in ("run", "stage", "prompt_format", "layout", "tied_head", "image_shape", "vision_backbone",
                "parameters"):
        table.add_row(key, str(summary[key]))
    for name, digest in summary["source"]["files"].items():
        table.add_row(f"sha256 {name}", digest)
    hub = summary["source"].get("hub")
    if hub:
        table.add_row("hub", f"{hub['repo']}/{hub['path']} at {hub['revision']} = commit {hub['commit']}")
    err_console.print(table)


@command("import-features")
def import_features_command(
    file: str = typer.Argument(..., help="The release's feature file: .npy (e.g. detr.npy) or .pth (vit.pth); or a "
                               "hub id with the file name, e.g. cooelf/vision_features/vit.pth (Hugging Face cache)."),
    name_map: str = typer.Option(..., "--name-map", help="name_map.json: {qid: row} (a local file or a hub id)."),
    data_dir: Path = typer.Option(..., "--data", help="DATA_DIR written by `mmcot prepare`."),
    split: str = typer.Option("train,val,test", "--split", help="Split(s), comma-separated."),
    backbone: str = typer.Option(..., "--backbone", help="The backbone the file was extracted with."),
    out: Path = typer.Option(..., "--out", help="FEATURES_DIR to write (or add splits to)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float16 or float32 (default: the file's)."),
    revision: Optional[str] = typer.Option(None, "--revision", help=REVISION_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Import the original's pre-extracted vision features (streamed: the file is never loaded whole)."""
    from mmcot_cli.features.original_features import (
        ImportFeaturesConfig,
        import_feature_file,
    )

    splits = parse_splits(split)
    if not splits:
        raise UsageError("--split is empty")
    summary = import_feature_file(ImportFeaturesConfig(file=file, name_map=name_map, data_dir=str(data_dir),
                                                       splits=splits, backbone=backbone, out=str(out), dtype=dtype,
                                                       revision=revision))
    if json_out:
        print_json(summary)
        return
    table = Table(title=f"{summary['backbone']} features {summary['feature_shape']} ({summary['dtype']}) "
                        f"→ {summary['out']}")
    for col in ("split", "records", "with features", "zeros (no name_map entry)"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name, s in summary["splits"].items():
        table.add_row(name, str(s["records"]), str(s["with_features"]), str(s["zero_features"]))
    err_console.print(table)
