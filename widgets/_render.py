"""Drawing for the widgets: PIL images to PNG bytes, boxes of annotations drawn over an image.

Colours are fixed per source so the same model keeps its colour across thumbnails: ground
truth first, then one colour per model name in the order the models are first seen.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mleval.core.records import ImageRecord
    from mleval.workspace import Workspace

GROUND_TRUTH_COLOUR = "#2ca02c"
PROPOSAL_COLOUR = "#ff00ff"
MODEL_COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def upright_image(ws: Workspace, image: ImageRecord | str) -> Image.Image:
    """The image as RGB, turned upright by its EXIF orientation: the frame of the catalog's
    width/height and of every annotation's pixels (``ws.images.open`` gives the file as stored)."""
    from mleval.images.decode import decode_rgb

    return Image.fromarray(decode_rgb(ws.images.read_bytes(image)))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def figure_png(fig: Figure, *, dpi: int = 80) -> bytes:
    """A matplotlib Figure as PNG bytes, for an ``ipywidgets.Image``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class Palette:
    """Source key (``"ground truth"`` or a model name) -> colour, stable for the palette's life."""

    def __init__(self) -> None:
        self._colours: dict[str, str] = {"ground truth": GROUND_TRUTH_COLOUR}

    def colour(self, source: str) -> str:
        if source not in self._colours:
            used = len(self._colours) - 1
            self._colours[source] = MODEL_COLOURS[used % len(MODEL_COLOURS)]
        return self._colours[source]

    def legend_html(self, sources: Iterable[str] | None = None) -> str:
        keys = list(self._colours) if sources is None else list(dict.fromkeys(sources))
        items = "".join(
            f'<span style="margin-right:12px"><span style="display:inline-block;width:12px;height:12px;'
            f'background:{self.colour(k)};margin-right:4px"></span>{escape(k)}</span>' for k in keys)
        return f"<div>{items}</div>"


def draw_boxes(
    image: Image.Image,
    boxes: Sequence[tuple[Sequence[float], str, str]],
    *,
    scale: float = 1.0,
    width_px: int = 2,
    halo: bool = False,
) -> Image.Image:
    """A copy of ``image`` (RGB) with ``(box_xyxy, text, colour)`` drawn; boxes in the original
    image's pixels, multiplied by ``scale`` when ``image`` is a resized copy. ``halo`` edges each
    line in white, so a box stays visible on a busy picture."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    for box_xyxy, text, colour in boxes:
        x1, y1, x2, y2 = (float(v) * scale for v in box_xyxy)
        if halo:
            draw.rectangle([x1 - 1, y1 - 1, x2 + 1, y2 + 1], outline="white", width=width_px + 2)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width_px)
        if text:
            draw.text((x1 + 2, y1 + 1), text, fill=colour)
    return canvas


def fit(image: Image.Image, side_px: int) -> tuple[Image.Image, float]:
    """``image`` resized so its longer side is ``side_px``, and the scale that took it there (to
    draw boxes of the original's pixels on it)."""
    scale = side_px / max(image.width, image.height)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale)))), scale


def boxes_png(image: Image.Image, boxes: Sequence[tuple[Sequence[float], str, str]], *, min_side_px: int) -> bytes:
    """PNG of ``image`` with ``boxes`` drawn (see :func:`draw_boxes`); an image smaller than
    ``min_side_px`` on its longer side is enlarged first so its boxes can be seen."""
    scale = max(1.0, min_side_px / max(image.width, image.height))
    if scale > 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.NEAREST)
    return png_bytes(draw_boxes(image, boxes, scale=scale))


def overlay_mask(image: Image.Image, mask, *, colour: str = PROPOSAL_COLOUR, alpha: float = 0.4) -> Image.Image:
    """``image`` with the (H, W) bool ``mask`` tinted in ``colour``."""
    import numpy as np

    base = image.convert("RGB")
    tint = Image.new("RGB", base.size, colour)
    mask_image = Image.fromarray((np.asarray(mask, dtype=bool) * int(255 * alpha)).astype("uint8"), "L")
    return Image.composite(tint, base, mask_image)


