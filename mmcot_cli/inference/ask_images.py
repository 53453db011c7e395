"""`mmcot ask --image`: the image features each run sees, from its feature store when it holds them, else encoded.

A run's feature store records, per row, the digest of the image file the row was extracted from
(mmcot_cli.features.store_images). When `--image` is one of those files (same bytes) and the store was made the way
`ask` would encode it (same backbone, variant, weights or random init, transparency policy), its stored row is
used: no vision backbone is built (a ViT-L is seconds to build and to run on a CPU). Otherwise the image is
encoded with the run's recorded backbone, built once per process and shared by both runs and by every question of
`--questions`. The image file is read once: its bytes give the digest and the decoded picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mmcot_cli.data.images import decode_image, image_digest, read_image_bytes, to_rgb
from mmcot_cli.errors import DataError, MMCoTError, PluginError, UsageError
from mmcot_cli.features.store import LEGACY_IDENTITY, open_store
from mmcot_cli.features.store_images import stored_digests
from mmcot_cli.io import read_json
from mmcot_cli.registry.hookspecs import VisionBuildOptions
from mmcot_cli.registry.manager import (
    build_vision_encoder,
    call_plugin,
    describe,
    encode_checked,
    get_vision_backbone,
)
from mmcot_cli.registry.weights import OFFLINE_HINT, RANDOM_INIT, require_backbone_weights
from mmcot_cli.runs.meta import RunMeta

LEGACY_ALPHA = LEGACY_IDENTITY["alpha"]  # runs and stores made before the policy was recorded decoded onto white


def _manifest(info: RunMeta) -> dict | None:
    if not info.features_dir or not (Path(info.features_dir) / "manifest.json").is_file():
        return None
    try:
        manifest = read_json(Path(info.features_dir) / "manifest.json")
    except DataError:
        return None
    return manifest if isinstance(manifest, dict) else None


def vision_source(info: RunMeta) -> tuple[str | None, str | None, str]:
    """The (variant, weights, alpha policy) the run's features were made with, from its meta or features manifest.

    The alpha policy: the run's record, else its store's (a store without one predates the policies: "white"),
    else "original" for an imported run (trained on the original's features), else "white" (what every run
    trained before the policy was recorded used)."""
    variant, weights, alpha = info.vision_variant, info.vision_weights, info.vision_alpha
    manifest = _manifest(info) if variant is None or weights is None or alpha is None else None
    if manifest is not None:
        variant = variant or manifest.get("variant")
        weights = weights or manifest.get("weights")
    if alpha is None:
        if manifest is not None:
            alpha = manifest.get("alpha", LEGACY_ALPHA)
        else:
            alpha = "original" if info.imported_from else LEGACY_ALPHA
    return variant, weights, alpha


def recorded_alpha(info: RunMeta) -> str:
    """The transparency policy `mmcot ask` decodes --image with for this run, unless --alpha overrides it."""
    return vision_source(info)[2]


def _with_ask_flags(e: MMCoTError) -> MMCoTError:
    """The weight loader's hints name extract's flags; `ask` spells them --vision-weights / --random-init-vision."""
    message = str(e).replace(OFFLINE_HINT, "offline? use --vision-weights PATH or --random-init-vision")
    message = message.replace("--weights ", "--vision-weights ")
    if message == str(e):
        return e
    return (UsageError if e.exit_code == 2 else MMCoTError)(message)


@dataclass(frozen=True)
class Encoding:
    """How one run's features of --image are made: what `mmcot extract` would have been given."""

    backbone: str
    variant: str | None
    weights: str | None
    random_init: bool
    alpha: str


def run_encoding(info: RunMeta, *, random_init: bool, weights: str | None, alpha: str | None) -> Encoding:
    """The run's recorded encoding, `weights` / `random_init` / `alpha` overriding it. A run trained on
    random-init features (weights "random-init") is encoded with the same seeded random weights."""
    variant, recorded, recorded_policy = vision_source(info)
    if not weights and recorded == RANDOM_INIT:
        random_init = True
    return Encoding(info.vision_backbone, variant or None, None if random_init else (weights or recorded),
                    random_init, alpha or recorded_policy)


def _store_matches(store, enc: Encoding, weight_free: bool) -> bool:
    ident = store.identity
    if ident.get("backbone") != enc.backbone or (ident.get("variant") or None) != enc.variant:
        return False
    if store.alpha != enc.alpha:
        return False
    if weight_free:
        return True
    return ident.get("weights") == (RANDOM_INIT if enc.random_init else enc.weights)


