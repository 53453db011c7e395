"""`mmcot ask`: rationale, then answer, for custom questions (optionally with an image).

The two runs are used exactly as `mmcot generate` uses them (mmcot_cli.inference.generate: prompts rebuilt from the
run's recorded format); an image's features come from the run's feature store when it holds that very image, else
from the vision backbone the run's features came from (mmcot_cli.inference.ask_images). Both runs are loaded once
(`load_runs`) and then answer any number of questions (`answer_question`; `--questions FILE.jsonl`,
mmcot_cli.inference.questions), so many questions cost one model load.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from mmcot_cli.data.images import open_image
from mmcot_cli.data.prompts import build_prompt
from mmcot_cli.errors import UsageError
from mmcot_cli.inference.ask_images import encode_ask_image, image_features, recorded_alpha
from mmcot_cli.inference.generate import load_run, prediction_row
from mmcot_cli.inference.questions import Question, ask_record, read_questions
from mmcot_cli.inference.settings import AskConfig
from mmcot_cli.model.answer_constraint import AnswerConstraints, answer_budget_problem
from mmcot_cli.model.generation import generate_texts, resolve_device
from mmcot_cli.model.precision import autocast, inference_precision
from mmcot_cli.runs.meta import RunMeta

__all__ = ["AskConfig", "ask", "ask_questions", "ask_record", "answer_question", "encode_ask_image", "load_runs",
           "recorded_alpha"]


# Below this many parameters, decoding one question on a CPU is faster on one thread: each op is microseconds of
# work, and the thread pool's fork/join per op (spinning, on shared cores) costs more than it saves.
SMALL_MODEL_PARAMS = 5_000_000


@contextlib.contextmanager
def decode_threads(model: torch.nn.Module, device: torch.device):
    """One intra-op thread while a small model decodes on the CPU (restored after); otherwise as set."""
    if device.type != "cpu" or sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Stage:
    """One loaded run and what every question it answers shares."""

    path: str
    model: torch.nn.Module
    tokenizer: object
    info: RunMeta
    precision: str
    max_new_tokens: int


@dataclass
class AskRuns:
    """Both runs, loaded once; `cache` keeps vision encoders, opened feature stores and image features."""

    cfg: AskConfig
    device: torch.device
    rationale: Stage
    answer: Stage
    warnings: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)


def _load_stage(run: str, cfg: AskConfig, device, expect: str, warnings: list[str]) -> Stage:
    model, tokenizer, info = load_run(run, device)
    if expect == "rationale" and info.needs_rationale:
        raise UsageError(f"{run}: prompt format {info.prompt_format} is an answer-stage format; "
                         f"--{expect}-run must name a rationale-stage run")
    if expect == "answer" and not info.answers:
        raise UsageError(f"{run}: prompt format {info.prompt_format} does not output an answer; "
                         "--answer-run must name an answer-stage run")
    max_new = cfg.max_new_tokens or info.max_output_len
    budget = answer_budget_problem(tokenizer, info.prompt_format, max_new)
    if budget and expect == "answer":
        warnings.append(f"{run}: {budget}")
    precision, note = inference_precision(cfg.precision, info.precision, device)
    if note:
        warnings.append(f"{run}: {note}")
    return Stage(run, model, tokenizer, info, precision, max_new)


def load_runs(cfg: AskConfig) -> AskRuns:
    """Load the rationale run, then the answer run (each once), checking each does its stage's job."""
    device = resolve_device(cfg.device)
    warnings: list[str] = []
    rationale = _load_stage(cfg.rationale_run, cfg, device, "rationale", warnings)
    answer = _load_stage(cfg.answer_run, cfg, device, "answer", warnings)
    return AskRuns(cfg, device, rationale, answer, warnings)


