"""Eval preprocessing the built-in centre-cropping backbones share (timm's `resnet` and `vit`, open_clip's `clip`):
a long side beyond MAX_ASPECT × the short one is cut to its middle before the transform. Private to the built-in
plugins."""

from __future__ import annotations

# A backbone that resizes the short side, then centre-crops a square, never looks beyond the middle of a long side.
MAX_ASPECT = 16


def crop_long_side(image, max_ratio: int = MAX_ASPECT):
    """The middle of a PIL image whose long side is over `max_ratio` × its short side, cut to that length; any other
    image unchanged (the same object). Resizing the whole of a 10×20000 PNG (1.5 KB) to a 384-pixel short side
    first allocates 384×768000 pixels (1.2 GB, in every DataLoader worker), of which the crop keeps 384×384 from
    the middle: the features are the same (ScienceQA's widest images are about 7:1)."""
    width, height = image.size
    limit = max_ratio * max(1, min(width, height))
    if max(width, height) <= limit:
        return image
    if width > height:
        left = (width - limit) // 2
        return image.crop((left, 0, left + limit, height))
    top = (height - limit) // 2
    return image.crop((0, top, width, top + limit))


class LongSideCropped:
    """A short-side resize + centre-crop transform (open_clip's "shortest" mode) given images through
    crop_long_side first; picklable for DataLoader workers when the transform is."""

    def __init__(self, transform, max_ratio: int = MAX_ASPECT):
        self.transform = transform
        self.max_ratio = max_ratio

    def __call__(self, image):
        return self.transform(crop_long_side(image, self.max_ratio))


class TimmPreprocess:
    """Picklable wrapper around timm's eval transform built from the model's data config; its "center" crop mode
    (the default) gets images through crop_long_side first ("squash" and "border" see the whole image)."""

    def __init__(self, data_config: dict):
        self.data_config = dict(data_config)
        self._transform = None

    def __call__(self, image):
        if self._transform is None:
            from timm.data import create_transform
            self._transform = create_transform(**self.data_config, is_training=False)
        if self.data_config.get("crop_mode", "center") == "center":
            image = crop_long_side(image)
        return self._transform(image)

    def __getstate__(self):
        return {"data_config": self.data_config, "_transform": None}
