"""pluggy hook specifications and the small dataclasses a plugin registers.

A plugin module implements one or both hooks and calls `register(...)` once per backbone:

    from mmcot_cli import hookimpl, VisionBackbone

    @hookimpl
    def register_vision_backbones(register):
        register(VisionBackbone(name="mine", feature_shape=(49, 512), default_weights="org/model", build=_build))

and declares itself in its pyproject under the `mmcot` entry-point group. A builder resolves `options.weights`
with mmcot_cli.registry.weights (the policy every built-in backbone follows). Keep plugin modules free of torch / timm /
open_clip imports at module level: every command that lists backbones imports every plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

import pluggy

from mmcot_cli.errors import UsageError
from mmcot_cli.validate import check_alpha, check_number

if TYPE_CHECKING:  # keep plugin import cheap: torch/PIL only for type hints
    import torch
    from PIL.Image import Image

hookspec = pluggy.HookspecMarker("mmcot")
hookimpl = pluggy.HookimplMarker("mmcot")


@dataclass(frozen=True)
class VisionBuildOptions:
    """How to build a vision encoder: pretrained weights (default) or random init for offline use."""

    variant: str | None = None  # backbone-specific model variant (e.g. "ViT-L-14"); None = the default
    weights: str | None = None  # hub id / pretrained tag / local path; None = the backbone's default_weights
    random_init: bool = False  # build the architecture with random weights; never touches the network
    device: str = "cpu"


class VisionEncoder(Protocol):
    """What a vision builder returns. Preprocessing travels with the model (as in timm/open_clip).

    `preprocess` must be a picklable callable attribute (a transform object, not a bound method of the
    encoder): DataLoader workers receive it without the model. Images that preprocess to one
    shape are `torch.stack`ed into a batch; a batch whose images differ in size reaches `encode` as a list (detr).
    """

    feature_shape: tuple[int, int]  # (tokens, dim) this encoder produces, for its variant
    weights: str  # what was actually loaded: hub id, local path, pretrained tag, "random-init" or "" (weight-free)

    def preprocess(self, image: "Image") -> "torch.Tensor":
        """An RGB PIL image → one input tensor (C, H, W). Runs in DataLoader workers: keep it picklable."""

    def encode(self, pixels: "torch.Tensor") -> "torch.Tensor":
        """A batch (B, C, H, W), or a list of (C, H, W) of different sizes → features (B, tokens, dim)."""


@dataclass(frozen=True)
class VisionBackbone:
    name: str
    feature_shape: tuple[int, int]  # declared (tokens, dim) of the default variant
    default_weights: str  # what a user with internet gets by default ("" for weight-free backbones)
    build: Callable[[VisionBuildOptions], VisionEncoder]
    description: str = ""
    variants: Sequence[str] = ()  # known variants (others may still be accepted by the builder)
    plugin: str = ""  # filled in by the registry: which plugin registered it
    # No weights at all (e.g. `patches`): --weights is refused and --random-init is a no-op, so such a backbone
    # gives the same features and manifest whether or not a caller asks for random init.
    weight_free: bool = False
    # How transparent pixels become RGB unless --alpha says otherwise (mmcot_cli.data.images): "original" for the
    # reference's backbones, whose released features were extracted with convert("RGB"); "white" otherwise.
    alpha: str = "white"
    # The hub repo pretrained weights come from, as plain data (read without torch or the library, so a command
    # fails at once when they are neither cached nor reachable: registry.weights.require_backbone_weights). Keys:
    # "" (the default variant's default weights), a variant (its default weights), a --weights tag (timm: a full
    # name such as "vit_base_patch16_224.augreg_in21k"; open_clip: "VARIANT/TAG"). Unlisted: checked at build.
    pretrained_repos: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_alpha(self.alpha, f"vision backbone {self.name}: alpha")


@dataclass(frozen=True)
class TextBuildOptions:
    """How to obtain a text backbone: from_pretrained of its weights, or built from scratch."""

    weights: str | None = None  # override the hub id / local directory
    random_init: bool = False  # architecture from the config only (no weights)
    train_texts: Sequence[str] | None = None  # for from-scratch backbones that train a tokenizer
    options: dict[str, Any] = field(default_factory=dict)  # backbone-specific (e.g. d_model for scratch)


@dataclass(frozen=True)
class BackboneOption:
    """An option a backbone declares; `mmcot train --text-option NAME=VALUE` is checked against these."""

    name: str
    type: Callable[[Any], Any] = str  # parses the value (a command-line string, or a value from library code)
    default: Any = None
    help: str = ""
    minimum: float | None = None  # numbers: checked with mmcot_cli.validate (NaN/inf always rejected)
    maximum: float | None = None

    def check(self, value: Any, backbone: str) -> Any:
        """The parsed value, range-checked; UsageError names the backbone option."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):

            check_number(f"{backbone} option {self.name}", value, low=self.minimum, high=self.maximum)
        return value

    def describe(self) -> str:
        return f"{self.name} ({getattr(self.type, '__name__', 'value')}, default {self.default})"


@dataclass(frozen=True)
class TextBackbone:
    name: str
    weights: str  # hub id or local directory passed to from_pretrained ("" for from-scratch builders)
    description: str = ""
    # Optional custom builder: (language model, tokenizer), a transformers T5ForConditionalGeneration (an encoder-
    # decoder) or an AutoModelForCausalLM-style decoder-only LM. mmcot wraps it in its text-model seam
    # (mmcot_cli.model.text: the fusion, batching, generation, save/load); the plugin gives the LM only.
    # None = from_pretrained of `weights`.
    build: Callable[[TextBuildOptions], tuple[Any, Any]] | None = None
    plugin: str = ""
    options: Sequence[BackboneOption] = ()  # what TextBuildOptions.options may hold (parsed by parse_options)
    # "seq2seq" (T5: the fusion on the encoder output) or "causal" (a decoder-only LM: `--fusion gated` at a decoder
    # layer, or `prefix`); shown by `mmcot backbones`. Loading decides by the model's config either way.
    kind: str = "seq2seq"

    def parse_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Given options checked against the declared ones and parsed; UsageError (exit 2) lists the valid ones."""
        declared = {o.name: o for o in self.options}
        valid = ", ".join(o.describe() for o in self.options) or "none"
        parsed = {}
        for key, value in raw.items():
            if key not in declared:
                raise UsageError(f"unknown {self.name} option {key!r}; valid options: {valid}")
            try:
                parsed[key] = declared[key].type(value)
            except (TypeError, ValueError):
                raise UsageError(f"{self.name} option {key}: bad value {value!r}; valid options: {valid}") from None
            declared[key].check(parsed[key], self.name)
        return parsed


class HookSpecs:
    @hookspec
    def register_vision_backbones(self, register: Callable[[VisionBackbone], None]) -> None:
        """Call register(VisionBackbone(...)) for each vision backbone this plugin provides."""

    @hookspec
    def register_text_backbones(self, register: Callable[[TextBackbone], None]) -> None:
        """Call register(TextBackbone(...)) for each text backbone this plugin provides."""


register_vision_backbones = HookSpecs.register_vision_backbones
register_text_backbones = HookSpecs.register_text_backbones
