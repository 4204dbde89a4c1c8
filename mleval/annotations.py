"""``ws.annotations``: user and model annotations, review states and edit conflicts.

An annotation is the data model's: a set of objects on one image (one class label each,
with a box and/or a segment), made by a user or a model. Boxes are ``[x1, y1, x2, y2]`` in
pixels of the original image. Segments are stored per object as ``{"polygons": [[x, y,
...], ...]}`` or ``{"rle": <COCO RLE>}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import AnnotationRepository
from mleval.catalog.rules import check_transition
from mleval.core.enums import CreationMethod, ReviewState
from mleval.core.errors import ValidationError
from mleval.core.records import AnnotationRecord, ImageRecord, RecordList, image_id_of

if TYPE_CHECKING:
    import numpy as np

    from mleval.stores import WorkspaceStores

# review action -> the path of states it walks, from the states it may start in
REVIEW_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "validate": {ReviewState.DRAFT: (ReviewState.VALIDATED,)},
    "finalize": {ReviewState.VALIDATED: (ReviewState.FINALIZED,),
                 ReviewState.DRAFT: (ReviewState.VALIDATED, ReviewState.FINALIZED)},
    "review": {ReviewState.GENERATED: (ReviewState.REVIEWED,)},
    "accept": {ReviewState.REVIEWED: (ReviewState.ACCEPTED,),
               ReviewState.GENERATED: (ReviewState.REVIEWED, ReviewState.ACCEPTED)},
    "reject": {ReviewState.REVIEWED: (ReviewState.REJECTED,),
               ReviewState.GENERATED: (ReviewState.REVIEWED, ReviewState.REJECTED)},
}


def segments_of(
    labels: Sequence[str],
    polygons: Sequence[Sequence[Sequence[float]] | None] | None,
    masks: Sequence[Any] | None,
) -> list[dict | None] | None:
    """Per-object segments from polygons (a list of polygons per object) or masks (HxW bool
    arrays or COCO RLE dicts per object)."""
    if polygons is None and masks is None:
        return None
    if polygons is not None and masks is not None:
        raise ValidationError("annotation.one_segment_kind", "pass polygons or masks, not both.")
    entries = polygons if polygons is not None else masks
    if len(entries) != len(labels):
        raise ValidationError(
            "annotation.segments_length",
            f"got {len(entries)} segments for {len(labels)} labels: give one per label (None for none).",
        )
    if polygons is not None:
        return [None if p is None else {"polygons": [list(map(float, ring)) for ring in p]} for p in polygons]
    from mleval.core.masks import mask_to_rle

    return [None if m is None else {"rle": m if isinstance(m, dict) else mask_to_rle(m)} for m in masks]


def boxes_of(segments: list[dict | None] | None, boxes_xyxy: Any) -> list[list[float]] | None:
    """Boxes as given, or derived from the segments when only segments are given."""
    if boxes_xyxy is not None:
        return [[float(v) for v in box] for box in boxes_xyxy]
    if segments is None or any(s is None for s in segments):
        return None
    from mleval.core.masks import segment_bbox_xyxy

    return [list(segment_bbox_xyxy(s)) for s in segments]


class AnnotationCollection:
    def __init__(self, workspace: WorkspaceStores):
        self._ws = workspace

    def add(
        self,
        image: ImageRecord | str,
        *,
        labels: Sequence[str],
        boxes_xyxy: Sequence[Sequence[float]] | np.ndarray | None = None,
        polygons: Sequence[Sequence[Sequence[float]] | None] | None = None,
        masks: Sequence[Any] | None = None,
        scores: Sequence[float] | None = None,
        user_tag: str | None = None,
        creation_method: str = CreationMethod.USER,
        model_id: str | None = None,
        inference_job_id: str | None = None,
        metadata: dict | None = None,
    ) -> AnnotationRecord:
        """Save one annotation: the objects ``labels[i]`` with ``boxes_xyxy[i]`` and/or a segment.

        User annotations start as ``draft`` and count as ground truth at once; model
        annotations (``creation_method="model"``, ``model_id`` required) start as
        ``generated`` and count only once accepted.
        """
        labels = [str(label) for label in labels]
        segments = segments_of(labels, polygons, masks)
        now = utc_now()
        annotation_id = new_id()
        self._ws.catalog.insert("annotations", [{
            "id": annotation_id,
            "image_id": image_id_of(image),
            "bounding_boxes": boxes_of(segments, boxes_xyxy),
            "segments": segments,
            "class_labels": labels,
            "confidence_scores": None if scores is None else [float(s) for s in scores],
            "creation_method": str(creation_method),
            "model_id": model_id,
            "user_tag": user_tag,
            "review_state": initial_state(str(creation_method)),
            "revision": 1,
            "created_at": now,
            "updated_at": now,
            "updated_by": user_tag,
            "inference_job_id": inference_job_id,
            "metadata": metadata,
        }])
        return self.get(annotation_id)

    def add_batch(self, rows: pa.Table) -> int:
        """Insert many annotations from an Arrow table in one validated transaction.

        Columns: ``image_id``, ``class_labels`` (list<string>), ``bounding_boxes``
        (list<fixed_size_list<double, 4>>) and optionally any other annotation field;
        ``creation_method`` defaults to user, ``review_state`` to the method's first state,
        ``id`` and timestamps are filled in.
        """
        import pyarrow.compute as pc

        n = rows.num_rows
        if "creation_method" not in rows.column_names:
            rows = rows.append_column("creation_method", pa.repeat(CreationMethod.USER.value, n))
        if "review_state" not in rows.column_names:
            is_model = pc.equal(rows.column("creation_method"), CreationMethod.MODEL.value)
            rows = rows.append_column("review_state", pc.if_else(
                is_model, initial_state(CreationMethod.MODEL.value), initial_state(CreationMethod.USER.value)))
        now = pa.repeat(pa.scalar(utc_now(), pa.timestamp("us", tz="UTC")), n)
        for column in ("created_at", "updated_at"):
            if column not in rows.column_names:
                rows = rows.append_column(column, now)
        return self._ws.catalog.insert("annotations", rows)

    def get(self, annotation_id: str) -> AnnotationRecord:
        return AnnotationRecord.from_row(self._ws.catalog.get("annotations", annotation_id))

    def list(
        self,
        *,
        image: ImageRecord | str | None = None,
        creation_method: str | None = None,
        model_id: str | None = None,
        review_state: str | None = None,
        ground_truth: bool | None = None,
        limit: int | None = None,
    ) -> RecordList[AnnotationRecord]:
        """Annotations, newest last, filtered by image, method, model, state or ground-truth status."""
        return AnnotationRepository(self._ws.catalog).list(
            image_id=image and image_id_of(image), creation_method=creation_method, model_id=model_id,
            review_state=review_state, ground_truth=ground_truth, limit=limit)

    def update(
        self,
        annotation_id: str,
        *,
        revision: int,
        labels: Sequence[str] | None = None,
        boxes_xyxy: Sequence[Sequence[float]] | None = None,
        polygons: Sequence[Sequence[Sequence[float]] | None] | None = None,
        masks: Sequence[Any] | None = None,
        user_tag: str | None = None,
    ) -> AnnotationRecord:
        """Edit an annotation saved at ``revision``. If someone saved since, a ConflictError
        carries your edit (``error.rejected``) and theirs (``error.current``)."""
        current = self.get(annotation_id)
        changes: dict[str, Any] = {}
        new_labels = list(labels) if labels is not None else current.class_labels
        if labels is not None:
            changes["class_labels"] = new_labels
        segments = segments_of(new_labels, polygons, masks)
        if segments is not None:
            changes["segments"] = segments
        if boxes_xyxy is not None or segments is not None:
            changes["bounding_boxes"] = boxes_of(segments, boxes_xyxy)
        return AnnotationRecord.from_row(self._ws.catalog.update(
            "annotations", annotation_id, changes, expected_revision=revision, updated_by=user_tag
        ))

    def review(self, annotation_id: str, action: str, *, user_tag: str | None = None) -> AnnotationRecord:
        """Move an annotation through its review states: ``validate``/``finalize`` (user
        annotations), ``review``/``accept``/``reject`` (model annotations)."""
        if action not in REVIEW_ACTIONS:
            raise ValidationError(
                "annotation.review_action",
                f"unknown review action {action!r}; use one of: {', '.join(REVIEW_ACTIONS)}.",
            )
        record = self.get(annotation_id)
        path = REVIEW_ACTIONS[action].get(record.review_state)
        if path is None:  # not a state this action starts from: let the state machine say why
            check_transition("annotation", record.review_state, next(iter(REVIEW_ACTIONS[action].values()))[-1])
        for state in path:
            row = self._ws.catalog.update(
                "annotations", annotation_id, {"review_state": str(state)},
                expected_revision=record.revision, updated_by=user_tag,
            )
            record = AnnotationRecord.from_row(row)
        return record

    def delete(self, annotation_ids: Sequence[str]) -> int:
        return self._ws.catalog.delete("annotations", list(annotation_ids))


def initial_state(creation_method: str) -> str:
    return ReviewState.GENERATED.value if creation_method == CreationMethod.MODEL else ReviewState.DRAFT.value
