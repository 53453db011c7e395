"""`mmcot train`: the training loop of one stage (rationale or answer) on Hugging Face Accelerate, with resumable checkpoints.

One process or many (`accelerate launch` / `torchrun`): every process builds the same batches from
(seed, epoch) and takes its share; only the main process writes files. Checkpoints are written at optimizer-step
boundaries, so resuming needs the weights, optimizer, scheduler, every process's RNG state and the data position
(epoch, batches consumed) — nothing else.

Layout: `train()` reads the inputs (stage_data), builds the model, then runs a flat loop (`train_epochs` →
`run_batch`, `evaluate`, `checkpoint`, `end_epoch`) over two plain dataclasses: `Trainer` (what stays fixed) and
`TrainState` (where training is; what a checkpoint's state.json holds). Checkpoint files: training.checkpoints."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import TextColumn

from mmcot_cli import progress
from mmcot_cli.data.prompts import STAGE_PRESETS
from mmcot_cli.errors import UsageError
from mmcot_cli.io import make_dir, read_json
from mmcot_cli.model.adapters.lora import apply_lora
from mmcot_cli.model.batching import Collator, LengthGroupedBatchSampler
from mmcot_cli.model.precision import autocast
from mmcot_cli.model.text.base import training_collator
from mmcot_cli.model.text.runs import build_model, load_run_model, parameter_counts, save_run_model
from mmcot_cli.output_guard import mark_output_dir
from mmcot_cli.runs.meta import RunMeta
from mmcot_cli.training import log_lines, tracking
from mmcot_cli.training.checkpoints import (
    append_metrics,
    load_optimizer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
    truncate_metrics,
)
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.training.guards import DivergenceGuard
from mmcot_cli.training.inputs import (
    StageData,
    StageInputs,
    build_stage_data,
    read_stage_inputs,
)
from mmcot_cli.training.loader import batch_loader, to_device
from mmcot_cli.training.run_dir import check_run_dir, hold_run_dir
from mmcot_cli.training.runtime import (
    deterministic_mode,
    fsdp_from_launcher,
    gathered,
    make_accelerator,
    optimizer_state,
    plain_model,
    precision_name,
    shard_model,
    training_forward,
    training_numerics,
)
from mmcot_cli.training.timing import StepTimer
from mmcot_cli.training.validation import compute_metric, validation_predictions

# --------------------------------------------------------------------------- model, optimizer, state


def obtain_model(cfg: TrainConfig, inputs: StageInputs, accelerator, resume_from: Path | None):
    """(model, tokenizer). A from-scratch tokenizer must be identical on every process, so the main process
    builds the model once and the others load that exact copy; a resume loads the checkpoint's copy."""
    if resume_from is not None:
        model, tokenizer, _ = load_run_model(resume_from / "model")
        return model, tokenizer
    main, world = accelerator.is_main_process, accelerator.num_processes
    init_dir = Path(cfg.out_dir) / "checkpoints" / "init"
    if main:
        texts = [text for pair in inputs.train_pairs for text in pair]  # source, target, source, …
        image_shape = tuple(inputs.store.feature_shape) if inputs.store is not None else None
        model, tokenizer = build_model(cfg.text_model, image_shape, random_init=cfg.random_init, **cfg.fusion_options,
                                       train_texts=texts, text_options=dict(cfg.text_options) or None)
        if cfg.lora_options:  # before the init copy: every process starts from the same adapter
            apply_lora(model, **cfg.lora_options)
        if world > 1:
            save_run_model(model, tokenizer, init_dir, inputs.meta.model_meta())
    accelerator.wait_for_everyone()
    if not main:
        model, tokenizer, _ = load_run_model(init_dir)
    accelerator.wait_for_everyone()
    if main and init_dir.exists():
        shutil.rmtree(init_dir)
    return model, tokenizer


@dataclass
class Trainer:
    """The fixed parts of one training run (plain data: the loop's functions below take it)."""

    cfg: TrainConfig
    run_dir: Path
    accelerator: Any
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    collator: Collator
    sampler: LengthGroupedBatchSampler
    loader: Any  # DataLoader over the sampler's batches (training.loader)
    forward_model: Any  # the model, or its torch.compile'd view (--compile)
    guard: DivergenceGuard
    timer: StepTimer
    store: Any
    meta: RunMeta
    train_data: StageData
    val_data: StageData | None
    do_eval: bool
    batches_per_epoch: int
    total_steps: int
    shadow: Any = None  # FSDP: the main process's unsharded copy that is saved (training.runtime.plain_model)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def metric_name(self) -> str:
        return STAGE_PRESETS[self.cfg.stage].metric


def setup_trainer(cfg: TrainConfig, inputs: StageInputs, model, tokenizer, accelerator,
                  timer: StepTimer | None = None) -> Trainer:
    from transformers import get_linear_schedule_with_warmup

    train_data = build_stage_data(cfg, inputs.train_records, inputs.train_pairs, tokenizer, model)
    if not train_data.examples:
        raise UsageError(f"{cfg.data_dir}: split {cfg.train_split!r} has no records to train on")
    val_data = (build_stage_data(cfg, inputs.val_records, inputs.val_pairs, tokenizer, model)
                if inputs.val_records is not None else None)
    store, world = inputs.store, accelerator.num_processes
    collator = training_collator(model, tokenizer, store.get_batch if store is not None else None, inputs.meta,
                                 original_labels=cfg.max_output_len if cfg.protocol == "original" else None)
    sampler = LengthGroupedBatchSampler([e.length for e in train_data.examples], cfg.batch_size, seed=cfg.seed,
                                        group_size=50 if cfg.group_by_length else 1, num_replicas=world,
                                        rank=accelerator.process_index, max_tokens=cfg.max_tokens_per_batch)
    batches_per_epoch = sampler.batches_per_epoch()
    total_steps = math.ceil(batches_per_epoch / cfg.grad_accum) * cfg.epochs
    device = accelerator.device
    model.to(device)  # before the optimizer: fused AdamW (one kernel per step on CUDA) needs the parameters there
    # FSDP: sharded before the optimizer, which then holds (and steps) only this process's shards
    shadow = shard_model(model, accelerator) if cfg.fsdp else None
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.lr, fused=True if device.type == "cuda" else None)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    # The scheduler is not passed to prepare(): Accelerate would step it once per process.
    if not cfg.fsdp:  # DDP (several processes) or nothing; an FSDP2 model is not wrapped again
        model, optimizer = accelerator.prepare(model, optimizer)
    meta = inputs.meta
    meta.world_size, meta.precision, meta.parameters = world, precision_name(accelerator), parameter_counts(model)
    meta.train_examples, meta.val_examples = len(train_data.examples), len(val_data.examples) if val_data else 0
    return Trainer(cfg=cfg, run_dir=Path(cfg.out_dir), accelerator=accelerator, model=model, tokenizer=tokenizer,
                   optimizer=optimizer, scheduler=scheduler, collator=collator, sampler=sampler,
                   loader=batch_loader(train_data.examples, sampler, collator, device, cfg.workers),
                   forward_model=training_forward(model, cfg), guard=DivergenceGuard(),
                   timer=timer or StepTimer(), store=store, meta=meta, train_data=train_data, val_data=val_data,
                   do_eval=bool(val_data and val_data.examples) and cfg.eval_every != 0,
                   batches_per_epoch=batches_per_epoch, total_steps=total_steps, shadow=shadow)


@dataclass
class TrainState:
    """Where training is. The first six fields go into each checkpoint's state.json; the rest is per session."""

    epoch: int = 0  # resume position: epoch and batches of it already consumed
    batch: int = 0
    global_step: int = 0
    best: dict = field(default_factory=lambda: {"value": None, "step": None, "epoch": None})
    samples_seen: int = 0
    losses_since_log: list[float] = field(default_factory=list)  # optimizer-step losses since the last metrics row
    last_checkpoint: Path | None = None
    window_losses: list = field(default_factory=list)  # batch losses (device tensors) of the open accumulation window
    session_samples: int = 0  # throughput of this session only (a resume restarts the clock)
    train_seconds: float = 0.0
    last_loss: float | None = None  # the newest optimizer-step loss read on the host (the summary's final loss)

    @property
    def samples_per_s(self) -> float | None:
        return log_lines.rate(self.session_samples, self.train_seconds)

    def checkpoint_json(self, epoch: int, batch: int, world: int) -> dict:
        return {"epoch": epoch, "batch": batch, "global_step": self.global_step, "best": self.best,
                "samples_seen": self.samples_seen, "world_size": world,
                "losses_since_log": list(self.losses_since_log)}


