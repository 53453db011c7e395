"""Batched generation from a trained run (`mmcot generate`); `mmcot ask` (mmcot_cli.inference.ask) reuses its run loading.

Prompts are rebuilt exactly as the run was trained: the prompt format, caption use and stage recorded in the
model's mmcot config (and RUN_DIR/run_config.json). Answer-stage runs (QCMG/CQMG inputs) read stage-1 rationales
by qid. Examples are sorted by input length so batches pad little; `model.generate` encodes + fuses once per
example and decodes with the KV cache. Output files are written atomically, one object per qid, in split order.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from mmcot_cli.data.answers import extract_answer, letter_to_index
from mmcot_cli.data.prompts import build_prompt
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.features.store import open_store
from mmcot_cli.features.store_images import check_store_images
from mmcot_cli.inference.settings import GenerateConfig
from mmcot_cli.io import atomic_path, write_jsonl
from mmcot_cli.model.answer_constraint import AnswerConstraints, answer_budget_problem
from mmcot_cli.model.fusion import MODEL_SUBDIR
from mmcot_cli.model.generation import (
    feature_getter,
    generate_texts,
    resolve_device,
)
from mmcot_cli.model.precision import autocast, inference_precision, pin_cpu_numerics
from mmcot_cli.model.text.runs import load_run_model, resolve_model_dir
from mmcot_cli.output_guard import check_output_file
from mmcot_cli.outputs import claim_output_file
from mmcot_cli.runs.meta import RUN_CONFIG, RunMeta
from mmcot_cli.runs.rationales import load_rationales

# ----------------------------------------------------------------------------------------------------------------
# The run: model + how it was trained


def run_root(path: str | Path) -> Path:
    """RUN_DIR for a RUN_DIR or its model/ directory (so --run RUN_DIR/model finds run_config.json)."""
    path = Path(path)
    if path.name == MODEL_SUBDIR and (path / "config.json").is_file() and not (path / RUN_CONFIG).is_file():
        return path.parent
    return path


def run_info(run_dir: str | Path, model_meta: dict) -> RunMeta:
    """The run's RunMeta: RUN_DIR/run_config.json, or the model's own copy when the run has none."""
    return RunMeta.for_run(run_root(run_dir), model_meta)


def load_run(run_dir: str | Path, device: torch.device):
    model, tokenizer, model_meta = load_run_model(run_dir, device=device)
    info = run_info(run_dir, model_meta)
    if model.image_shape is None and (info.feature_shape or info.vision_backbone):
        # The run metadata says the model fuses images but the model config lost it: never run text-only quietly.
        raise DataError(f"{run_root(run_dir) / RUN_CONFIG}: the run was trained with image features "
                        f"({info.vision_backbone}, {info.feature_shape}) but {resolve_model_dir(run_dir)}/config.json "
                        "has no fusion settings (image_shape); restore the config or retrain")
    return model, tokenizer, info


# ----------------------------------------------------------------------------------------------------------------
# Core: prompts → texts


def prediction_row(qid: str, text: str, stage: str, num_choices: int | None, answers: bool,
                   constrained: bool = False) -> dict:
    """One predictions-file object (docs/FORMATS.md); answer-giving runs record whether the answer was
    constrained to the item's options (mmcot_cli.model.answer_constraint)."""
    letter = extract_answer(text) if answers else None
    index = letter_to_index(letter, num_choices) if letter and num_choices else None
    row = {"qid": str(qid), "prediction": text, "stage": stage, "answer_letter": letter, "answer_index": index}
    return row | ({"constrained": constrained} if answers else {})


def open_features(path: str | Path, model_shape: tuple[int, int] | None, run: Path):
    store = open_store(path)
    shape = tuple(int(x) for x in store.feature_shape)
    if model_shape is not None and shape != tuple(model_shape):
        raise DataError(f"{path}: features have shape {list(shape)} but the model in {run} was trained on "
                        f"{list(model_shape)} (backbone {getattr(store, 'backbone', '?')})")
    return store


# ----------------------------------------------------------------------------------------------------------------
# mmcot generate


def output_path(cfg: GenerateConfig, split: str) -> Path:
    if cfg.out is None:
        return run_root(cfg.run) / f"preds-{split}.jsonl"
    if len(cfg.splits) > 1 and "{split}" not in cfg.out:
        raise UsageError("--out with several splits must contain '{split}' (or omit --out to write "
                         "RUN_DIR/preds-<split>.jsonl)")
    return Path(cfg.out.replace("{split}", split))


def _run_features(cfg: GenerateConfig, image_shape, info: RunMeta):
    """(features dir, open store) for a model that fuses images; (None, None) for a text-only one."""
    features = cfg.features or (info.features_dir if image_shape is not None else None)
    if image_shape is None:
        if cfg.features:
            raise UsageError(f"{cfg.run}: the model is text-only; --features would not be used")
        return None, None
    if not features:
        raise UsageError(f"{cfg.run}: the model fuses image features {list(image_shape)}; pass --features")
    return features, open_features(features, image_shape, Path(cfg.run))


def generate(cfg: GenerateConfig) -> dict:
    """Generate predictions for each split; returns a summary with one entry per written file."""
    if not cfg.splits:
        raise UsageError("no split given")
    cfg.sampling.check(cfg.num_beams)
    outs = {split: output_path(cfg, split) for split in cfg.splits}
    data_files = {f"--data {split} split": Path(cfg.data_dir) / f"{split}.jsonl" for split in cfg.splits}
    inputs = {**data_files, "--rationales": cfg.rationales, "--features": cfg.features}
    for out in outs.values():
        check_output_file(out, "generate", inputs=inputs)
    if len(set(map(str, outs.values()))) < len(outs):
        raise UsageError("--out names the same file for several splits; use a '{split}' placeholder")
    with contextlib.ExitStack() as held:  # every output file held (locked) until all are written
        for out in outs.values():
            held.enter_context(claim_output_file(out, "generate", inputs=inputs))
        return _generate_held(cfg, outs)


