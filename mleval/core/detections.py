"""The one type for what a model found in one image."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mleval.core.errors import ValidationError


@dataclass(frozen=True)
class Detections:
    """Objects found in one image: boxes ``xyxy`` (N, 4) in original-image pixels, a class
    name and a score (0..1) per box, and optionally one COCO RLE mask per box."""

    xyxy: np.ndarray
    class_names: tuple[str, ...]
    scores: np.ndarray
    masks_rle: tuple[dict, ...] | None = None

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
        if self.masks_rle is not None:
            object.__setattr__(self, "masks_rle", tuple(self.masks_rle))
            if len(self.masks_rle) != n:
                raise ValidationError("detections.lengths", f"{n} boxes but {len(self.masks_rle)} masks.")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), (), np.zeros(0))

    def __len__(self) -> int:
        return len(self.xyxy)

    def filter(self, keep: np.ndarray) -> Detections:
        keep = np.asarray(keep)
        indices = np.flatnonzero(keep) if keep.dtype == bool else keep
        masks = None if self.masks_rle is None else tuple(self.masks_rle[i] for i in indices)
        return Detections(self.xyxy[indices], tuple(self.class_names[i] for i in indices), self.scores[indices], masks)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Detections:
        """The inverse of :meth:`to_dict`: a ``/predict`` response body, or a stored prediction row
        (its ``masks_rle`` a JSON text); missing or null lists are no objects."""
        masks = d.get("masks_rle")
        if isinstance(masks, str):
            masks = json.loads(masks)
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