def start_state(t: Trainer, resume_from: Path | None) -> TrainState:
    """The resumed position (optimizer, scheduler, RNG restored), or a fresh one with run_config.json written."""
    state = TrainState()
    if resume_from is not None:
        load_optimizer_state(resume_from, t.model, t.optimizer, t.scheduler)
        saved = read_json(resume_from / "state.json")
        state = TrainState(epoch=int(saved["epoch"]), batch=int(saved["batch"]),
                           global_step=int(saved["global_step"]), best=saved["best"],
                           samples_seen=int(saved.get("samples_seen", 0)),
                           losses_since_log=[float(x) for x in saved.get("losses_since_log", [])],
                           last_checkpoint=resume_from)
        set_rng_state(read_json(resume_from / "rng.json")[t.accelerator.process_index])
        if t.main:
            truncate_metrics(t.run_dir / "metrics.jsonl", state.global_step)
            # run_config.json describes the run as it continues (a raised --epochs, data let in by --allow-changed-data)
            t.meta.changed_inputs = RunMeta.load(t.run_dir).changed_inputs
            t.meta.save(t.run_dir)
    elif t.main:
        make_dir(t.run_dir)
        if t.cfg.resume:  # crashed before its first checkpoint: start over, dropping rows logged by that attempt
            truncate_metrics(t.run_dir / "metrics.jsonl", 0)
        t.meta.save(t.run_dir)
        mark_output_dir(t.run_dir, "train")
    t.accelerator.wait_for_everyone()
    return state


# --------------------------------------------------------------------------- the loop


def _compute_loss(model, batch: dict) -> torch.Tensor:
    """One forward pass; a separate function so tests can inject a NaN."""
    return model(**batch).loss


def evaluate(t: Trainer, state: TrainState, epoch: int, train_loss: float | None) -> None:
    """Validate; the main process keeps the model in RUN_DIR/model/ when it improved and logs a metrics row."""
    from accelerate.utils import broadcast_object_list, gather_object

    unwrapped = t.accelerator.unwrap_model(t.model)
    with gathered(t.model):  # FSDP: every process holds the whole model while it validates and saves
        unwrapped.eval()
        share = list(range(len(t.val_data.examples)))[t.accelerator.process_index::t.world]
        # evaluation must not shift the training RNG stream; it decodes in the precision training computes in
        with torch.random.fork_rng(devices=[]), autocast(t.accelerator.device, t.meta.precision):
            preds = validation_predictions(unwrapped, t.tokenizer, t.val_data, share, t.store, t.cfg,
                                           t.accelerator.device)
        unwrapped.train()
        all_preds: dict[str, str] = {}
        for part in gather_object([preds]) if t.world > 1 else [preds]:
            all_preds.update(part)
        value = [compute_metric(t.cfg.stage, all_preds, t.val_data, t.cfg.protocol) if t.main else None]
        if t.world > 1:
            broadcast_object_list(value)
        value = value[0]
        improved = state.best["value"] is None or value > state.best["value"]
        if improved:
            state.best.update(value=value, step=state.global_step, epoch=epoch)
            saved = plain_model(unwrapped, t.shadow)
        if t.main:
            if improved:
                save_model(t, saved)
            log_metrics(t, {
                "epoch": epoch, "step": state.global_step, "train_loss": train_loss,
                f"val_{t.metric_name}": value, "best": improved, "lr": t.scheduler.get_last_lr()[0],
                "samples_per_s": state.samples_per_s, "val_examples": len(t.val_data.examples)})
    t.accelerator.wait_for_everyone()


def save_model(t: Trainer, model) -> None:
    """RUN_DIR/model/ (with LoRA: base weights + adapter) and, with --merge-lora, RUN_DIR/merged/."""
    save_run_model(model, t.tokenizer, t.run_dir / "model", t.meta.model_meta())
    if t.cfg.merge_lora:
        save_run_model(model, t.tokenizer, t.run_dir / "merged", t.meta.model_meta(), merge_lora=True)


def log_metrics(t: Trainer, row: dict) -> None:
    """One metrics.jsonl row (main process), also sent to the experiment tracker when there is one."""
    append_metrics(t.run_dir / "metrics.jsonl", row)
    tracking.log_row(t.accelerator, row)
    progress.note(log_lines.metrics_line(t.cfg.stage, row))


