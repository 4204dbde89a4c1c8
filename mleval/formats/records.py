"""The neutral in-memory form every format reader returns and every writer takes.

Coordinates are pixels of the original image, in the frame that ``LabelledImage.width`` and
``height`` describe (YOLO readers use the EXIF-upright frame, as ultralytics does). Boxes are
``xyxy`` pixel edges: a box covering pixel columns 0..9 has ``x1=0, x2=10``. Polygons and RLE
follow ``mleval.core.masks``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mleval.core.enums import DatasetSplit
from mleval.core.errors import ValidationError

if TYPE_CHECKING:
    from mleval.core.detections import Detections

__all__ = ["ItemError", "LabelledDataset", "LabelledImage", "LabelledObject", "WriteSummary", "detections_of",
           "normalize_split", "objects_of"]

_SPLIT_ALIASES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}


def normalize_split(split: str | DatasetSplit | None) -> str | None:
    """``"val"``/``"valid"``/``"validation"`` -> ``"validation"``; other DatasetSplit values as is; None stays None."""
    if split is None:
        return None
    value = _SPLIT_ALIASES.get(str(split).strip().lower())
    if value is None:
        allowed = ", ".join(s.value for s in DatasetSplit)
        raise ValidationError("image.dataset_split", f"split {split!r} is not one of: {allowed} (or None).")
    return value


@dataclass(slots=True)
class ItemError:
    """One item that could not be read or written; the rest of the dataset still was.

    ``item`` names the file (and line, entry or object), ``reason`` says what was wrong.
    """

    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


@dataclass(slots=True)
class LabelledObject:
    """One labelled object: a box, optionally a mask (``polygons`` or ``rle``), optionally a score.

    ``bbox_xyxy`` is in pixels; ``polygons`` are flat ``[x1, y1, ...]`` pixel lists (unioned);
    ``rle`` is a compressed COCO RLE with ``str`` counts. ``score`` is set for predictions.
    ``attributes`` keeps format-specific fields that have no neutral meaning (VOC ``pose``,
    ``truncated``, ``difficult``) so a writer of the same format can restore them.
    """

    label: str
    bbox_xyxy: tuple[float, float, float, float]
    polygons: list[list[float]] | None = None
    rle: dict | None = None
    iscrowd: bool = False
    score: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValidationError(
                "annotation.class_label", f"an object's label must be a non-empty string, got {self.label!r}."
            )
        try:
            x1, y1, x2, y2 = self.bbox_xyxy
            box = (float(x1), float(y1), float(x2), float(y2))
        except (TypeError, ValueError):
            raise ValidationError("annotation.bbox", f"bbox_xyxy must be 4 numbers, got {self.bbox_xyxy!r}.") from None
        if not math.isfinite(box[0] + box[1] + box[2] + box[3]):
            raise ValidationError("annotation.bbox", f"bbox_xyxy must be 4 finite numbers, got {self.bbox_xyxy!r}.")
        if box[2] < box[0] or box[3] < box[1]:
            raise ValidationError(
                "annotation.bbox", f"bbox_xyxy must have x2 >= x1 and y2 >= y1, got {box!r} (is it xywh?)."
            )
        self.bbox_xyxy = box
        if self.polygons is not None:
            for poly in self.polygons:
                if len(poly) < 6 or len(poly) % 2:
                    raise ValidationError(
                        "annotation.segment", f"a polygon needs an even number (>= 6) of coordinates, got {len(poly)}."
                    )
        if self.rle is not None and not (isinstance(self.rle, dict) and "size" in self.rle and "counts" in self.rle):
            raise ValidationError("annotation.segment", "rle must be a dict with 'size' and 'counts'.")
        if self.score is not None:
            self.score = float(self.score)
            if not math.isfinite(self.score):
                raise ValidationError("annotation.confidence_score", f"score must be finite, got {self.score!r}.")

    @property
    def has_mask(self) -> bool:
        return bool(self.polygons) or self.rle is not None


def detections_of(objects: list[LabelledObject]) -> Detections:
    """A file's objects as mleval's one detections type (score NaN where the file gives none);
    ``attributes`` have no place there, :func:`objects_of` takes them back."""
    import numpy as np

    from mleval.core.detections import Detections

    return Detections(
        np.asarray([o.bbox_xyxy for o in objects], dtype=np.float64).reshape(-1, 4), tuple(o.label for o in objects),
        np.asarray([np.nan if o.score is None else o.score for o in objects], dtype=np.float64),
        masks_rle=tuple(o.rle for o in objects) if any(o.rle is not None for o in objects) else None,
        polygons=tuple(o.polygons for o in objects) if any(o.polygons for o in objects) else None,
        iscrowd=[o.iscrowd for o in objects],
    )


def objects_of(detections: Detections, attributes: list[dict | None] | None = None) -> list[LabelledObject]:
    """The inverse of :func:`detections_of`: one object per detection, with the format ``attributes``
    (one dict or None per object) a writer of the same format restores."""
    import math

    d = detections
    return [
        LabelledObject(
            label=d.class_names[k], bbox_xyxy=tuple(d.xyxy[k].tolist()),
            polygons=None if d.polygons is None else d.polygons[k],
            rle=None if d.masks_rle is None else d.masks_rle[k],
            iscrowd=False if d.iscrowd is None else bool(d.iscrowd[k]),
            score=None if math.isnan(d.scores[k]) else float(d.scores[k]),
            attributes=(attributes[k] if attributes else None) or {},
        )
        for k in range(len(d))
    ]


@dataclass(slots=True)
class LabelledImage:
    """One image and its objects.

    ``file_name`` is a relative POSIX path (as in a COCO ``file_name``); ``split`` is a
    ``DatasetSplit`` value or None. The image bytes come from ``source_path`` or, when that
    is None, from ``open_bytes()`` (e.g. a blob in a content-addressed store or a zip member).
    """

    file_name: str
    width: int
    height: int
    split: str | None = None
    objects: list[LabelledObject] = field(default_factory=list)
    source_path: Path | None = None
    open_bytes: Callable[[], bytes] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.file_name, str) or not self.file_name.strip():
            raise ValidationError(
                "image.filename_not_empty", f"file_name must be a non-empty string, got {self.file_name!r}."
            )
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValidationError(
                    f"image.{name}_positive", f"{name} must be a positive int, got {value!r} for {self.file_name!r}."
                )
        self.split = normalize_split(self.split)
        if self.source_path is not None:
            self.source_path = Path(self.source_path)

    def read_bytes(self) -> bytes | None:
        """The image file's bytes, or None when this record has no source."""
        if self.source_path is not None:
            return self.source_path.read_bytes()
        if self.open_bytes is not None:
            return self.open_bytes()
        return None


