"""Model-assisted annotation: SAM 2 masks from clicks and boxes, detector pre-labels.

Both store what the model proposes as model annotations in review state ``generated``; a
proposal counts as ground truth only once accepted (``ws.annotations.review(id, "accept")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mleval.core.enums import CreationMethod
from mleval.core.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np

    from mleval.core.records import AnnotationRecord, ImageRecord, ModelRecord
    from mleval.models.sam2_predictor import SegmentResult
    from mleval.prediction import InferenceResult
    from mleval.context import WorkspaceContext

DEFAULT_ASSIST_MODEL = "sam2.1_t"
_PRELABEL_BATCH = 8


@dataclass(frozen=True)
class Proposal:
    """A SAM 2 mask stored as a ``generated`` model annotation, waiting for review."""

    annotation_id: str
    image_id: str
    label: str
    result: SegmentResult = field(repr=False)
    _ws: WorkspaceContext = field(repr=False, compare=False)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool in original-image pixels."""
        return self.result.mask

    @property
    def rle(self) -> dict:
        return self.result.rle

    @property
    def polygons(self) -> list[list[float]]:
        return self.result.polygons

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:
        return self.result.box_xyxy

    @property
    def score(self) -> float:
        return self.result.score

    @property
    def embedding_ms(self) -> float:
        """Time of the image embedding; 0.0 when an earlier prompt on this image computed it."""
        return self.result.embedding_ms

    @property
    def prompt_ms(self) -> float:
        return self.result.prompt_ms

    def accept(self, *, user_tag: str | None = None) -> AnnotationRecord:
        """Accept the proposal: it becomes ground truth."""
        return self._ws.annotations.review(self.annotation_id, "accept", user_tag=user_tag)

    def reject(self, *, user_tag: str | None = None) -> AnnotationRecord:
        return self._ws.annotations.review(self.annotation_id, "reject", user_tag=user_tag)

    def __repr__(self) -> str:
        box = [round(v, 1) for v in self.box_xyxy]
        return (f"Proposal({self.label!r} on {self.image_id}, annotation {self.annotation_id}, box_xyxy={box}, "
                f"score={self.score:.3f}, prompt_ms={self.prompt_ms:.0f}, embedding_ms={self.embedding_ms:.0f})")


def assist(
    ws: WorkspaceContext,
    image: ImageRecord | str,
    *,
    model: ModelRecord | str = DEFAULT_ASSIST_MODEL,
    points: Sequence[Sequence[float]] | None = None,
    box: Sequence[float] | None = None,
    label: str = "object",
    user_tag: str | None = None,
) -> Proposal:
    """Segment one object of ``image`` with SAM 2 and store it as a ``generated`` annotation.

    ``points``: [(x, y, label), ...] in image pixels, label 1 on the object, 0 on background;
    ``box``: [x1, y1, x2, y2] in image pixels; give either or both. The mask is stored as a
    COCO RLE segment with its tight box, the model's predicted IoU as the confidence, and
    the prompts in the annotation's metadata. The image's embedding stays cached, so further
    prompts on the same image take a fraction of the first.
    """
    from mleval.images.decode import decode_rgb
    from mleval.models.sam2_predictor import check_prompts

    record = ws.models.get(model)
    if not record.is_promptable:
        raise ValidationError(
            "assist.promptable_model",
            f"{record.name} is not a promptable segmenter; assist needs a SAM 2 model such as "
            f"{DEFAULT_ASSIST_MODEL!r}. For boxes from a detector use ws.prelabel(images, {record.name!r}).",
        )
    image_record = ws.images.get(image)
    # Prompts are checked against the catalog's size before anything is loaded, decoded or embedded.
    point_xy, point_labels, _ = check_prompts(points, box, height=image_record.height, width=image_record.width)
    predictor = ws.models.load(record).predictor
    result = predictor.segment(decode_rgb(ws.images.read_bytes(image_record)), points=points, box=box)
    if result.area == 0:
        raise ValidationError(
            "assist.empty_mask",
            f"{record.name} found no object at the prompt on image {image_record.id} (empty mask); nothing was "
            "stored. Click inside the object, add a box, or add more points.",
        )
    prompt = {
        "points": None if point_xy is None else [[float(p[0]), float(p[1]), int(label)]
                                                 for p, label in zip(points, point_labels)],
        "box_xyxy": None if box is None else [float(v) for v in box],
    }
    annotation = ws.annotations.add(
        image_record, labels=[label], masks=[result.rle], boxes_xyxy=[result.box_xyxy], scores=[result.score],
        creation_method=CreationMethod.MODEL, model_id=record.id, user_tag=user_tag,
        metadata={"assist": "sam2", "prompt": prompt, "embedding_ms": round(result.embedding_ms, 1),
                  "prompt_ms": round(result.prompt_ms, 1)},
    )
    return Proposal(annotation.id, image_record.id, label, result, ws)


def prelabel(
    ws: WorkspaceContext,
    images: Sequence[ImageRecord | str],
    model: ModelRecord | str,
    *,
    conf: float = 0.25,
    imgsz: int | None = None,
) -> list[InferenceResult]:
    """Run a detector on ``images`` and store its boxes as one ``generated`` annotation per
    image (none where it found nothing), to accept or reject with ``ws.annotations.review``.

    Returns one InferenceResult per image, in order; ``annotation_id`` is None where nothing
    was found. ``imgsz`` None is the model's own input size.
    """
    import pyarrow as pa

    from mleval.catalog.catalog import new_id
    from mleval.images.decode import decode_rgb
    from mleval.models.settings import imgsz_for
    from mleval.prediction import InferenceResult, annotation_rows, prediction_rows

    record = ws.models.get(model)
    imgsz = imgsz_for(record, imgsz)
    if record.is_promptable:
        raise ValidationError(
            "prelabel.detector",
            f"{record.name} needs prompts and cannot pre-label on its own; give a detector (e.g. 'yolo11n') "
            "or use ws.assist(image, points=..., box=...) for SAM 2.",
        )
    predictor = ws.models.load(record, imgsz=imgsz).predictor
    results: list[InferenceResult] = []
    image_list = list(images)
    for first in range(0, len(image_list), _PRELABEL_BATCH):
        records = [ws.images.get(i) for i in image_list[first:first + _PRELABEL_BATCH]]
        predictions = predictor.predict([decode_rgb(ws.images.read_bytes(r)) for r in records], conf=conf)
        image_ids = [r.id for r in records]
        rows = annotation_rows(prediction_rows(image_ids, predictions), model_id=record.id,
                               settings={"imgsz": imgsz, "conf": conf})
        annotation_ids = [new_id() for _ in range(rows.num_rows)]
        if rows.num_rows:
            ws.annotations.add_batch(rows.append_column("id", pa.array(annotation_ids)))
        # annotation_rows keeps the images with detections, in order
        stored = iter(annotation_ids)
        results.extend(InferenceResult(image_id, record.name, prediction,
                                       next(stored) if len(prediction.detections) else None, imgsz)
                       for image_id, prediction in zip(image_ids, predictions))
    return results
