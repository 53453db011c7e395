"""Training inputs: each split's records, (source, target) prompts and tokenized examples, the feature store,
and the run's metadata, read once per training run before any model exists."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmcot_cli import progress
from mmcot_cli.data.prompts import build_prompt
from mmcot_cli.data.records import load_records
from mmcot_cli.data.teacher import expand_rationales
from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.features.store import open_store, store_fingerprint
from mmcot_cli.features.store_images import check_store_images, images_fingerprint
from mmcot_cli.io import sha256_file
from mmcot_cli.model.batching import Example
from mmcot_cli.runs.meta import RunMeta
from mmcot_cli.runs.rationales import Rationales, load_rationales, rationale_file
from mmcot_cli.settings import model_settings
from mmcot_cli.training.config import TrainConfig, needs_rationale
from mmcot_cli.training.log_lines import degenerate_targets


@dataclass
class StageData:
    examples: list[Example]
    records: list[dict]
    sources: list[str]  # aligned with examples (validation generates from these, as `mmcot generate` does)
    targets: dict[str, str]  # qid → target text (the rationale stage's ROUGE-L reference)


def split_records(cfg: TrainConfig, split: str, limit: int | None) -> list[dict]:
    """The first `limit` records of `split` (all of them for None), read once per training run."""
    records = load_records(cfg.data_dir, split)
    records = records if limit is None else records[:limit]
    unanswered = [r["qid"] for r in records if r.get("answer") is None]
    if unanswered:
        raise DataError(f"{cfg.data_dir}: split {split!r} is predict-only (qid {unanswered[0]} has no answer); train "
                        "and validate on splits with answers")
    return records


def stage_prompts(cfg: TrainConfig, records: list[dict], rationales: Rationales | None) -> list[tuple[str, str]]:
    """(source, target) per record; also the texts a from-scratch tokenizer is trained on before any model exists."""
    texts = rationales.for_qids([str(r["qid"]) for r in records]) if rationales else [None] * len(records)
    return [build_prompt(r, cfg.prompt_format, use_caption=cfg.use_caption, rationale=t)
            for r, t in zip(records, texts)]


def build_stage_data(cfg: TrainConfig, records: list[dict], pairs: list[tuple[str, str]], tokenizer,
                     model=None) -> StageData:
    """Records and their (source, target) prompts → tokenized examples, as the model's text-model seam makes them
    (mmcot_cli.model.text: T5's source/target ids, or a decoder-only LM's prompt template rows and target ids)."""
    from mmcot_cli.model.text.base import text_model_for

    qids = [str(r["qid"]) for r in records]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    examples = text_model_for(model, tokenizer).examples(qids, sources, targets, cfg.max_input_len,
                                                         cfg.max_output_len)
    return StageData(examples=examples, records=records, sources=[src for src, _ in pairs],
                     targets={q: t for q, (_, t) in zip(qids, pairs)})


def stage_rationales(cfg: TrainConfig) -> tuple[Rationales | None, Rationales | None, dict | None]:
    """Rationales for the train and val inputs (None = gold / not used), and their provenance for run_config."""
    if not needs_rationale(cfg.prompt_format):
        return None, None, None
    train_r = load_rationales(cfg.rationales, cfg.train_split) if cfg.train_on == "generated" else None
    val_r = load_rationales(cfg.rationales, cfg.val_split) if cfg.val_split else None
    info = {
        "source": str(Path(cfg.rationales).resolve()),
        "train_on": cfg.train_on,
        "train": train_r.provenance() if train_r else {"mode": "gold", "fields": "lecture + solution"},
        "val": val_r.provenance() if val_r else None,
    }
    return train_r, val_r, info


IMAGES_INPUT = "--features images"  # the images the store's rows were extracted from (their digests)


def input_fingerprints(cfg: TrainConfig) -> dict[str, dict]:
    """What the run reads, {label: {path, sha256}}: the DATA_DIR split files, the feature store (its identity and
    the description of the splits used), the rationale files. Recorded in run_config.json; `--resume` compares.
    Files that do not exist are left out (reading them fails with its own message)."""
    files = {f"--data {split} split": Path(cfg.data_dir) / f"{split}.jsonl"
             for split in (cfg.train_split, cfg.val_split) if split}
    if needs_rationale(cfg.prompt_format) and cfg.rationales:
        for split in ((cfg.train_split,) if cfg.train_on == "generated" else ()) + ((cfg.val_split,) if cfg.val_split
                                                                                   else ()):
            with contextlib.suppress(DataError):
                files[f"--rationales {split}"] = rationale_file(cfg.rationales, split)
    if cfg.rationale_source != "gold":
        files["--rationale-source"] = Path(cfg.rationale_source)
    prints = {label: {"path": str(path.resolve()), "sha256": sha256_file(path)}
              for label, path in files.items() if path.is_file()}
    if cfg.features and Path(cfg.features).is_dir():
        splits = [s for s in (cfg.train_split, cfg.val_split) if s]
        prints["--features"] = {"path": str(Path(cfg.features).resolve()),
                                "sha256": store_fingerprint(cfg.features, splits)}
        with contextlib.suppress(DataError):  # an unreadable store fails with its own message when read
            images = images_fingerprint(open_store(cfg.features), splits)
            if images is not None:
                prints[IMAGES_INPUT] = {"path": prints["--features"]["path"], "sha256": images}
    return prints


def run_meta(cfg: TrainConfig, store, rationale_info: dict | None, source_info: dict | None = None) -> RunMeta:
    """The run's metadata before training (the counts and world size are filled in by setup_trainer)."""
    return RunMeta(
        stage=cfg.stage, prompt_format=cfg.prompt_format, text_backbone=cfg.text_model, use_caption=cfg.use_caption,
        max_input_len=cfg.max_input_len, max_output_len=cfg.max_output_len,
        vision_backbone=getattr(store, "backbone", None) if store is not None else None,
        # what `mmcot ask` needs to rebuild the same encoder for a new image, even if FEATURES_DIR is gone
        vision_variant=store.manifest.get("variant") if store is not None else None,
        vision_weights=store.manifest.get("weights") if store is not None else None,
        vision_alpha=getattr(store, "alpha", None) if store is not None else None,
        feature_shape=list(store.feature_shape) if store is not None else None,
        features_dir=str(Path(cfg.features).resolve()) if cfg.features else None,
        rationales=rationale_info, rationale_source=source_info, seed=cfg.seed, train_config=asdict(cfg),
        model_settings=model_settings(cfg),
        inputs=input_fingerprints(cfg),
    )


