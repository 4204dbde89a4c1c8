"""Records handed to users: one frozen dataclass per entity, and a list that renders as a table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar


def _parse_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class _Record:
    _json_fields: tuple[str, ...] = ("metadata",)

    @classmethod
    def from_row(cls, row: dict[str, Any]):
        names = {f.name for f in fields(cls)}
        values = {k: (_parse_json(v) if k in cls._json_fields else v) for k, v in row.items() if k in names}
        for key in ("id", "image_id", "model_id", "dataset_id", "base_model_id", "result_model_id",
                    "parent_model_id", "inference_job_id", "training_job_id"):
            if values.get(key) is not None:
                values[key] = str(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageRecord(_Record):
    id: str
    filename: str
    format: str
    width: int
    height: int
    file_size: int
    dataset_split: str
    file_path: str
    sha256: str
    upload_timestamp: datetime | None = None
    metadata: dict | None = None


@dataclass(frozen=True)
class DatasetRecord(_Record):
    id: str
    name: str
    description: str | None
    train_count: int
    validation_count: int
    test_count: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict | None = None

    @property
    def total(self) -> int:
        return self.train_count + self.validation_count + self.test_count

    @property
    def classes(self) -> list[str] | None:
        """The class names the dataset declares (``ws.datasets.create(..., classes=)``), or None."""
        return (self.metadata or {}).get("classes")


@dataclass(frozen=True)
class AnnotationRecord(_Record):
    _json_fields = ("metadata", "segments")
    id: str
    image_id: str
    class_labels: list[str]
    bounding_boxes: list | None
    segments: list | None
    confidence_scores: list[float] | None
    creation_method: str
    model_id: str | None
    user_tag: str | None
    review_state: str
    revision: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    inference_job_id: str | None = None
    metadata: dict | None = None

    @property
    def boxes_xyxy(self) -> list[list[float]]:
        return [list(box) for box in self.bounding_boxes or []]


@dataclass(frozen=True)
class ModelRecord(_Record):
    """A model, with the settings it was made with: every consumer (predict, infer, evaluate,
    deploy, the widgets) defaults to ``imgsz`` and reads its class names from ``classes``.
    ``settings_source`` says where they came from: ``zoo`` (its published weights' settings),
    ``training`` (a job of this workspace), ``checkpoint`` (read from a registered file) or
    ``assumed`` (640 and the file's names, the file carrying no training arguments)."""

    _json_fields = ("metadata", "performance_metrics")
    lineage_kind = "model"  # what ws.lineage traces it as
    id: str
    name: str
    type: str
    variant: str
    version: str
    framework: str
    model_path: str
    training_status: str
    performance_metrics: dict | None = None
    parent_model_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict | None = None
    imgsz: int | None = None
    classes: list[str] | None = None
    task: str | None = None
    settings_source: str | None = None
    base_model_id: str | None = None
    training_job_id: str | None = None
    dataset_snapshot_id: str | None = None

    @property
    def is_promptable(self) -> bool:
        return self.task == "promptable"

    def _repr_html_(self) -> str:
        from html import escape

        metrics = self.performance_metrics or {}
        scores = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float))
        classes = self.classes or []
        shown = ", ".join(classes[:8]) + (f", ... ({len(classes)})" if len(classes) > 8 else "")
        weights = (self.metadata or {}).get("weights_source", "not loaded yet")
        rows = [("framework / variant", f"{self.framework} {self.variant}"), ("task", self.task),
                ("status", self.training_status), ("imgsz", f"{self.imgsz} ({self.settings_source})"),
                ("classes", shown or "none (promptable)"), ("weights", weights), ("scores", scores or "none yet"),
                ("id", self.id)]
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<b>model {escape(self.name)}</b> v{escape(self.version)}<table>{body}</table>"


R = TypeVar("R")


class RecordList(list, Generic[R]):
    """A list of records that converts to Arrow/pandas and renders as a table in a notebook."""

    def to_arrow(self):
        import pyarrow as pa

        rows = [record.to_dict() for record in self]
        for row in rows:
            for key, value in row.items():
                if isinstance(value, dict):
                    row[key] = json.dumps(value)
        return pa.Table.from_pylist(rows)

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def _repr_html_(self) -> str:
        if not self:
            return "<i>no records</i>"
        columns = [f.name for f in fields(self[0]) if f.name not in ("metadata", "segments")]
        head = "".join(f"<th>{c}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_short(getattr(r, c))}</td>" for c in columns) + "</tr>" for r in self[:50]
        )
        more = f"<p>{len(self) - 50} more</p>" if len(self) > 50 else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def image_id_of(image: ImageRecord | str) -> str:
    return image.id if isinstance(image, ImageRecord) else str(image)
