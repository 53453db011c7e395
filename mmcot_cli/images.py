"""Image loading for feature extraction: which image a record uses, and decoding any PNG mode to RGB.

Which image: the first entry of a record's `image_paths`. `mmcot prepare` lists the question image there, or,
when a problem has no question image, its choice images `choice_0.png, choice_1.png, …`; so a choice-only
problem is represented by `choice_0.png`, as the original Multimodal-CoT extraction did (REFERENCE.md §1,
issue #46 there). Problems with no image at all get no feature row.

ScienceQA PNGs come in several modes (RGB, RGBA, palette with transparency, grayscale, 16-bit grayscale).
Transparent pixels are composited onto white (how the images look in a browser; dropping alpha would turn
transparent backgrounds black) and 16-bit values are scaled to 8 bits rather than clipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmcot_cli.errors import DataError


class ImageError(DataError):
    """An image that cannot be read; the message names the qid and the path."""

    def __init__(self, qid: str, path: str | os.PathLike, reason: str):
        self.qid, self.path, self.reason = str(qid), str(path), reason
        super().__init__(f"qid {qid}: cannot read image {path}: {reason}")


def record_image(record: Mapping[str, Any], images_dir: str | os.PathLike | None = None) -> str | None:
    """The image file a record's features come from, or None when it has none.

    `images_dir` relocates images (data prepared elsewhere): the file is then `images_dir/<qid>/<file name>`.
    """
    paths = record.get("image_paths") or []
    if not paths:
        return None
    first = str(paths[0])
    if images_dir is not None:
        return str(Path(images_dir) / str(record["qid"]) / Path(first).name)
    return first


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB; transparency composited onto white, 16/32-bit grayscale rescaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        # 16-bit PNGs open as I;16 or I (32-bit int) depending on Pillow version; both hold 0..65535 here.
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode == "RGB":
            return image
        mode = "RGBA"
    if mode in ("LA", "La", "PA", "RGBa"):
        image, mode = image.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if mode == "L" and "transparency" in image.info:
        return to_rgb(image.convert("LA"))
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike, qid: str = "?") -> Image.Image:
    """Decode an image file fully (so truncation is caught here, not later) and convert it to RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except FileNotFoundError:
        raise ImageError(qid, path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(qid, path, "is a directory") from None
    except PermissionError:
        raise ImageError(qid, path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(qid, path, "not a recognised image file (corrupt?)") from None
    except Image.DecompressionBombError as e:  # not an OSError: Pillow refuses > 2 × MAX_IMAGE_PIXELS
        raise ImageError(qid, path, f"decompression bomb refused ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated data, bad CRC, decoder errors
        raise ImageError(qid, path, str(e) or type(e).__name__) from None


# A thumbnail source larger than this is refused before any pixel is decoded (ScienceQA images are < 1 MP).
THUMBNAIL_MAX_PIXELS = 40_000_000


def thumbnail_bytes(path: str | os.PathLike, qid: str = "?", max_side: int = 192,
                    max_pixels: int = THUMBNAIL_MAX_PIXELS) -> tuple[bytes, tuple[int, int]]:
    """A small JPEG of an image (RGB, longest side <= max_side) and its size, for embedding in a report.

    The header's size is checked before decoding, so a decompression bomb costs nothing; decode errors become
    ImageError as in load_rgb."""
    import io

    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(qid, path, f"{width}x{height} pixels is more than the {max_pixels:,} allowed "
                                            "(decompression bomb?)")
            im.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
            im.load()
            rgb = to_rgb(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(qid, path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(qid, path, "is a directory") from None
    except UnidentifiedImageError:
        raise ImageError(qid, path, "not a recognised image file (corrupt?)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(qid, path, f"decompression bomb refused ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(qid, path, str(e) or type(e).__name__) from None
    rgb.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=80, optimize=True)
    return buf.getvalue(), rgb.size
