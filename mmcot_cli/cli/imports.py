"""`mmcot import-run` and `mmcot import-features`: the original Multimodal-CoT release's checkpoints and
vision-feature files (local, or hub ids through the Hugging Face cache) become ordinary mmcot runs and feature
stores."""

from __future__ import annotations

import typer
from rich.table import Table

from mmcot_cli.cli.app import print_json
from mmcot_cli.cli.options import settings_command
from mmcot_cli.features.settings import ImportFeaturesConfig
from mmcot_cli.model.original_checkpoint import ImportRunConfig, import_run
from mmcot_cli.progress import err_console


@settings_command("import-run")
def import_run_command(
    cfg: ImportRunConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Import a fine-tuned checkpoint of the original Multimodal-CoT as a RUN_DIR for generate/ask/score."""
    summary = import_run(cfg)
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


@settings_command("import-features")
def import_features_command(
    cfg: ImportFeaturesConfig,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Import the original's pre-extracted vision features (streamed: the file is never loaded whole)."""
    from mmcot_cli.features.original_features import import_feature_file

    summary = import_feature_file(cfg)
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
