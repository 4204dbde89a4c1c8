"""The one type for objects in one image: what a model found, or the ground truth it is scored against."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from mleval.core.errors import ValidationError

# per-object fields that are optional as a whole (None: not known for any object)
_OPTIONAL_PER_OBJECT = ("class_ids", "masks_rle", "polygons", "iscrowd", "annotation_ids", "object_indices")
_NUMBERS = {"xyxy": np.float64, "scores": np.float64, "class_ids": np.int64, "iscrowd": bool,
            "object_indices": np.int64}  # per-object fields held as numpy arrays


@dataclass(frozen=True)
class Detections:
    """Objects in one image, one entry per object in every field:

    - ``xyxy`` (N, 4) boxes in original-image pixels, ``class_names``, ``scores`` (0..1; NaN for a
      ground-truth object, which has none);
    - optionally ``class_ids`` (the model's class index, or the dataset's), ``masks_rle`` (COCO RLE)
      and ``polygons`` (flat ``[x1, y1, ...]`` lists) -- an entry may be None where one object has no
      mask --, ``iscrowd``;
    - for ground truth, where each object came from: ``annotation_ids`` (the stored annotation) and
      ``object_indices`` (its place in that annotation), so an evaluation's match names the object a
      user can open in the annotator.

    Converters at the edges: :meth:`from_dict` / :meth:`to_dict` (endpoint bodies, stored prediction
    rows), :meth:`from_annotation` (a stored annotation row); ultralytics results and SAM 2 masks in
    mleval.models; COCO/YOLO/VOC objects in mleval.formats.records.
    """

    xyxy: np.ndarray
    class_names: tuple[str, ...]
    scores: np.ndarray
    masks_rle: tuple[dict | None, ...] | None = None
    polygons: tuple[list[list[float]] | None, ...] | None = None
    class_ids: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    annotation_ids: tuple[str | None, ...] | None = None
    object_indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        n = len(xyxy)
        if len(scores) != n or len(self.class_names) != n:
            raise ValidationError(
                "detections.lengths",
                f"expected one class name and one score per box: {n} boxes, {len(self.class_names)} names, "
                f"{len(scores)} scores.",
            )
        for name in _OPTIONAL_PER_OBJECT:
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=_NUMBERS[name]).reshape(-1) if name in _NUMBERS else tuple(value)
            object.__setattr__(self, name, value)
            if len(value) != n:
                raise ValidationError("detections.lengths", f"{n} boxes but {len(value)} {name}.")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), (), np.zeros(0))

    def __len__(self) -> int:
        return len(self.xyxy)

    def filter(self, keep: np.ndarray) -> Detections:
        """The objects where ``keep`` (a bool mask or indices) says so, every field kept in step."""
        keep = np.asarray(keep)
        indices = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        picked: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                picked[f.name] = None
            elif f.name in _NUMBERS:
                picked[f.name] = value[indices]
            else:
                picked[f.name] = tuple(value[i] for i in indices)
        return Detections(**picked)

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """The objects of all ``parts`` in order; an optional field unknown in one part is None there."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        joined: dict[str, Any] = {}
        for f in fields(cls):
            values = [getattr(p, f.name) for p in parts]
            if all(v is None for v in values) or (f.name in _NUMBERS and any(v is None for v in values)):
                joined[f.name] = None  # a number cannot say "unknown" for some objects only
            elif f.name in _NUMBERS:
                joined[f.name] = np.concatenate(values)
            else:
                joined[f.name] = tuple(x for p, v in zip(parts, values) for x in (v if v is not None else [None] * len(p)))
        return cls(**joined)

    def segment(self, k: int) -> dict | None:
        """Object ``k``'s mask as stored on annotations: ``{"rle": ...}``, ``{"polygons": ...}`` or None."""
        if self.masks_rle is not None and self.masks_rle[k] is not None:
            return {"rle": self.masks_rle[k]}
        if self.polygons is not None and self.polygons[k]:
            return {"polygons": self.polygons[k]}
        return None

    def with_class_ids(self, classes: Sequence[str]) -> Detections:
        """The same objects with ``class_ids`` their index in ``classes``; an unknown name is refused."""
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(self.class_names) - index.keys())
        if unknown:
            raise ValidationError("detections.class_name",
                                  f"classes {unknown} are not among {list(classes)[:20]}; map or drop them first.")
        return replace(self, class_ids=np.asarray([index[n] for n in self.class_names], dtype=np.int64))

    @classmethod
    def from_annotation(cls, row: Mapping[str, Any]) -> Detections:
        """The objects of one stored annotation row (``class_labels``, ``bounding_boxes``, ``segments``
        and ``metadata`` as JSON text, ``confidence_scores``; its id as ``annotation_id`` or ``id``),
        each naming that annotation and its place in it. A box missing beside a mask is the mask's."""
        from mleval.core.masks import segment_bbox_xyxy

        labels = list(row.get("class_labels") or ())
        n = len(labels)
        segments = _json(row.get("segments")) or [None] * n
        metadata = _json(row.get("metadata")) or {}
        boxes = row.get("bounding_boxes") or [segment_bbox_xyxy(s) for s in segments]
        scores = row.get("confidence_scores")
        annotation_id = row.get("annotation_id", row.get("id"))
        return cls(
            np.asarray(boxes, dtype=np.float64).reshape(-1, 4), tuple(labels),
            np.asarray(scores if scores else [np.nan] * n, dtype=np.float64),
            masks_rle=tuple((s or {}).get("rle") for s in segments) if any(s and "rle" in s for s in segments) else None,
            polygons=tuple((s or {}).get("polygons") for s in segments) if any(s and "polygons" in s for s in segments)
            else None,
            iscrowd=np.asarray(metadata.get("iscrowd") or [0] * n, dtype=bool),
            annotation_ids=(None if annotation_id is None else str(annotation_id),) * n,
            object_indices=np.arange(n),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Detections:
        """The inverse of :meth:`to_dict`: a ``/predict`` response body, or a stored prediction row
        (its ``masks_rle`` a JSON text); missing or null lists are no objects."""
        masks = _json(d.get("masks_rle"))
        return cls(np.asarray(d.get("boxes_xyxy") or [], dtype=np.float64), tuple(d.get("class_names") or ()),
                   np.asarray(d.get("scores") or [], dtype=np.float64), None if masks is None else tuple(masks))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: boxes xyxy, class names, scores and masks (RLE) when present."""
        return {
            "boxes_xyxy": self.xyxy.round(3).tolist(),
            "class_names": list(self.class_names),
            "scores": self.scores.round(5).tolist(),
            **({"masks_rle": list(self.masks_rle)} if self.masks_rle is not None else {}),
        }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class ImagePrediction:
    """A model's output for one image with its execution time split in milliseconds."""

    detections: Detections
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms
