"""Mask, polygon and COCO RLE conversions: the one place mleval turns one into another.

Conventions used everywhere in mleval:

- A polygon is a flat list ``[x1, y1, x2, y2, ...]`` in pixel coordinates of the original
  image, where pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]``. This is the
  COCO convention: a polygon running along pixel edges rasterizes to exactly those pixels.
- A binary mask is a numpy array of shape ``(height, width)``, nonzero = inside.
- An RLE is a COCO run-length encoding ``{"size": [height, width], "counts": ...}``.
  "Compressed" counts are COCO's ASCII string (kept as ``str`` so it is JSON-ready);
  "uncompressed" counts are a list of ints (runs, column-major, starting with zeros).

pycocotools and numpy are imported inside the functions so that importing this module
costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mleval.core.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "compress_rle",
    "decompress_rle",
    "is_compressed_rle",
    "mask_to_polygons",
    "mask_to_rle",
    "merge_polygons",
    "polygons_bbox_xyxy",
    "polygons_to_rle",
    "rle_area",
    "rle_bbox_xyxy",
    "rle_to_mask",
    "rle_to_polygons",
    "segment_bbox_xyxy",
]


def _pycoco_mask():
    import pycocotools.mask as mask_utils

    return mask_utils


def _rle_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in rle["size"])
    except (KeyError, TypeError, ValueError):
        raise ValidationError(
            "mask.rle_size",
            f"RLE needs 'size': [height, width], got {rle.get('size') if isinstance(rle, Mapping) else rle!r}.",
        ) from None
    if height < 0 or width < 0:
        raise ValidationError("mask.rle_size", f"RLE size must not be negative, got {[height, width]}.")
    return height, width


def is_compressed_rle(rle: Mapping[str, Any]) -> bool:
    """True when ``rle['counts']`` is COCO's compressed string (``str`` or ``bytes``)."""
    return isinstance(rle.get("counts"), (str, bytes))


def _to_pycoco(rle: Mapping[str, Any]) -> dict:
    """A compressed RLE with ``bytes`` counts, the form every pycocotools function accepts."""
    height, width = _rle_size(rle)
    counts = rle.get("counts")
    if isinstance(counts, str):
        return {"size": [height, width], "counts": counts.encode("ascii")}
    if isinstance(counts, bytes):
        return {"size": [height, width], "counts": counts}
    if isinstance(counts, list):
        if sum(counts) != height * width or any((not isinstance(c, int)) or c < 0 for c in counts):
            raise ValidationError(
                "mask.rle_counts",
                f"uncompressed RLE counts must be non-negative ints summing to height*width={height * width}, "
                f"got {len(counts)} runs summing to {sum(c for c in counts if isinstance(c, (int, float)))}.",
            )
        return _pycoco_mask().frPyObjects({"size": [height, width], "counts": counts}, height, width)
    raise ValidationError(
        "mask.rle_counts", f"RLE 'counts' must be a str, bytes or list of ints, got {type(counts).__name__}."
    )


def _json_ready(rle: Mapping[str, Any]) -> dict:
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def compress_rle(rle: Mapping[str, Any]) -> dict:
    """Any RLE (compressed or uncompressed) -> compressed RLE with ``str`` counts."""
    return _json_ready(_to_pycoco(rle))


