"""mmcot: Multimodal-CoT toolkit (data, vision features, two-stage fusion training, generation, scoring).

The library's entry points are importable from here (`from mmcot_cli import load_run_model, open_store`); each
loads its module on first use, so `import mmcot_cli` (and the CLI's start) stays free of torch and transformers.
The same names stay importable from their modules. docs/FORMATS.md ("Library API") lists them.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from mmcot_cli._version import __version__

# cuBLAS reads its workspace setting once, at a process's first GPU matmul, and `--deterministic` training needs
# this one (mmcot_cli.training.runtime); setting it here, before any GPU work, makes it hold whatever ran first.
# A value the user set is kept.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

# public name → (module, name there). Functions named like their module (extract, train, generate, score) get a
# longer name here: a submodule import sets `mmcot_cli.<module>` to the module, which would shadow them.
_EXPORTS = {
    # a trained run: (model, tokenizer, meta) from RUN_DIR, and the model class
    "load_run_model": ("mmcot_cli.model.text.runs", "load_run_model"),
    "MMCoTForConditionalGeneration": ("mmcot_cli.model.fusion", "MMCoTForConditionalGeneration"),
    # data and prompts
    "load_records": ("mmcot_cli.data.records", "load_records"),
    "build_prompt": ("mmcot_cli.data.prompts", "build_prompt"),
    "prompt_rows": ("mmcot_cli.data.prompts", "prompt_rows"),
    "prepare_data": ("mmcot_cli.data.readers", "prepare_source"),  # ScienceQA, A-OKVQA or generic JSONL → DATA_DIR
    # vision features
    "open_store": ("mmcot_cli.features.store", "open_store"),
    "FeatureStore": ("mmcot_cli.features.store", "FeatureStore"),
    "import_features": ("mmcot_cli.features.store", "import_features"),
    "ExtractConfig": ("mmcot_cli.features.extract", "ExtractConfig"),
    "extract_features": ("mmcot_cli.features.extract", "extract"),
    "merge_features": ("mmcot_cli.features.extract", "merge"),
    # training, generation, scoring
    "TrainConfig": ("mmcot_cli.training.config", "TrainConfig"),
    "train_stage": ("mmcot_cli.training.loop", "train"),
    "GenerateConfig": ("mmcot_cli.inference.settings", "GenerateConfig"),
    "generate_predictions": ("mmcot_cli.inference.generate", "generate"),
    "ScoreConfig": ("mmcot_cli.evaluation.score", "ScoreConfig"),
    "score_predictions": ("mmcot_cli.evaluation.score", "score"),
    "score_records": ("mmcot_cli.evaluation.score", "score_records"),
    "score_data": ("mmcot_cli.evaluation.score_data", "score_data"),  # what `mmcot score` runs, for any prepared format
    # teacher rationales (Fine-tune-CoT)
    "Sampling": ("mmcot_cli.inference.sampling", "Sampling"),
    "collect_rationales": ("mmcot_cli.data.teacher", "collect_rationales"),
    # plugins (see mmcot_cli/registry/hookspecs.py and examples/plugin-template/)
    "hookimpl": ("mmcot_cli.registry.hookspecs", "hookimpl"),
    "VisionBackbone": ("mmcot_cli.registry.hookspecs", "VisionBackbone"),
    "VisionBuildOptions": ("mmcot_cli.registry.hookspecs", "VisionBuildOptions"),
    "TextBackbone": ("mmcot_cli.registry.hookspecs", "TextBackbone"),
    "TextBuildOptions": ("mmcot_cli.registry.hookspecs", "TextBuildOptions"),
    "BackboneOption": ("mmcot_cli.registry.hookspecs", "BackboneOption"),
    "MMCoTError": ("mmcot_cli.errors", "MMCoTError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmcot_cli' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from mmcot_cli.data.prompts import build_prompt, prompt_rows
    from mmcot_cli.data.records import load_records
    from mmcot_cli.errors import MMCoTError
    from mmcot_cli.evaluation.score import ScoreConfig, score_records
    from mmcot_cli.evaluation.score import score as score_predictions
    from mmcot_cli.features.extract import ExtractConfig
    from mmcot_cli.features.extract import extract as extract_features
    from mmcot_cli.features.extract import merge as merge_features
    from mmcot_cli.features.store import FeatureStore, import_features, open_store
    from mmcot_cli.inference.generate import generate as generate_predictions
    from mmcot_cli.inference.settings import GenerateConfig
    from mmcot_cli.model.fusion import MMCoTForConditionalGeneration
    from mmcot_cli.model.text.runs import load_run_model
    from mmcot_cli.registry.hookspecs import (
        BackboneOption,
        TextBackbone,
        TextBuildOptions,
        VisionBackbone,
        VisionBuildOptions,
        hookimpl,
    )
    from mmcot_cli.training.config import TrainConfig
    from mmcot_cli.training.loop import train as train_stage
