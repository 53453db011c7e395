"""Batched generation from a trained run (`mmcot generate`) and the single-example pipeline (`mmcot ask`).

Prompts are rebuilt exactly as the run was trained: the prompt format, caption use and stage recorded in the
model's mmcot config (and RUN_DIR/run_config.json). Answer-stage runs (QCMG/CQMG inputs) read stage-1 rationales
by qid. Examples are sorted by input length so batches pad little; `model.generate` encodes + fuses once per
example and decodes with the KV cache. Output files are written atomically, one object per qid, in split order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from mmcot_cli.collate import length_mask, pad_rows
from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.io import read_json, write_jsonl
from mmcot_cli.progress import make_progress
from mmcot_cli.score import extract_answer, letter_to_index  # the reference pattern, exactly one match

# Stage presets for runs whose metadata lacks max_output_len (the reference's output lengths).
DEFAULT_MAX_NEW_TOKENS = {"rationale": 512, "answer": 64}
ANSWER_OUTPUTS = ("A", "AL", "AE", "ALE", "AEL", "LA", "EA", "LEA", "ELA")  # outputs that state "The answer is (X)"

def resolve_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"invalid --device {device!r} (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {device}: no CUDA GPU is available here (use cpu or auto)")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"--device {device}: only {count} CUDA GPU(s) here (cuda:0 … cuda:{count - 1})")
    return dev


# ----------------------------------------------------------------------------------------------------------------
# The run: model + how it was trained


@dataclass
class RunInfo:
    """What generation needs to know about a trained run."""

    path: Path
    stage: str
    prompt_format: str
    use_caption: bool
    max_input_len: int
    max_output_len: int
    vision_backbone: str | None
    feature_shape: tuple[int, int] | None
    features_dir: str | None  # the features the run was trained on (default for --features)
    rationales_source: str | None  # the stage-1 rationales the run was trained with (default for --rationales)
    meta: dict = field(default_factory=dict)
    run_config: dict = field(default_factory=dict)

    @property
    def needs_rationale(self) -> bool:
        from mmcot_cli.prompts import uses_rationale

        return uses_rationale(self.prompt_format)

    @property
    def answers(self) -> bool:
        from mmcot_cli.prompts import split_format

        return split_format(self.prompt_format)[1] in ANSWER_OUTPUTS


def run_root(path: str | Path) -> Path:
    """RUN_DIR for a RUN_DIR or its model/ directory (so --run RUN_DIR/model finds run_config.json)."""
    from mmcot_cli.model import MODEL_SUBDIR

    path = Path(path)
    if path.name == MODEL_SUBDIR and (path / "config.json").is_file() and not (path / "run_config.json").is_file():
        return path.parent
    return path


def run_info(run_dir: str | Path, meta: dict) -> RunInfo:
    """Combine the model's mmcot meta with RUN_DIR/run_config.json (if present); the meta wins on conflicts."""
    from mmcot_cli.prompts import split_format

    run_dir = Path(run_dir)
    cfg_path = run_dir / "run_config.json"
    run_cfg = read_json(cfg_path) if cfg_path.is_file() else {}
    train_cfg = run_cfg.get("train_config") or {}

    def pick(key, *alts, default=None):
        for source in (meta, run_cfg, train_cfg):
            for k in (key, *alts):
                if source.get(k) is not None:
                    return source[k]
        return default

    prompt_format = pick("prompt_format")
    if not prompt_format:
        raise DataError(f"{run_dir}: the run records no prompt_format (model config mmcot meta / run_config.json)")
    split_format(prompt_format)  # unknown formats fail here, with the list of known ones
    out_fmt = split_format(prompt_format)[1]
    stage = pick("stage", default="answer" if out_fmt in ANSWER_OUTPUTS else "rationale")
    shape = pick("feature_shape", "image_shape")
    rationales = run_cfg.get("rationales")
    rationales_source = rationales.get("source") if isinstance(rationales, dict) else rationales
    return RunInfo(
        path=run_dir, stage=stage, prompt_format=prompt_format, use_caption=bool(pick("use_caption", default=False)),
        max_input_len=int(pick("max_input_len", default=512)),
        max_output_len=int(pick("max_output_len", default=DEFAULT_MAX_NEW_TOKENS.get(stage, 512))),
        vision_backbone=pick("vision_backbone"), feature_shape=tuple(shape) if shape else None,
        features_dir=pick("features_dir", "features"), rationales_source=rationales_source or train_cfg.get("rationales"),
        meta=meta, run_config=run_cfg,
    )


def load_run(run_dir: str | Path, device: torch.device):
    from mmcot_cli.model import load_run_model

    model, tokenizer, meta = load_run_model(run_dir, device=device)
    return model, tokenizer, run_info(run_root(run_dir), meta)


