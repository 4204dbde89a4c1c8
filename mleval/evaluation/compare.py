"""Several models on one dataset split: a leaderboard, the best model per metric, per-class AP deltas."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.core.errors import ValidationError
from mleval.core.progress import Progress, ProgressOption, check_progress
from mleval.evaluation.run_store import EvaluationRun, format_value, html_table, list_runs, load_run
from mleval.evaluation.runs import evaluate

if TYPE_CHECKING:
    import pandas as pd

    from mleval.context import WorkspaceContext
    from mleval.jobs.handle import JobHandle

# leaderboard column -> summary key; all higher-is-better except ms_per_image
LEADERBOARD_METRICS = {"mAP50_95": "mAP50_95", "mAP50": "mAP50", "precision": "precision", "recall": "recall",
                       "F1": "F1", "mean_iou": "mean_iou", "ms_per_image": "ms_per_image"}
LOWER_IS_BETTER = frozenset({"ms_per_image"})
_REUSED_OPTIONS = ("conf", "class_map")  # a stored run is reused only if it was made with the options given


@dataclass(frozen=True, eq=False)
class Comparison:
    """``runs``: one EvaluationRun per model, in the order given. ``leaderboard``: one row per model,
    best mAP50-95 first (mean mask IoU for SAM 2 runs). ``best``: metric -> model name.
    ``per_class_ap``: ``class_name``, the AP50-95 of each model, and ``delta_<model>`` = that model's
    AP minus the first model's, for every other model (null where a class is missing from a run)."""

    dataset: str
    split: str
    runs: tuple[EvaluationRun, ...]
    leaderboard: pa.Table
    best: dict[str, str]
    per_class_ap: pa.Table

    def to_pandas(self) -> pd.DataFrame:
        """The leaderboard as a DataFrame."""
        return self.leaderboard.to_pandas()

    def __repr__(self) -> str:
        order = ", ".join(self.leaderboard.column("model").to_pylist())
        return f"Comparison({self.dataset}/{self.split}: {order})"

    def _repr_html_(self) -> str:
        from html import escape

        columns = self.leaderboard.column_names
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = ""
        for row in self.leaderboard.to_pylist():
            cells = []
            for c in columns:
                text = escape(format_value(row[c]))
                cells.append(f"<td><b>{text}</b></td>" if self.best.get(c) == row["model"] else f"<td>{text}</td>")
            body += "<tr>" + "".join(cells) + "</tr>"
        return (f"<b>{escape(self.dataset)} / {escape(self.split)}</b>: {len(self.runs)} models (best in bold)"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"<p>Per-class AP50-95 (deltas against {escape(self.runs[0].model)})</p>"
                f"{html_table(self.per_class_ap)}")


def compare(
    ws: WorkspaceContext,
    models: Sequence[Any],
    dataset: Any,
    *,
    split: str = "test",
    refresh: bool = False,
    progress: ProgressOption = True,
    infer: Callable[..., JobHandle] | None = None,
    **evaluate_options: Any,
) -> Comparison:
    """Evaluate each of ``models`` (records or names) on ``split`` of ``dataset`` and compare them.
    An EvaluationRun among them is compared as it is (e.g. a baseline scored with its own ``class_map``).

    Each model runs at its own input size unless ``imgsz`` is given. A model's latest stored run
    on the same dataset, split, ``iou_type`` and input size (and ``conf``/``class_map`` when
    given) is reused unless ``refresh=True``; otherwise ``evaluate`` runs with
    ``evaluate_options`` (``iou_type``, ``conf``, ``imgsz``, ``class_map``, ``batch_size``,
    ``timeout_s``; ``infer`` runs batch inference where predictions are missing, see ``evaluate``).
    ``progress``: a bar over the models (False for none, or a callable).
    """
    check_progress(progress)
    if "key" in evaluate_options:
        raise ValidationError("comparison.key", "compare makes one run per model and names each itself; "
                              "drop key=, or evaluate the models one by one with their own keys.")
    records = [m if isinstance(m, EvaluationRun) else ws.models.get(m) for m in models]
    names = [r.model if isinstance(r, EvaluationRun) else r.name for r in records]
    if not records or len(set(names)) != len(names):
        raise ValidationError("comparison.models", f"give one or more distinct models, got {names}.")
    ds = ws.datasets.get(dataset)
    runs = []
    with Progress(progress, total=len(records), desc=f"compare on {ds.name}/{split}", unit="model") as bar:
        for done, (record, name) in enumerate(zip(records, names)):
            bar.note(name)
            if isinstance(record, EvaluationRun):
                run = record
            else:
                run = None if refresh else _stored_run(ws, record, ds, split, evaluate_options)
                run = run or evaluate(ws, record, ds, split=split, progress=False, infer=infer, **evaluate_options)
            runs.append(run)
            bar.update_to(done + 1)
    return comparison_of(runs)


