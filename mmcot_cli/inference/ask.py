"""`mmcot ask`: rationale, then answer, for one custom question (optionally with an image).

The two runs are used exactly as `mmcot generate` uses them (mmcot_cli.inference.generate: prompts rebuilt from the
run's recorded format); an image is encoded with the vision backbone the run's features came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from mmcot_cli.data.images import load_rgb
from mmcot_cli.data.prompts import build_prompt
from mmcot_cli.errors import DataError, MMCoTError, PluginError, UsageError
from mmcot_cli.features.store import LEGACY_IDENTITY
from mmcot_cli.inference.generate import load_run, prediction_row
from mmcot_cli.inference.settings import AskConfig
from mmcot_cli.io import read_json
from mmcot_cli.model.answer_constraint import AnswerConstraints, answer_budget_problem
from mmcot_cli.model.generation import generate_texts, resolve_device
from mmcot_cli.model.precision import autocast, inference_precision
from mmcot_cli.registry.hookspecs import VisionBuildOptions
from mmcot_cli.registry.manager import (
    build_vision_encoder,
    call_plugin,
    describe,
    encode_checked,
    get_vision_backbone,
)
from mmcot_cli.registry.weights import OFFLINE_HINT
from mmcot_cli.runs.meta import RunMeta

LEGACY_ALPHA = LEGACY_IDENTITY["alpha"]  # runs and stores made before the policy was recorded decoded onto white


def ask_record(question: str, choices: Sequence[str], context: str = "") -> dict:
    """A DATA_DIR-shaped record for one user question (no gold answer: `answer` is a placeholder)."""
    choices = [c.strip() for c in choices]
    if not question.strip():
        raise UsageError("--question is empty")
    if not 2 <= len(choices) <= 5 or not all(choices):
        raise UsageError(f"--choices needs 2 to 5 non-empty options separated by '|', got {len(choices)}")
    return {"qid": "ask", "split": "ask", "question": question.strip(), "hint": context.strip(), "caption": "",
            "choices": choices, "answer": 0, "lecture": "", "solution": "", "image": None, "image_paths": []}


def _vision_source(info: RunMeta) -> tuple[str | None, str | None, str]:
    """The (variant, weights, alpha policy) the run's features were made with, from its meta or features manifest.

    The alpha policy: the run's record, else its store's (a store without one predates the policies: "white"),
    else "original" for an imported run (trained on the original's features), else "white" (what every run
    trained before the policy was recorded used)."""
    variant, weights, alpha = info.vision_variant, info.vision_weights, info.vision_alpha
    manifest = None
    if (variant is None or weights is None or alpha is None) and info.features_dir \
            and Path(info.features_dir).is_dir():
        try:
            manifest = read_json(Path(info.features_dir) / "manifest.json")
            variant = variant or manifest.get("variant")
            weights = weights or manifest.get("weights")
        except DataError:
            manifest = None
    if alpha is None:
        if isinstance(manifest, dict):
            alpha = manifest.get("alpha", LEGACY_ALPHA)
        else:
            alpha = "original" if info.imported_from else LEGACY_ALPHA
    return variant, weights, alpha


def recorded_alpha(info: RunMeta) -> str:
    """The transparency policy `mmcot ask` decodes --image with for this run, unless --alpha overrides it."""
    return _vision_source(info)[2]


def _with_ask_flags(e: MMCoTError) -> MMCoTError:
    """The weight loader's hints name extract's flags; `ask` spells them --vision-weights / --random-init-vision."""
    message = str(e).replace(OFFLINE_HINT, "offline? use --vision-weights PATH or --random-init-vision")
    message = message.replace("--weights ", "--vision-weights ")
    if message == str(e):
        return e
    return (UsageError if e.exit_code == 2 else MMCoTError)(message)


def encode_ask_image(info: RunMeta, image_shape: tuple[int, int], image_path: str | None, *,
                       random_init: bool, device: torch.device, cache: dict, run: str = "the run",
                       weights: str | None = None, alpha: str | None = None) -> torch.Tensor:
    """(1, P, D) features of one image with the run's recorded vision backbone (`weights` overrides its weights,
    `alpha` its transparency policy); zeros when there is no image (what the feature store returns for image-less
    problems, i.e. what the model saw in training)."""
    if image_path is None:
        return torch.zeros(1, *image_shape)
    if not info.vision_backbone:
        raise DataError(f"{run}: the run records no vision backbone to encode --image with")
    variant, recorded, recorded_policy = _vision_source(info)
    weights = None if random_init else (weights or recorded)
    alpha = alpha or recorded_policy
    key = (info.vision_backbone, variant, weights, random_init, alpha)
    if key not in cache:
        backbone = get_vision_backbone(info.vision_backbone)
        try:
            encoder = build_vision_encoder(backbone, VisionBuildOptions(variant=variant, weights=weights,
                                                                        random_init=random_init, device=str(device)))
        except MMCoTError as e:
            raise _with_ask_flags(e) from None
        image = load_rgb(image_path, qid="ask", alpha=alpha)
        with torch.inference_mode():  # the plugin's results are checked at the boundary (one line naming it)
            pixels = call_plugin(backbone, "preprocess", encoder.preprocess, image)
            if not isinstance(pixels, torch.Tensor):
                raise PluginError(f"{describe(backbone)}: preprocess returned a {type(pixels).__name__}, "
                                  "expected a tensor (C, H, W)")
            cache[key] = encode_checked(backbone, encoder, pixels.unsqueeze(0).to(device), encoder.feature_shape,
                                        [f"--image {image_path}"]).float().cpu()
    feats = cache[key]
    if tuple(feats.shape[1:]) != tuple(image_shape):
        raise DataError(f"{info.vision_backbone} produced features {list(feats.shape[1:])} but the model in "
                        f"{run} expects {list(image_shape)}")
    return feats


def _ask_one(run: str, record: dict, rationale: str | None, cfg: AskConfig, device, cache: dict,
             expect_stage: str) -> tuple[str, RunMeta]:
    model, tokenizer, info = load_run(run, device)
    if info.needs_rationale and rationale is None:
        raise UsageError(f"{run}: prompt format {info.prompt_format} is an answer-stage format; "
                         f"--{expect_stage}-run must name a rationale-stage run")
    if expect_stage == "answer" and not info.answers:
        raise UsageError(f"{run}: prompt format {info.prompt_format} does not output an answer; "
                         "--answer-run must name an answer-stage run")
    source = build_prompt(record, info.prompt_format, info.use_caption, rationale)[0]
    feats = None
    if model.image_shape is not None:
        feats = encode_ask_image(info, model.image_shape, cfg.image, random_init=cfg.random_init_vision,
                                   device=device, cache=cache, run=run, weights=cfg.vision_weights, alpha=cfg.alpha)
    constraints = (AnswerConstraints(tokenizer, info.prompt_format, [len(record["choices"])])
                   if expect_stage == "answer" and cfg.constrain and info.answers else None)
    budget = answer_budget_problem(tokenizer, info.prompt_format, cfg.max_new_tokens or info.max_output_len)
    if budget and expect_stage == "answer":
        cache.setdefault("warnings", []).append(f"{run}: {budget}")
    precision, note = inference_precision(cfg.precision, info.precision, device)
    if note:
        cache.setdefault("warnings", []).append(f"{run}: {note}")
    cache.setdefault("precision", {})[expect_stage] = precision
    with autocast(device, precision):  # encoder, fusion and decoder in one precision
        text = generate_texts(model, tokenizer, [source],
                              feature_batch=(lambda idx: feats) if feats is not None else None,
                              batch_size=1, max_input_len=info.max_input_len,
                              max_new_tokens=cfg.max_new_tokens or info.max_output_len, num_beams=cfg.num_beams,
                              device=device, description=f"{expect_stage}", constraints=constraints)[0]
    return text, info


def _used_alpha(cfg: AskConfig, info: RunMeta) -> str | None:
    """The policy --image was decoded with for this run (None: no image, or a text-only run)."""
    if cfg.image is None or not info.vision_backbone:
        return None
    return cfg.alpha or recorded_alpha(info)


def ask(cfg: AskConfig) -> dict:
    """Rationale, then answer, for one question (optionally with an image)."""
    record = ask_record(cfg.question, cfg.choices, cfg.context)
    if cfg.image is not None:
        load_rgb(cfg.image, qid="ask")  # a missing, corrupt or oversized image fails before any model is built
    device = resolve_device(cfg.device)
    cache: dict = {}
    rationale, r_info = _ask_one(cfg.rationale_run, record, None, cfg, device, cache, "rationale")
    answer, a_info = _ask_one(cfg.answer_run, record, rationale, cfg, device, cache, "answer")
    constrained = cfg.constrain and a_info.answers
    row = prediction_row("ask", answer, a_info.stage, len(record["choices"]), True, constrained)
    index = row["answer_index"]
    warnings = list(cache.get("warnings", []))
    if cfg.image is not None and r_info.vision_backbone is None and a_info.vision_backbone is None:
        warnings.append(f"both runs are text-only: --image {cfg.image} was not used")
    return {
        "question": record["question"], "context": record["hint"], "choices": record["choices"], "image": cfg.image,
        "rationale": rationale, "answer": answer, "answer_letter": row["answer_letter"], "answer_index": index,
        "answer_text": record["choices"][index] if index is not None else None, "constrained": constrained,
        "precision": cache["precision"],
        "rationale_run": {"path": cfg.rationale_run, "prompt_format": r_info.prompt_format,
                          "vision_backbone": r_info.vision_backbone, "alpha": _used_alpha(cfg, r_info)},
        "answer_run": {"path": cfg.answer_run, "prompt_format": a_info.prompt_format,
                       "vision_backbone": a_info.vision_backbone, "uses_rationale": a_info.needs_rationale,
                       "alpha": _used_alpha(cfg, a_info)},
        "warnings": warnings,
    }
