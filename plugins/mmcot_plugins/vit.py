"""`vit`: timm Vision Transformer tokens (the original's (145, 1024) `vit` features).

Default: `vit_large_patch32_384`, `forward_features` = all tokens after the final norm, CLS + 12×12 patches
→ (145, 1024), preprocessed with the model's own timm data config (384 bicubic resize/crop, mean/std 0.5).
`--variant` takes any other timm ViT name (e.g. `vit_base_patch16_384` → (577, 768)). Weights resolve as
described in mmcot_cli/registry/weights.py.
"""

from __future__ import annotations

from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl
from mmcot_plugins._timm_common import TimmTokenEncoder, create_timm_model

DEFAULT_MODEL = "vit_large_patch32_384"
FEATURE_SHAPE = (145, 1024)
# timm's hf_hub_id of each variant's default weights (tests/test_offline_weights.py checks them against timm)
PRETRAINED_REPOS = {
    DEFAULT_MODEL: "timm/vit_large_patch32_384.orig_in21k_ft_in1k",
    "vit_base_patch16_384": "timm/vit_base_patch16_384.augreg_in21k_ft_in1k",
    "vit_base_patch16_224": "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "vit_large_patch16_384": "timm/vit_large_patch16_384.augreg_in21k_ft_in1k",
}


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
        alpha="original",
        pretrained_repos={"": PRETRAINED_REPOS[DEFAULT_MODEL], **PRETRAINED_REPOS},  # as the original's extraction: Image.open(p).convert("RGB")
    ))
