"""A trained run's metadata: one `RunMeta`, the only schema for "how this run was trained".

`mmcot train` writes it to RUN_DIR/run_config.json and copies its model fields into the model's config
(`config.json` → "mmcot", next to the fusion head's `image_shape`), so a model directory copied on its own still
says how to prompt it. `mmcot generate` / `mmcot ask` read it back with `RunMeta.for_run` (run_config.json when
the run has one, else the model's copy). `train_config` keeps the full TrainConfig; only `--resume` reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mmcot_cli.data.prompts import (
    STAGE_PRESETS,
    gives_answer,
    split_format,
    uses_rationale,
)
from mmcot_cli.errors import DataError
from mmcot_cli.io import read_json, write_json

RUN_CONFIG = "run_config.json"
RUN_META_VERSION = 1
_WITH_MODEL = {"with_model": True}  # the field travels inside the model directory (config.json → "mmcot")


def _model_field(default: Any = None, **kw: Any) -> Any:
    return field(default=default, metadata=_WITH_MODEL, **kw)


@dataclass
class RunMeta:
    stage: str = field(metadata=_WITH_MODEL)  # "rationale" | "answer"
    prompt_format: str = field(metadata=_WITH_MODEL)  # e.g. QCM-E, QCMG-A
    text_backbone: str = field(metadata=_WITH_MODEL)  # as given to --text-model
    use_caption: bool = _model_field(False)
    max_input_len: int = _model_field(512)
    max_output_len: int | None = _model_field()  # None = the stage preset
    vision_backbone: str | None = _model_field()  # the feature store's backbone; None = text-only run
    vision_variant: str | None = _model_field()  # what the features were extracted with (`mmcot ask` rebuilds it)
    vision_weights: str | None = _model_field()
    vision_alpha: str | None = _model_field()  # the features' transparency policy (data/images.py); None: not recorded
    feature_shape: list[int] | None = _model_field()  # [P, D] of the features; equals the model's image_shape
    # Decoder-only runs (mmcot_cli.model.causal_lm): "causal", gated|prefix, the gated fusion's decoder layer, and
    # whether the tokenizer's chat template made the prompts. None for T5 (gated fusion on the encoder output).
    text_kind: str | None = None
    fusion: str | None = None
    fusion_layer: int | None = None
    chat_template: bool | None = None
    parameters: dict | None = None  # {"total", "trainable"} parameters, fusion included (train fills it in)
    # the training settings declared record="model" (mmcot_cli.settings.model_settings): {field: value}
    model_settings: dict[str, Any] = field(default_factory=dict, metadata=_WITH_MODEL)
    features_dir: str | None = None  # the FEATURES_DIR trained on (generate's default --features)
    rationales: dict | None = None  # {source, train_on, train, val} provenance of stage-1 rationales
    rationale_source: dict | None = None  # rationale stage: {source, examples, problems, sha256…} of its targets
    seed: int | None = None
    world_size: int = 1
    # --deterministic on a CPU: which kernels computed (model.precision.pin_cpu_numerics); None: not asked for
    cpu_numerics: dict | None = None
    precision: str = "fp32"  # what training computed in: fp32, or bf16 / fp16 autocast (weights stay fp32)
    train_examples: int = 0
    val_examples: int = 0
    train_config: dict[str, Any] = field(default_factory=dict)
    created_by: str = "mmcot train"
    imported_from: dict | None = None  # `mmcot import-run`: {path, files: {name: sha256}, layout, tied_head, …}
    # {label: {path, sha256}} of what the run reads (DATA_DIR splits, feature store, rationale files); `--resume`
    # refuses other data unless --allow-changed-data, which appends {resumed_from, changed} to changed_inputs.
    inputs: dict | None = None
    changed_inputs: list | None = None
    version: int = RUN_META_VERSION

    def __post_init__(self) -> None:
        split_format(self.prompt_format)  # unknown formats fail here, with the list of known ones
        if self.feature_shape is not None:
            self.feature_shape = [int(x) for x in self.feature_shape]
        if self.max_output_len is None:
            preset = STAGE_PRESETS.get(self.stage)
            self.max_output_len = preset.max_output_len if preset else 512

    @property
    def needs_rationale(self) -> bool:
        return uses_rationale(self.prompt_format)

    @property
    def answers(self) -> bool:
        """The output states "The answer is (X)"."""
        return gives_answer(self.prompt_format)

    @property
    def rationales_source(self) -> str | None:
        return (self.rationales or {}).get("source")

    def to_dict(self) -> dict:
        return asdict(self)

    def model_meta(self) -> dict:
        """The fields written into the model's config (save_run_model)."""
        return {k: getattr(self, k) for k in MODEL_FIELDS}

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / RUN_CONFIG
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: dict, where: str = "run metadata") -> "RunMeta":
        """From run_config.json or a model's "mmcot" dict. Files without `version` (written before RunMeta)
        use the same key names, so they load too; unknown keys (e.g. `image_shape`) are ignored."""
        version = data.get("version", 0)
        if not isinstance(version, int) or version > RUN_META_VERSION:
            raise DataError(f"{where}: run metadata version {version!r} is newer than this mmcot reads "
                            f"({RUN_META_VERSION}); upgrade mmcot")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        missing = [k for k in ("prompt_format",) if k not in values]
        if missing:
            raise DataError(f"{where}: the run records no {missing[0]}")
        if "stage" not in values:
            values["stage"] = "answer" if gives_answer(values["prompt_format"]) else "rationale"
        values.setdefault("text_backbone", "")
        return cls(**{**values, "version": RUN_META_VERSION})

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunMeta":
        path = Path(run_dir) / RUN_CONFIG
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object")
        return cls.from_dict(data, str(path))

    @classmethod
    def for_run(cls, run_dir: str | Path, model_meta: dict) -> "RunMeta":
        """RUN_DIR's run_config.json if it has one, else the model's own copy (`model_meta`)."""
        run_dir = Path(run_dir)
        if not (run_dir / RUN_CONFIG).is_file():
            return cls.from_dict(model_meta, f"{run_dir} (model config)")
        meta = cls.load(run_dir)
        for key in ("vision_variant", "vision_weights", "vision_alpha"):  # older run_config.json files lack these
            if getattr(meta, key) is None and model_meta.get(key) is not None:
                setattr(meta, key, model_meta[key])
        return meta


# What travels inside the model directory: enough to prompt and feed the model.
MODEL_FIELDS = tuple(f.name for f in fields(RunMeta) if f.metadata.get("with_model"))