def _stored_row(info: RunMeta, enc: Encoding, weight_free: bool, digest: str, cache: dict) -> torch.Tensor | None:
    """The run's stored row extracted from an image with this digest the way `enc` encodes, or None."""
    if not info.features_dir:
        return None
    stores = cache.setdefault("stores", {})
    if info.features_dir not in stores:
        try:
            store = open_store(info.features_dir)
            stores[info.features_dir] = (store, {d: q for q, d in stored_digests(store).items()})
        except DataError:  # gone, moved or damaged: the image is encoded instead
            stores[info.features_dir] = None
    if stores[info.features_dir] is None:
        return None
    store, by_digest = stores[info.features_dir]
    if digest not in by_digest or not store.has(by_digest[digest]) or not _store_matches(store, enc, weight_free):
        return None  # (a qid without a row would read as zeros)
    try:
        return store.get(by_digest[digest]).unsqueeze(0).float()
    except DataError:
        return None


def _encoder(enc: Encoding, device: torch.device, cache: dict):
    """(backbone, encoder) for `enc`, built once per process (both runs, every question)."""
    key = (enc.backbone, enc.variant, enc.weights, enc.random_init, str(device))
    encoders = cache.setdefault("encoders", {})
    if key not in encoders:
        backbone = get_vision_backbone(enc.backbone)
        try:  # weights that cannot be had: one line before timm / open_clip load
            require_backbone_weights(enc.backbone, enc.weights, enc.variant, enc.random_init)
            encoders[key] = backbone, build_vision_encoder(backbone, VisionBuildOptions(
                variant=enc.variant, weights=enc.weights, random_init=enc.random_init, device=str(device)))
        except MMCoTError as e:
            raise _with_ask_flags(e) from None
    return encoders[key]


def _encode(enc: Encoding, data: bytes, image_path: str, device: torch.device, cache: dict) -> torch.Tensor:
    backbone, encoder = _encoder(enc, device, cache)
    image = to_rgb(decode_image(data, image_path, "ask"), enc.alpha)
    with torch.inference_mode():  # the plugin's results are checked at the boundary (one line naming it)
        pixels = call_plugin(backbone, "preprocess", encoder.preprocess, image)
        if not isinstance(pixels, torch.Tensor):
            raise PluginError(f"{describe(backbone)}: preprocess returned a {type(pixels).__name__}, "
                              "expected a tensor (C, H, W)")
        return encode_checked(backbone, encoder, pixels.unsqueeze(0).to(device), encoder.feature_shape,
                              [f"--image {image_path}"]).float().cpu()


def image_features(info: RunMeta, image_shape: tuple[int, int], image_path: str | None, *, random_init: bool,
                   device: torch.device, cache: dict, run: str = "the run", weights: str | None = None,
                   alpha: str | None = None) -> tuple[torch.Tensor, str | None]:
    """((1, P, D) features of one image, where they came from: "store", "encoded" or None without an image).

    Zeros when there is no image (what the feature store returns for image-less problems, i.e. what the model saw
    in training). `cache` (a dict kept by the caller) holds the encoders, the opened stores and the features."""
    if image_path is None:
        return torch.zeros(1, *image_shape), None
    if not info.vision_backbone:
        raise DataError(f"{run}: the run records no vision backbone to encode --image with")
    enc = run_encoding(info, random_init=random_init, weights=weights, alpha=alpha)
    data = read_image_bytes(image_path, "ask")
    key = (enc, image_digest(data))
    features = cache.setdefault("features", {})
    if key not in features:
        weight_free = get_vision_backbone(enc.backbone).weight_free
        stored = _stored_row(info, enc, weight_free, key[1], cache)
        features[key] = (stored, "store") if stored is not None else (_encode(enc, data, image_path, device, cache),
                                                                      "encoded")
    feats, source = features[key]
    if tuple(feats.shape[1:]) != tuple(image_shape):
        raise DataError(f"{info.vision_backbone} produced features {list(feats.shape[1:])} but the model in "
                        f"{run} expects {list(image_shape)}")
    return feats, source


def encode_ask_image(info: RunMeta, image_shape: tuple[int, int], image_path: str | None, *, random_init: bool,
                     device: torch.device, cache: dict, run: str = "the run", weights: str | None = None,
                     alpha: str | None = None) -> torch.Tensor:
    """(1, P, D) features of one image with the run's recorded vision backbone (`weights` overrides its weights,
    `alpha` its transparency policy); see image_features."""
    return image_features(info, image_shape, image_path, random_init=random_init, device=device, cache=cache,
                          run=run, weights=weights, alpha=alpha)[0]
