"""``ws.lineage(x)``: where a deployment, model, job or evaluation run came from.

The chain is read from the catalog: a deployment serves a model; a trained model was made by a
training job, from a base model and a dataset snapshot; a snapshot freezes a dataset's members
and ground-truth annotation revisions; an evaluation run scored a model on a snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.core.errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from mleval.context import WorkspaceContext

LINEAGE_SCHEMA = pa.schema([("depth", pa.int32()), ("kind", pa.string()), ("id", pa.string()),
                            ("name", pa.string()), ("detail", pa.string())])


@dataclass(frozen=True)
class Lineage:
    """The chain from ``x`` back to its sources, one row per step: ``depth`` (0 for ``x``), ``kind``
    (deployment, evaluation_run, inference_job, training_job, model, dataset_snapshot, annotations,
    dataset), ``id``, ``name`` and a ``detail`` line."""

    rows: tuple[dict[str, Any], ...]

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pylist(list(self.rows), schema=LINEAGE_SCHEMA)

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def kinds(self) -> list[str]:
        return [row["kind"] for row in self.rows]

    def __repr__(self) -> str:
        return "\n".join(f"{'  ' * r['depth']}{'<- ' if r['depth'] else ''}{r['kind']} {r['name']} ({r['detail']})"
                         for r in self.rows)

    def _repr_html_(self) -> str:
        from html import escape

        body = "".join(
            f"<tr><td style='text-align:left;padding-left:{1.5 * r['depth']:.1f}em'>"
            f"{'&larr; ' if r['depth'] else ''}{escape(r['kind'])}</td><td>{escape(r['name'])}</td>"
            f"<td style='text-align:left'>{escape(r['detail'])}</td><td><code>{escape(r['id'])}</code></td></tr>"
            for r in self.rows)
        return ("<b>lineage</b><table><thead><tr><th>kind</th><th>name</th><th>detail</th><th>id</th></tr></thead>"
                f"<tbody>{body}</tbody></table>")


class _Tracer:
    def __init__(self, ws: WorkspaceContext):
        self._ws = ws
        self.rows: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, depth: int, kind: str, id_: Any, name: Any, detail: str) -> bool:
        key = (kind, str(id_))
        if key in self._seen:
            return False
        self._seen.add(key)
        self.rows.append({"depth": depth, "kind": kind, "id": str(id_), "name": str(name), "detail": detail})
        return True

    def deployment(self, row_id: str, depth: int = 0) -> None:
        d = self._ws.catalog.get("deployments", row_id)
        if self.add(depth, "deployment", d["id"], f"{d['name']} v{d['version']}",
                    f"{d['status']}, imgsz {d.get('imgsz')}, {d['endpoint_url']}"):
            self.model(str(d["model_id"]), depth + 1)

    def evaluation_run(self, run_id: str, depth: int = 0) -> None:
        r = self._ws.catalog.get("evaluation_runs", run_id)
        summary = _json(r["summary"])
        score = (f"mAP50={_num(summary.get('mAP50'))} mAP50-95={_num(summary.get('mAP50_95'))}"
                 if "mAP50" in summary else f"mean IoU={_num(summary.get('mean_iou'))}")
        if self.add(depth, "evaluation_run", r["id"], r["key"], f"{score}, split {r['split']}, imgsz {r.get('imgsz')}"):
            self.model(str(r["model_id"]), depth + 1)
            if r.get("dataset_snapshot_id"):
                self.snapshot(r["dataset_snapshot_id"], depth + 1)
            if r.get("inference_job_id"):
                self.inference_job(str(r["inference_job_id"]), depth + 1)

    def inference_job(self, job_id: str, depth: int = 0) -> None:
        j = self._ws.catalog.get("inference_jobs", job_id)
        if self.add(depth, "inference_job", j["id"], f"inference of {len(j['target_images'])} images",
                    f"{j['status']}, imgsz {j.get('imgsz')}"):
            self.model(str(j["model_id"]), depth + 1)

    def training_job(self, job_id: str, depth: int = 0) -> None:
        j = self._ws.catalog.get("training_jobs", job_id)
        hp = _json(j["hyperparameters"])
        detail = (f"{j['status']}, {hp.get('epochs')} epochs, batch {hp.get('batch_size')}, "
                  f"lr {hp.get('learning_rate')}, imgsz {hp.get('imgsz')}")
        if self.add(depth, "training_job", j["id"], f"training job {str(j['id'])[:8]}", detail):
            self.model(str(j["base_model_id"]), depth + 1)
            if j.get("dataset_snapshot_id"):
                self.snapshot(j["dataset_snapshot_id"], depth + 1)
            else:
                d = self._ws.catalog.get("datasets", str(j["dataset_id"]))
                self.add(depth + 1, "dataset", d["id"], d["name"], "no snapshot (a job from before snapshots)")

    def model(self, model_id: str, depth: int = 0) -> None:
        m = self._ws.models.get(model_id)
        weights = (m.metadata or {}).get("weights_source", "weights not resolved yet")
        detail = f"{m.framework} {m.variant}, {m.training_status}, imgsz {m.imgsz} ({m.settings_source}), {weights}"
        if not self.add(depth, "model", m.id, m.name, detail):
            return
        if m.training_job_id:
            self.training_job(m.training_job_id, depth + 1)
        elif m.base_model_id or m.parent_model_id:
            self.model(m.base_model_id or m.parent_model_id, depth + 1)

    def snapshot(self, snapshot_id: str, depth: int = 0) -> None:
        from mleval.snapshots import get_snapshot

        s = get_snapshot(self._ws.catalog, snapshot_id)
        name = (s.metadata or {}).get("dataset_name", s.dataset_id)
        detail = (f"{s.images} images (train {s.train_count}, validation {s.validation_count}, test {s.test_count}), "
                  f"{s.created_at:%Y-%m-%d %H:%M} UTC")
        if self.add(depth, "dataset_snapshot", s.id, name, detail):
            self.add(depth + 1, "annotations", s.id, f"{s.annotations} ground-truth annotations",
                     f"{s.objects} objects, revisions summing to {s.revisions}, classes {', '.join(s.classes)}")
            self.add(depth + 1, "dataset", s.dataset_id, name, "the live dataset (it may have changed since)")


def lineage_of(ws: WorkspaceContext, x: Any) -> Lineage:
    """See :meth:`mleval.workspace.Workspace.lineage`."""
    tracer = _Tracer(ws)
    kind, key = _identify(ws, x)
    getattr(tracer, kind)(key)
    return Lineage(tuple(tracer.rows))


def _identify(ws: WorkspaceContext, x: Any) -> tuple[str, str]:
    """(tracer method, id) for a record or handle (each names its kind in ``lineage_kind``), a name or an id."""
    from mleval.catalog.snapshot_rows import find_record_id

    kind = getattr(x, "lineage_kind", None)
    if kind is not None:
        return kind, str(x.id)
    text = str(x)
    for table, kind, column in (("models", "model", "name"), ("deployments", "deployment", "name"),
                                ("evaluation_runs", "evaluation_run", "key"), ("training_jobs", "training_job", None),
                                ("inference_jobs", "inference_job", None), ("dataset_snapshots", "snapshot", None)):
        found = find_record_id(ws.catalog, table, text, column)
        if found:
            return kind, found
    raise NotFoundError(f"nothing named or numbered {text!r} in this workspace: give a model, deployment, job, "
                        "evaluation run or dataset snapshot (record, handle, name or id).")


def _json(value: Any) -> dict:
    return (json.loads(value) if isinstance(value, str) else value) or {}


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
