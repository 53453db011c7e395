"""`clip`: open_clip image towers.

Default (`RN50`, `openai` weights): the CLIP ResNet-50 trunk's 7×7 grid *before* attention pooling, flattened
→ (49, 2048), matching the original `clip.npy` features. A ViT variant (`--variant ViT-L-14`, ViT-B-32 …)
returns its patch tokens after the final LayerNorm, without the CLS token → (grid², width), e.g. (256, 1024).
Preprocessing is open_clip's own eval transform for the model (resize/crop + CLIP mean/std).
"""

from __future__ import annotations

from mmcot_cli.errors import UsageError
from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl
from mmcot_cli.registry.weights import RANDOM_INIT, WeightSource, loading, require_vision_weights, resolve_weights
from mmcot_plugins._preprocess import LongSideCropped

DEFAULT_MODEL = "RN50"
DEFAULT_PRETRAINED = "openai"
FEATURE_SHAPE = (49, 2048)
# open_clip's hub repo of each variant's openai weights, and of one tag (tests/test_offline_weights.py checks them)
PRETRAINED_REPOS = {DEFAULT_MODEL: "timm/resnet50_clip.openai", "RN101": "timm/resnet101_clip.openai",
                    "ViT-B-32": "timm/vit_base_patch32_clip_224.openai", "ViT-B-16": "timm/vit_base_patch16_clip_224.openai",
                    "ViT-L-14": "timm/vit_large_patch14_clip_224.openai",
                    "ViT-B-32/laion2b_s34b_b79k": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"}


def _create(arch: str, options: VisionBuildOptions):
    """(open_clip model, eval transform, weights description); random init never touches the network."""
    import open_clip

    source = resolve_weights("clip", options.weights, options.random_init, default=DEFAULT_PRETRAINED)
    if source.kind == "random-init":
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
        return model, preprocess, RANDOM_INIT
    require_vision_weights("clip", _hub_repo(arch, source), arch)  # not cached, no network: one line now
    with loading("clip", source.given, arch):
        if source.kind == "local-dir":  # open_clip_config.json + weights, as written by open_clip's hub helpers
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{source.value}")
        elif source.kind == "hub":  # a hub repo with an open_clip config
            model, _, preprocess = open_clip.create_model_and_transforms(f"hf-hub:{source.value}")
        else:  # a checkpoint file for `arch`, or a pretrained tag such as "openai" or "laion2b_s34b_b79k"
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=source.value)
    weights = options.weights or DEFAULT_PRETRAINED
    return model, preprocess, weights if weights != DEFAULT_PRETRAINED else f"open_clip:{arch}/{weights}"


def _hub_repo(arch: str, source: WeightSource) -> str | None:
    """The hub repo open_clip downloads `source` from: an hf-hub id, or the one open_clip's table gives a pretrained
    tag (`RN50` + `openai` → timm/resnet50_clip.openai); None for a local path or a tag only a URL serves."""
    if source.kind == "hub":
        return source.value
    if source.kind not in ("default", "tag"):
        return None
    from open_clip.pretrained import get_pretrained_cfg

    hub = (get_pretrained_cfg(arch, source.value) or {}).get("hf_hub") or ""
    parts = [part for part in hub.split("/") if part]
    return "/".join(parts[:2]) if len(parts) >= 2 else None


class ClipEncoder:
    def __init__(self, visual, preprocess, weights: str, device: str):
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        self.visual = visual.eval().to(device)
        if (getattr(visual, "preprocess_cfg", None) or {}).get("resize_mode", "shortest") == "shortest":
            preprocess = LongSideCropped(preprocess)  # resize short side + centre crop: bounded for 10×20000
        self.preprocess = preprocess
        self.weights = weights
        self.device = device
        if isinstance(visual, ModifiedResNet):
            self.kind = "resnet"
            grid = visual.image_size // 32 if isinstance(visual.image_size, int) else visual.image_size[0] // 32
            dim = visual.layer4[-1].conv3.out_channels * 1  # Bottleneck output channels = width * 32
            self.feature_shape = (grid * grid, dim)
        elif isinstance(visual, VisionTransformer):
            self.kind = "vit"
            visual.output_tokens = True
            gh, gw = visual.grid_size
            self.feature_shape = (gh * gw, visual.transformer.width)
        else:
            raise UsageError(f"backbone clip: unsupported open_clip image tower {type(visual).__name__}; "
                             "use an RN* or ViT-* model")

    def encode(self, pixels):
        import torch

        v = self.visual
        with torch.inference_mode():
            x = pixels.to(self.device)
            if self.kind == "resnet":
                x = x.to(v.conv1.weight.dtype)
                x = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))  # stop before attnpool
                return x.flatten(2).transpose(1, 2)
            _, tokens = v(x)
            return tokens


def build(options: VisionBuildOptions) -> ClipEncoder:
    arch = options.variant or DEFAULT_MODEL
    model, preprocess, weights = _create(arch, options)
    visual = model.visual
    del model  # only the image tower is kept (the text tower is half the parameters)
    return ClipEncoder(visual, preprocess, weights, options.device)


@hookimpl
def register_vision_backbones(register):
    register(VisionBackbone(
        name="clip",
        feature_shape=FEATURE_SHAPE,
        default_weights=f"open_clip:{DEFAULT_MODEL}/{DEFAULT_PRETRAINED}",
        build=build,
        description="open_clip RN50 trunk 7×7 grid before attention pooling; ViT variants give patch tokens",
        variants=(DEFAULT_MODEL, "RN101", "ViT-B-32", "ViT-B-16", "ViT-L-14"),
        alpha="original",
        pretrained_repos={"": PRETRAINED_REPOS[DEFAULT_MODEL], **PRETRAINED_REPOS,  # --weights openai too:
                          **{f"{v}/{DEFAULT_PRETRAINED}": r for v, r in PRETRAINED_REPOS.items() if "/" not in v}},  # as the original's extraction: Image.open(p).convert("RGB")
    ))
