"""mmcot: Multimodal-CoT toolkit (data, vision features, two-stage fusion training, generation, scoring).

The library's entry points are importable from here (`from mmcot_cli import load_run_model, open_store`); each
loads its module on first use, so `import mmcot_cli` (and the CLI's start) stays free of torch and transformers.
The same names stay importable from their modules. docs/FORMATS.md ("Library API") lists them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → (module, name there). Functions named like their module (extract, train, generate, score) get a
# longer name here: a submodule import sets `mmcot_cli.<module>` to the module, which would shadow them.
_EXPORTS = {
    # a trained run: (model, tokenizer, meta) from RUN_DIR, and the model class
    "load_run_model": ("mmcot_cli.model", "load_run_model"),
    "MMCoTForConditionalGeneration": ("mmcot_cli.model", "MMCoTForConditionalGeneration"),
    # data and prompts
    "load_records": ("mmcot_cli.data", "load_records"),
    "build_prompt": ("mmcot_cli.prompts", "build_prompt"),
    "prompt_rows": ("mmcot_cli.prompts", "prompt_rows"),
    "prepare_data": ("mmcot_cli.readers", "prepare_source"),  # ScienceQA, A-OKVQA or generic JSONL → DATA_DIR
    # vision features
    "open_store": ("mmcot_cli.store", "open_store"),
    "FeatureStore": ("mmcot_cli.store", "FeatureStore"),
    "import_features": ("mmcot_cli.store", "import_features"),
    "ExtractConfig": ("mmcot_cli.extract", "ExtractConfig"),
    "extract_features": ("mmcot_cli.extract", "extract"),
    "merge_features": ("mmcot_cli.extract", "merge"),
    # training, generation, scoring
    "TrainConfig": ("mmcot_cli.train", "TrainConfig"),
    "train_stage": ("mmcot_cli.train", "train"),
    "GenerateConfig": ("mmcot_cli.generate", "GenerateConfig"),
    "generate_predictions": ("mmcot_cli.generate", "generate"),
    "ScoreConfig": ("mmcot_cli.score", "ScoreConfig"),
    "score_predictions": ("mmcot_cli.score", "score"),
    "score_records": ("mmcot_cli.score", "score_records"),
    "score_data": ("mmcot_cli.group_score", "score_any"),  # what `mmcot score` runs, for any prepared format
    # teacher rationales (Fine-tune-CoT)
    "Sampling": ("mmcot_cli.sampling", "Sampling"),
    "collect_rationales": ("mmcot_cli.teacher", "collect_rationales"),
    # plugins (see mmcot_cli/hookspecs.py and examples/plugin-template/)
    "hookimpl": ("mmcot_cli.hookspecs", "hookimpl"),
    "VisionBackbone": ("mmcot_cli.hookspecs", "VisionBackbone"),
    "VisionBuildOptions": ("mmcot_cli.hookspecs", "VisionBuildOptions"),
    "TextBackbone": ("mmcot_cli.hookspecs", "TextBackbone"),
    "TextBuildOptions": ("mmcot_cli.hookspecs", "TextBuildOptions"),
    "BackboneOption": ("mmcot_cli.hookspecs", "BackboneOption"),
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
    from mmcot_cli.data import load_records
    from mmcot_cli.errors import MMCoTError
    from mmcot_cli.extract import ExtractConfig
    from mmcot_cli.extract import extract as extract_features
    from mmcot_cli.extract import merge as merge_features
    from mmcot_cli.generate import GenerateConfig
    from mmcot_cli.generate import generate as generate_predictions
    from mmcot_cli.hookspecs import BackboneOption, TextBackbone, TextBuildOptions, VisionBackbone, VisionBuildOptions, hookimpl
    from mmcot_cli.model import MMCoTForConditionalGeneration, load_run_model
    from mmcot_cli.prompts import build_prompt, prompt_rows
    from mmcot_cli.score import ScoreConfig, score_records
    from mmcot_cli.score import score as score_predictions
    from mmcot_cli.store import FeatureStore, import_features, open_store
    from mmcot_cli.train import TrainConfig
    from mmcot_cli.train import train as train_stage
