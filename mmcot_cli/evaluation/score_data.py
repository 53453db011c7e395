"""`mmcot score` for any prepared format: the format registry names the scoring kind, and this picks its scorer
(ScienceQA categories in mmcot_cli.evaluation.score, A-OKVQA / generic JSONL in mmcot_cli.evaluation.own_formats)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mmcot_cli.data.carve import splits_note
from mmcot_cli.data.readers import format_of
from mmcot_cli.errors import DataError
from mmcot_cli.evaluation.own_formats import score_own_data
from mmcot_cli.evaluation.predictions import Warn
from mmcot_cli.evaluation.score import ScoreConfig, score, with_headline
from mmcot_cli.outputs import claim_output_file
from mmcot_cli.validate import check_protocol


def score_data(cfg: ScoreConfig, warn: Warn | None = None, export: str | Path | None = None) -> dict:
    """`mmcot score` for any prepared format: the scorer of the format's scoring kind (the format registry), with
    `splits_note` (data.carve.splits_note: why the data are not the source's official splits, else None)."""
    result = _score_data(cfg, warn, export)
    result["splits_note"] = splits_note(cfg.data)
    return result


def _score_data(cfg: ScoreConfig, warn: Warn | None, export: str | Path | None) -> dict:
    fmt = format_of(cfg.data)
    if export is not None and fmt.scoring != "aokvqa":
        raise DataError(f"{cfg.data}: --export-aokvqa needs data prepared from A-OKVQA (this is {fmt.name})")
    if fmt.scoring == "scienceqa":
        return score(cfg, warn=warn)
    check_protocol(cfg.protocol)
    if cfg.protocol == "original":  # its answer rule; the original code itself only reads ScienceQA
        cfg = replace(cfg, fallback="reference")
    if export is None:
        return {"protocol": cfg.protocol, **with_headline(score_own_data(cfg, warn), cfg.protocol)}
    with claim_output_file(export, "score", option="--export-aokvqa",
                           inputs={"PREDICTIONS": cfg.predictions, "--data": cfg.data}):
        return {"protocol": cfg.protocol, **with_headline(score_own_data(cfg, warn, export), cfg.protocol)}
