"""`mmcot train`'s options: TrainConfig and its validation against the stage presets (no torch needed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from mmcot_cli.data.prompts import STAGE_PRESETS, stage_format, uses_rationale
from mmcot_cli.errors import UsageError
from mmcot_cli.registry.manager import get_text_backbone
from mmcot_cli.settings import check_settings, resume_keys, setting
from mmcot_cli.training import tracking
from mmcot_cli.validate import (
    PROTOCOLS,
    check_number,
    check_seed,
    check_split_name,
    non_negative_int,
    positive_float,
    positive_int,
)

TRAIN_ON = ("gold", "generated")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on a GPU that has it, else fp32 (training.runtime)
DEVICES = ("auto", "cpu", "cuda")
FUSIONS = ("gated", "prefix")  # mmcot_cli.model.causal_lm: the paper's gated fusion, or a LLaVA-style image prefix


def _text_options(items: list[str] | dict) -> dict[str, str]:
    """--text-option KEY=VALUE (repeatable) → {KEY: VALUE}; a recipe may give the mapping itself."""
    if isinstance(items, dict):
        return items
    out: dict[str, str] = {}
    for item in [items] if isinstance(items, str) else items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--text-option expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _no_split(name: str | None) -> str | None:
    return None if name is None or str(name).lower() in ("none", "") else name


def _range(**bounds) -> Callable[[str, Any], Any]:
    return lambda flag, value: check_number(flag, value, **bounds)


_STAGE_HELP = " or ".join(f"{stage} ({p.prompt_format})" for stage, p in STAGE_PRESETS.items())
_OUT_LEN_HELP = " or ".join(f"{p.max_output_len} ({stage})" for stage, p in STAGE_PRESETS.items())
_FORMAT_HELP = " / ".join(p.prompt_format for p in STAGE_PRESETS.values())
KEEP = {"keep_on_resume": True}


@dataclass
class TrainConfig:
    """`mmcot train`'s settings: one field per option (mmcot_cli.settings); `resolved()` fills the presets."""

    stage: str = setting(help=f"{_STAGE_HELP}: the stage's prompt format, output length and validation metric.",
                         choices=tuple(STAGE_PRESETS), record="model", **KEEP)
    data_dir: str = setting(help="DATA_DIR written by `mmcot prepare`.", flag="--data", metavar="DATA_DIR")
    text_model: str = setting(help="Registered text backbone (see `mmcot backbones`; t5-scratch trains offline), "
                              "a local model directory or a hub id.", record="model", **KEEP)
    out_dir: str = setting(help="RUN_DIR to create (model/, run_config.json, metrics.jsonl, checkpoints/).",
                           flag="--out", metavar="RUN_DIR")
    features: str | None = setting(None, "FEATURES_DIR from `mmcot extract`; without it the model is text-only "
                                   "(no fusion layers).", metavar="FEATURES_DIR", **KEEP)
    rationales: str | None = setting(None, "Stage-1 RUN_DIR (its preds-<split>.jsonl) or one predictions file; "
                                     "matched by qid.", metavar="PATH", **KEEP)
    train_on: str = setting("gold", "Rationales in the train split's inputs: gold (lecture + solution, as the "
                            "reference) or generated (stage-1 preds-train.jsonl).", choices=TRAIN_ON, **KEEP)
    rationale_source: str = setting("gold", "Rationale stage targets: gold (every gold rationale, one example each) "
                                    "or a rationale set FILE from `mmcot rationales filter` (each rationale one "
                                    "example; problems without one are left out).", **KEEP)
    prompt_format: str | None = setting(None, f"Override the stage preset ({_FORMAT_HELP}), e.g. QCM-LE, QCM-A.",
                                        record="model", **KEEP)
    use_caption: bool = setting(False, "Append image captions to the context.", record="model", **KEEP)
    epochs: int = setting(20, "Passes over the train split.", check=positive_int)
    lr: float = setting(5e-5, "Peak learning rate (AdamW).", check=positive_float, **KEEP)
    batch_size: int = setting(8, "Examples per batch, per process.", check=positive_int, **KEEP)
    eval_batch_size: int | None = setting(None, "Validation batch size (default 2 × --batch-size).",
                                          check=positive_int)
    grad_accum: int = setting(1, "Batches per optimizer step.", check=positive_int, **KEEP)
    warmup_ratio: float = setting(0.0, "Share of steps with linear LR warmup, in [0, 1).",
                                  check=_range(low=0, high=1, high_open=True), **KEEP)
    weight_decay: float = setting(0.01, "AdamW weight decay (≥ 0).", check=_range(low=0), **KEEP)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.", check=positive_float)
    max_input_len: int = setting(512, "Source tokens kept (longer inputs are truncated).", check=positive_int,
                                 record="model", **KEEP)
    max_output_len: int | None = setting(None, f"Target tokens (default {_OUT_LEN_HELP}); also the generation "
                                         "limit during validation.", check=positive_int, record="model", **KEEP)
    protocol: str = setting("mmcot", "mmcot or original: original trains as the original code does: fp32 (no "
                            "autocast), random batches (not length-grouped), T5 targets padded to --max-output-len "
                            "with pad id 0 and the loss trained on them, the original's validation rougeL for model "
                            "selection. A flag that contradicts it is refused.",
                            choices=PROTOCOLS, **KEEP)
    precision: str = setting("auto", "fp32, bf16 or fp16 (autocast; weights stay fp32). auto: bf16 on a GPU that "
                             "supports it, else fp32 (always fp32 under --protocol original).", choices=PRECISIONS)
    deterministic: bool = setting(False, "Bit-identical reruns with the same seed: on a GPU, on the same GPU "
                                  "(deterministic kernels); on a CPU, on every x86-64 CPU at the same thread count "
                                  "(ATen AVX2, MKL COMPATIBLE and oneDNN AVX2 kernels, 1.6–2× slower "
                                  "training). Recorded in run_config.json (cpu_numerics).")
    compile: bool = setting(False, "torch.compile the training forward pass (compiles on the first steps).")
    max_tokens_per_batch: int | None = setting(None, "Size batches by tokens: as many length-sorted examples as "
                                               "fit N padded (input + target) tokens; --batch-size is then unused "
                                               "for training batches.", check=positive_int, **KEEP)
    workers: int | None = setting(None, "DataLoader processes that collate batches and read features ahead "
                                  "(default 2 on a GPU, 0 on CPU).", check=non_negative_int)
    device: str = setting("auto", "auto (the GPU when there is one), cpu or cuda.", choices=DEVICES)
    seed: int = setting(42, "Seed of initialisation, data order and dropout.", check=check_seed, **KEEP)
    eval_every: str | int = setting("epoch", "'epoch', a number of optimizer steps, or 0 (never).", cli_type=str)
    save_every: int = setting(500, "Optimizer steps between resume checkpoints (one is also written after every "
                              "epoch).", check=non_negative_int)
    keep_checkpoints: int = setting(2, "Resume checkpoints kept (the newest).", check=non_negative_int)
    train_split: str = setting("train", "Split trained on.", check=check_split_name, **KEEP)
    val_split: str | None = setting("val", "Split validated on; 'none' to skip validation (the last model is "
                                    "kept).", parse=_no_split, check=check_split_name)
    limit_train: int | None = setting(None, "Only the first N train records.", check=positive_int, **KEEP)
    limit_val: int | None = setting(None, "Validate on the first N records.", check=positive_int)
    num_beams: int = setting(1, "Beams for validation generation.", check=positive_int)
    group_by_length: bool | None = setting(None, "Batch examples of similar length (less padding); "
                                           "--no-group-by-length draws plain random batches as the original's "
                                           "Trainer does. Default: on, off under --protocol original.", **KEEP)
    random_init: bool = setting(False, "Build the text backbone from its config only (offline tests).")
    text_options: dict[str, Any] = setting(
        help="Text backbone option KEY=VALUE (repeatable), checked against the options the backbone declares (a "
        "wrong key lists them), e.g. d_model=256 layers=4 for t5-scratch.", factory=dict, flag="--text-option",
        cli_type=list[str], parse=_text_options, metavar="KEY=VALUE", **KEEP)
    fusion: str = setting("gated", "How image features reach a decoder-only text backbone: gated (the paper's gated "
                          "cross-attention, at --fusion-layer) or prefix (projected features placed before the "
                          "prompt). T5 always fuses gated on its encoder output.", choices=FUSIONS, **KEEP)
    fusion_layer: int | None = setting(None, "Decoder-only, --fusion gated: the decoder layer whose input is fused "
                                       "(default: the middle layer).", check=non_negative_int, **KEEP)
    gradient_checkpointing: bool = setting(False, "Recompute each transformer block's activations in the backward "
                                           "pass instead of keeping them (less memory, about a third more compute; "
                                           "T5 and decoder-only backbones).")
    lora_r: int = setting(0, "LoRA rank (peft) on the text backbone, T5 or decoder-only: only the low-rank "
                          "adapters and the fusion layers train (0 = off, full fine-tuning).", check=non_negative_int,
                          **KEEP)
    lora_alpha: float = setting(16.0, "LoRA scaling numerator: the adapter's update is scaled by alpha / r.",
                                check=positive_float, **KEEP)
    lora_dropout: float = setting(0.0, "Dropout on the LoRA adapters' input, in [0, 1).",
                                  check=_range(low=0, high=1, high_open=True), **KEEP)
    lora_targets: str = setting("all-linear", "Comma-separated module names the adapters go on (e.g. q,v on T5; "
                                "q_proj,v_proj on Llama/Qwen) or all-linear (every linear layer but the output "
                                "head). The fusion layers are never adapted: they always train in full.", **KEEP)
    merge_lora: bool = setting(False, "With --lora-r: also write RUN_DIR/merged/, the model with the adapters "
                               "merged into its weights (a plain model directory; RUN_DIR/model/ keeps base + "
                               "adapter).")
    fsdp: bool = setting(False, "Shard parameters, gradients and optimizer state over the processes with PyTorch's "
                         "FSDP2 (fully_shard per transformer block; with torchrun or accelerate launch, ≥ 2 "
                         "processes) for models that do not fit one device; `accelerate launch --use_fsdp` does "
                         "the same.", **KEEP)
    resume: bool = setting(False, "Continue RUN_DIR from its last checkpoint.")
    allow_changed_data: bool = setting(False, "With --resume: continue although the inputs (DATA_DIR splits, "
                                       "features, rationales) changed since the run started (recorded in "
                                       "run_config.json).")
    report_to: str = setting("none", "Experiment tracker: none, tensorboard (event files in RUN_DIR/tracking/), "
                             "wandb or mlflow (their usual configuration).")

    def resolved(self) -> "TrainConfig":
        """Validate options and fill in the stage presets."""
        if self.max_tokens_per_batch is not None and self.group_by_length is False:
            raise UsageError("--max-tokens-per-batch builds length-sorted batches; it cannot be combined with "
                             "--no-group-by-length")
        check_settings(self)
        original_conflict(self)
        if self.merge_lora and not self.lora_r:
            raise UsageError("--merge-lora applies to LoRA training (--lora-r N, N > 0)")
        if self.allow_changed_data and not self.resume:
            raise UsageError("--allow-changed-data applies to --resume")
        tracking.check_report_to(self.report_to)
        preset = STAGE_PRESETS[self.stage]
        cfg = type(self)(**asdict(self))  # a subclass (a test's extra setting) stays itself
        cfg.prompt_format = stage_format(self.stage, self.prompt_format)
        cfg.max_output_len = self.max_output_len or preset.max_output_len
        cfg.eval_batch_size = self.eval_batch_size or 2 * self.batch_size
        original = self.protocol == "original"
        cfg.precision = "fp32" if original else self.precision
        cfg.group_by_length = not original if self.group_by_length is None else self.group_by_length
        cfg.eval_every = parse_eval_every(self.eval_every)
        # --text-option values are checked against the options the backbone declares, before anything is read.
        cfg.text_options = get_text_backbone(self.text_model).parse_options(self.text_options)
        if needs_rationale(cfg.prompt_format) and not cfg.rationales:
            raise UsageError(f"prompt format {cfg.prompt_format} puts a stage-1 rationale in the input: "
                             "pass --rationales RUN_R (the rationale run with preds-<split>.jsonl)")
        if cfg.rationale_source != "gold" and cfg.stage != "rationale":
            raise UsageError("--rationale-source applies to --stage rationale (its training targets)")
        if cfg.train_on == "generated" and not needs_rationale(cfg.prompt_format):
            raise UsageError(f"--train-on generated needs a prompt format with a rationale input (QCMG-A), "
                             f"not {cfg.prompt_format}")
        return cfg

    @property
    def fusion_options(self) -> dict[str, Any]:
        """build_model's fusion arguments (decoder-only backbones; T5 refuses any but the default)."""
        return {"fusion": self.fusion, "fusion_layer": self.fusion_layer}

    @property
    def lora_options(self) -> dict[str, Any] | None:
        """mmcot_cli.model.lora.apply_lora's arguments, or None without --lora-r."""
        if not self.lora_r:
            return None
        return {"r": self.lora_r, "alpha": self.lora_alpha, "dropout": self.lora_dropout,
                "targets": self.lora_targets}

    def changed_since(self, saved: dict) -> tuple[str, Any, Any] | None:
        """(field, saved value, value now) for the first field a resumed run must keep, or None."""
        now = asdict(self)
        for key in resume_keys(type(self)):
            if key in saved and not _same_value(saved[key], now[key]):
                return key, saved[key], now[key]
        return None