def checkpoint(t: Trainer, state: TrainState, epoch: int, batch: int) -> None:
    """Write a resume checkpoint at data position (epoch, batch); every process contributes its RNG state."""
    from accelerate.utils import gather_object

    rng_states = gather_object([rng_state()]) if t.world > 1 else [rng_state()]
    optimizer = optimizer_state(t.model, t.optimizer)  # FSDP: gathered from every process, as the weights
    model = plain_model(t.accelerator.unwrap_model(t.model), t.shadow)
    if t.main:
        state.last_checkpoint = save_checkpoint(
            t.run_dir, model=model, tokenizer=t.tokenizer, meta=t.meta.model_meta(), optimizer_state=optimizer,
            scheduler=t.scheduler, state=state.checkpoint_json(epoch, batch, t.world), rng_states=rng_states,
            keep=t.cfg.keep_checkpoints)
    t.accelerator.wait_for_everyone()


def run_batch(t: Trainer, state: TrainState, epoch: int, b_idx: int, batch: dict) -> bool:
    """Forward and backward one batch (already on the device); at the end of its accumulation window, step the
    optimizer and record the window's mean loss with the guard (on the device: no host sync). True if it stepped."""
    cfg, acc, timer = t.cfg, t.accelerator, t.timer
    # Accumulation windows are aligned to the epoch's batch index, so a resume at a window boundary (where
    # every checkpoint is taken) sees the same windows.
    win_start = (b_idx // cfg.grad_accum) * cfg.grad_accum
    win_size = min(cfg.grad_accum, t.batches_per_epoch - win_start)
    last_in_window = b_idx + 1 == win_start + win_size
    with contextlib.nullcontext() if last_in_window else acc.no_sync(t.model):
        with timer.phase("forward"), autocast(acc.device, t.meta.precision):
            loss = _compute_loss(t.forward_model, batch)
        with timer.phase("backward"):
            acc.backward(loss / win_size)
    state.window_losses.append(loss.detach())
    samples = len(batch["input_ids"]) * t.world
    state.samples_seen += samples
    state.session_samples += samples
    if not last_in_window:
        return False
    with timer.phase("optimizer"):
        mean_loss = torch.stack(state.window_losses).float().mean()
        state.window_losses.clear()
        if t.world > 1:
            mean_loss = acc.reduce(mean_loss, reduction="mean")
        acc.clip_grad_norm_(t.model.parameters(), cfg.max_grad_norm)
        t.optimizer.step()
        t.scheduler.step()
        t.optimizer.zero_grad(set_to_none=True)
    state.global_step += 1
    t.guard.record(epoch, state.global_step, mean_loss, t.scheduler.get_last_lr()[0])
    return True


def check(t: Trainer, state: TrainState) -> float | None:
    """The host check (training.guards): raises TrainingDiverged, else logs the pending steps' losses; returns the
    newest loss (None when nothing was pending)."""
    rows = t.guard.check(t.model, state.last_checkpoint)
    for step, loss, lr in rows:
        state.losses_since_log.append(loss)
        tracking.log_step(t.accelerator, step, loss, lr)
        state.last_loss = loss
        if t.main and (t.guard.due(step) or step == t.total_steps):  # a steady cadence, whatever else checked
            progress.note(log_lines.step_line(t.cfg.stage, step, t.total_steps, loss, lr))
    return rows[-1][1] if rows else None


def device_batches(t: Trainer, first: int):
    """(batch index, batch on the device) for the sampler's current epoch, starting at batch `first`."""
    batches = iter(t.loader)
    for b_idx in range(first, t.batches_per_epoch):
        with t.timer.phase("data"):
            batch = to_device(next(batches), t.accelerator.device)
        yield b_idx, batch


def end_epoch(t: Trainer, state: TrainState, epoch: int) -> None:
    """Validate (or log the epoch's loss) and write the epoch's checkpoint."""
    check(t, state)
    if t.do_eval and t.cfg.eval_every == "epoch":
        evaluate(t, state, epoch + 1, log_lines.mean(state.losses_since_log))
    elif t.main:
        log_metrics(t, {
            "epoch": epoch + 1, "step": state.global_step, "train_loss": log_lines.mean(state.losses_since_log),
            "lr": t.scheduler.get_last_lr()[0], "samples_per_s": state.samples_per_s})
    state.losses_since_log.clear()
    checkpoint(t, state, epoch + 1, 0)


def train_epochs(t: Trainer, state: TrainState) -> None:
    cfg = t.cfg
    t.model.train()
    start_epoch, start_batch = state.epoch, state.batch
    if not t.main:
        progress.set_enabled(False)
    bar = progress.make_progress(TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[sps]} samples/s"))
    with bar:
        task = bar.add_task(f"train {cfg.stage}", total=t.total_steps, completed=state.global_step, loss="-",
                            sps="-")
        for epoch in range(start_epoch, cfg.epochs):
            first = start_batch if epoch == start_epoch else 0
            t.sampler.set_epoch(epoch, first)
            clock = time.perf_counter()
            for b_idx, batch in device_batches(t, first):
                if not run_batch(t, state, epoch, b_idx, batch):
                    continue
                step = state.global_step
                evaluate_now = t.do_eval and isinstance(cfg.eval_every, int) and step % cfg.eval_every == 0
                save_now = cfg.save_every and step % cfg.save_every == 0 and b_idx + 1 < t.batches_per_epoch
                if evaluate_now or save_now or t.guard.due(step):
                    loss = check(t, state)  # the only host sync inside an epoch
                    if loss is not None:
                        bar.update(task, loss=f"{loss:.4f}")
                now = time.perf_counter()
                state.train_seconds += now - clock
                bar.update(task, advance=1, sps=f"{state.samples_per_s or 0:.1f}")
                t.timer.step_end(step)
                if evaluate_now:
                    evaluate(t, state, epoch + 1, log_lines.mean(state.losses_since_log))
                    state.losses_since_log.clear()
                if save_now:
                    checkpoint(t, state, epoch, b_idx + 1)
                clock = time.perf_counter()
            end_epoch(t, state, epoch)


def train(cfg: TrainConfig, timer: StepTimer | None = None) -> dict:
    """Train one stage; RUN_DIR/model/ ends up holding the best validation model. Returns a summary dict.
    RUN_DIR is held (locked) for the whole run: a second `mmcot train` (or `--resume`) on it is refused.
    `timer` (training.timing) lets a benchmark time the loop's phases."""
    with hold_run_dir(cfg):
        cfg = cfg.resolved()
        cpu_numerics = training_numerics(cfg)  # before any tensor op: CPU kernels are chosen at the first one
        fsdp_from_launcher(cfg)
        accelerator = make_accelerator(cfg)
        checkpoints = check_run_dir(Path(cfg.out_dir), cfg, accelerator.num_processes)
        with deterministic_mode(cfg.deterministic, cuda=accelerator.device.type == "cuda"):
            return _train_held(cfg, accelerator, checkpoints[-1] if checkpoints else None, timer, cpu_numerics)


def _train_held(cfg: TrainConfig, accelerator, resume_from: Path | None, timer: StepTimer | None, cpu_numerics) -> dict:
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    inputs = read_stage_inputs(cfg)
    model, tokenizer = obtain_model(cfg, inputs, accelerator, resume_from)
    # Model building may have drawn random numbers: start the loop from a known state (distinct per process,
    # so data-parallel replicas do not share dropout masks).
    set_seed(cfg.seed, device_specific=True)
    t = setup_trainer(cfg, inputs, model, tokenizer, accelerator, timer)
    t.meta.cpu_numerics = cpu_numerics
    state = start_state(t, resume_from)
    tracking.start(accelerator, cfg.report_to, t.run_dir, {**asdict(cfg), "world_size": t.world})
    train_epochs(t, state)
    tracking.finish(accelerator)
    if not t.do_eval:
        model = plain_model(accelerator.unwrap_model(t.model), t.shadow)
        if t.main:
            save_model(t, model)
    accelerator.wait_for_everyone()
    return {
        "run_dir": str(t.run_dir), "model_dir": str(t.run_dir / "model"), "stage": cfg.stage,
        "prompt_format": cfg.prompt_format, "epochs": cfg.epochs, "steps": state.global_step,
        "train_examples": t.meta.train_examples, "val_examples": t.meta.val_examples, "world_size": t.world,
        "metric": t.metric_name if t.do_eval else None, "best": state.best if t.do_eval else None,
        "samples_per_s": state.samples_per_s, "final_loss": state.last_loss,
        "resumed_from": str(resume_from) if resume_from else None,
        "rationales": t.meta.rationales, "precision": t.meta.precision, "parameters": t.meta.parameters,
        "protocol": cfg.protocol, "cpu_numerics": cpu_numerics,
    }

