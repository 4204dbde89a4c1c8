"""Draw labelled coloured shapes on textured backgrounds, in memory.

Coordinates are continuous pixels: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, as in COCO.
A pixel belongs to a shape when its centre lies inside the shape's polygon (plus the pixels of the
extreme vertices, so sharp tips show), so the drawn pixels, the polygon and the box agree to a pixel.
"""

from __future__ import annotations

import colorsys
import math
import numbers
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mleval.core.errors import ValidationError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "hexagon")
BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "stripes", "blobs", "noise")
DEFAULT_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
DEFAULT_BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "blobs")

# Boxes may overlap a little (shapes never touch): enough to exercise NMS, not enough to hide objects.
_MAX_BOX_IOU = 0.3
_PLACEMENT_TRIES = 60
_COLOUR_TRIES = 24
# Muted backgrounds under saturated shapes: objects stand out as they tend to in photos, which a
# from-scratch detector learns within a few hundred steps; the class still has to come from the shape.
_BACKGROUND_CHROMA = 0.45


@dataclass(frozen=True)
class SyntheticObject:
    """One drawn shape: its class, box, outline and fill colour.

    ``bbox_xyxy`` is tight around the polygon (float pixels); ``polygon`` is the outline as a flat
    ``[x1, y1, x2, y2, ...]`` list (exact for polygons, 4-fold symmetric sampling for circles);
    ``area`` is the polygon's area in square pixels.
    """

    label: str
    bbox_xyxy: tuple[float, float, float, float]
    polygon: tuple[float, ...]
    area: float
    color_rgb: tuple[int, int, int]


def check_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """``image_size`` as ``(width, height)``; raises ValidationError unless both are at least 16."""
    if isinstance(image_size, numbers.Integral):
        width = height = int(image_size)
    else:
        try:
            if isinstance(image_size, str):
                raise TypeError(image_size)
            width, height = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ValidationError(
                "synthetic.image_size", f"image_size must be an int or (width, height); got {image_size!r}."
            ) from None
    if width < 16 or height < 16:
        raise ValidationError(
            "synthetic.image_size", f"image_size must be at least 16 px per side; got {width}x{height}."
        )
    return width, height


def check_options(
    classes: tuple[str, ...],
    max_objects: int,
    backgrounds: tuple[str, ...],
    object_size: tuple[float, float],
    max_rotation_deg: float = 0.0,
) -> None:
    """Raise ValidationError naming the first option that cannot be rendered."""
    if not classes or len(set(classes)) != len(classes) or not set(classes) <= set(SHAPES):
        raise ValidationError(
            "synthetic.classes", f"classes must be distinct names from {SHAPES}; got {tuple(classes)!r}."
        )
    if max_objects < 1:
        raise ValidationError("synthetic.max_objects", f"max_objects must be at least 1; got {max_objects}.")
    if not backgrounds or not set(backgrounds) <= set(BACKGROUNDS):
        raise ValidationError(
            "synthetic.backgrounds", f"backgrounds must be names from {BACKGROUNDS}; got {tuple(backgrounds)!r}."
        )
    low, high = object_size
    if not 0.0 < low <= high <= 0.9:
        raise ValidationError(
            "synthetic.object_size",
            f"object_size must be (low, high) fractions of the shorter side with 0 < low <= high <= 0.9; "
            f"got {object_size!r}.",
        )
    if not 0.0 <= max_rotation_deg <= 180.0:
        raise ValidationError(
            "synthetic.max_rotation_deg", f"max_rotation_deg must be within [0, 180]; got {max_rotation_deg}."
        )


def render_shapes_image(
    rng: np.random.Generator,
    *,
    image_size: int | tuple[int, int] = 128,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    max_objects: int = 4,
    backgrounds: tuple[str, ...] = DEFAULT_BACKGROUNDS,
    object_size: tuple[float, float] = (0.2, 0.45),
    max_rotation_deg: float = 0.0,
    min_contrast: float = 90.0,
) -> tuple[Image.Image, list[SyntheticObject]]:
    """Render one RGB image with 1..``max_objects`` non-touching shapes; return it and its objects.

    ``object_size`` bounds each shape's outer diameter as a fraction of the shorter image side;
    shapes turn by up to ``max_rotation_deg`` either way from upright (square axis-aligned,
    triangle and star pointing up; 180 means any orientation).
    Shape colours are random (never tied to the class) and differ from the background under the
    shape by at least ``min_contrast`` (RGB distance, 0..441) for 90% of its pixels.
    Everything drawn comes from ``rng``: the same generator state gives the same image.
    """
    width, height = check_size(image_size)
    classes, backgrounds = tuple(classes), tuple(backgrounds)
    check_options(classes, max_objects, backgrounds, object_size, max_rotation_deg)
    max_rotation = math.radians(max_rotation_deg)
    canvas = _background(rng, str(rng.choice(backgrounds)), width, height)
    occupied = np.zeros((height, width), dtype=bool)
    objects: list[SyntheticObject] = []
    short_side = min(width, height)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = str(rng.choice(classes))
        for _ in range(_PLACEMENT_TRIES):
            diameter = rng.uniform(*object_size) * short_side
            outline = _outline(label, diameter / 2.0, float(rng.uniform(-max_rotation, max_rotation)))
            low, high = outline.min(axis=0), outline.max(axis=0)
            if np.any(high - low > (width - 2, height - 2)):
                continue
            centre = rng.uniform(1.0 - low, (width - 1, height - 1) - high)
            polygon = outline + centre
            box = (*polygon.min(axis=0), *polygon.max(axis=0))
            if any(_box_iou(box, other.bbox_xyxy) > _MAX_BOX_IOU for other in objects):
                continue
            mask = _rasterize(polygon, width, height)
            if not mask.any() or (_dilate(mask) & occupied).any():
                continue
            colour = _pick_colour(rng, canvas[mask], min_contrast)
            canvas[mask] = colour
            occupied |= mask
            objects.append(
                SyntheticObject(
                    label=label,
                    bbox_xyxy=tuple(round(float(v), 3) for v in box),
                    polygon=tuple(round(float(v), 3) for v in polygon.ravel()),
                    area=round(_polygon_area(polygon), 3),
                    color_rgb=tuple(int(c) for c in colour),
                )
            )
            break
    return Image.fromarray(canvas, "RGB"), objects


