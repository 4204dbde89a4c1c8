"""Running a model on images and keeping what it found as model annotations.

``ws.predict`` runs in the calling process; batch inference (``mleval.jobs.inference``)
uses the same conversion to store its rows, so a prediction looks the same either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.catalog.parquet_tables import PREDICTIONS_SCHEMA
from mleval.core.detections import ImagePrediction
from mleval.core.enums import CreationMethod, ReviewState
from mleval.core.records import ImageRecord, ModelRecord

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

# One row per image; the stored table (catalog "predictions") adds the job and model ids.
PREDICTION_SCHEMA = pa.schema([f for f in PREDICTIONS_SCHEMA if f.name not in ("inference_job_id", "model_id")])


@dataclass(frozen=True)
class InferenceResult:
    image_id: str
    model: str
    prediction: ImagePrediction
    annotation_id: str | None  # the stored model annotation (None when nothing was found or not stored)
    imgsz: int | None = None  # the input size the model ran at

    @property
    def detections(self):
        return self.prediction.detections

    def _repr_html_(self) -> str:
        d = self.detections
        rows = "".join(f"<tr><td>{n}</td><td>{s:.3f}</td><td>{[round(v, 1) for v in b]}</td></tr>"
                       for n, s, b in zip(d.class_names, d.scores, d.xyxy.tolist()))
        return (f"<b>{self.model}</b> on {self.image_id}: {len(d)} objects in {self.prediction.total_ms:.1f} ms "
                f"at imgsz {self.imgsz}"
                f"<table><tr><th>class</th><th>score</th><th>xyxy</th></tr>{rows}</table>")


def prediction_rows(image_ids: Sequence[str], predictions: Sequence[ImagePrediction | str]) -> pa.Table:
    """Rows of :data:`PREDICTION_SCHEMA`; a ``str`` in ``predictions`` is that image's error."""
    rows: list[dict[str, Any]] = []
    for image_id, prediction in zip(image_ids, predictions):
        if isinstance(prediction, str):
            rows.append({"image_id": image_id, "error": prediction})
            continue
        d = prediction.detections
        rows.append({
            "image_id": image_id, "boxes_xyxy": d.xyxy.tolist(), "class_names": list(d.class_names),
            "scores": d.scores.tolist(),
            "masks_rle": None if d.masks_rle is None else json.dumps(list(d.masks_rle)),
            "preprocess_ms": prediction.preprocess_ms, "inference_ms": prediction.inference_ms,
            "postprocess_ms": prediction.postprocess_ms, "error": None,
        })
    return pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA)


def annotation_rows(predictions: pa.Table, *, model_id: str, inference_job_id: str | None = None,
                    settings: dict | None = None) -> pa.Table:
    """Model annotations (state generated) for the images where something was found; ``settings``
    (the imgsz and conf the model ran with) go into each annotation's metadata."""
    import pyarrow.compute as pc

    found = predictions.filter(pc.and_(pc.is_null(predictions.column("error")),
                                       pc.greater(pc.list_value_length(predictions.column("class_names")), 0)))
    n = found.num_rows
    masks = found.column("masks_rle").to_pylist()
    segments = [None if m is None else json.dumps([{"rle": rle} for rle in json.loads(m)]) for m in masks]
    return pa.table({
        "image_id": found.column("image_id"),
        "bounding_boxes": found.column("boxes_xyxy"),
        "class_labels": found.column("class_names"),
        "confidence_scores": found.column("scores"),
        "segments": pa.array(segments, pa.string()),
        "creation_method": pa.array([CreationMethod.MODEL.value] * n),
        "model_id": pa.array([model_id] * n),
        "review_state": pa.array([ReviewState.GENERATED.value] * n),
        "inference_job_id": pa.array([inference_job_id] * n, pa.string()),
        "metadata": pa.array([None if settings is None else json.dumps({"settings": settings})] * n, pa.string()),
    })


def predict_image(
    ws: WorkspaceContext,
    model: ModelRecord | str,
    image: ImageRecord | str,
    *,
    conf: float = 0.25,
    imgsz: int | None = None,
    store: bool = True,
) -> InferenceResult:
    """Run ``model`` on one image; store its detections as a model annotation (``generated``).
    ``imgsz`` None is the model's own input size; the size used is in the annotation's metadata."""
    from mleval.images.decode import decode_rgb
    from mleval.models.settings import imgsz_for

    record = ws.models.get(model)
    image_record = ws.images.get(image)
    imgsz = imgsz_for(record, imgsz)
    loaded = ws.models.load(record, imgsz=imgsz)
    prediction = loaded.predictor.predict([decode_rgb(ws.images.read_bytes(image_record))], conf=conf)[0]
    annotation_id = None
    if store and len(prediction.detections):
        rows = annotation_rows(prediction_rows([image_record.id], [prediction]), model_id=record.id,
                               settings={"imgsz": imgsz, "conf": conf})
        annotation_id = _insert_returning_id(ws, rows)
    return InferenceResult(image_record.id, record.name, prediction, annotation_id, imgsz)


def _insert_returning_id(ws: WorkspaceContext, rows: pa.Table) -> str:
    from mleval.catalog.catalog import new_id

    annotation_id = new_id()
    ws.annotations.add_batch(rows.append_column("id", pa.array([annotation_id])))
    return annotation_id
