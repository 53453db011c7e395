"""`mmcot report`: one self-contained HTML page about one or several runs.

Inputs are RUN_DIRs (their `preds-<split>.jsonl`, `run_config.json`, `metrics.jsonl`) or predictions files,
optionally labelled `LABEL=PATH`. For each: its scores as `mmcot score` computes them for the data's format (the
format registry's scoring kind; what is shown per kind: mmcot_cli.evaluation.kinds), the rationales it
was judged on (a rationale-stage run's own output, the stage-1 run an answer run was trained with, or the
rationale inside a one-stage QCM-LEA / QCM-ALE answer), and its training curves. The page itself is drawn by
mmcot_cli.reporting.html; charts by mmcot_cli.reporting.charts; the error gallery by mmcot_cli.reporting.gallery.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mmcot_cli.data.prompts import gives_answer, writes_rationale
from mmcot_cli.data.readers import format_of
from mmcot_cli.errors import DataError, UnknownSplitError, UsageError
from mmcot_cli.evaluation.baselines import baselines
from mmcot_cli.evaluation.kinds import record_categories
from mmcot_cli.evaluation.original_metrics import get_scores_rouge_l_pair, original_target, validation_rouge_l_pair
from mmcot_cli.evaluation.rationale_metrics import (
    MetricOptions,
    mean_scores,
    normalize_rationale,
    rationale_reference,
    score_pairs,
)
from mmcot_cli.evaluation.score import ScoreConfig, load_gold
from mmcot_cli.evaluation.score_data import score_data
from mmcot_cli.evaluation.similarity import (
    similarity_model_setting,
    similarity_setting,
)
from mmcot_cli.io import atomic_open, jsonl_lines, read_json, read_jsonl, read_log
from mmcot_cli.outputs import claim_output_file
from mmcot_cli.reporting.html import render
from mmcot_cli.reporting.published import PUBLISHED, published_for, why_not_published
from mmcot_cli.runs.meta import RUN_CONFIG, RunMeta
from mmcot_cli.runs.rationales import load_rationales
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.validate import PROTOCOLS, check_seed, check_split_name, non_negative_int

Warn = Callable[[str], None]

# The answer sentence (and ALE's "BECAUSE:") around a rationale inside a one-stage output.
_ANSWER_SENTENCE = re.compile(r"(Answer:\s*)?The answer is \([A-Z]\)\.?\s*(BECAUSE:)?")


_INPUTS_HELP = ("RUN_DIRs (their preds-<split>.jsonl, run_config.json, metrics.jsonl) or predictions files; "
                "LABEL=PATH names one.")


@dataclass
class ReportConfig:
    """`mmcot report`'s settings: one field per option (mmcot_cli.settings)."""

    inputs: list[str] = setting(help=_INPUTS_HELP, argument=True, metavar="INPUTS...")
    data: Path = setting(help="Prepared DATA_DIR (or problems.json) the runs are scored on.", metavar="DATA")
    out: Path = setting(Path("report.html"), "HTML file to write (atomically).", metavar="FILE")
    split: str = setting("test", "Which split of DATA the runs predicted.", metavar="SPLIT", check=check_split_name)
    gallery: int = setting(50, "Wrong answers shown in the error gallery.", check=non_negative_int)
    seed: int = setting(0, "Seed for sampling the gallery's wrong answers.", check=check_seed)
    title: str = setting("mmcot report", "The page's title.")
    similarity: bool = similarity_setting()
    similarity_model: Path | None = similarity_model_setting()
    protocol: str | None = setting(None, "mmcot or original: how every run is scored, as `score --protocol` (original: "
                                   "its answer rule, --fallback reference, and its get_scores ROUGE-L as the "
                                   "rationale headline). Default: the protocol each run's predictions record, else "
                                   "mmcot.", choices=PROTOCOLS)
    # shown under the title (the demo: "synthetic benchmark, not ScienceQA"); the library's, not an option
    data_note: str | None = setting(None, "A note under the title.", flag="")

    def __post_init__(self) -> None:
        self.inputs = list(self.inputs)
        check_settings(self)

    @property
    def metric_options(self) -> MetricOptions:
        return MetricOptions.from_flags(self.similarity, self.similarity_model)

    def input_paths(self) -> dict[str, Path]:
        """Every file the report reads ({label: path}), for the output guard."""
        paths = {"--data": Path(self.data), "--data split": Path(self.data) / f"{self.split}.jsonl"}
        for spec in self.inputs:
            path = Path(split_label(spec)[1])
            paths[str(path)] = path
            for name in (f"preds-{self.split}.jsonl", "metrics.jsonl", RUN_CONFIG):
                paths[str(path / name)] = path / name
        return paths