def _outline(label: str, radius: float, angle: float) -> np.ndarray:
    """Vertices ``(n, 2)`` of a shape with outer radius ``radius`` around the origin, turned by ``angle``.

    At angle 0 the square is axis-aligned and the triangle and star point up (y grows downwards).
    """
    if label == "circle":
        # A multiple of 4 vertices starting at angle 0 puts vertices on the box's four sides.
        count = max(16, 4 * math.ceil(math.pi * radius / 4.0))
        theta = np.arange(count) * (2.0 * math.pi / count)
        return radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    if label in ("square", "triangle", "hexagon"):
        sides, upright = {"square": (4, math.pi / 4), "triangle": (3, -math.pi / 2), "hexagon": (6, 0.0)}[label]
        theta = upright + angle + np.arange(sides) * (2.0 * math.pi / sides)
        return radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    if label == "star":
        theta = -math.pi / 2 + angle + np.arange(10) * (math.pi / 5.0)
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
        return np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=1)
    # cross: a plus sign whose arm half-width is a third of its half-length
    a, b = 1.0, 1.0 / 3.0
    unit = np.array(
        [(b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b), (-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b)]
    )
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return radius / math.hypot(a, b) * unit @ rotation.T


def _rasterize(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean mask ``(height, width)`` of the pixels whose centre lies inside ``polygon`` (even-odd rule).

    The pixels holding the leftmost, topmost, rightmost and bottommost vertices are drawn too:
    a sharp tip may hold no pixel centre, and the box must stay within a pixel of the drawing.
    """
    mask = np.zeros((height, width), dtype=bool)
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int).clip(0)
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int)
    x1, y1 = min(x1, width), min(y1, height)
    px, py = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    inside = np.zeros(px.shape, dtype=bool)
    for (xa, ya), (xb, yb) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (ya > py) != (yb > py)
        if ya != yb:
            inside ^= crosses & (px < xa + (py - ya) * (xb - xa) / (yb - ya))
    mask[y0:y1, x0:x1] = inside
    for index in (*polygon.argmin(axis=0), *polygon.argmax(axis=0)):
        x, y = np.floor(polygon[index]).astype(int)
        mask[min(y, height - 1), min(x, width - 1)] = True
    return mask


def _dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel in the 8 directions, so that shapes keep a one-pixel gap."""
    grown = mask.copy()
    grown[1:, :] |= mask[:-1, :]
    grown[:-1, :] |= mask[1:, :]
    rows = grown.copy()
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    return grown


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _polygon_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _pick_colour(rng: np.random.Generator, under: np.ndarray, min_contrast: float) -> np.ndarray:
    """A random saturated colour far enough from the background pixels ``under`` it (the best of a few tries)."""
    best, best_contrast = None, -1.0
    pixels = under.astype(np.float32)
    for _ in range(_COLOUR_TRIES):
        hue, saturation, value = rng.uniform((0.0, 0.6, 0.45), (1.0, 1.0, 1.0))
        colour = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255).astype(np.uint8)
        contrast = float(np.percentile(np.linalg.norm(pixels - colour, axis=1), 10))
        if contrast >= min_contrast:
            return colour
        if contrast > best_contrast:
            best, best_contrast = colour, contrast
    return best


def _background(rng: np.random.Generator, kind: str, width: int, height: int) -> np.ndarray:
    """An ``(height, width, 3)`` uint8 texture of the given kind."""
    colours = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    grey = colours.mean(axis=1, keepdims=True)
    first, second = grey + _BACKGROUND_CHROMA * (colours - grey)
    if kind == "flat":
        return np.broadcast_to(first.round().astype(np.uint8), (height, width, 3)).copy()
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    if kind == "gradient":
        weight = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    elif kind == "stripes":
        period = rng.uniform(6.0, 20.0)
        weight = 0.5 + 0.5 * np.sin(along * (2.0 * math.pi / period))
        if rng.random() < 0.5:
            weight = (weight > 0.5).astype(np.float32)
    else:
        # blobs: a coarse random grid blown up smoothly; noise: the same plus strong per-pixel noise
        cells = rng.uniform(0, 255, size=(int(rng.integers(2, 7)), int(rng.integers(2, 7)))).astype(np.uint8)
        grid = Image.fromarray(cells, "L").resize((width, height), Image.Resampling.BICUBIC)
        weight = np.asarray(grid, dtype=np.float32) / 255.0
    canvas = first + weight[..., None] * (second - first)
    sigma = rng.uniform(10.0, 25.0) if kind == "noise" else rng.uniform(0.0, 6.0)
    canvas += rng.normal(0.0, sigma, size=canvas.shape).astype(np.float32)
    return canvas.clip(0, 255).round().astype(np.uint8)