# ----------------------------------------------------------------------------------------------------------------
# Core: prompts → texts


def prediction_row(qid: str, text: str, stage: str, num_choices: int | None, answers: bool) -> dict:
    """One predictions-file object (docs/FORMATS.md)."""
    letter = extract_answer(text) if answers else None
    index = letter_to_index(letter, num_choices) if letter and num_choices else None
    return {"qid": str(qid), "prediction": text, "stage": stage, "answer_letter": letter, "answer_index": index}


def generate_texts(
    model,
    tokenizer,
    sources: Sequence[str],
    *,
    image_features: Callable[[list[int]], torch.Tensor] | None = None,
    batch_size: int = 16,
    max_input_len: int = 512,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    min_new_tokens: int | None = None,
    use_cache: bool = True,
    device: torch.device | str = "cpu",
    description: str = "generate",
) -> list[str]:
    """Generate one text per source, in the given order.

    Sources are tokenized once, sorted by length (longest first, so the first batch shows memory trouble early)
    and batched with per-batch padding. `image_features(indices)` returns (B, P, D) features for those positions.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not sources:
        return []
    enc = tokenizer(list(sources), max_length=max_input_len, truncation=True, padding=False)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    texts: list[str | None] = [None] * len(enc)
    model.eval()
    with torch.inference_mode(), make_progress() as progress:
        task = progress.add_task(description, total=len(order))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(enc[i]) for i in idx)
            ids = pad_rows([enc[i] for i in idx], pad_id, width)
            mask = length_mask([len(enc[i]) for i in idx], width)
            kwargs: dict[str, Any] = dict(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                num_beams=num_beams, do_sample=False, use_cache=use_cache)
            if min_new_tokens:
                kwargs["min_new_tokens"] = min_new_tokens
            if image_features is not None:
                kwargs["image_features"] = image_features(idx).to(device)
            out = model.generate(**kwargs)
            for i, text in zip(idx, tokenizer.batch_decode(out, skip_special_tokens=True)):
                texts[i] = text.strip()
            progress.advance(task, len(idx))
    return texts  # type: ignore[return-value]


def feature_getter(store, qids: Sequence[str]) -> Callable[[list[int]], torch.Tensor]:
    """`image_features` for generate_texts: positions in `qids` → the store's (B, P, D) batch."""
    return lambda idx: store.get_batch([qids[i] for i in idx])


def open_features(path: str | Path, model_shape: tuple[int, int] | None, run: Path):
    from mmcot_cli.features import open_store

    store = open_store(path)
    shape = tuple(int(x) for x in store.feature_shape)
    if model_shape is not None and shape != tuple(model_shape):
        raise DataError(f"{path}: features have shape {list(shape)} but the model in {run} was trained on "
                        f"{list(model_shape)} (backbone {getattr(store, 'backbone', '?')})")
    return store


def check_feature_coverage(store, records: Sequence[dict], split: str) -> None:
    """Every record with an image must have a row in the store (unless extraction skipped it as bad): a store
    extracted for other splits (or an unfinished one) would otherwise feed the model zeros without a word."""
    bad = {str(b.get("qid")) for b in (store.manifest.get("bad") or []) if isinstance(b, dict)}
    with_image = [str(r["qid"]) for r in records if r.get("image_paths") and str(r["qid"]) not in bad]
    missing = [q for q in with_image if not store.has(q)]
    if missing:
        raise DataError(f"{store.path}: no features for qid {missing[0]} ({len(missing)} of the {len(with_image)} "
                        f"problems with an image in split {split!r} have none); run `mmcot extract --split {split} "
                        f"--out {store.path}` with the same backbone, or pass the right --features")


# ----------------------------------------------------------------------------------------------------------------
# mmcot generate


@dataclass
class GenerateConfig:
    run: str
    data_dir: str
    splits: tuple[str, ...] = ("test",)
    features: str | None = None  # None = the features directory the run was trained on
    rationales: str | None = None  # stage-1 run dir or predictions file; None = the one the run was trained with
    out: str | None = None  # None = RUN_DIR/preds-<split>.jsonl; with several splits it must contain "{split}"
    batch_size: int = 16
    max_new_tokens: int | None = None  # None = the run's max_output_len
    num_beams: int = 1
    device: str = "auto"
    limit: int | None = None  # first N records of each split (smoke tests)


def output_path(cfg: GenerateConfig, split: str) -> Path:
    if cfg.out is None:
        return run_root(cfg.run) / f"preds-{split}.jsonl"
    if len(cfg.splits) > 1 and "{split}" not in cfg.out:
        raise UsageError("--out with several splits must contain '{split}' (or omit --out to write "
                         "RUN_DIR/preds-<split>.jsonl)")
    return Path(cfg.out.replace("{split}", split))