@dataclass
class RunResult:
    label: str
    path: Path  # what the user named
    preds: Path  # the predictions file scored
    meta: RunMeta | None  # the run's run_config.json; None for a bare predictions file
    score: dict  # `mmcot score --json` object with per-item details
    rationales: dict[str, str]  # qid → generated rationale ({} when the run has none)
    rationale_source: str | None  # where the rationales came from (for the page)
    curves: dict[str, list[dict]] = field(default_factory=dict)  # stage name → metrics.jsonl rows
    rationale_by_category: dict[str, dict] = field(default_factory=dict)  # category key → {rouge_l, bleu_1, …}
    val_chance: tuple[float, str] | None = None  # (chance %, label) for the validation-accuracy curve

    @property
    def vision(self) -> bool | None:
        """True: fused image features; False: text-only; None: unknown (a bare predictions file)."""
        if self.meta is None:
            return None
        return self.meta.feature_shape is not None

    @property
    def prompt_format(self) -> str | None:
        return self.meta.prompt_format if self.meta else None

    @property
    def decoder_only(self) -> str | None:
        """A decoder-only run's backbone and fusion ("llama-scratch, decoder-only, gated fusion at layer 1");
        None for T5 runs (their fusion is always gated on the encoder output)."""
        meta = self.meta
        if meta is None or meta.text_kind != "causal":
            return None
        if meta.fusion is None:
            return f"{meta.text_backbone}, decoder-only"
        where = f" at layer {meta.fusion_layer}" if meta.fusion_layer is not None else ""
        return f"{meta.text_backbone}, decoder-only, {meta.fusion} fusion{where}"

    @property
    def has_answers(self) -> bool:
        return bool(self.score.get("has_answers"))

    @property
    def protocol(self) -> str:
        """The protocol the run was scored under (`score --protocol`): its answer rule and rationale headline."""
        return self.score.get("protocol", "mmcot")


def split_label(spec: str) -> tuple[str | None, str]:
    """"LABEL=PATH" → (LABEL, PATH); a plain path (even one containing "=" that exists) → (None, PATH)."""
    label, sep, path = spec.partition("=")
    if sep and label and not os.path.exists(spec):
        return label, path
    return None, spec


def default_label(path: Path) -> str:
    """`runs/multimodal/answer` (or its preds-test.jsonl) → "multimodal/answer"; another file → its stem."""
    path = Path(os.path.abspath(path))
    if path.is_file() and path.name.startswith("preds-"):
        path = path.parent
    elif not path.is_dir():
        return path.stem
    return "/".join(p for p in path.parts[-2:] if p)


def resolve_input(spec: str, split: str) -> tuple[str, Path, Path, Path | None]:
    """(label, named path, predictions file, run dir or None) for one input; DataError when there is none."""
    label, raw = split_label(spec)
    path = Path(raw)
    if path.is_dir():
        preds = path / f"preds-{split}.jsonl"
        if not preds.is_file():
            again = f"mmcot generate --run {shlex.quote(str(path))} --split {shlex.quote(split)}"
            raise DataError(f"{preds}: file not found (run `{again}` first)")
        run_dir = path
    elif path.is_file():
        preds = path
        run_dir = path.parent if (path.parent / RUN_CONFIG).is_file() else None
    else:
        raise DataError(f"{path}: no such run directory or predictions file")
    return label or default_label(path), path, preds, run_dir


def _answer_rationale(text: str) -> str:
    """The rationale part of a one-stage QCM-LEA / QCM-ALE output (the answer sentence removed)."""
    return " ".join(_ANSWER_SENTENCE.sub(" ", text).split())


def load_meta(run_dir: Path | None) -> RunMeta | None:
    """The run's RunMeta (run_config.json), or None where there is no run folder or no run_config.json."""
    return RunMeta.load(run_dir) if run_dir is not None and (run_dir / RUN_CONFIG).is_file() else None


