"""`detr`: transformers `DetrModel`, last decoder layer's hidden states → (100 queries, 256), the original
`detr.npy` features (DETR ResNet-101-DC5, `facebook/detr-resnet-101-dc5`).

Preprocessing is the original's: torchvision `Resize(224)` (short side to 224, long side int(224·long/short),
bilinear, no cap), ToTensor, ImageNet mean/std. Images therefore differ in size; the extractor hands such a
batch over as a list, and `encode` runs one image at a time without padding, exactly as the original did, so
an image's features never depend on which other images share its batch.

Random init builds the config locally: an explicit timm `resnet101` backbone config (output stride 16 = DC5)
with no pretrained backbone, so nothing is fetched from the hub (in transformers 4.x a DetrConfig without an
explicit backbone pulled timm ImageNet weights by default). Pretrained weights must cover the whole model:
missing keys (a checkpoint for another architecture) are an error, not a silently random trunk.
"""

from __future__ import annotations

from mmcot_cli.errors import DataError, MMCoTError, UsageError
from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl
from mmcot_cli.registry.weights import RANDOM_INIT, loading, require_vision_weights, resolve_weights

# variant → (hub id, timm backbone, dilated last stage)
VARIANTS = {
    "resnet-101-dc5": ("facebook/detr-resnet-101-dc5", "resnet101", True),
    "resnet-101": ("facebook/detr-resnet-101", "resnet101", False),
    "resnet-50-dc5": ("facebook/detr-resnet-50-dc5", "resnet50", True),
    "resnet-50": ("facebook/detr-resnet-50", "resnet50", False),
}
DEFAULT_VARIANT = "resnet-101-dc5"
FEATURE_SHAPE = (100, 256)
SHORT_SIDE = 224
MAX_LONG_SIDE = 4096  # after the resize: aspect ratios up to about 18:1 pass unchanged (ScienceQA's are far below)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_init_config(variant: str = DEFAULT_VARIANT):
    """A DetrConfig for `variant` built entirely offline (explicit backbone config, no pretrained backbone)."""
    from transformers import DetrConfig, TimmBackboneConfig

    _, timm_name, dilated = VARIANTS[variant]
    backbone = TimmBackboneConfig(backbone=timm_name, num_channels=3, features_only=True,
                                  out_indices=[1, 2, 3, 4], output_stride=16 if dilated else None)
    return DetrConfig(backbone_config=backbone, dilation=dilated, use_pretrained_backbone=False)


class DetrPreprocess:
    """RGB PIL image → (3, H, W) with the short side 224: the original's Resize(224), ToTensor, Normalize."""

    def __init__(self, short_side: int = SHORT_SIDE):
        self.short_side = short_side

    def __call__(self, image):
        import numpy as np
        import torch
        from PIL import Image

        w, h = image.size
        short = self.short_side
        size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)  # torchvision's rounding
        if max(size) > MAX_LONG_SIDE:  # a 10×20000 banner would become 224×448000: the OOM killer, not features
            raise DataError(f"aspect ratio {max(w, h) / max(1, min(w, h)):.0f}:1 too extreme for detr (the short "
                            f"side at {short} makes the long side {max(size)} pixels, limit {MAX_LONG_SIDE}); "
                            "crop or pad the image")
        image = image.convert("RGB")
        if size != (w, h):
            image = image.resize(size, Image.BILINEAR)
        arr = np.asarray(image, dtype=np.float32) / 255.0
        arr = (arr - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class DetrEncoder:
    def __init__(self, model, weights: str, device: str):
        self.model = model.eval().to(device)
        self.device = device
        self.weights = weights
        self.preprocess = DetrPreprocess()
        self.feature_shape = (int(model.config.num_queries), int(model.config.d_model))

    def encode(self, pixels):
        """A (B, 3, H, W) batch or a list of (3, H, W) images of different sizes; one image per forward."""
        import torch

        with torch.inference_mode():
            outs = [self.model(pixel_values=image[None].to(self.device)).last_hidden_state for image in pixels]
            return torch.cat(outs)  # the last decoder layer, one row per object query


def build(options: VisionBuildOptions) -> DetrEncoder:
    variant = options.variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise UsageError(f"backbone detr: unknown variant {variant!r}; available: {', '.join(VARIANTS)}")
    source = resolve_weights("detr", options.weights, options.random_init, default=VARIANTS[variant][0])
    if source.kind in ("default", "hub"):  # before transformers loads: weights that cannot be had fail at once
        require_vision_weights("detr", source.value)
    from transformers import DetrModel

    if source.kind == "random-init":
        return DetrEncoder(DetrModel(random_init_config(variant)), RANDOM_INIT, options.device)
    with loading("detr", source.given):  # a hub id and a save_pretrained directory go through the same call
        model, info = DetrModel.from_pretrained(source.value, output_loading_info=True)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise MMCoTError(f"backbone detr: cannot load {source.given}: the checkpoint does not fit DETR {variant} "
                         f"({len(missing)} weights missing: {', '.join(missing[:3])} …)")
    return DetrEncoder(model, options.weights or source.value, options.device)


@hookimpl
def register_vision_backbones(register):
    register(VisionBackbone(
        name="detr",
        feature_shape=FEATURE_SHAPE,
        default_weights=VARIANTS[DEFAULT_VARIANT][0],
        build=build,
        description="DETR ResNet-101-DC5 last decoder layer (100 object queries × 256)",
        variants=tuple(VARIANTS),
        alpha="original",
        pretrained_repos={"": VARIANTS[DEFAULT_VARIANT][0], **{v: repo for v, (repo, _, _) in VARIANTS.items()}},  # as the original's extraction: Image.open(p).convert("RGB")
    ))
