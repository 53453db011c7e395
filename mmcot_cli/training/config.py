"""`mmcot train`'s options: TrainConfig and its validation against the stage presets (no torch needed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mmcot_cli.data.prompts import STAGE_PRESETS, uses_rationale
from mmcot_cli.errors import UsageError
from mmcot_cli.registry.manager import get_text_backbone
from mmcot_cli.training import tracking
from mmcot_cli.validate import (
    check_number,
    check_seed,
    non_negative_int,
    positive_float,
    positive_int,
)

TRAIN_ON = ("gold", "generated")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on a GPU that has it, else fp32 (training.runtime)
DEVICES = ("auto", "cpu", "cuda")
FUSIONS = ("gated", "prefix")  # mmcot_cli.model.causal_lm: the paper's gated fusion, or a LLaVA-style image prefix


@dataclass
class TrainConfig:
    stage: str
    data_dir: str
    text_model: str
    out_dir: str
    features: str | None = None
    rationales: str | None = None  # stage-1 run dir or predictions file (answer stage with a G format)
    train_on: str = "gold"  # rationales in the train split's inputs: gold lecture+solution, or stage-1 preds
    rationale_source: str = "gold"  # rationale stage: gold targets, or a rationale set FILE (mmcot_cli.data.teacher)
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
    precision: str = "auto"
    deterministic: bool = False  # bit-identical GPU reruns at some speed cost (CPU runs are deterministic anyway)
    compile: bool = False  # torch.compile the training forward pass
    max_tokens_per_batch: int | None = None  # size batches by padded tokens instead of --batch-size examples
    workers: int | None = None  # DataLoader worker processes; None = 2 on a GPU, 0 (main thread) on CPU
    device: str = "auto"  # auto = the GPU when there is one (one GPU per process under a launcher)
    seed: int = 42
    eval_every: str | int = "epoch"  # "epoch", a number of optimizer steps, or 0 for never
    save_every: int = 500  # optimizer steps between resume checkpoints (one is also written every epoch)
    keep_checkpoints: int = 2
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None
    num_beams: int = 1
    group_by_length: bool = True  # False: plain random batches (mega-batches of one batch), as the original
    random_init: bool = False  # build a registered/hub text backbone from its config (offline tests)
    text_options: dict[str, Any] = field(default_factory=dict)  # e.g. t5-scratch d_model, layers, vocab size
    fusion: str = "gated"  # decoder-only LMs: gated (at --fusion-layer) or prefix; T5: gated on the encoder output
    fusion_layer: int | None = None  # the gated fusion's decoder layer (None = the middle one; decoder-only only)
    resume: bool = False
    allow_changed_data: bool = False  # --resume on inputs whose fingerprints changed (recorded in run_config.json)
    report_to: str = "none"  # experiment tracker (mmcot_cli.training.tracking): none, tensorboard, wandb, mlflow

    def resolved(self) -> "TrainConfig":
        """Validate options and fill in the stage presets."""
        if self.stage not in STAGE_PRESETS:
            raise UsageError(f"unknown stage {self.stage!r}; choose one of: {', '.join(STAGE_PRESETS)}")
        if self.train_on not in TRAIN_ON:
            raise UsageError(f"--train-on must be one of {', '.join(TRAIN_ON)}, got {self.train_on!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise UsageError(f"--device must be one of {', '.join(DEVICES)} for training, got {self.device!r}")
        if self.max_tokens_per_batch is not None and not self.group_by_length:
            raise UsageError("--max-tokens-per-batch builds length-sorted batches; it cannot be combined with "
                             "--no-group-by-length")
        _check_numbers(self)
        if self.fusion not in FUSIONS:
            raise UsageError(f"--fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        tracking.check_report_to(self.report_to)
        preset = STAGE_PRESETS[self.stage]
        cfg = TrainConfig(**{**asdict(self)})
        cfg.prompt_format = self.prompt_format or preset.prompt_format
        cfg.max_output_len = self.max_output_len or preset.max_output_len
        cfg.eval_batch_size = self.eval_batch_size or 2 * self.batch_size
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

    def changed_since(self, saved: dict) -> tuple[str, Any, Any] | None:
        """(field, saved value, value now) for the first field a resumed run must keep, or None."""
        now = asdict(self)
        for key in RESUME_INVARIANTS:
            if key in saved and saved[key] != now[key]:
                return key, saved[key], now[key]
        return None


# Fields that must match between the original run and a resumed one (others — e.g. epochs — may change).
RESUME_INVARIANTS = ("stage", "text_model", "features", "rationales", "train_on", "rationale_source",
                     "prompt_format", "use_caption", "lr", "batch_size", "grad_accum", "warmup_ratio", "weight_decay",
                     "max_input_len", "max_output_len", "seed", "train_split", "limit_train", "group_by_length",
                     "max_tokens_per_batch", "text_options", "fusion", "fusion_layer")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_numbers(cfg: TrainConfig) -> None:
    """Every numeric option finite and in range (exit 2 naming it) before anything is read or built."""
    for name in ("epochs", "batch_size", "grad_accum", "max_input_len", "num_beams"):
        positive_int(_flag(name), getattr(cfg, name))
    for name in ("eval_batch_size", "max_output_len", "limit_train", "limit_val", "max_tokens_per_batch"):
        positive_int(_flag(name), getattr(cfg, name), optional=True)
    non_negative_int("--save-every", cfg.save_every)
    if cfg.fusion_layer is not None:
        non_negative_int("--fusion-layer", cfg.fusion_layer)
    non_negative_int("keep_checkpoints", cfg.keep_checkpoints)
    non_negative_int("--workers", cfg.workers, optional=True)
    positive_float("--lr", cfg.lr)
    check_number("--warmup-ratio", cfg.warmup_ratio, low=0, high=1, high_open=True)
    check_number("--weight-decay", cfg.weight_decay, low=0)
    positive_float("max_grad_norm", cfg.max_grad_norm)
    check_seed("--seed", cfg.seed)



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
