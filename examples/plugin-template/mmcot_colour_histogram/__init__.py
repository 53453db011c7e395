"""A third-party mmcot plugin: `colour-hist`, per-cell RGB colour histograms of the image.

Loaded by mmcot through this package's `mmcot` entry point (see pyproject.toml).
"""

from __future__ import annotations

from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl

NAME = "colour-hist"
IMAGE_SIZE = 128
LEVELS = 4  # quantisation levels per RGB channel → LEVELS**3 bins
VARIANTS = {"4x4": 4, "2x2": 2, "8x8": 8}  # grid of cells per side
DEFAULT_VARIANT = "4x4"


class HistogramPreprocess:
    """RGB PIL image → (3, 128, 128) uint8-valued float tensor. A class (not a closure) so workers can pickle it."""

    def __call__(self, image):
        import numpy as np
        import torch
        from PIL import Image

        image = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)


class HistogramEncoder:
    weights = ""  # weight-free (recorded in the feature store's manifest)

    def __init__(self, grid: int, device: str = "cpu"):
        self.grid = grid
        self.device = device
        self.feature_shape = (grid * grid, LEVELS ** 3)
        self.preprocess = HistogramPreprocess()

    def encode(self, pixels):
        import torch

        b, c, h, w = pixels.shape
        levels = (pixels.to(self.device) * LEVELS / 256.0).long().clamp_(0, LEVELS - 1)
        bins = levels[:, 0] * LEVELS * LEVELS + levels[:, 1] * LEVELS + levels[:, 2]  # (B, H, W) joint bin id
        g = self.grid
        cells = bins.reshape(b, g, h // g, g, w // g).permute(0, 1, 3, 2, 4).reshape(b, g * g, -1)
        hist = torch.zeros(b, g * g, LEVELS ** 3, device=cells.device)
        hist.scatter_add_(2, cells, torch.ones_like(cells, dtype=hist.dtype))
        return hist / cells.shape[-1]  # each cell's histogram sums to 1


def build(options: VisionBuildOptions) -> HistogramEncoder:
    from mmcot_cli.errors import UnknownNameError

    variant = options.variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise UnknownNameError(f"{NAME} variant", variant, list(VARIANTS))
    return HistogramEncoder(VARIANTS[variant], options.device)


@hookimpl
def register_vision_backbones(register):
    register(VisionBackbone(
        name=NAME,
        feature_shape=(VARIANTS[DEFAULT_VARIANT] ** 2, LEVELS ** 3),
        default_weights="",
        weight_free=True,  # mmcot refuses --weights and ignores --random-init for it
        build=build,
        description="per-cell RGB colour histograms (template third-party plugin; weight-free)",
        variants=tuple(VARIANTS),
    ))
