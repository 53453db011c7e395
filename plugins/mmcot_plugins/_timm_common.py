"""What the timm-based backbones (`vit`, `resnet`) share: building a headless timm model from the resolved weights
(mmcot_cli.registry.weights), its eval preprocessing, and an encoder returning tokens. Private to the built-in plugins."""

from __future__ import annotations

import contextlib
import logging

from mmcot_cli.errors import MMCoTError, UsageError
from mmcot_cli.registry.hookspecs import VisionBuildOptions
from mmcot_cli.registry.weights import RANDOM_INIT, loading, require_vision_weights, resolve_weights, timm_hub_id
from mmcot_plugins._preprocess import TimmPreprocess


def create_timm_model(backbone: str, arch: str, options: VisionBuildOptions):
    """A headless timm model for `arch` and a description of its weights; a directory is in timm's save_for_hf
    layout (config.json + model.safetensors), a tag is a timm name such as `vit_base_patch16_224.augreg_in21k`."""
    import timm

    source = resolve_weights(backbone, options.weights, options.random_init)
    if source.kind in ("random-init", "default", "file") and not timm.is_model(arch):  # else dir/hub config
        import difflib
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f"; close names: {', '.join(close)}" if close else "; see timm.list_models()"
        raise UsageError(f"backbone {backbone}: unknown timm model {arch!r} for --variant{hint}")
    if source.kind == "random-init":
        return timm.create_model(arch, pretrained=False, num_classes=0), RANDOM_INIT
    require_vision_weights(backbone, timm_hub_id(source, arch), arch)  # not cached, no network: one line now
    what = options.weights or "default pretrained weights"
    with loading(backbone, what, arch), _missing_keys_check(backbone, arch, what):
        if source.kind == "default":
            model = timm.create_model(arch, pretrained=True, num_classes=0)
            return model, (getattr(model, "pretrained_cfg", {}) or {}).get("hf_hub_id") or f"timm:{arch}"
        if source.kind == "local-dir":
            return timm.create_model(f"local-dir:{source.value}", pretrained=True, num_classes=0), source.given
        if source.kind == "file":
            overlay = {"file": source.value}
            return timm.create_model(arch, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay), source.given
        name = f"hf-hub:{source.value}" if source.kind == "hub" else source.value
        return timm.create_model(name, pretrained=True, num_classes=0), options.weights


@contextlib.contextmanager
def _missing_keys_check(backbone: str, arch: str, what: str):
    """timm loads pretrained weights non-strictly when the head is dropped (num_classes=0), so a checkpoint for
    another architecture would load "successfully" and leave the trunk random. Its loader reports the missing
    keys on its logger; turn that report into an error."""
    missing: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):  # timm reports "Missing keys (a, b, …) discovered while loading …"
            msg = record.getMessage()
            if msg.startswith("Missing keys (") and ")" in msg:
                missing.extend(k.strip() for k in msg[len("Missing keys ("):msg.index(")")].split(","))

    logger = logging.getLogger("timm.models._builder")
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if missing:
        shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
        raise MMCoTError(f"backbone {backbone} ({arch}): cannot load {what}: the checkpoint does not fit {arch} "
                         f"({len(missing)} weights missing: {shown})")


def timm_token_shape(model) -> tuple[int, int]:
    """(tokens, dim) of `forward_features` for a timm ViT (prefix tokens + patch grid) or CNN (flattened grid)."""
    if hasattr(model, "patch_embed"):
        grid = model.patch_embed.grid_size
        prefix = getattr(model, "num_prefix_tokens", 1)  # CLS (+ register tokens)
        return int(prefix + grid[0] * grid[1]), int(model.num_features)
    input_size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    reduction = model.feature_info[-1]["reduction"]
    return int((input_size[1] // reduction) * (input_size[2] // reduction)), int(model.num_features)


class TimmTokenEncoder:
    """forward_features of a timm model → (B, tokens, dim); `pooled` → the pre-logits vector as one token."""

    def __init__(self, model, weights: str, device: str, pooled: bool = False):
        from timm.data import resolve_model_data_config
        self.model = model.eval().to(device)
        self.device = device
        self.weights = weights
        self.pooled = pooled
        self.data_config = resolve_model_data_config(model)
        self.preprocess = TimmPreprocess(self.data_config)
        self.feature_shape = (1, int(model.num_features)) if pooled else timm_token_shape(model)

    def encode(self, pixels):
        import torch
        with torch.inference_mode():
            x = self.model.forward_features(pixels.to(self.device))
            if self.pooled:
                return self.model.forward_head(x, pre_logits=True).unsqueeze(1)
            if x.ndim == 4:  # CNN variant: (B, C, H, W) grid → (B, H*W, C)
                x = x.flatten(2).transpose(1, 2)
            return x
