"""`resnet`: timm ResNet-50 globally pooled features → (1, 2048).

The original stored (N, 2048) and repeated each row 512 times in RAM (~44 GiB); here one token is stored and
the fusion model attends over a single key. `--variant` takes another timm CNN name (pooled to one token).
"""

from __future__ import annotations

from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl
from mmcot_plugins._timm_common import TimmTokenEncoder, create_timm_model

DEFAULT_MODEL = "resnet50"
FEATURE_SHAPE = (1, 2048)
# timm's hf_hub_id of each variant's default weights (tests/test_offline_weights.py checks them against timm)
PRETRAINED_REPOS = {DEFAULT_MODEL: "timm/resnet50.a1_in1k", "resnet101": "timm/resnet101.a1h_in1k",
                    "resnet152": "timm/resnet152.a1h_in1k"}


def build(options: VisionBuildOptions) -> TimmTokenEncoder:
    arch = options.variant or DEFAULT_MODEL
    model, weights = create_timm_model("resnet", arch, options)
    return TimmTokenEncoder(model, weights, options.device, pooled=True)


@hookimpl
def register_vision_backbones(register):
    register(VisionBackbone(
        name="resnet",
        feature_shape=FEATURE_SHAPE,
        default_weights=f"timm:{DEFAULT_MODEL}",
        build=build,
        description="timm ResNet-50 global-average-pooled features as one token",
        variants=(DEFAULT_MODEL, "resnet101", "resnet152"),
        alpha="original",
        pretrained_repos={"": PRETRAINED_REPOS[DEFAULT_MODEL], **PRETRAINED_REPOS},  # as the original's extraction: Image.open(p).convert("RGB")
    ))