@dataclass
class StageInputs:
    """Each split's records and prompts, read once, plus the feature store and the run's metadata."""

    train_records: list[dict]
    val_records: list[dict] | None
    train_pairs: list[tuple[str, str]]
    val_pairs: list[tuple[str, str]] | None
    store: Any
    meta: RunMeta


def read_stage_inputs(cfg: TrainConfig) -> StageInputs:
    train_records = split_records(cfg, cfg.train_split, cfg.limit_train)
    if not train_records:  # before a model is built (t5-scratch's tokenizer would say "no texts given")
        raise UsageError(f"{cfg.data_dir}: split {cfg.train_split!r} has no records to train on")
    source_info = None
    if cfg.stage == "rationale":  # one example per rationale (several gold ones, or a teacher's rationale set)
        train_records, source_info = expand_rationales(train_records, cfg.rationale_source)
    val_records = split_records(cfg, cfg.val_split, cfg.limit_val) if cfg.val_split else None
    store = None
    if cfg.features:
        store = open_store(cfg.features)
        store.check_coverage(train_records, cfg.train_split, "--limit-train")
        check_store_images(store, train_records, cfg.train_split)  # rows of other images under the same qids
        if val_records is not None:
            store.check_coverage(val_records, cfg.val_split, "--limit-val")
            check_store_images(store, val_records, cfg.val_split)
    train_r, val_r, rationale_info = stage_rationales(cfg)
    train_pairs = stage_prompts(cfg, train_records, train_r)
    val_pairs = stage_prompts(cfg, val_records, val_r) if val_records is not None else None
    for pairs, split in ((train_pairs, cfg.train_split), (val_pairs or [], cfg.val_split)):
        warning = degenerate_targets(pairs, split)
        if warning:
            progress.log(f"warning: {warning}")
    return StageInputs(train_records, val_records, train_pairs, val_pairs, store,
                       run_meta(cfg, store, rationale_info, source_info))
