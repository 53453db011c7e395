"""Local T5 checkpoint directories in the layouts the hub actually has, checked before transformers sees them.

Tokenizer: `tokenizer.json` (fast), `spiece.model` (SentencePiece; UnifiedQA ships only this, and transformers 5
converts it to a fast tokenizer, which needs `sentencepiece` and `protobuf`), or both. Weights: `*.safetensors`
or `pytorch_model*.bin`. Heads: tied (T5 v1.0, UnifiedQA: `lm_head` = the embeddings, decoder output scaled by
d_model^-0.5) or untied (T5 v1.1 / FLAN: own `lm_head`, no scaling); `from_pretrained` keeps both apart as long
as the config passed to it was read from the directory's own config.json (see `head_is_tied`).

Anything else becomes one DataError line naming the directory and what is wrong, never a transformers traceback.
"""

from __future__ import annotations

import fnmatch
import importlib.util
from pathlib import Path

from mmcot_cli.errors import DataError, first_line
from mmcot_cli.io import read_json

TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


def weight_files(path: Path) -> list[Path]:
    """The directory's weight files: safetensors if any (transformers prefers them), else pickled .bin files."""
    return [path / name for name in pick_weights([p.name for p in path.iterdir()])]


def pick_weights(names: list[str]) -> list[str]:
    """weight_files by name: the safetensors files if any, else the pytorch_model*.bin ones (sorted)."""
    safetensors = sorted(n for n in names if n.endswith(".safetensors"))
    return safetensors or sorted(n for n in names if fnmatch.fnmatch(n, "pytorch_model*.bin"))


def checkpoint_files(names: list[str]) -> list[str]:
    """What to fetch of a hub folder holding a checkpoint: config.json, the weights import reads and the
    tokenizer files; [] when the folder is not one (no config.json, weights or tokenizer)."""
    weights = pick_weights(names)
    tokenizer = [n for n in names if n in TOKENIZER_FILES]
    if "config.json" not in names or not weights or not tokenizer:
        return []
    extra = [n for n in names if n.endswith(".json") and n != "config.json"]  # tokenizer / generation configs
    return sorted({"config.json", *weights, *tokenizer, *extra})


def check_t5_dir(path: str | Path) -> dict:
    """Describe a local T5 directory ({"tokenizer": ..., "weights": [...], "tied": bool}) or raise DataError."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: not a directory")
    if not (path / "config.json").is_file():
        raise DataError(f"{path}: not a T5 checkpoint directory (no config.json)")
    config = read_json(path / "config.json")
    if not isinstance(config, dict):
        raise DataError(f"{path / 'config.json'}: expected a JSON object (a model config)")
    if config.get("model_type") != "t5":
        raise DataError(f"{path}: a {config.get('model_type')!r} model; mmcot needs a T5 encoder-decoder "
                        "(config.json model_type 't5') or a decoder-only causal LM")
    weights = weight_files(path)
    if not weights:
        raise DataError(f"{path}: no weights (expected *.safetensors or pytorch_model.bin)")
    tokenizer = [name for name in TOKENIZER_FILES if (path / name).is_file()]
    if not tokenizer:
        raise DataError(f"{path}: no tokenizer (expected tokenizer.json or spiece.model)")
    return {"tokenizer": "+".join(tokenizer), "weights": [w.name for w in weights], "tied": head_is_tied(config)}


def head_is_tied(config: dict) -> bool:
    """T5's convention: heads are tied (and decoder outputs scaled) unless config.json says tie_word_embeddings
    false. transformers 5 reports tie_word_embeddings=True for every T5Config, so read the file, not the object."""
    return config.get("tie_word_embeddings", True) is not False


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package ("google" for google.protobuf)
        return False


def _require_sentencepiece(path: Path) -> None:
    missing = [pkg for pkg, module in (("sentencepiece", "sentencepiece"), ("protobuf", "google.protobuf"))
               if not _installed(module)]
    if missing:
        raise DataError(f"{path}: the tokenizer is spiece.model only; reading it needs "
                        f"{' and '.join(missing)} (pip install {' '.join(missing)})")


def load_tokenizer(path: str | Path):
    """The directory's tokenizer (fast when tokenizer.json exists, else converted from spiece.model)."""
    from transformers import AutoTokenizer

    path = Path(path).expanduser()
    if not (path / "tokenizer.json").is_file() and (path / "spiece.model").is_file():
        _require_sentencepiece(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: cannot load the tokenizer ({first_line(e)})") from None
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise DataError(f"{path}: the tokenizer has no pad or eos token; not a T5 tokenizer")
    return tokenizer