def trained_numerics(run: str | Path, device) -> dict | None:
    """A run trained with pinned CPU kernels (`train --deterministic` on a CPU, `mmcot demo`) generates with them
    too on a CPU, so its predictions are the same on every x86-64 CPU (model.precision.pin_cpu_numerics; before
    the model loads: the kernels are chosen at the first tensor op). None when the run was not pinned."""
    if device.type != "cpu" or not (Path(run) / RUN_CONFIG).is_file():
        return None
    if not (RunMeta.load(Path(run)).cpu_numerics or {}).get("pinned"):
        return None
    return pin_cpu_numerics()


def _generate_held(cfg: GenerateConfig, outs: dict[str, Path]) -> dict:
    device = resolve_device(cfg.device)
    cpu_numerics = trained_numerics(cfg.run, device)
    model, tokenizer, info = load_run(cfg.run, device)

    features, store = _run_features(cfg, model.image_shape, info)
    rationale_source = None
    if cfg.rationales and not info.needs_rationale:
        raise UsageError(f"{cfg.run}: prompt format {info.prompt_format} takes no rationale; --rationales would "
                         "not be used")
    if info.needs_rationale:
        rationale_source = cfg.rationales or info.rationales_source
        if not rationale_source:
            raise UsageError(f"{cfg.run}: prompt format {info.prompt_format} needs stage-1 rationales; "
                             "pass --rationales RUN_R (or a preds file)")

    precision, precision_note = inference_precision(cfg.precision, info.precision, device)
    max_new = cfg.max_new_tokens or info.max_output_len
    budget = answer_budget_problem(tokenizer, info.prompt_format, max_new)
    constrained = cfg.constrain and info.answers and cfg.protocol != "original"
    summary: dict[str, Any] = {
        "run": str(cfg.run), "stage": info.stage, "prompt_format": info.prompt_format, "device": str(device),
        "features": str(features) if store is not None else None, "rationales": rationale_source,
        "max_new_tokens": max_new, "num_beams": cfg.num_beams, "sampling": cfg.sampling.summary(),
        "cpu_numerics": cpu_numerics,
        "constrained_answers": constrained, "protocol": cfg.protocol, "precision": precision, "splits": {},
        "warnings": [w for w in (budget, precision_note) if w],
    }
    # Every split's inputs (records, rationales by qid, prompts) are checked before anything is generated, so a
    # bad later split does not leave the earlier splits' outputs written by a command that failed.
    inputs = {}
    for split in cfg.splits:
        records = load_records(cfg.data_dir, split)
        if not records:  # what a later `mmcot score` of the empty file would say, said now
            summary["warnings"].append(f"{Path(cfg.data_dir) / f'{split}.jsonl'}: split {split!r} has no records; "
                                       "its predictions file is empty")
        if cfg.limit is not None:
            records = records[:cfg.limit]
        qids = [str(r["qid"]) for r in records]
        rationales: list[str | None] = [None] * len(records)
        provenance = None
        if rationale_source:
            loaded = load_rationales(rationale_source, split)
            rationales, provenance = loaded.for_qids(qids), loaded.provenance()  # missing qid → DataError
        sources = [build_prompt(r, info.prompt_format, info.use_caption, rat)[0]
                   for r, rat in zip(records, rationales)]
        if store is not None:
            store.check_coverage(records, split)
            check_store_images(store, records, split)  # rows of other images under the same qids
        inputs[split] = (records, qids, sources, rationales, provenance)
    results = {}
    for split, (records, qids, sources, rationales, provenance) in inputs.items():
        start = time.perf_counter()
        choices = [len(r.get("choices") or []) for r in records]
        with autocast(device, precision):  # encoder, fusion and decoder in one precision
            texts = generate_texts(
                model, tokenizer, sources, feature_batch=feature_getter(store, qids) if store is not None else None,
                batch_size=cfg.batch_size, max_input_len=info.max_input_len, max_new_tokens=max_new,
                num_beams=cfg.num_beams, device=device, description=f"generate {split}",
                sampling=cfg.sampling.start(),
                constraints=AnswerConstraints(tokenizer, info.prompt_format, choices) if constrained else None)
        seconds = time.perf_counter() - start
        # a two-stage answer row keeps the stage-1 rationale its prompt was built from (score and report read it)
        rows = [prediction_row(q, t[0] if cfg.sampling.enabled else t, info.stage, n, info.answers, constrained)
                | ({"rationale": rat} if rat is not None else {}) | ({"samples": t} if cfg.sampling.enabled else {})
                | {"protocol": cfg.protocol, "precision": precision}
                for q, t, n, rat in zip(qids, texts, choices, rationales)]
        results[split] = rows
        summary["splits"][split] = {
            "out": str(outs[split]), "count": len(rows), "seconds": round(seconds, 3), "rationales": provenance,
            "samples_per_s": round(len(rows) / seconds, 2) if seconds > 0 else None,
            **({"answer_found": sum(r["answer_letter"] is not None for r in rows)} if info.answers else {}),
        }
    with contextlib.ExitStack() as stack:  # every split's file written, then all renamed into place together
        for split, rows in results.items():
            write_jsonl(stack.enter_context(atomic_path(outs[split])), rows)
    return summary