def _generate(runs: AskRuns, stage: Stage, record: dict, image: str | None, rationale: str | None,
              expect: str) -> tuple[str, str | None]:
    """(generated text, where the image features came from) of one stage for one record."""
    cfg, info, model = runs.cfg, stage.info, stage.model
    source = build_prompt(record, info.prompt_format, info.use_caption, rationale)[0]
    feats, origin = None, None
    if model.image_shape is not None:
        feats, origin = image_features(info, model.image_shape, image, random_init=cfg.random_init_vision,
                                       device=runs.device, cache=runs.cache, run=stage.path,
                                       weights=cfg.vision_weights, alpha=cfg.alpha)
    constraints = (AnswerConstraints(stage.tokenizer, info.prompt_format, [len(record["choices"])])
                   if expect == "answer" and cfg.constrain and info.answers else None)
    with autocast(runs.device, stage.precision), decode_threads(model, runs.device):  # one precision throughout
        text = generate_texts(model, stage.tokenizer, [source],
                              feature_batch=(lambda idx: feats) if feats is not None else None,
                              batch_size=1, max_input_len=info.max_input_len, max_new_tokens=stage.max_new_tokens,
                              num_beams=cfg.num_beams, device=runs.device, description=expect,
                              constraints=constraints)[0]
    return text, origin


def _used_alpha(cfg: AskConfig, info: RunMeta, image: str | None) -> str | None:
    """The policy the image was decoded with for this run (None: no image, or a text-only run)."""
    if image is None or not info.vision_backbone:
        return None
    return cfg.alpha or recorded_alpha(info)


def answer_question(runs: AskRuns, question: Question) -> dict:
    """Rationale, then answer, for one question with the loaded runs."""
    cfg, record, image = runs.cfg, question.record, question.image
    r, a = runs.rationale, runs.answer
    rationale, r_origin = _generate(runs, r, record, image, None, "rationale")
    answer, a_origin = _generate(runs, a, record, image, rationale, "answer")
    constrained = cfg.constrain and a.info.answers
    row = prediction_row(record["qid"], answer, a.info.stage, len(record["choices"]), True, constrained)
    index = row["answer_index"]
    warnings = list(runs.warnings)
    if image is not None and r.info.vision_backbone is None and a.info.vision_backbone is None:
        warnings.append(f"both runs are text-only: --image {image} was not used")
    return {
        "qid": record["qid"], "question": record["question"], "context": record["hint"],
        "choices": record["choices"], "image": image,
        "rationale": rationale, "answer": answer, "answer_letter": row["answer_letter"], "answer_index": index,
        "answer_text": record["choices"][index] if index is not None else None, "constrained": constrained,
        "precision": {"rationale": r.precision, "answer": a.precision},
        "rationale_run": {"path": r.path, "prompt_format": r.info.prompt_format,
                          "vision_backbone": r.info.vision_backbone, "alpha": _used_alpha(cfg, r.info, image),
                          "image_features": r_origin},
        "answer_run": {"path": a.path, "prompt_format": a.info.prompt_format,
                       "vision_backbone": a.info.vision_backbone, "uses_rationale": a.info.needs_rationale,
                       "alpha": _used_alpha(cfg, a.info, image), "image_features": a_origin},
        "warnings": warnings,
    }


def ask(cfg: AskConfig) -> dict:
    """Rationale, then answer, for the one question of --question/--choices (optionally with an image)."""
    if cfg.questions is not None:
        raise UsageError("--questions FILE answers many questions: use ask_questions(cfg)")
    if cfg.question is None or cfg.choices is None:
        raise UsageError("missing option --question/--choices (or --questions FILE.jsonl)")
    question = Question(ask_record(cfg.question, cfg.choices, cfg.context), cfg.image)
    if cfg.image is not None:
        open_image(cfg.image, qid="ask")  # a missing, corrupt or oversized image fails before any model is built
    return answer_question(load_runs(cfg), question)


def ask_questions(cfg: AskConfig) -> list[dict]:
    """One result per line of --questions FILE.jsonl, in file order. Every line (and every image it names) is
    checked before a model is loaded; the models are loaded once for all of them."""
    if cfg.questions is None:
        raise UsageError("ask_questions needs --questions FILE.jsonl")
    questions = read_questions(cfg.questions)
    runs = load_runs(cfg)
    return [answer_question(runs, q) for q in questions]
