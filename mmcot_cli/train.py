"""`mmcot train`: the two-stage training loop on Hugging Face Accelerate, with resumable checkpoints.

One process or many (`accelerate launch` / `torchrun`): every process builds the same batches from
(seed, epoch) and takes its share; only the main process writes files. Checkpoints are written at optimizer-step
boundaries, so resuming needs the weights, optimizer, scheduler, every process's RNG state and the data position
(epoch, batches consumed) — nothing else.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn

from mmcot_cli import progress
from mmcot_cli.collate import Collator, Example, LengthGroupedBatchSampler, tokenize_pairs
from mmcot_cli.errors import DataError, MMCoTError, UsageError, first_line
from mmcot_cli.io import atomic_open, read_json, read_jsonl, write_json
from mmcot_cli.rationales import Rationales, load_rationales

STAGES = {
    # stage: (prompt format, max output tokens, validation metric) — the reference's stage-1/stage-2 scripts.
    "rationale": ("QCM-E", 512, "rougeL"),
    "answer": ("QCMG-A", 64, "accuracy"),
}
TRAIN_ON = ("gold", "generated")
MIXED_PRECISION = ("no", "bf16", "fp16")
CHECKPOINT_PREFIX = "step-"


class TrainingDiverged(MMCoTError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    stage: str
    data_dir: str
    text_model: str
    out_dir: str
    features: str | None = None
    rationales: str | None = None  # stage-1 run dir or predictions file (answer stage with a G format)
    train_on: str = "gold"  # rationales in the train split's inputs: gold lecture+solution, or stage-1 preds
    prompt_format: str | None = None  # None = the stage preset
    use_caption: bool = False
    epochs: int = 20
    lr: float = 5e-5
    batch_size: int = 8
    eval_batch_size: int | None = None  # None = 2 × batch_size
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_input_len: int = 512
    max_output_len: int | None = None  # None = the stage preset
    mixed_precision: str = "no"
    seed: int = 42
    eval_every: str | int = "epoch"  # "epoch", a number of optimizer steps, or 0 for never
    save_every: int = 500  # optimizer steps between resume checkpoints (one is also written every epoch)
    keep_checkpoints: int = 2
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None
    num_beams: int = 1
    random_init: bool = False  # build a registered/hub text backbone from its config (offline tests)
    text_options: dict[str, Any] = field(default_factory=dict)  # e.g. t5-scratch d_model, layers, vocab size
    resume: bool = False

    def resolved(self) -> "TrainConfig":
        """Validate options and fill in the stage presets."""
        if self.stage not in STAGES:
            raise UsageError(f"unknown stage {self.stage!r}; choose one of: {', '.join(STAGES)}")
        if self.train_on not in TRAIN_ON:
            raise UsageError(f"--train-on must be one of {', '.join(TRAIN_ON)}, got {self.train_on!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise UsageError(f"mixed precision must be one of {', '.join(MIXED_PRECISION)}")
        for name in ("epochs", "batch_size", "grad_accum", "max_input_len"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UsageError("--warmup-ratio must be in [0, 1)")
        fmt, out_len, _ = STAGES[self.stage]
        cfg = TrainConfig(**{**asdict(self)})
        cfg.prompt_format = self.prompt_format or fmt
        cfg.max_output_len = self.max_output_len or out_len
        cfg.eval_batch_size = self.eval_batch_size or 2 * self.batch_size
        cfg.eval_every = parse_eval_every(self.eval_every)
        if needs_rationale(cfg.prompt_format) and not cfg.rationales:
            raise UsageError(f"prompt format {cfg.prompt_format} puts a stage-1 rationale in the input: "
                             "pass --rationales RUN_R (the rationale run with preds-<split>.jsonl)")
        if cfg.train_on == "generated" and not needs_rationale(cfg.prompt_format):
            raise UsageError(f"--train-on generated needs a prompt format with a rationale input (QCMG-A), "
                             f"not {cfg.prompt_format}")
        return cfg


def parse_eval_every(value: str | int) -> str | int:
    if isinstance(value, int):
        if value < 0:
            raise UsageError("--eval-every must be 'epoch' or a number of steps >= 0")
        return value
    text = str(value).strip().lower()
    if text == "epoch":
        return "epoch"
    if text in ("never", "none"):
        return 0
    try:
        return parse_eval_every(int(text))
    except ValueError:
        raise UsageError(f"--eval-every must be 'epoch' or a number of steps, got {value!r}") from None


def needs_rationale(prompt_format: str) -> bool:
    """QCMG-A / CQMG-A: the input carries a rationale. Unknown formats raise UnknownNameError (exit 2)."""
    from mmcot_cli.prompts import uses_rationale

    return uses_rationale(prompt_format)


# --------------------------------------------------------------------------- data


@dataclass
class StageData:
    examples: list[Example]
    records: list[dict]
    sources: list[str]  # aligned with examples (validation generates from these, as `mmcot generate` does)
    targets: dict[str, str]  # qid → target text (the rationale stage's ROUGE-L reference)


def split_records(cfg: TrainConfig, split: str, limit: int | None) -> list[dict]:
    """The first `limit` records of `split` (all of them for None), read once per training run."""
    from mmcot_cli.data import load_records

    records = load_records(cfg.data_dir, split)
    return records if limit is None else records[:limit]


def stage_prompts(cfg: TrainConfig, records: list[dict], rationales: Rationales | None) -> list[tuple[str, str]]:
    """(source, target) per record; also the texts a from-scratch tokenizer is trained on before any model exists."""
    from mmcot_cli.prompts import build_prompt

    texts = rationales.for_qids([str(r["qid"]) for r in records]) if rationales else [None] * len(records)
    return [build_prompt(r, cfg.prompt_format, use_caption=cfg.use_caption, rationale=t)
            for r, t in zip(records, texts)]


def build_stage_data(cfg: TrainConfig, records: list[dict], pairs: list[tuple[str, str]], tokenizer) -> StageData:
    """Records and their (source, target) prompts → tokenized examples."""
    qids = [str(r["qid"]) for r in records]
    examples = tokenize_pairs(tokenizer, qids, [s for s, _ in pairs], [t for _, t in pairs], cfg.max_input_len,
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


# --------------------------------------------------------------------------- model


def _model_meta(cfg: TrainConfig, store) -> dict:
    return {
        "stage": cfg.stage,
        "prompt_format": cfg.prompt_format,
        "use_caption": cfg.use_caption,
        "text_backbone": cfg.text_model,
        "vision_backbone": getattr(store, "backbone", None) if store is not None else None,
        # what `mmcot ask` needs to rebuild the same encoder for a new image, even if FEATURES_DIR is gone
        "vision_variant": store.manifest.get("variant") if store is not None else None,
        "vision_weights": store.manifest.get("weights") if store is not None else None,
        "feature_shape": list(store.feature_shape) if store is not None else None,
        "max_input_len": cfg.max_input_len,
        "max_output_len": cfg.max_output_len,
    }


# --------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def list_checkpoints(run_dir: Path) -> list[Path]:
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir()
             if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(run_dir: Path, *, model, tokenizer, meta: dict, optimizer, scheduler, state: dict,
                    rng_states: list[dict], keep: int) -> Path:
    """Write checkpoints/step-N/ (model dir, optimizer, scheduler, per-process RNG, position) atomically."""
    from mmcot_cli.model import save_run_model

    ckpt_root = run_dir / "checkpoints"
    final = ckpt_root / f"{CHECKPOINT_PREFIX}{state['global_step']:08d}"
    tmp = ckpt_root / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_run_model(model, tokenizer, tmp / "model", meta)
    # Optimizer state is tensors + plain containers; it is read back with torch.load(weights_only=True).
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    write_json(tmp / "scheduler.json", scheduler.state_dict())
    write_json(tmp / "rng.json", rng_states)
    write_json(tmp / "state.json", state)  # written last: its presence marks a complete checkpoint
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_optimizer_state(ckpt: Path, optimizer, scheduler) -> None:

    try:
        state = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / overwritten file: pickle, zip and torch errors of many kinds
        raise DataError(f"{ckpt / 'optimizer.pt'}: cannot read the optimizer state ({first_line(e)}); remove "
                        f"{ckpt} to resume from the checkpoint before it") from None
    optimizer.load_state_dict(state)
    scheduler.load_state_dict(read_json(ckpt / "scheduler.json"))


# Fields that must match between the original run and a resumed one (others — e.g. epochs — may change).
_RESUME_INVARIANTS = ("stage", "text_model", "features", "rationales", "train_on", "prompt_format", "use_caption",
                      "lr", "batch_size", "grad_accum", "warmup_ratio", "weight_decay", "max_input_len",
                      "max_output_len", "seed", "train_split", "limit_train")


def _check_resume_config(run_dir: Path, cfg: TrainConfig, world_size: int) -> None:
    saved = read_json(run_dir / "run_config.json")
    old = saved.get("train_config", {})
    for key in _RESUME_INVARIANTS:
        if key in old and old[key] != asdict(cfg)[key]:
            raise UsageError(f"{run_dir}/run_config.json: --resume with a different {key} "
                             f"({old[key]!r} before, {asdict(cfg)[key]!r} now)")
    if saved.get("world_size", world_size) != world_size:
        raise UsageError(f"{run_dir}: run was trained with {saved['world_size']} processes, resumed with "
                         f"{world_size}; the data position is per process, so use the same number")


# --------------------------------------------------------------------------- evaluation


def validation_predictions(model, tokenizer, data: StageData, indices: list[int], store, cfg: TrainConfig,
                           device) -> dict[str, str]:
    """qid → generated text for data.examples[indices], through the same code path as `mmcot generate`."""
    from mmcot_cli.generate import feature_getter, generate_texts

    qids = [data.examples[i].qid for i in indices]
    was = progress._enabled  # the user's --quiet choice, restored afterwards
    progress.set_enabled(False)  # rich allows one live display: the training bar keeps the screen
    try:
        texts = generate_texts(model, tokenizer, [data.sources[i] for i in indices],
                               image_features=feature_getter(store, qids) if store is not None else None,
                               batch_size=cfg.eval_batch_size, max_input_len=cfg.max_input_len,
                               max_new_tokens=cfg.max_output_len, num_beams=cfg.num_beams, device=device)
    finally:
        progress.set_enabled(was)
    return dict(zip(qids, texts))


def compute_metric(stage: str, preds: dict[str, str], data: StageData) -> float:
    """Answer stage: accuracy of the extracted answer letter. Rationale stage: ROUGE-L F (×100) vs the target."""
    from mmcot_cli import score

    qids = [e.qid for e in data.examples]
    if stage == "answer":
        # Strict: no parsable letter counts as wrong (no random fallback during model selection).
        by_qid = {str(r["qid"]): r for r in data.records}
        correct = 0
        for q in qids:
            letter = score.extract_answer(preds[q])
            idx = score.letter_to_index(letter, len(by_qid[q]["choices"])) if letter else None
            correct += int(idx is not None and idx == int(by_qid[q]["answer"]))
        return 100.0 * correct / max(1, len(qids))
    # Against the target text ("Solution: …"), like the reference's validation.
    value = score.rouge_l([preds[q] for q in qids], [data.targets[q] for q in qids])
    return float(value) if value is not None else 0.0


# --------------------------------------------------------------------------- the loop


def _compute_loss(model, batch: dict) -> torch.Tensor:
    """One forward pass; a separate function so tests can inject a NaN."""
    return model(**batch).loss


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def _truncate_metrics(path: Path, last_step: int) -> None:
    """On resume, drop rows logged after the checkpoint (they will be logged again)."""
    if not path.is_file():
        return
    rows = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= last_step]
    with atomic_open(path) as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def _append_metrics(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def _make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    # Under torchrun without a GPU, Accelerate only sets up a (gloo) process group when told it runs on CPU;
    # `accelerate launch` sets that itself.
    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1 or int(os.environ.get("WORLD_SIZE", 1)) > 1
    cpu = launched and not torch.cuda.is_available()
    # "no" defers to the launcher (`accelerate launch --mixed_precision bf16` / accelerate config); a flag wins.
    precision = None if cfg.mixed_precision == "no" else cfg.mixed_precision
    try:
        return Accelerator(mixed_precision=precision, cpu=cpu)
    except ValueError as e:  # e.g. fp16 without a GPU
        raise UsageError(f"mixed precision {cfg.mixed_precision!r} is not available here: {e}") from None


def train(cfg: TrainConfig) -> dict:
    """Train one stage; RUN_DIR/model/ ends up holding the best validation model. Returns a summary dict."""
    from accelerate.utils import broadcast_object_list, gather_object, set_seed

    from mmcot_cli.model import build_model, load_run_model

    cfg = cfg.resolved()
    run_dir = Path(cfg.out_dir)
    accelerator = _make_accelerator(cfg)
    main = accelerator.is_main_process
    world, rank = accelerator.num_processes, accelerator.process_index

    checkpoints = list_checkpoints(run_dir) if cfg.resume else []
    if cfg.resume and not (run_dir / "run_config.json").is_file():
        raise UsageError(f"{run_dir}: nothing to resume (no run_config.json)")
    if cfg.resume:
        _check_resume_config(run_dir, cfg, world)
    elif (run_dir / "run_config.json").exists() or (run_dir / "model").exists():
        raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")

    set_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    # Each split's records are read and its prompts built once, here, for every use below.
    train_records = split_records(cfg, cfg.train_split, cfg.limit_train)
    val_records = split_records(cfg, cfg.val_split, cfg.limit_val) if cfg.val_split else None
    store = None
    if cfg.features:
        from mmcot_cli.features import open_store
        from mmcot_cli.generate import check_feature_coverage

        store = open_store(cfg.features)
        check_feature_coverage(store, train_records, cfg.train_split)
        if val_records is not None:
            check_feature_coverage(store, val_records, cfg.val_split)
    image_shape = tuple(store.feature_shape) if store is not None else None
    train_r, val_r, rationale_info = stage_rationales(cfg)
    train_pairs = stage_prompts(cfg, train_records, train_r)
    val_pairs = stage_prompts(cfg, val_records, val_r) if val_records is not None else None
    meta = _model_meta(cfg, store)

    # Model and tokenizer. A from-scratch tokenizer must be identical on every process, so the main process
    # builds the model once and the others load that exact copy; a resume loads the checkpoint's copy.
    resume_from = checkpoints[-1] if checkpoints else None
    if resume_from is not None:
        model, tokenizer, _ = load_run_model(resume_from / "model")
    else:
        init_dir = run_dir / "checkpoints" / "init"
        if main:
            texts = [text for pair in train_pairs for text in pair]  # source, target, source, …
            model, tokenizer = build_model(cfg.text_model, image_shape, random_init=cfg.random_init,
                                           train_texts=texts, text_options=dict(cfg.text_options) or None)
            if world > 1:
                from mmcot_cli.model import save_run_model

                save_run_model(model, tokenizer, init_dir, meta)
        accelerator.wait_for_everyone()
        if not main:
            model, tokenizer, _ = load_run_model(init_dir)
        accelerator.wait_for_everyone()
        if main and init_dir.exists():
            shutil.rmtree(init_dir)
    # Model building may have drawn random numbers: start the loop from a known state (distinct per process,
    # so data-parallel replicas do not share dropout masks).
    set_seed(cfg.seed, device_specific=True)

    train_data = build_stage_data(cfg, train_records, train_pairs, tokenizer)
    if not train_data.examples:
        raise UsageError(f"{cfg.data_dir}: split {cfg.train_split!r} has no records to train on")
    val_data = build_stage_data(cfg, val_records, val_pairs, tokenizer) if val_records is not None else None
    do_eval = bool(val_data and val_data.examples) and cfg.eval_every != 0
    metric_name = STAGES[cfg.stage][2]

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    collator = Collator(pad_token_id=pad_id, image_features=store.get_batch if store is not None else None)
    sampler = LengthGroupedBatchSampler([e.length for e in train_data.examples], cfg.batch_size, seed=cfg.seed,
                                        num_replicas=world, rank=rank)
    batches_per_epoch = sampler.batches_per_epoch()
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs

    # AdamW; no weight decay on biases and norm scales (1-D parameters), as the HF Trainer does.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    # The scheduler is not passed to prepare(): Accelerate would step it once per process.
    model, optimizer = accelerator.prepare(model, optimizer)

    position = {"epoch": 0, "batch": 0, "global_step": 0}
    best = {"value": None, "step": None, "epoch": None}
    samples_seen = 0
    since_log: list[float] = []  # optimizer-step losses since the last metrics row (kept across a resume)
    if resume_from is not None:
        load_optimizer_state(resume_from, optimizer, scheduler)
        state = read_json(resume_from / "state.json")
        position = {k: int(state[k]) for k in ("epoch", "batch", "global_step")}
        best = state["best"]
        samples_seen = int(state.get("samples_seen", 0))
        since_log = [float(x) for x in state.get("losses_since_log", [])]
        _set_rng_state(read_json(resume_from / "rng.json")[rank])
        if main:
            _truncate_metrics(run_dir / "metrics.jsonl", position["global_step"])
    elif main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.resume:  # crashed before its first checkpoint: start over, dropping rows logged by that attempt
            _truncate_metrics(run_dir / "metrics.jsonl", 0)
        write_json(run_dir / "run_config.json", {
            "train_config": asdict(cfg),
            "stage": cfg.stage,
            "prompt_format": cfg.prompt_format,
            "text_backbone": cfg.text_model,
            "vision_backbone": meta["vision_backbone"],
            "feature_shape": meta["feature_shape"],
            "features_dir": str(Path(cfg.features).resolve()) if cfg.features else None,
            "use_caption": cfg.use_caption,
            "max_input_len": cfg.max_input_len,
            "max_output_len": cfg.max_output_len,
            "seed": cfg.seed,
            "rationales": rationale_info,
            "world_size": world,
            "mixed_precision": str(accelerator.mixed_precision),
            "train_examples": len(train_data.examples),
            "val_examples": len(val_data.examples) if val_data else 0,
            "created_by": "mmcot train",
        })
    accelerator.wait_for_everyone()

    metrics_path = run_dir / "metrics.jsonl"
    last_ckpt: list[Path | None] = [resume_from]
    val_share = list(range(len(val_data.examples)))[rank::world] if do_eval else []

    def evaluate(epoch: int, step: int, train_loss: float | None, sps: float | None) -> None:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.eval()
        with torch.random.fork_rng(devices=[]):  # evaluation must not shift the training RNG stream
            preds = validation_predictions(unwrapped, tokenizer, val_data, val_share, store, cfg,
                                           accelerator.device)
        unwrapped.train()
        all_preds: dict[str, str] = {}
        for part in gather_object([preds]) if world > 1 else [preds]:
            all_preds.update(part)
        value = [compute_metric(cfg.stage, all_preds, val_data)
                 if main else None]
        if world > 1:
            broadcast_object_list(value)
        value = value[0]
        improved = best["value"] is None or value > best["value"]
        if improved:
            best.update(value=value, step=step, epoch=epoch)
        if main:
            if improved:
                from mmcot_cli.model import save_run_model

                save_run_model(unwrapped, tokenizer, run_dir / "model", meta)
            _append_metrics(metrics_path, {"epoch": epoch, "step": step, "train_loss": train_loss,
                                           f"val_{metric_name}": value, "best": improved,
                                           "lr": scheduler.get_last_lr()[0], "samples_per_s": sps,
                                           "val_examples": len(val_data.examples)})
        accelerator.wait_for_everyone()

    def checkpoint(epoch: int, batch: int) -> None:
        rng_states = gather_object([_rng_state()]) if world > 1 else [_rng_state()]
        if main:
            state = {"epoch": epoch, "batch": batch, "global_step": position["global_step"], "best": best,
                     "samples_seen": samples_seen, "world_size": world, "losses_since_log": list(since_log)}
            last_ckpt[0] = save_checkpoint(run_dir, model=accelerator.unwrap_model(model), tokenizer=tokenizer,
                                           meta=meta, optimizer=optimizer, scheduler=scheduler, state=state,
                                           rng_states=rng_states, keep=cfg.keep_checkpoints)
        accelerator.wait_for_everyone()

    model.train()
    t_train, session_samples = 0.0, 0  # throughput of this session only (a resume restarts the clock)
    window_losses: list[float] = []
    start_epoch, start_batch = position["epoch"], position["batch"]
    if not main:
        progress.set_enabled(False)
    bar = progress.make_progress(TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[sps]} samples/s"))
    with bar:
        task = bar.add_task(f"train {cfg.stage}", total=total_steps, completed=position["global_step"], loss="-",
                            sps="-")
        for epoch in range(start_epoch, cfg.epochs):
            first = start_batch if epoch == start_epoch else 0
            sampler.set_epoch(epoch, first)
            for b_idx, indices in enumerate(sampler, start=first):
                t0 = time.perf_counter()
                # Accumulation windows are aligned to the epoch's batch index, so a resume at a window
                # boundary (where every checkpoint is taken) sees the same windows.
                win_start = (b_idx // cfg.grad_accum) * cfg.grad_accum
                win_size = min(cfg.grad_accum, batches_per_epoch - win_start)
                last_in_window = b_idx + 1 == win_start + win_size
                batch = _to_device(collator([train_data.examples[i] for i in indices]), accelerator.device)
                with contextlib.nullcontext() if last_in_window else accelerator.no_sync(model):
                    loss = _compute_loss(model, batch)
                    accelerator.backward(loss / win_size)
                window_losses.append(float(loss.detach()))
                samples_seen += len(indices) * world
                session_samples += len(indices) * world
                if not last_in_window:
                    t_train += time.perf_counter() - t0
                    continue
                mean_loss = torch.tensor(sum(window_losses) / len(window_losses), device=accelerator.device)
                mean_loss = float(accelerator.reduce(mean_loss, reduction="mean")) if world > 1 else float(mean_loss)
                window_losses.clear()
                if not math.isfinite(mean_loss):
                    raise TrainingDiverged(
                        f"loss is {mean_loss} at epoch {epoch + 1}, optimizer step {position['global_step'] + 1}; "
                        f"training stopped. Last good checkpoint: {last_ckpt[0] or 'none written yet'} "
                        "(try a lower --lr or no --fp16, then --resume)")
                accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                position["global_step"] += 1
                since_log.append(mean_loss)
                t_train += time.perf_counter() - t0
                sps = _sps(session_samples, t_train)
                bar.update(task, advance=1, loss=f"{mean_loss:.4f}", sps=f"{sps or 0:.1f}")
                step = position["global_step"]
                if do_eval and isinstance(cfg.eval_every, int) and step % cfg.eval_every == 0:
                    evaluate(epoch + 1, step, _mean(since_log), sps)
                    since_log.clear()
                if cfg.save_every and step % cfg.save_every == 0 and b_idx + 1 < batches_per_epoch:
                    checkpoint(epoch, b_idx + 1)
            sps = _sps(session_samples, t_train)
            if do_eval and cfg.eval_every == "epoch":
                evaluate(epoch + 1, position["global_step"], _mean(since_log), sps)
            elif main:
                _append_metrics(metrics_path, {"epoch": epoch + 1, "step": position["global_step"],
                                               "train_loss": _mean(since_log), "lr": scheduler.get_last_lr()[0],
                                               "samples_per_s": sps})
            since_log.clear()
            checkpoint(epoch + 1, 0)

    if not do_eval and main:
        from mmcot_cli.model import save_run_model

        save_run_model(accelerator.unwrap_model(model), tokenizer, run_dir / "model", meta)
    accelerator.wait_for_everyone()
    return {
        "run_dir": str(run_dir),
        "model_dir": str(run_dir / "model"),
        "stage": cfg.stage,
        "prompt_format": cfg.prompt_format,
        "epochs": cfg.epochs,
        "steps": position["global_step"],
        "train_examples": len(train_data.examples),
        "val_examples": len(val_data.examples) if val_data else 0,
        "world_size": world,
        "metric": metric_name if do_eval else None,
        "best": best if do_eval else None,
        "samples_per_s": _sps(session_samples, t_train),
        "resumed_from": str(resume_from) if resume_from else None,
        "rationales": rationale_info,
    }


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _sps(samples: int, seconds: float) -> float | None:
    return round(samples / seconds, 3) if seconds > 0 else None
