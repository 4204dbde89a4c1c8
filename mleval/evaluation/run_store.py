"""The run store: evaluation runs kept in the catalog under a key, read back and deleted.

A run is stored twice: one ``evaluation_runs`` row (key, config, summary, and in ``metadata``
the per-class table, confusion matrix and PR curve) and one ``performance_metrics`` row per
number. The run row is written last and is the commit point: Parquet metric files are
append-only, so rows of a run that was deleted (or never committed) stay on disk and every
read here keeps only rows whose run still exists. Scoring lives in ``runs.py`` (detectors) and
``promptable.py`` (SAM 2); this module only keeps what they computed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.parquet_tables import PERFORMANCE_METRICS_SCHEMA
from mleval.catalog.repositories import EvaluationRepository
from mleval.core.errors import MlevalError, NotFoundError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from mleval.context import WorkspaceContext
    from mleval.core.records import DatasetRecord, ModelRecord
    from mleval.evaluation.coco import CocoEvaluation

CONFIDENCE_THRESHOLD = 0.25  # P/R/F1 and the confusion matrix, as ultralytics reports them
IOU_THRESHOLD = 0.5
CONFUSION_IOU_THRESHOLD = 0.45


@dataclass(frozen=True, eq=False)
class EvaluationRun:
    """One stored evaluation. ``summary``: headline numbers (NaN stored as None); ``metrics``: its
    ``performance_metrics`` rows; ``per_class``: one row per ground-truth class; ``confusion_matrix``:
    rows = predicted, columns = true, last = background (None for SAM 2); ``pr_curve``: precision
    at 101 recall points, IoU 0.5, overall and per class; ``evaluation``: the CocoEvaluation when
    computed in this process (None once reloaded)."""

    lineage_kind = "evaluation_run"  # what ws.lineage traces it as
    id: str
    key: str
    model: str
    model_id: str
    dataset: str | None
    dataset_id: str | None
    split: str | None
    iou_type: str
    config: dict
    summary: dict
    timestamp: datetime
    inference_job_id: str | None
    metrics: pa.Table = field(repr=False)
    per_class: pa.Table = field(repr=False)
    confusion_matrix: pa.Table | None = field(repr=False)
    pr_curve: dict | None = field(repr=False)
    evaluation: CocoEvaluation | None = field(default=None, repr=False)
    imgsz: int | None = None  # the input size the model ran at
    dataset_snapshot_id: str | None = None  # the dataset content it was scored on (ws.datasets.snapshot)
    diagnostics: dict = field(default_factory=dict, repr=False)  # stored "errors" and "calibration"

    def errors(self) -> dict:
        """TIDE's error breakdown at IoU 0.5, stored with the run: for ``cls``, ``loc``, ``both``,
        ``dupe``, ``bkg`` and ``miss`` the AP50 gained by fixing every error of that type, ``fp`` /
        ``fn`` for all of them, ``counts`` per type and ``ap`` (the AP50 it starts from).
        :meth:`objects` lists the objects behind each number."""
        return dict(self._diagnostic("errors", "an error breakdown"))

    def calibration(self) -> dict:
        """Score calibration at IoU 0.5, stored with the run: ``ece``, ``mce``, ``bins`` (score range,
        mean score, precision, count) and ``per_class`` ECE; ``mleval.evaluation.plots.reliability(run)``
        draws it."""
        return dict(self._diagnostic("calibration", "a calibration"))

    def _diagnostic(self, name: str, what: str) -> dict:
        found = self.diagnostics.get(name)
        if found is None:
            reason = ("SAM 2 runs are scored by mask IoU per prompt" if self.pr_curve is None
                      else "it was stored before mleval kept one; evaluate again (ws.evaluate) for it")
            raise MlevalError(f"run {self.key!r} has no {what}: {reason}.")
        return found

    def objects(self, kind: str = "fp", *, class_name: str | None = None, min_score: float | None = None) -> pa.Table:
        """One row per object of ``kind``: "tp", "fp", "fn", or the false positives' types "cls"
        (on another class's object), "loc" (loose box), "dupe", "bkg" (on nothing); columns ``kind``,
        ``image_id``, ``class_name``, ``box`` (xyxy, original pixels), ``score``, ``detection_index``,
        ``annotation_id`` and ``object_index`` (the ground truth it matched, came closest to, or is:
        what the Annotator opens), ``best_iou``, ``confused_class``. Needs the matches of an
        evaluation computed in this process, like :meth:`false_negatives`."""
        from mleval.evaluation.diagnostics import error_objects

        return error_objects(self._in_process("objects"), kind, class_name=class_name, min_score=min_score)

    def slice(self, by: str | dict = "class") -> pa.Table:
        """Metrics per slice: ``"class"`` (the per-class table), ``"size"`` (COCO's small / medium /
        large objects: AP and AR of each), or a dict {slice name: workspace image ids} (any grouping:
        a metadata column, a camera, a day) scored by COCO's protocol on those images only, with the
        difference from the whole run (needs an evaluation computed in this process)."""
        if isinstance(by, dict):
            from mleval.evaluation.diagnostics import slice_metrics

            evaluation = self._in_process("slices")
            coco_id = {str(image.get("source_image_id", image["id"])): image["id"]
                       for image in evaluation.inputs.gt["images"]}
            unknown = sorted({str(i) for ids in by.values() for i in ids} - coco_id.keys())
            if unknown:
                raise ValidationError("evaluation.slice", f"{len(unknown)} image ids of the slices are not in run "
                                      f"{self.key!r} (e.g. {unknown[:3]}); slice the images it scored.")
            return pa.Table.from_pylist(slice_metrics(evaluation, {name: [coco_id[str(i)] for i in ids]
                                                                   for name, ids in by.items()}))
        if by == "class":
            return self.per_class
        if by == "size":
            coco = self.summary.get("coco") or {}
            return pa.Table.from_pylist([{"size": size, "area": area, "mAP50_95": _metric_value(coco.get(f"AP_{size}")),
                                          "AR100": _metric_value(coco.get(f"AR_{size}"))}
                                         for size, area in (("small", "< 32²"), ("medium", "32² to 96²"),
                                                            ("large", "> 96²"))])
        raise ValidationError("evaluation.slice", f"by must be 'class', 'size' or a dict of image ids per slice; "
                              f"got {by!r}.")

    def false_negatives(self, *, iou_threshold: float = 0.5) -> pa.Table:
        """The ground-truth objects no detection matched at ``iou_threshold`` (0.50, 0.55, ... 0.95;
        crowd regions aside): ``image_id``, ``annotation_id`` and ``object_index`` (its place in that
        annotation: what the Annotator opens) and ``class_name``. Needs the per-object matches of
        an evaluation computed in this process (a run read back from the catalog has only its
        numbers: evaluate again)."""
        import pyarrow.compute as pc

        truths, tag = self._match_table("ground_truths", iou_threshold, "false negatives")
        missed = truths.filter(pc.fill_null(pc.invert(truths.column(f"matched_{tag}")), False))
        return pa.table({
            "image_id": missed.column("source_image_id"), "annotation_id": missed.column("annotation_id"),
            "object_index": missed.column("object_index"), "class_name": self._class_names(missed),
        })

    def false_positives(self, *, iou_threshold: float = 0.5) -> pa.Table:
        """The counted detections that matched no ground truth at ``iou_threshold`` (0.50, ... 0.95),
        highest score first: ``image_id`` and ``object_index`` (its place in the model's prediction
        for that image), ``class_name``, ``score``, and ``best_iou`` / ``best_annotation_id`` /
        ``best_object_index``: the same-class ground truth it overlapped most (null: none), so a
        box that was close but not close enough can be told from one on the background. Same
        provenance as :meth:`false_negatives`."""
        import pyarrow.compute as pc

        detections, tag = self._match_table("detections", iou_threshold, "false positives")
        wrong = detections.filter(pc.fill_null(pc.invert(detections.column(f"tp_{tag}")), False))
        wrong = wrong.sort_by([("score", "descending")])
        truths = self.evaluation.matches().ground_truths
        row_of = {gt_id: k for k, gt_id in enumerate(truths.column("gt_id").to_pylist())}
        best = [row_of.get(g) for g in wrong.column("best_gt_id").to_pylist()]
        annotation_ids, object_indices = (truths.column(c).to_pylist() for c in ("annotation_id", "object_index"))
        return pa.table({
            "image_id": wrong.column("source_image_id"), "object_index": wrong.column("object_index"),
            "class_name": self._class_names(wrong), "score": wrong.column("score"), "best_iou": wrong.column("best_iou"),
            "best_annotation_id": pa.array([None if k is None else annotation_ids[k] for k in best], pa.string()),
            "best_object_index": pa.array([None if k is None else object_indices[k] for k in best], pa.int64()),
        })

    def _in_process(self, listing: str) -> CocoEvaluation:
        """The evaluation computed in this process, or an error saying how to get it."""
        if self.evaluation is None:
            raise MlevalError(f"run {self.key!r} was read back from the catalog, which keeps its numbers but not "
                              f"its per-object matches; evaluate again (ws.evaluate) to list its {listing}.")
        return self.evaluation

    def _match_table(self, which: str, iou_threshold: float, listing: str) -> tuple[pa.Table, str]:
        self._in_process(listing)
        tag = f"{round(float(iou_threshold) * 100):02d}"
        table = getattr(self.evaluation.matches(), which)
        if f"det_index_{tag}" not in self.evaluation.matches().ground_truths.column_names:
            raise ValidationError("evaluation.iou_threshold", f"iou_threshold must be one of 0.50, 0.55, ..., 0.95; "
                                  f"got {iou_threshold}.")
        return table, tag

    def _class_names(self, table: pa.Table) -> pa.Array:
        names = self.evaluation.category_names
        return pa.array([names[c] for c in table.column("category_id").to_pylist()], pa.string())

    def to_pandas(self) -> pd.DataFrame:
        """:attr:`per_class` as a DataFrame (``metrics.to_pandas()`` for the stored rows)."""
        return self.per_class.to_pandas()

    def __repr__(self) -> str:
        head = _headline(self.summary)
        return f"EvaluationRun({self.key!r}, {self.model} on {self.dataset}/{self.split}, {head})"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td>{escape(k)}</td><td>{format_value(v)}</td></tr>"
                       for k, v in self.summary.items() if not isinstance(v, dict))
        return (f"<b>{escape(self.key)}</b>: {escape(self.model)} on {escape(str(self.dataset))} / "
                f"{escape(str(self.split))} ({self.iou_type}, imgsz {self.imgsz}, "
                f"{self.timestamp:%Y-%m-%d %H:%M} UTC, snapshot {escape(str(self.dataset_snapshot_id))})"
                f"<table>{rows}</table>{html_table(self.per_class)}")


def list_runs(ws: WorkspaceContext, model: Any = None, dataset: Any = None) -> pa.Table:
    """The stored runs, newest first: key, model, dataset, split, iou_type, timestamp and headline numbers."""
    return EvaluationRepository(ws.catalog).list(
        model_id=None if model is None else ws.models.get(model).id,
        dataset_id=None if dataset is None else ws.datasets.get(dataset).id)


def load_run(ws: WorkspaceContext, key: str) -> EvaluationRun:
    """A stored run by key, its summary, per-class results and metric rows read back from the catalog."""
    row = EvaluationRepository(ws.catalog).run_row(key=key)
    if row is None:
        known = list_runs(ws).column("key").to_pylist()
        raise NotFoundError(f"no evaluation run with key {key!r}; stored runs: {known[:10] or 'none'} "
                            "(list_runs(ws) lists them all).")
    return _run_from_row(ws, row)


def delete_run(ws: WorkspaceContext, key: str) -> None:
    """Delete a run. Its metric rows stay in the append-only Parquet files but no read here returns them."""
    ws.catalog.delete("evaluation_runs", [load_run(ws, key).id])


def list_metrics(ws: WorkspaceContext, *, model: Any = None, dataset: Any = None, metric_type: str | None = None) -> pa.Table:
    """``performance_metrics`` rows of existing runs (and rows stored without a run), oldest first."""
    return EvaluationRepository(ws.catalog).metrics(
        model_id=model and ws.models.get(model).id, dataset_id=dataset and ws.datasets.get(dataset).id,
        metric_type=metric_type)


class EvaluationRunCollection:
    """``ws.evaluations``: ``list``, ``load``, ``delete`` and ``metrics`` over the stored runs."""

    def __init__(self, workspace: WorkspaceContext):
        self._ws = workspace

    def list(self, model: Any = None, dataset: Any = None) -> pa.Table:
        return list_runs(self._ws, model, dataset)

    def load(self, key: str) -> EvaluationRun:
        return load_run(self._ws, key)

    def delete(self, key: str) -> None:
        delete_run(self._ws, key)

    def metrics(self, **filters: Any) -> pa.Table:
        return list_metrics(self._ws, **filters)


def free_key(ws: WorkspaceContext, key: str | None, prefix: str) -> str:
    taken = EvaluationRepository(ws.catalog).keys()
    if key is not None:
        if not str(key).strip():
            raise ValidationError("evaluation_run.key_not_empty", "key must not be empty.")
        if key in taken:
            raise ValidationError("evaluation_run.key_unique", f"an evaluation run with key {key!r} exists; "
                                  "pick another key or delete_run(ws, key) first.")
        return key
    n = 1 + sum(1 for k in taken if k.startswith(prefix + "-"))
    while f"{prefix}-{n}" in taken:
        n += 1
    return f"{prefix}-{n}"


def timing_summary(predictions: Sequence[Any]) -> dict[str, float | None]:
    """Mean stage times (ms per image) and images/s of prediction rows or ImagePredictions."""
    from mleval.evaluation.timing import summarize_latency

    stages = ("preprocess_ms", "inference_ms", "postprocess_ms")
    values = [[_get(p, s) for s in stages] for p in predictions]
    values = [v for v in values if None not in v]
    latency = summarize_latency(**{s: [v[k] for v in values] for k, s in enumerate(stages)})
    return {"preprocess_ms": latency.preprocess_ms, "inference_ms": latency.inference_ms,
            "postprocess_ms": latency.postprocess_ms, "ms_per_image": latency.total_ms,
            "images_per_second": latency.images_per_s}


def _get(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _metric_rows(run_id: str, record: ModelRecord, ds: DatasetRecord, split: str, iou_type: str,
                 timestamp: datetime, summary: dict, per_class: list[dict]) -> pa.Table:
    rows: list[dict] = []

    def add(metric: str, value: Any, threshold: float | None = None, class_name: str | None = None, **meta):
        if _metric_value(value) is None:
            return  # undefined here (e.g. mean IoU without a true positive); the rules store numbers only
        rows.append({"id": new_id(), "model_id": record.id, "dataset_id": ds.id, "evaluation_run_id": run_id,
                     "metric_type": metric, "metric_value": _metric_value(value), "threshold": threshold,
                     "class_name": class_name, "evaluation_timestamp": timestamp,
                     "metadata": json.dumps({"iou_type": iou_type, "split": split, **meta})})

    if "mAP50" in summary:
        add("mAP50", summary["mAP50"], 0.5)
        add("mAP75", summary["mAP75"], 0.75)
        add("mAP50_95", summary["mAP50_95"])
        for metric, name in (("precision", "precision"), ("recall", "recall"), ("F1", "F1")):
            add(metric, summary[name], IOU_THRESHOLD, confidence_threshold=CONFIDENCE_THRESHOLD)
        add("IoU", summary["mean_iou"], IOU_THRESHOLD, what="mean IoU of true positives")
        for c in per_class:
            add("AP", c["ap50"], 0.5, c["class_name"])
    else:  # promptable: mask IoU of each ground-truth box prompt's answer
        add("IoU", summary["mean_iou"], what="mean mask IoU, ground-truth box prompts")
        for threshold in (0.5, 0.75):
            add("recall", summary[f"recall{round(threshold * 100)}"], threshold, what="share of objects above IoU")
        for c in per_class:
            add("IoU", c["mean_iou"], None, c["class_name"], what="mean mask IoU, ground-truth box prompts")
    if _number(summary["ms_per_image"]) is not None:
        add("execution_time", summary["ms_per_image"], unit="ms/image",
            **{k: _number(summary[k]) for k in ("preprocess_ms", "inference_ms", "postprocess_ms")})
        add("images_per_second", summary["images_per_second"], unit="images/s")
    return pa.Table.from_pylist(rows, schema=PERFORMANCE_METRICS_SCHEMA)


def store_run(ws: WorkspaceContext, record: ModelRecord, ds: DatasetRecord, split: str, iou_type: str, key: str, config: dict,
           summary: dict, results: dict, job_id: str | None, evaluation: CocoEvaluation | None, *,
           imgsz: int | None = None, snapshot_id: str | None = None) -> EvaluationRun:
    run_id, now = new_id(), utc_now()
    summary = _clean(summary)
    metrics = _metric_rows(run_id, record, ds, split, iou_type, now, summary, _clean(results["per_class"]))
    ws.catalog.append_rows("performance_metrics", metrics)  # invisible until the run row below exists
    ws.catalog.insert("evaluation_runs", [{
        "id": run_id, "key": key, "model_id": record.id, "dataset_id": ds.id, "split": split, "iou_type": iou_type,
        "config": _clean(config), "summary": summary, "inference_job_id": job_id, "evaluation_timestamp": now,
        "metadata": _clean(results), "imgsz": imgsz, "dataset_snapshot_id": snapshot_id,
    }])
    return _run_from_row(ws, EvaluationRepository(ws.catalog).run_row(run_id=run_id), evaluation)


def _run_from_row(ws: WorkspaceContext, row: dict, evaluation: CocoEvaluation | None = None) -> EvaluationRun:
    results = json.loads(row["metadata"]) if row["metadata"] else {}
    metrics = EvaluationRepository(ws.catalog).metrics_of(row["id"])
    cm = results.get("confusion_matrix")
    confusion = None if cm is None else pa.table(
        {"predicted": cm["labels"], **{label: [r[j] for r in cm["matrix"]] for j, label in enumerate(cm["labels"])}})
    return EvaluationRun(
        id=row["id"], key=row["key"], model=row["model"], model_id=row["model_id"], dataset=row["dataset"],
        dataset_id=row["dataset_id"], split=row["split"], iou_type=row["iou_type"], config=json.loads(row["config"]),
        summary=json.loads(row["summary"]) if row["summary"] else {}, timestamp=row["evaluation_timestamp"],
        inference_job_id=row["inference_job_id"], metrics=metrics,
        per_class=pa.Table.from_pylist(results.get("per_class") or []), confusion_matrix=confusion,
        pr_curve=results.get("pr_curve"), evaluation=evaluation, imgsz=row["imgsz"],
        dataset_snapshot_id=row["dataset_snapshot_id"],
        diagnostics={k: results[k] for k in ("errors", "calibration") if results.get(k) is not None},
    )


# -- helpers ---------------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _metric_value(value: Any) -> float | None:
    """A storable metric value: None for NaN, infinity and COCO's -1 ("undefined")."""
    number = _number(value)
    return None if number is None or number < 0 else number


def _clean(value: Any) -> Any:
    """JSON-ready: numpy scalars and arrays to Python values, NaN and infinity to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(value)
    return value


def _headline(summary: dict) -> str:
    names = ("mAP50_95", "mAP50", "F1") if "mAP50" in summary else ("mean_iou", "recall50")
    return ", ".join(f"{n}={format_value(summary.get(n))}" for n in names)


def format_value(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def html_table(table: pa.Table, limit: int = 50) -> str:
    from html import escape

    if table.num_rows == 0:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in table.column_names)
    body = "".join("<tr>" + "".join(f"<td>{escape(format_value(v))}</td>" for v in row.values()) + "</tr>"
                   for row in table.slice(0, limit).to_pylist())
    more = f"<p>{table.num_rows - limit} more rows</p>" if table.num_rows > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
