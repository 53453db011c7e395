"""`vit`: timm Vision Transformer tokens (the original's (145, 1024) `vit` features).

Default: `vit_large_patch32_384`, `forward_features` = all tokens after the final norm, CLS + 12×12 patches
→ (145, 1024), preprocessed with the model's own timm data config (384 bicubic resize/crop, mean/std 0.5).
`--variant` takes any other timm ViT name (e.g. `vit_base_patch16_384` → (577, 768)).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from mmcot_cli.errors import MMCoTError, UsageError, first_line
from mmcot_cli.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl

DEFAULT_MODEL = "vit_large_patch32_384"
FEATURE_SHAPE = (145, 1024)


def create_timm_model(backbone: str, arch: str, options: VisionBuildOptions):
    """Create a timm model without classifier head; returns (model, weights description).

    Weights: none → timm's default pretrained tag for `arch`; a directory → `local-dir:` (timm's
    save_for_hf layout: config.json + model.safetensors); a file → that checkpoint for `arch`; an `org/name`
    or `hf-hub:` id → that hub repo. `random_init` never touches the network.
    """
    import timm

    weights = options.weights
    arch_used = options.random_init or not weights or Path(weights).expanduser().is_file()  # else dir/hub config
    if arch_used and not timm.is_model(arch):
        import difflib

        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        raise UsageError(f"backbone {backbone}: unknown timm model {arch!r} for --variant"
                         + (f"; close names: {', '.join(close)}" if close else "; see timm.list_models()"))
    try:
        with _missing_keys_check(backbone, arch, weights or "default pretrained weights"):
            return _create_timm_model(timm, backbone, arch, options)
    except MMCoTError:
        raise
    except Exception as e:  # network down, unknown name, incompatible checkpoint: one line for the user
        what = weights or "default pretrained weights"
        raise MMCoTError(f"backbone {backbone} ({arch}): cannot load {what}: {first_line(e)} "
                         f"(offline? use --random-init or --weights PATH)") from None


@contextlib.contextmanager
def _missing_keys_check(backbone: str, arch: str, what: str):
    """timm loads pretrained weights non-strictly when the head is dropped (num_classes=0), so a checkpoint for
    another architecture would load "successfully" and leave the trunk random. Its loader reports the missing
    keys on its logger; turn that report into an error."""

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.INFO)
            self.missing: list[str] = []

        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Missing keys (") and ")" in msg:
                self.missing.extend(k.strip() for k in msg[len("Missing keys ("):msg.index(")")].split(","))

    logger = logging.getLogger("timm.models._builder")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if handler.missing:
        shown = ", ".join(handler.missing[:3]) + (" …" if len(handler.missing) > 3 else "")
        raise MMCoTError(f"backbone {backbone} ({arch}): cannot load {what}: the checkpoint does not fit {arch} "
                         f"({len(handler.missing)} weights missing: {shown})")


def _create_timm_model(timm, backbone: str, arch: str, options: VisionBuildOptions):
    weights = options.weights
    if options.random_init:
        if weights:
            raise UsageError(f"backbone {backbone}: give either --random-init or --weights, not both")
        return timm.create_model(arch, pretrained=False, num_classes=0), "random-init"
    if not weights:
        model = timm.create_model(arch, pretrained=True, num_classes=0)
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        return model, cfg.get("hf_hub_id") or f"timm:{arch}"
    path = Path(weights).expanduser()
    if path.is_dir():
        return timm.create_model(f"local-dir:{path.resolve()}", pretrained=True, num_classes=0), str(path)
    if path.is_file():
        model = timm.create_model(arch, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": str(path.resolve())})
        return model, str(path)
    if weights.startswith(("/", ".", "~")):
        raise UsageError(f"backbone {backbone}: --weights {weights}: no such file or directory")
    source = weights if weights.startswith("hf-hub:") or "/" not in weights else f"hf-hub:{weights}"
    return timm.create_model(source, pretrained=True, num_classes=0), weights


def timm_token_shape(model) -> tuple[int, int]:
    """(tokens, dim) of `forward_features` for a timm ViT (prefix tokens + patch grid) or CNN (flattened grid)."""
    if hasattr(model, "patch_embed"):
        grid = model.patch_embed.grid_size
        prefix = getattr(model, "num_prefix_tokens", 1)  # CLS (+ register tokens)
        return int(prefix + grid[0] * grid[1]), int(model.num_features)
    input_size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    reduction = model.feature_info[-1]["reduction"]
    return int((input_size[1] // reduction) * (input_size[2] // reduction)), int(model.num_features)


class TimmPreprocess:
    """Picklable wrapper around timm's eval transform built from the model's data config."""

    def __init__(self, data_config: dict):
        self.data_config = dict(data_config)
        self._transform = None

    def __call__(self, image):
        if self._transform is None:
            from timm.data import create_transform

            self._transform = create_transform(**self.data_config, is_training=False)
        return self._transform(image)

    def __getstate__(self):
        return {"data_config": self.data_config, "_transform": None}


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


def build(options: VisionBuildOptions) -> TimmTokenEncoder:
    arch = options.variant or DEFAULT_MODEL
    model, weights = create_timm_model("vit", arch, options)
    return TimmTokenEncoder(model, weights, options.device)


@hookimpl
def register_vision_backbones(register):
    register(VisionBackbone(
        name="vit",
        feature_shape=FEATURE_SHAPE,
        default_weights=f"timm:{DEFAULT_MODEL}",
        build=build,
        description="timm ViT forward_features (CLS + patch tokens after the final norm), timm data config",
        variants=(DEFAULT_MODEL, "vit_base_patch16_384", "vit_base_patch16_224", "vit_large_patch16_384"),
    ))