@dataclass(slots=True)
class LabelledDataset:
    """Images with labelled objects. ``categories`` is ordered: its index is the stable class id."""

    categories: list[str]
    images: list[LabelledImage] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for name in self.categories:
            if not isinstance(name, str) or not name.strip():
                raise ValidationError(
                    "dataset.category_name", f"category names must be non-empty strings, got {name!r}."
                )
            if name in seen:
                raise ValidationError("dataset.category_unique", f"category {name!r} appears twice in categories.")
            seen.add(name)

    def class_ids(self) -> dict[str, int]:
        """Label -> class id (0-based index in ``categories``)."""
        return {name: i for i, name in enumerate(self.categories)}

    def check_labels(self) -> None:
        """Raise ValidationError naming the first object whose label is not in ``categories``."""
        known = set(self.categories)
        for image in self.images:
            for obj in image.objects:
                if obj.label not in known:
                    raise ValidationError(
                        "dataset.label_in_categories",
                        f"{image.file_name}: label {obj.label!r} is not in categories {self.categories!r}; "
                        "add it to categories before writing.",
                    )


@dataclass(slots=True)
class WriteSummary:
    """What a writer wrote: the output ``path``, counts, and ``issues``: items the format could not
    hold as given (skipped, clipped, approximated, or written without their image file)."""

    path: Path
    images: int
    objects: int
    issues: list[ItemError] = field(default_factory=list)