def generate(cfg: GenerateConfig) -> dict:
    """Generate predictions for each split; returns a summary with one entry per written file."""
    from mmcot_cli.data import load_records
    from mmcot_cli.prompts import build_prompt

    if not cfg.splits:
        raise UsageError("no split given")
    if cfg.num_beams < 1:
        raise UsageError("--num-beams must be at least 1")
    outs = {split: output_path(cfg, split) for split in cfg.splits}
    device = resolve_device(cfg.device)
    model, tokenizer, info = load_run(cfg.run, device)

    store = None
    features = cfg.features or (info.features_dir if model.image_shape is not None else None)
    if model.image_shape is not None:
        if not features:
            raise UsageError(f"{cfg.run}: the model fuses image features {list(model.image_shape)}; pass --features")
        store = open_features(features, model.image_shape, Path(cfg.run))
    elif cfg.features:
        raise UsageError(f"{cfg.run}: the model is text-only; --features would not be used")

    rationale_source = None
    if cfg.rationales and not info.needs_rationale:
        raise UsageError(f"{cfg.run}: prompt format {info.prompt_format} takes no rationale; --rationales would "
                         "not be used")
    if info.needs_rationale:
        rationale_source = cfg.rationales or info.rationales_source
        if not rationale_source:
            raise UsageError(f"{cfg.run}: prompt format {info.prompt_format} needs stage-1 rationales; "
                             "pass --rationales RUN_R (or a preds file)")

    max_new = cfg.max_new_tokens or info.max_output_len
    summary: dict[str, Any] = {
        "run": str(cfg.run), "stage": info.stage, "prompt_format": info.prompt_format, "device": str(device),
        "features": str(features) if store is not None else None, "rationales": rationale_source,
        "max_new_tokens": max_new, "num_beams": cfg.num_beams, "splits": {},
    }
    # Every split's inputs (records, rationales by qid, prompts) are checked before anything is generated, so a
    # bad later split does not leave the earlier splits' outputs written by a command that failed.
    inputs = {}
    for split in cfg.splits:
        records = load_records(cfg.data_dir, split)
        if cfg.limit is not None:
            records = records[:cfg.limit]
        qids = [str(r["qid"]) for r in records]
        rationales: list[str | None] = [None] * len(records)
        if rationale_source:
            from mmcot_cli.rationales import load_rationales

            rationales = load_rationales(rationale_source, split).for_qids(qids)  # missing qid → DataError
        sources = [build_prompt(r, info.prompt_format, info.use_caption, rat)[0]
                   for r, rat in zip(records, rationales)]
        if store is not None:
            check_feature_coverage(store, records, split)
        inputs[split] = (records, qids, sources)
    for split, (records, qids, sources) in inputs.items():
        start = time.perf_counter()
        texts = generate_texts(
            model, tokenizer, sources, image_features=feature_getter(store, qids) if store is not None else None,
            batch_size=cfg.batch_size, max_input_len=info.max_input_len, max_new_tokens=max_new,
            num_beams=cfg.num_beams, device=device, description=f"generate {split}")
        seconds = time.perf_counter() - start
        rows = [prediction_row(q, t, info.stage, len(r.get("choices") or []), info.answers)
                for q, t, r in zip(qids, texts, records)]
        write_jsonl(outs[split], rows)
        summary["splits"][split] = {
            "out": str(outs[split]), "count": len(rows), "seconds": round(seconds, 3),
            "samples_per_s": round(len(rows) / seconds, 2) if seconds > 0 else None,
            **({"answer_found": sum(r["answer_letter"] is not None for r in rows)} if info.answers else {}),
        }
    return summary


# ----------------------------------------------------------------------------------------------------------------
# mmcot ask


@dataclass
class AskConfig:
    rationale_run: str
    answer_run: str
    question: str
    choices: list[str]
    context: str = ""
    image: str | None = None
    random_init_vision: bool = False  # build the recorded vision backbone without weights (offline demos/tests)
    max_new_tokens: int | None = None  # per stage; None = each run's max_output_len
    num_beams: int = 1
    device: str = "auto"


def ask_record(question: str, choices: Sequence[str], context: str = "") -> dict:
    """A DATA_DIR-shaped record for one user question (no gold answer: `answer` is a placeholder)."""
    choices = [c.strip() for c in choices]
    if not question.strip():
        raise UsageError("--question is empty")
    if not 2 <= len(choices) <= 5 or not all(choices):
        raise UsageError(f"--choices needs 2 to 5 non-empty options separated by '|', got {len(choices)}")
    return {"qid": "ask", "split": "ask", "question": question.strip(), "hint": context.strip(), "caption": "",
            "choices": choices, "answer": 0, "lecture": "", "solution": "", "image": None, "image_paths": []}


