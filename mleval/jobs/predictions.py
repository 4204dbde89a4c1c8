"""An inference job's stored predictions, one row per object (what ``JobHandle.result()`` returns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mleval.catalog.repositories import PredictionRepository

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext


def job_predictions(ws: WorkspaceContext, job_id: str) -> pa.Table:
    """An inference job's predictions, one row per object: ``image_id``, ``object_index`` (its place
    in the image's detections), ``class_name``, ``score`` and ``box_xyxy`` (original-image pixels)."""
    rows = PredictionRepository(ws.catalog).of_job(job_id)
    names = rows.column("class_names")
    parents = pc.list_parent_indices(names)
    counts = pc.list_value_length(names).fill_null(0).to_numpy(zero_copy_only=False)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return pa.table({
        "image_id": pc.take(rows.column("image_id"), parents),
        "object_index": pa.array(np.arange(int(counts.sum())) - starts, pa.int32()),
        "class_name": pc.list_flatten(names),
        "score": pc.list_flatten(rows.column("scores")),
        "box_xyxy": pc.list_flatten(rows.column("boxes_xyxy")),
    })