def decompress_rle(rle: Mapping[str, Any]) -> dict:
    """Any RLE -> uncompressed RLE (``counts`` a list of run lengths, column-major, zeros first)."""
    import numpy as np

    if isinstance(rle.get("counts"), list):
        _to_pycoco(rle)  # validates
        return {"size": list(_rle_size(rle)), "counts": list(rle["counts"])}
    mask = rle_to_mask(rle)
    flat = mask.ravel(order="F")
    if flat.size == 0:
        return {"size": list(mask.shape), "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"size": list(mask.shape), "counts": counts}


def polygons_to_rle(polygons: Sequence[Sequence[float]], *, height: int, width: int) -> dict:
    """Polygons (flat pixel-coordinate lists, unioned) -> compressed RLE of an ``height x width`` mask."""
    mask_utils = _pycoco_mask()
    polys = [list(map(float, p)) for p in polygons]
    for p in polys:
        if len(p) < 6 or len(p) % 2:
            raise ValidationError(
                "mask.polygon_points", f"a polygon needs an even number (>= 6) of coordinates, got {len(p)}."
            )
    if not polys:
        return mask_to_rle(_zeros(height, width))
    rles = mask_utils.frPyObjects(polys, int(height), int(width))
    return _json_ready(mask_utils.merge(rles))


def _zeros(height: int, width: int) -> np.ndarray:
    import numpy as np

    return np.zeros((int(height), int(width)), dtype=np.uint8)


def rle_to_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """RLE (compressed or not) -> ``uint8`` mask of shape ``(height, width)`` with values 0/1."""
    return _pycoco_mask().decode(_to_pycoco(rle))


def mask_to_rle(mask: np.ndarray) -> dict:
    """Binary mask ``(height, width)`` -> compressed RLE with ``str`` counts."""
    import numpy as np

    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValidationError("mask.shape", f"a mask must be 2-D (height, width), got shape {array.shape}.")
    return _json_ready(_pycoco_mask().encode(np.asfortranarray(array != 0, dtype=np.uint8)))


def rle_area(rle: Mapping[str, Any]) -> int:
    """Number of mask pixels of an RLE."""
    return int(_pycoco_mask().area(_to_pycoco(rle)))


def rle_bbox_xyxy(rle: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """Tight box around an RLE's pixels, xyxy pixel edges; ``(0, 0, 0, 0)`` for an empty mask."""
    x, y, w, h = (float(v) for v in _pycoco_mask().toBbox(_to_pycoco(rle)))
    return (x, y, x + w, y + h)


def polygons_bbox_xyxy(polygons: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """Tight box around polygon vertices, xyxy pixel coordinates."""
    xs = [float(v) for p in polygons for v in p[0::2]]
    ys = [float(v) for p in polygons for v in p[1::2]]
    if not xs or not ys:
        raise ValidationError("mask.polygon_points", "cannot take the box of an empty polygon list.")
    return (min(xs), min(ys), max(xs), max(ys))


def segment_bbox_xyxy(segment: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """Tight box around a stored segment, ``{"rle": {...}}`` or ``{"polygons": [[x, y, ...], ...]}``:
    the one place an object given only as a segment gets its box."""
    if "rle" in segment:
        return rle_bbox_xyxy(segment["rle"])
    if "polygons" in segment:
        return polygons_bbox_xyxy(segment["polygons"])
    raise ValidationError("mask.segment_form", f"a segment is {{'rle': ...}} or {{'polygons': ...}}; got the keys "
                          f"{sorted(segment)}.")


def rle_to_polygons(rle: Mapping[str, Any]) -> list[list[float]]:
    """RLE -> outer-contour polygons; see :func:`mask_to_polygons`."""
    return mask_to_polygons(rle_to_mask(rle))


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Binary mask -> one polygon per 4-connected region, tracing its outer boundary along pixel edges.

    The polygons rasterize back (``polygons_to_rle``) to exactly the input mask when the mask has
    no holes. Holes are filled, since COCO polygons are unioned and cannot carve them out.
    Vertices are integer pixel-corner coordinates, only at corners (collinear points removed).
    """
    import numpy as np

    m = np.asarray(mask) != 0
    if m.ndim != 2:
        raise ValidationError("mask.shape", f"a mask must be 2-D (height, width), got shape {m.shape}.")
    outer, holes = _trace(m)
    if holes:
        # Fill the holes and trace again, so no region is left inside another's hole: such an
        # island would be covered twice, and the even-odd rasterization of a merged polygon
        # (YOLO) would cut it out.
        filled = m | (rle_to_mask(polygons_to_rle(holes, height=m.shape[0], width=m.shape[1])) != 0)
        outer, _ = _trace(filled)
    return outer


def _trace(m: np.ndarray) -> tuple[list[list[float]], list[list[float]]]:
    """Boundary loops of a boolean mask along pixel edges: (outer boundaries, hole boundaries)."""
    import numpy as np

    padded = np.pad(m, 1)
    inner = padded[1:-1, 1:-1]
    # Directed boundary edges, clockwise on screen (y down) with the region on the right-hand side.
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for neighbour, start, direction in (
        (padded[:-2, 1:-1], (0, 0), (1, 0)),  # top edge, heading +x
        (padded[1:-1, 2:], (1, 0), (0, 1)),  # right edge, heading +y
        (padded[2:, 1:-1], (1, 1), (-1, 0)),  # bottom edge, heading -x
        (padded[1:-1, :-2], (0, 1), (0, -1)),  # left edge, heading -y
    ):
        rows, cols = np.nonzero(inner & ~neighbour)
        for r, c in zip(rows.tolist(), cols.tolist()):
            out.setdefault((c + start[0], r + start[1]), []).append(direction)

    outer: list[list[float]] = []
    holes: list[list[float]] = []
    while out:
        origin, options = next(iter(out.items()))
        heading = first_heading = options.pop()
        if not options:
            del out[origin]
        corners = [origin]
        x, y = origin[0] + heading[0], origin[1] + heading[1]
        while (x, y) != origin:
            options = out[(x, y)]
            # Where two regions touch at a corner, turning right keeps to the current region.
            right = (-heading[1], heading[0])
            turn = right if right in options else (heading if heading in options else options[0])
            options.remove(turn)
            if not options:
                del out[(x, y)]
            if turn != heading:
                corners.append((x, y))
                heading = turn
            x, y = x + heading[0], y + heading[1]
        if heading == first_heading:  # the loop runs straight through its origin
            corners = corners[1:]
        if len(corners) >= 3:
            flat = [float(v) for xy in corners for v in xy]
            (outer if _signed_area(corners) > 0 else holes).append(flat)  # holes run the other way round
    return outer, holes


def _signed_area(points: list[tuple[int, int]]) -> float:
    total = 0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        total += x1 * y2 - x2 * y1
    return total / 2


def merge_polygons(polygons: Sequence[Sequence[float]]) -> list[float]:
    """Join several polygons into one, linking each to the next by a zero-width bridge.

    For formats that hold one polygon per object (YOLO segmentation lines). The bridges go
    out and back along the same segment between the closest vertices of consecutive parts,
    so they add no area and the result rasterizes to the union of the parts.
    """
    import numpy as np

    parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons if len(p) >= 2]
    if not parts:
        return []
    if len(parts) == 1:
        return parts[0].reshape(-1).tolist()
    # links[i] = (vertex of part i, vertex of part i+1) that are closest to each other
    links = [_closest_pair(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]

    def walk(i: int, entry: int) -> list[np.ndarray]:
        pts = np.roll(parts[i], -entry, axis=0)
        if i == len(parts) - 1:
            return [pts, pts[:1]]
        exit_at = (links[i][0] - entry) % len(pts)
        return [pts[: exit_at + 1], *walk(i + 1, links[i][1]), pts[exit_at:], pts[:1]]

    pieces = walk(0, 0)[:-1]  # the outermost loop closes implicitly
    return np.concatenate(pieces).reshape(-1).tolist()


def _closest_pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    import numpy as np

    best = (np.inf, 0, 0)
    for start in range(0, len(a), 512):  # blocks keep memory at O(512 * len(b))
        block = a[start : start + 512]
        d = ((block[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[i, j] < best[0]:
            best = (float(d[i, j]), start + int(i), int(j))
    return best[1], best[2]
