"""Decoding stored images to the RGB uint8 arrays models take."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array of any PIL image: 16-bit scaled down, alpha dropped, palettes expanded."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        return np.repeat((array * (255.0 / peak)).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded image bytes to an upright RGB uint8 array (first page of a multi-page file)."""
    with Image.open(io.BytesIO(data)) as image:
        # Upright, as the catalog's width/height and every annotation's pixels are.
        return to_rgb_array(ImageOps.exif_transpose(image))
