"""The label-error finder on a stored run: its split's ground truth against the predictions it was scored with.

``label_issues.py`` scores; this module gathers what it scores from the catalog (the run's
inference job, the split's ground truth, the images the model was trained on) and nothing else.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from mleval.catalog.repositories import PredictionRepository
from mleval.core.detections import Detections
from mleval.core.errors import ValidationError
from mleval.evaluation.label_issues import CONFIDENT, MIN_SCORE, THRESHOLD, find_label_issues
from mleval.evaluation.runs import ground_truth_by_image, split_images

if TYPE_CHECKING:
    import pyarrow as pa

    from mleval.context import WorkspaceContext
    from mleval.evaluation.run_store import EvaluationRun


class TrainedOnJudgedImagesWarning(UserWarning):
    """The model judging the labels learnt from some of the images it judges."""


def label_issues_of_run(ws: WorkspaceContext, run: EvaluationRun, *, confident: float = CONFIDENT,
                        min_score: float = MIN_SCORE, threshold: float = THRESHOLD) -> pa.Table:
    """Suspected label mistakes on the images of ``run``'s dataset split (see ``label_issues.py``),
    judged by the predictions the run was scored with."""
    if run.inference_job_id is None or run.dataset_id is None:
        raise ValidationError("label_issues.run", f"run {run.key!r} has no stored detector predictions (SAM 2 runs "
                              "are prompted by the labels themselves); use a detector's run.")
    ds = ws.datasets.get(run.dataset_id)
    images = [i["id"] for i in split_images(ws, ds, run.split)]
    truth = ground_truth_by_image(ws, ds, run.split)
    class_map = run.config.get("class_map") or {}
    predictions = {}
    for row in PredictionRepository(ws.catalog).rows_of(run.inference_job_id, images):
        if row["error"]:
            continue
        found = Detections.from_dict(row)
        names = [class_map.get(n, n) for n in found.class_names]
        keep = [n is not None for n in names]
        predictions[row["image_id"]] = Detections(found.xyxy[keep], [n for n in names if n is not None],
                                                  found.scores[keep])
    seen = sorted(set(images) & _training_images(ws, run.model_id))
    if seen:
        warnings.warn(f"{run.model} was trained on {len(seen)} of the {len(images)} images it judges; it may have "
                      "learnt their mistakes, so their rows (model_saw_image) are less telling. Judge them with a "
                      "model trained on other images.", TrainedOnJudgedImagesWarning, stacklevel=3)
    return find_label_issues(truth, predictions, confident=confident, min_score=min_score, threshold=threshold,
                             seen_images=seen)


def _training_images(ws: WorkspaceContext, model_id: str) -> set[str]:
    """The images of the snapshot the model was fine-tuned on that were in its train split."""
    record = ws.models.get(model_id)
    if record.dataset_snapshot_id is None:
        return set()
    members, _ = ws.datasets.snapshot_tables(record.dataset_snapshot_id)
    return {str(i) for i, split in zip(members.column("image_id").to_pylist(), members.column("split").to_pylist())
            if split == "train"}


def propose_missing(ws: WorkspaceContext, issues: pa.Table, model_id: str, *, min_score: float = 0.5) -> list:
    """The "missing" rows of ``issues`` scoring at least ``min_score`` as proposals: one model
    annotation (state ``generated``) per image holding its missing objects, which the Annotator
    lists to accept (they become ground truth) or reject. Other kinds change an existing label:
    open its image (``image_id``) and edit that object (``object_index``) instead."""
    by_image: dict[str, list[dict]] = {}
    for row in issues.to_pylist():
        if row["kind"] == "missing" and row["score"] >= min_score:
            by_image.setdefault(row["image_id"], []).append(row)
    return [ws.annotations.add(image_id, labels=[r["suggested_label"] for r in rows],
                               boxes_xyxy=[r["box"] for r in rows], scores=[r["score"] for r in rows],
                               creation_method="model", model_id=model_id,
                               metadata={"proposed_by": "find_label_issues", "kind": "missing"})
            for image_id, rows in by_image.items()]