def run_rationales(preds_rows: list[dict], meta: RunMeta | None, split: str, warn: Warn | None
                ) -> tuple[dict[str, str], str | None]:
    rows_with = {str(r["qid"]): r["rationale"] for r in preds_rows if isinstance(r.get("rationale"), str)}
    if rows_with:
        return rows_with, "the predictions' rationale field"
    if preds_rows and all(r.get("stage") == "rationale" for r in preds_rows):
        return {str(r["qid"]): r.get("prediction") or "" for r in preds_rows}, "this rationale-stage run"
    fmt = meta.prompt_format if meta else ""
    if fmt and gives_answer(fmt) and writes_rationale(fmt):  # one stage: rationale and answer in one output
        return ({str(r["qid"]): _answer_rationale(r.get("prediction") or "") for r in preds_rows},
                f"the {fmt} outputs (answer sentence removed)")
    source = meta.rationales_source if meta else None
    if source:

        try:
            return load_rationales(source, split).by_qid, f"stage-1 run {source}"
        except DataError as e:
            if warn:
                warn(f"rationales of the answer run are not shown: {e}")
    return {}, None


def _curves(run_dir: Path | None, meta: RunMeta | None) -> dict[str, list[dict]]:
    """metrics.jsonl rows of this run and, for an answer run, of the stage-1 run it was trained on."""
    curves: dict[str, list[dict]] = {}
    if run_dir is None:
        return curves
    stage = meta.stage if meta else "run"
    source = meta.rationales_source if meta else None
    if source and Path(source).is_dir() and (Path(source) / "metrics.jsonl").is_file():
        curves["rationale"] = read_log(Path(source) / "metrics.jsonl")[0]  # a torn last row is left out
    if (run_dir / "metrics.jsonl").is_file():
        curves[stage] = read_log(run_dir / "metrics.jsonl")[0]
    return curves


def validation_chance(meta: RunMeta | None, data, split: str, records: list[dict]) -> tuple[float, str] | None:
    """(chance accuracy %, label) of the items an answer run validated on: its val split of DATA (the first
    --limit-val of them, as train took them); the report split's items, labelled so, when that split is not in
    DATA. None for a run that does not answer."""
    if meta is None or not meta.answers:
        return None
    train = meta.train_config or {}
    val = train.get("val_split", "val")
    try:
        val_records = load_gold(data, val) if val else []
    except (DataError, UnknownSplitError):
        val_records = []
    limit = train.get("limit_val")
    if val_records:
        chance = baselines(val_records[:limit] if limit else val_records)["chance"]
        return (chance, f"chance ({val} split)") if chance is not None else None
    chance = baselines(records)["chance"]
    return (chance, f"chance ({split} items)") if chance is not None else None


def _mean_round(values: list[float]) -> float | None:
    return round(100.0 * sum(values) / len(values), 2) if values else None


def rationale_by_category(records: list[dict], rationales: dict[str, str], categories: list,
                          options: MetricOptions = MetricOptions()) -> dict[str, dict]:
    """Every rationale metric (×100, RATIONALE_METRICS: mmcot's, normalised) of the generated rationales per
    category, and the original's get_scores and validation ROUGE-L (original_rouge_l, original_validation_rouge_l)
    ((key, label, test) of mmcot_cli.evaluation.kinds.record_categories), plus per-qid ROUGE-L for the gallery."""
    scored = [r for r in records if str(r["qid"]) in rationales and rationale_reference(r)]
    pairs = [(normalize_rationale(rationales[str(r["qid"])]), rationale_reference(r)) for r in scored]
    per_pair = dict(zip((str(r["qid"]) for r in scored), score_pairs(pairs, options)))
    # The original's two ROUGE-L on the raw texts (its targets are never empty: "Solution: …")
    with_text = [r for r in records if str(r["qid"]) in rationales]
    raw = {str(r["qid"]): (rationales[str(r["qid"])], original_target(r)) for r in with_text}
    got = {q: get_scores_rouge_l_pair(p, t) for q, (p, t) in raw.items()}
    val = {q: validation_rouge_l_pair(p, t) for q, (p, t) in raw.items()}
    out = {}
    for key, _, test in categories:
        values = [per_pair[str(r["qid"])] for r in scored if test(r)]
        qids = [str(r["qid"]) for r in with_text if test(r)]
        out[key] = {"count": len(values), **mean_scores(values, options),
                    "original_rouge_l": _mean_round([got[q] for q in qids if got[q] is not None]),
                    "original_validation_rouge_l": _mean_round([val[q] for q in qids])}
    out["per_qid_rouge_l"] = {q: round(100.0 * v["rouge_l"], 2) for q, v in per_pair.items()}
    return out


