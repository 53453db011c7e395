"""`patches`: a weight-free vision backbone made of raw pixels.

The RGB image is resized to 224×224 and cut into a 7×7 grid of 32×32 cells; each cell is box-averaged down to
8×8 pixels and flattened (row-major, RGB interleaved) into a 192-vector scaled to [-1, 1] → (49, 192).
Deterministic, needs no download and runs fast: the offline demo and CPU tests use it.
"""

from __future__ import annotations

from mmcot_cli.errors import UsageError
from mmcot_cli.registry.hookspecs import VisionBackbone, VisionBuildOptions, hookimpl

IMAGE_SIZE = 224
GRID = 7
CELL_PIXELS = 8  # each 32×32 cell is reduced to 8×8
FEATURE_SHAPE = (GRID * GRID, CELL_PIXELS * CELL_PIXELS * 3)


class PatchPreprocess:
    """RGB PIL image → (3, 56, 56) float tensor in [-1, 1]: the 7×7 cells already reduced to 8×8 each."""

    def __call__(self, image):
        import numpy as np
        import torch
        from PIL import Image

        side = GRID * CELL_PIXELS
        image = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        # 224 → 56 with a box filter averages each 4×4 block; the 32-pixel cells map exactly onto 8-pixel cells.
        small = image.resize((side, side), Image.BOX)
        arr = np.asarray(small, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class PatchEncoder:
    feature_shape = FEATURE_SHAPE
    weights = ""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.preprocess = PatchPreprocess()

    def encode(self, pixels):
        b, c, h, w = pixels.shape
        cells = pixels.reshape(b, c, GRID, CELL_PIXELS, GRID, CELL_PIXELS)
        # (B, gy, gx, y, x, C): one row per cell, pixels row-major with RGB interleaved
        cells = cells.permute(0, 2, 4, 3, 5, 1)
        return cells.reshape(b, GRID * GRID, CELL_PIXELS * CELL_PIXELS * c)


def build(options: VisionBuildOptions) -> PatchEncoder:
    if options.variant not in (None, "", "default"):
        raise UsageError(f"backbone patches has no variants (got --variant {options.variant})")
    return PatchEncoder(options.device)


@hookimpl
def register_vision_backbones(register):
    register(VisionBackbone(
        name="patches",
        feature_shape=FEATURE_SHAPE,
        default_weights="",
        weight_free=True,
        build=build,
        description="weight-free raw-pixel patches: 224×224 image, 7×7 grid of 8×8×3 cells in [-1, 1]",
    ))