def comparison_of(runs: Sequence[EvaluationRun]) -> Comparison:
    """A Comparison of runs already made (one per model, on the same dataset split)."""
    if not runs:
        raise ValidationError("comparison.runs", "give at least one evaluation run.")
    where = {(r.dataset_id, r.split) for r in runs}
    if len(where) != 1:
        raise ValidationError("comparison.same_split", f"runs to compare must share one dataset split, got "
                              f"{sorted((r.dataset, r.split) for r in runs)}.")
    rows = [{"model": r.model, "imgsz": r.imgsz, **{c: r.summary.get(k) for c, k in LEADERBOARD_METRICS.items()},
             "key": r.key} for r in runs]
    rank = "mAP50_95" if any(row["mAP50_95"] is not None for row in rows) else "mean_iou"
    rows.sort(key=lambda row: (row[rank] is None, -(row[rank] or 0.0)))
    leaderboard = pa.Table.from_pylist(rows, schema=pa.schema(
        [("model", pa.string()), ("imgsz", pa.int32()), *[(c, pa.float64()) for c in LEADERBOARD_METRICS],
         ("key", pa.string())]))
    best = {}
    for column in LEADERBOARD_METRICS:
        scored = [row for row in rows if row[column] is not None]
        if scored:
            pick = min if column in LOWER_IS_BETTER else max
            best[column] = pick(scored, key=lambda row: row[column])["model"]
    return Comparison(runs[0].dataset, runs[0].split, tuple(runs), leaderboard, best, _per_class_ap(runs))


def _per_class_ap(runs: Sequence[EvaluationRun]) -> pa.Table:
    value = "ap" if "ap" in runs[0].per_class.column_names else "mean_iou"
    by_model = [{row["class_name"]: row.get(value) for row in r.per_class.to_pylist()} for r in runs]
    classes = list(dict.fromkeys(name for ap in by_model for name in ap))
    columns: dict[str, list] = {"class_name": classes}
    for r, ap in zip(runs, by_model):
        columns[r.model] = [ap.get(c) for c in classes]
    base = by_model[0]
    for r, ap in zip(runs[1:], by_model[1:]):
        columns[f"delta_{r.model}"] = [None if ap.get(c) is None or base.get(c) is None else ap[c] - base[c]
                                       for c in classes]
    return pa.table({k: pa.array(v, pa.string() if k == "class_name" else pa.float64()) for k, v in columns.items()})


def _stored_run(ws: WorkspaceContext, record: Any, ds: Any, split: str, options: dict) -> EvaluationRun | None:
    """The model's latest run on this dataset split made with the same iou_type and input size (the
    model's own unless ``imgsz`` is given), and the same conf/class_map when given."""
    from mleval.models.settings import imgsz_for

    iou_type = "segm" if record.framework == "SAM2" else options.get("iou_type", "bbox")
    imgsz = imgsz_for(record, options.get("imgsz"))
    for row in list_runs(ws, record, ds).to_pylist():  # newest first
        if row["split"] != split or row["iou_type"] != iou_type:
            continue
        run = load_run(ws, row["key"])
        if (run.imgsz or run.config.get("imgsz")) != imgsz:
            continue
        if all(run.config.get(o) == options[o] for o in _REUSED_OPTIONS if o in options):
            return run
    return None
