"""A folder of image files in mixed formats, sizes and pixel modes, e.g. for ingest benchmarks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from mleval.core.errors import ValidationError
from mleval.synthetic.dataset import IMAGE_FORMATS

# The PIL modes written per format; each file's name carries its mode tag (see MODE_TAGS).
IMAGE_FILE_MODES: dict[str, tuple[str, ...]] = {
    "jpeg": ("RGB", "L", "CMYK"),
    "png": ("RGB", "RGBA", "L", "LA", "P", "I;16"),
    "tiff": ("RGB", "RGBA", "L", "CMYK", "I;16"),
    "bmp": ("RGB", "L", "P"),
    "webp": ("RGB", "RGBA"),
    "gif": ("P", "L"),
}
MODE_TAGS: dict[str, str] = {
    "RGB": "rgb", "RGBA": "rgba", "L": "l", "LA": "la", "P": "p", "CMYK": "cmyk", "I;16": "i16",
}


def generate_image_files(
    folder: str | Path,
    *,
    count: int,
    formats: tuple[str, ...] = ("jpeg", "png", "tiff", "bmp", "webp", "gif"),
    min_size: int = 64,
    max_size: int = 1024,
    seed: int = 0,
) -> list[Path]:
    """Write ``count`` images named ``NNNNNN_<mode>_<W>x<H>.<ext>`` into ``folder``; return their paths.

    Formats take turns, so each appears when ``count >= len(formats)``; the pixel mode is drawn
    from :data:`IMAGE_FILE_MODES` (greyscale, alpha, palette, CMYK, 16-bit); width and height are
    drawn log-uniformly from ``[min_size, max_size]`` (many small files, a few large ones). Pixels
    are smooth colour fields, quick to encode. The same ``seed`` gives the same bytes.
    """
    if count < 0:
        raise ValidationError("synthetic.count", f"count must be 0 or more files; got {count}.")
    if not formats or not set(formats) <= set(IMAGE_FILE_MODES):
        raise ValidationError(
            "synthetic.formats", f"formats must be names from {tuple(IMAGE_FILE_MODES)}; got {tuple(formats)!r}."
        )
    if not 1 <= min_size <= max_size:
        raise ValidationError(
            "synthetic.file_size", f"need 1 <= min_size <= max_size; got min_size={min_size}, max_size={max_size}."
        )
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        image_format = formats[index % len(formats)]
        mode = str(rng.choice(IMAGE_FILE_MODES[image_format]))
        width, height = (
            int(round(math.exp(v))) for v in rng.uniform(math.log(min_size), math.log(max_size), size=2)
        )
        extension, pil_format, save_options = IMAGE_FORMATS[image_format]
        path = root / f"{index:06d}_{MODE_TAGS[mode]}_{width}x{height}.{extension}"
        _image(rng, mode, width, height).save(path, format=pil_format, **save_options)
        paths.append(path)
    return paths


def _image(rng: np.random.Generator, mode: str, width: int, height: int) -> Image.Image:
    """A smooth random image of the given PIL mode."""
    # Enlarging a tiny random image is far faster than per-pixel noise, and quick to compress.
    cells = rng.integers(0, 256, size=(int(rng.integers(2, 9)), int(rng.integers(2, 9)), 4), dtype=np.uint8)
    rgba = Image.fromarray(cells, "RGBA").resize((width, height), Image.Resampling.BILINEAR)
    if mode == "I;16":
        channels = np.asarray(rgba, dtype=np.uint16)
        # Two smooth channels as high and low byte: the low bits carry detail an 8-bit reader loses.
        return Image.fromarray(channels[..., 0] * 256 + channels[..., 1])  # uint16 -> mode "I;16"
    if mode == "P":
        # Indexing a random palette with a smooth field is much faster than quantizing RGB.
        palette = rng.integers(0, 256, size=64 * 3, dtype=np.uint8)
        indexed = rgba.convert("L").point(lambda value: value // 4)
        indexed.putpalette(palette.tobytes())
        return indexed
    return rgba.convert(mode)
