"""Image loading for feature extraction: which image a record uses, and decoding any PNG mode to RGB.

Which image: the first entry of a record's `image_paths`. `mmcot prepare` lists the question image there, or,
when a problem has no question image, its choice images `choice_0.png, choice_1.png, …`; so a choice-only
problem is represented by `choice_0.png`, as the original Multimodal-CoT extraction did (REFERENCE.md §1,
issue #46 there). Problems with no image at all get no feature row.

ScienceQA PNGs come in several modes (RGB, RGBA, palette with transparency, grayscale, 16-bit grayscale).
Transparency follows an alpha policy (mmcot_cli.validate.ALPHA_POLICIES; `--alpha` of extract and ask):
- "original": alpha dropped as the original extraction's `Image.open(p).convert("RGB")` does: the colour under a
  transparent pixel is kept (often black), so features match the released detr.npy / vit.pth;
- "white": transparent pixels composited onto white (how the images look in a browser).
16-bit values are scaled to 8 bits under both (Pillow's convert would clip them to white).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmcot_cli.errors import DataError, first_line
from mmcot_cli.validate import check_alpha


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


def to_rgb(image: Image.Image, alpha: str = "white") -> Image.Image:
    """Any PIL mode → 8-bit RGB; transparency by the `alpha` policy (module docstring), 16/32-bit grayscale
    rescaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        # 16-bit PNGs open as I;16 or I (32-bit int) depending on Pillow version; both hold 0..65535 here.
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if check_alpha(alpha) == "original":
        with warnings.catch_warnings():  # Pillow's note on palette transparency: dropping it is the point here
            warnings.simplefilter("ignore", UserWarning)
            return image.convert("RGB")
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


# Every image mmcot reads goes through open_image/load_rgb, so one limit guards prepare, extract, ask and reports.
# ScienceQA images are at most a few megapixels; 64 MP is far beyond any real input and bounds decode memory.
MAX_PIXELS = 64_000_000
MAX_FILE_BYTES = 256 * 1024 * 1024


def _check_size(image: Image.Image, path, qid: str) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(qid, path, f"empty image ({width}×{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(qid, path, f"image too large ({width}×{height} pixels, limit {MAX_PIXELS:,}); "
                         "a decompression bomb?")


def read_image_bytes(path: str | os.PathLike, qid: str = "?") -> bytes:
    """The bytes of an image file, which must be a regular file of at most MAX_FILE_BYTES. Opened non-blocking
    and checked with fstat before any read, so a FIFO never hangs the reader and /dev/zero is never read
    endlessly (an image path may name anything)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageError(qid, path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(qid, path, "is a directory") from None
    except PermissionError:
        raise ImageError(qid, path, "permission denied") from None
    except OSError as e:
        raise ImageError(qid, path, first_line(e)[:200]) from None
    info = os.fstat(fd)
    problem = ("is a directory" if stat.S_ISDIR(info.st_mode) else None if stat.S_ISREG(info.st_mode) else
               f"not a regular file ({'a FIFO' if stat.S_ISFIFO(info.st_mode) else 'a device or socket'}); "
               "an image must be a file")
    if problem is None and info.st_size > MAX_FILE_BYTES:
        problem = f"file too large (over {MAX_FILE_BYTES // 2**20} MiB)"
    if problem is not None:
        os.close(fd)
        raise ImageError(qid, path, problem)
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise ImageError(qid, path, first_line(e)[:200]) from None


def image_digest(data: bytes) -> str:
    """A short content fingerprint of an image file's bytes (which image a feature row was extracted from)."""
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def decode_image(data: bytes, path: str | os.PathLike, qid: str = "?") -> Image.Image:
    """A fully decoded image (any mode) from a file's bytes, its size checked from the header before any pixel
    is decoded (decompression bombs); truncation raises here. ImageError names the qid and path."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                _check_size(im, path, qid)
                im.load()
        return im  # decoded: usable after the buffer is gone
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(qid, path, f"image too large (decompression bomb: {first_line(e)[:80]})") from None
    except UnidentifiedImageError:
        raise ImageError(qid, path, "not a recognised image file (corrupt?)") from None
    except (OSError, SyntaxError, ValueError, MemoryError) as e:  # truncated data, bad CRC, decoder errors
        raise ImageError(qid, path, first_line(e)[:200]) from None


def open_image(path: str | os.PathLike, qid: str = "?") -> Image.Image:
    """A fully decoded image (any mode) from a regular file (read_image_bytes), size-checked (decode_image).
    Use this (or load_rgb) for every image read, e.g. report thumbnails."""
    return decode_image(read_image_bytes(path, qid), path, qid)


def load_rgb(path: str | os.PathLike, qid: str = "?", alpha: str = "white") -> Image.Image:
    """Decode an image file fully (so truncation is caught here, not later), size-checked, converted to RGB with
    the `alpha` policy."""
    return to_rgb(open_image(path, qid), alpha)


def thumbnail_bytes(path: str | os.PathLike, qid: str = "?", max_side: int = 192) -> tuple[bytes, tuple[int, int]]:
    """A small JPEG of an image (RGB, longest side <= max_side) and its size, for embedding in a report; read
    through open_image, so the same size limits and one-line errors apply."""
    rgb = to_rgb(open_image(path, qid))
    rgb.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=80, optimize=True)
    return buf.getvalue(), rgb.size