def _same_value(saved: Any, now: Any) -> bool:
    """Equal, or two spellings of one path (relative at training, absolute at resume: the same --features)."""
    if saved == now:
        return True
    if isinstance(saved, str) and isinstance(now, str) and saved and now:
        import os

        try:
            return os.path.samefile(saved, now)
        except OSError:  # one of them does not exist (any more): only the same resolved name counts
            return os.path.realpath(saved) == os.path.realpath(now)
    return False


def original_conflict(cfg: TrainConfig) -> None:
    """--protocol original fixes fp32 and random batches: an option asking for mmcot's choice there is refused
    with one line (rather than one of the two silently winning)."""
    if cfg.protocol != "original":
        return
    why = "drop it, or train with --protocol mmcot"
    if cfg.precision not in ("auto", "fp32"):
        raise UsageError(f"--precision {cfg.precision} contradicts --protocol original, which trains in fp32 as the "
                         f"original (no autocast); {why}")
    if cfg.group_by_length:
        raise UsageError(f"--group-by-length contradicts --protocol original, which draws random batches as the "
                         f"original; {why}")
    if cfg.max_tokens_per_batch is not None:
        raise UsageError(f"--max-tokens-per-batch builds length-sorted batches, which contradicts --protocol "
                         f"original (random batches as the original); {why}")


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
    return uses_rationale(prompt_format)