def _vision_source(info: RunInfo) -> tuple[str | None, str | None]:
    """The (variant, weights) the run's features were extracted with, from its meta or features manifest."""
    variant = info.meta.get("vision_variant")
    weights = info.meta.get("vision_weights")
    if (variant is None or weights is None) and info.features_dir and Path(info.features_dir).is_dir():
        try:
            manifest = read_json(Path(info.features_dir) / "manifest.json")
            variant = variant or manifest.get("variant")
            weights = weights or manifest.get("weights")
        except DataError:
            pass
    return variant, weights


def image_features_for(info: RunInfo, image_shape: tuple[int, int], image_path: str | None, *,
                       random_init: bool, device: torch.device, cache: dict) -> torch.Tensor:
    """(1, P, D) features of one image with the run's recorded vision backbone; zeros when there is no image
    (what the feature store returns for image-less problems, i.e. what the model saw in training)."""
    if image_path is None:
        return torch.zeros(1, *image_shape)
    if not info.vision_backbone:
        raise DataError(f"{info.path}: the run records no vision backbone to encode --image with")
    from mmcot_cli.hookspecs import VisionBuildOptions
    from mmcot_cli.images import load_rgb
    from mmcot_cli.plugins import build_vision_encoder, get_vision_backbone

    variant, weights = _vision_source(info)
    if random_init:
        weights = None
    key = (info.vision_backbone, variant, weights, random_init)
    if key not in cache:
        backbone = get_vision_backbone(info.vision_backbone)
        encoder = build_vision_encoder(backbone, VisionBuildOptions(variant=variant, weights=weights,
                                                                    random_init=random_init, device=str(device)))
        image = load_rgb(image_path, qid="ask")
        with torch.inference_mode():
            cache[key] = encoder.encode(encoder.preprocess(image).unsqueeze(0).to(device)).float().cpu()
    feats = cache[key]
    if tuple(feats.shape[1:]) != tuple(image_shape):
        raise DataError(f"{info.vision_backbone} produced features {list(feats.shape[1:])} but the model in "
                        f"{info.path} expects {list(image_shape)}")
    return feats


def _ask_one(run: str, record: dict, rationale: str | None, cfg: AskConfig, device, cache: dict,
             expect_stage: str) -> tuple[str, RunInfo]:
    from mmcot_cli.prompts import build_prompt

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
        feats = image_features_for(info, model.image_shape, cfg.image, random_init=cfg.random_init_vision,
                                   device=device, cache=cache)
    text = generate_texts(model, tokenizer, [source], image_features=(lambda idx: feats) if feats is not None else None,
                          batch_size=1, max_input_len=info.max_input_len,
                          max_new_tokens=cfg.max_new_tokens or info.max_output_len, num_beams=cfg.num_beams,
                          device=device, description=f"{expect_stage}")[0]
    return text, info


def ask(cfg: AskConfig) -> dict:
    """Rationale, then answer, for one question (optionally with an image)."""
    record = ask_record(cfg.question, cfg.choices, cfg.context)
    if cfg.image is not None and not Path(cfg.image).is_file():
        raise DataError(f"{cfg.image}: image file not found")
    device = resolve_device(cfg.device)
    cache: dict = {}
    rationale, r_info = _ask_one(cfg.rationale_run, record, None, cfg, device, cache, "rationale")
    answer, a_info = _ask_one(cfg.answer_run, record, rationale, cfg, device, cache, "answer")
    row = prediction_row("ask", answer, a_info.stage, len(record["choices"]), True)
    index = row["answer_index"]
    warnings = []
    if cfg.image is not None and r_info.vision_backbone is None and a_info.vision_backbone is None:
        warnings.append(f"both runs are text-only: --image {cfg.image} was not used")
    return {
        "question": record["question"], "context": record["hint"], "choices": record["choices"], "image": cfg.image,
        "rationale": rationale, "answer": answer, "answer_letter": row["answer_letter"], "answer_index": index,
        "answer_text": record["choices"][index] if index is not None else None,
        "rationale_run": {"path": cfg.rationale_run, "prompt_format": r_info.prompt_format,
                          "vision_backbone": r_info.vision_backbone},
        "answer_run": {"path": cfg.answer_run, "prompt_format": a_info.prompt_format,
                       "vision_backbone": a_info.vision_backbone, "uses_rationale": a_info.needs_rationale},
        "warnings": warnings,
    }
