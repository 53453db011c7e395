"""LoRA on the text model through `peft` (`mmcot train --lora-r N`), for T5 and decoder-only backbones alike.

The adapter is injected in place (`peft.inject_adapter_in_model`) into the text model: T5 itself, or a
CausalFusionLM's `lm`. The model keeps its class, its forward and its generate; every adapted linear layer holds
its frozen `base_layer` plus `lora_A`/`lora_B`. Only the LoRA matrices and the fusion layers train: the fusion is
never adapted (excluded from the targets) and always trains in full.

A model directory of a LoRA run holds the base weights under their usual names (`save_pretrained` of the frozen
base: it loads as the plain model) and the adapter in ADAPTER_DIR in peft's layout (adapter_config.json,
adapter_model.safetensors), so `PeftModel.from_pretrained(AutoModel….from_pretrained(model/), model/adapter)`
works too. `merged` writes W + (alpha/r)·B·A in place of each adapted weight instead: a plain model directory with
no adapter. The config's `mmcot.lora` records r, alpha, dropout, the adapted layers' names and whether the weights are merged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mmcot_cli.errors import DataError, UsageError, first_line

ADAPTER_DIR = "adapter"  # RUN_DIR/model/adapter/
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # how PeftModel names the weights of the model it wraps
ALL_LINEAR = "all-linear"
FUSION = "fusion"
_CONFIG = "_mmcot_lora"  # the LoraConfig on the adapted text model


def text_lm(model) -> nn.Module:
    """The module the adapter goes into: a CausalFusionLM's LM, or T5 itself (a DDP wrapper is looked through)."""
    from mmcot_cli.model.causal_lm import CausalFusionLM

    inner = getattr(model, "module", model)
    return inner.lm if isinstance(inner, CausalFusionLM) else inner


def lora_config_of(model):
    """The model's LoraConfig, or None for a model without LoRA."""
    return getattr(text_lm(model), _CONFIG, None)


def parse_targets(targets: str | None) -> list[str] | str:
    text = (targets or ALL_LINEAR).strip()
    if text == ALL_LINEAR:
        return ALL_LINEAR
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--lora-targets expects module names (e.g. q,v or q_proj,v_proj) or {ALL_LINEAR}")
    return names


def _inject(model, config) -> None:
    from peft import inject_adapter_in_model

    lm = text_lm(model)
    try:
        inject_adapter_in_model(config, lm)
    except ValueError as e:  # targets that name no module of this model
        raise UsageError(f"--lora-targets {config.target_modules}: {first_line(e)}") from None
    setattr(lm, _CONFIG, config)
    set_trainable(model)


def apply_lora(model, r: int, alpha: float, dropout: float, targets: str | None = None):
    """Inject a fresh LoRA adapter of rank r into the text model (LoRA B starts at zero: the model is unchanged)."""
    from peft import LoraConfig

    lm = text_lm(model)
    inside = any(name.split(".")[0] == FUSION for name, _ in lm.named_modules())  # T5 holds its fusion
    config = LoraConfig(r=int(r), lora_alpha=float(alpha), lora_dropout=float(dropout),
                        target_modules=parse_targets(targets), exclude_modules=rf"^{FUSION}\..*" if inside else None)
    _inject(model, config)
    return model


def set_trainable(model) -> None:
    """Only the LoRA matrices and the fusion layers train; every other weight stays frozen."""
    inner = getattr(model, "module", model)
    for name, param in inner.named_parameters():
        param.requires_grad = "lora_" in name or name.split(".")[0] == FUSION


def settings(model, merged: bool) -> dict | None:
    """What the model directory's config records of the adapter (None without LoRA)."""
    config = lora_config_of(model)
    if config is None:
        return None
    adapted = sorted({name.rpartition(".")[2] for name, _ in _lora_layers(text_lm(model))})  # what got adapters
    return {"r": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout, "targets": adapted,
            "merged": bool(merged)}


def _lora_layers(lm: nn.Module):
    from peft.tuners.lora import LoraLayer

    return [(name, module) for name, module in lm.named_modules() if isinstance(module, LoraLayer)]


def base_state(lm: nn.Module, merged: bool) -> dict[str, torch.Tensor]:
    """The text model's weights under the plain model's names: the frozen base, or with the adapter merged in."""
    state = {k.replace(".base_layer.", "."): v for k, v in lm.state_dict().items() if "lora_" not in k}
    if merged:
        for name, layer in _lora_layers(lm):
            with torch.no_grad():
                state[f"{name}.weight"] = layer.get_base_layer().weight + layer.get_delta_weight("default")
    return state


def save_text_model(lm: nn.Module, out_dir: Path, merged: bool = False) -> None:
    """`save_pretrained` of the text model into out_dir, plus the adapter in ADAPTER_DIR (unless merged)."""
    config = getattr(lm, _CONFIG, None)
    if config is None:
        lm.save_pretrained(out_dir)
        return
    from peft import get_peft_model_state_dict

    lm.save_pretrained(out_dir, state_dict=base_state(lm, merged))
    if merged:
        return
    adapter = Path(out_dir) / ADAPTER_DIR
    adapter.mkdir()
    config.save_pretrained(str(adapter))
    weights = {PEFT_PREFIX + k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(lm).items()}
    save_file(weights, str(adapter / ADAPTER_WEIGHTS))


def load_adapter(model, model_dir: Path) -> None:
    """Inject the adapter saved in model_dir/ADAPTER_DIR (if any) into a model loaded from model_dir's base weights;
    a missing or damaged adapter is one DataError naming the directory."""
    adapter = Path(model_dir) / ADAPTER_DIR
    if not (adapter / "adapter_config.json").is_file():
        return
    from peft import LoraConfig, set_peft_model_state_dict

    try:
        config = LoraConfig.from_pretrained(str(adapter))
        _inject(model, config)
        weights = {k.removeprefix(PEFT_PREFIX): v for k, v in load_file(str(adapter / ADAPTER_WEIGHTS)).items()}
        lm = text_lm(model)
        result = set_peft_model_state_dict(lm, weights)
    except (OSError, ValueError, RuntimeError, KeyError, UsageError, SafetensorError) as e:
        raise DataError(f"{adapter}: cannot load the LoRA adapter ({first_line(e)})") from None
    expected = {k for k in lm.state_dict() if "lora_" in k}
    missing = sorted(expected & set(result.missing_keys))
    if missing or result.unexpected_keys:
        raise DataError(f"{adapter}: the LoRA adapter does not fit the model (missing {missing[:3]}, unexpected "
                        f"{list(result.unexpected_keys)[:3]})")