def recorded_protocol(preds: Path, warn: Warn | None) -> str:
    """The protocol a predictions file records (`generate --protocol` writes it into every row); mmcot where no
    row records one, or where rows disagree (with a warning). Bad lines are left to the scorer to report."""
    try:
        found = sorted({line.value["protocol"] for line in jsonl_lines(preds) if isinstance(line.value, dict)
                        and line.value.get("protocol") in PROTOCOLS})
    except DataError:
        return "mmcot"
    if len(found) > 1 and warn:
        warn(f"{preds}: rows of both protocols ({', '.join(found)}); scored under mmcot (--protocol picks one)")
    return found[0] if len(found) == 1 else "mmcot"


def load_run_result(spec: str, cfg: ReportConfig, records: list[dict], categories: list,
                    warn: Warn | None) -> RunResult:

    label, path, preds, run_dir = resolve_input(spec, cfg.split)
    meta = load_meta(run_dir)
    protocol = cfg.protocol or recorded_protocol(preds, warn)
    result = score_data(ScoreConfig(predictions=preds, data=cfg.data, split=cfg.split, details=True,
                                   similarity=cfg.similarity, similarity_model=cfg.similarity_model,
                                   protocol=protocol), warn=warn)
    rationales, source = run_rationales(read_jsonl(preds), meta, cfg.split, warn)
    run = RunResult(label=label, path=path, preds=preds, meta=meta, score=result,
                    rationales=rationales, rationale_source=source, curves=_curves(run_dir, meta),
                    val_chance=validation_chance(meta, cfg.data, cfg.split, records))
    if rationales:
        run.rationale_by_category = rationale_by_category(records, rationales, categories,
                                                          cfg.metric_options)
    return run


def data_manifest(data) -> dict | None:
    """DATA_DIR's manifest.json (None for a problems.json or a folder without one)."""
    path = Path(data) / "manifest.json"
    return read_json(path) if path.is_file() else None


def collect(cfg: ReportConfig, warn: Warn | None = None) -> dict:
    """Everything the page shows, as plain data (runs, published rows, gallery); no HTML yet."""
    from mmcot_cli.reporting.gallery import build_gallery

    if not cfg.inputs:
        raise UsageError("give at least one RUN_DIR or predictions file")
    if cfg.gallery < 0:
        raise UsageError(f"--gallery must be >= 0, got {cfg.gallery}")
    cfg.metric_options.check()
    records = load_gold(cfg.data, cfg.split)
    fmt = format_of(cfg.data)  # a problems.json or a benchmark folder (no manifest) is ScienceQA
    categories = record_categories(fmt.scoring, records)
    manifest = data_manifest(cfg.data)
    runs = [load_run_result(spec, cfg, records, categories, warn) for spec in cfg.inputs]
    labels = [r.label for r in runs]
    for i, run in enumerate(runs):  # the same label twice would make the tables ambiguous
        if labels.count(run.label) > 1:
            run.label = f"{run.label} ({i + 1})"
    return {"config": cfg, "records": records, "runs": runs, "format": fmt, "kind": fmt.scoring,
            "categories": categories, "published": published_for(fmt.published_rows, cfg.split, records, manifest),
            "published_left_out": (why_not_published(PUBLISHED[fmt.published_rows], cfg.split, records, manifest)
                                   if fmt.published_rows in PUBLISHED else None),
            "gallery": build_gallery(runs, records, cfg.gallery, cfg.seed, warn)}


def write_report(cfg: ReportConfig, warn: Warn | None = None) -> dict:
    """Build the report and write it atomically to cfg.out; returns a short summary."""

    with claim_output_file(cfg.out, "report", inputs=cfg.input_paths()):  # checked before reading anything
        report = collect(cfg, warn)
        html = render(report)
        with atomic_open(cfg.out) as fh:
            fh.write(html)
    gallery = report["gallery"]
    return {"out": str(cfg.out), "bytes": len(html.encode("utf-8")), "runs": [r.label for r in report["runs"]],
            "protocols": {r.label: r.protocol for r in report["runs"]},
            "gallery_items": len(gallery["items"]), "corrected_by_vision": gallery.get("corrected")}
