"""Matplotlib figures of evaluation runs and comparisons, for notebooks and widgets.

Every function returns a new ``matplotlib.figure.Figure`` (no pyplot, so no global state and no
GUI backend): a notebook shows it when it is the cell's value, ``fig.savefig(path)`` writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mleval.core.errors import ValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mleval.evaluation.compare import Comparison
    from mleval.evaluation.run_store import EvaluationRun


def _figure(width: float = 6.4, height: float = 4.8) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def pr_curves(runs: EvaluationRun | Sequence[EvaluationRun] | Comparison, *, class_name: str | None = None) -> Figure:
    """Precision against recall at IoU 0.5, one curve per run (mean over classes, or ``class_name``'s).

    The curve is COCO's interpolated precision at 101 recall points (``EvaluationRun.pr_curve``,
    from ``CocoEvaluation.precision[0, :, k, 0, -1]``); the legend gives each run's AP50.
    """
    runs = _runs(runs)
    fig = _figure()
    ax = fig.subplots()
    which = class_name or "all"
    for run in runs:
        curve = run.pr_curve
        if curve is None:
            raise ValidationError("plots.pr_curve", f"run {run.key!r} has no PR curve (SAM 2 runs are scored by "
                                  "mask IoU); plot detector runs.")
        if which not in curve["precision"]:
            raise ValidationError("plots.class_name", f"run {run.key!r} has no class {class_name!r}; its classes: "
                                  f"{[c for c in curve['precision'] if c != 'all']}.")
        precision = np.array([np.nan if p is None else p for p in curve["precision"][which]], dtype=float)
        ap50 = np.nanmean(precision) if np.isfinite(precision).any() else float("nan")
        ax.plot(curve["recall"], precision, label=f"{run.model} (AP50 {ap50:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision-recall at IoU 0.5 ({'mean over classes' if class_name is None else class_name})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return fig


def confusion_matrix(run: EvaluationRun, *, normalize: bool = True) -> Figure:
    """Heatmap of the run's confusion matrix (rows = predicted, columns = true, last = background).

    ``normalize`` divides each column by its total (the share of each true class predicted as each row).
    """
    if run.confusion_matrix is None:
        raise ValidationError("plots.confusion_matrix", f"run {run.key!r} has no confusion matrix (SAM 2 runs "
                              "answer box prompts, so there are no class confusions).")
    labels = run.confusion_matrix.column_names[1:]
    counts = np.array([run.confusion_matrix.column(label).to_pylist() for label in labels], dtype=float).T
    values = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1) if normalize else counts
    n = len(labels)
    fig = _figure(max(4.0, 0.5 * n + 2), max(3.5, 0.45 * n + 1.5))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="true", ylabel="predicted", title=f"Confusion matrix: {run.model}")
    if n <= 20:
        for (i, j), v in np.ndenumerate(values):
            if counts[i, j]:
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=8,
                        color="white" if v > 0.6 * (values.max() or 1) else "black")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def reliability(run: EvaluationRun) -> Figure:
    """The run's reliability diagram: precision of the detections in each score bin against their
    mean score (a calibrated model lies on the diagonal), bar widths the bins, ECE in the title."""
    found = run.calibration()
    bins = [b for b in found["bins"] if b["count"]]
    fig = _figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    ax.bar([b["score_from"] for b in bins], [b["precision"] for b in bins], align="edge", alpha=0.7,
           width=[b["score_to"] - b["score_from"] for b in bins], edgecolor="black", label="precision in bin")
    ax.plot([b["mean_score"] for b in bins], [b["precision"] for b in bins], "o", color="black", label="mean score")
    ax.set(xlabel="score", ylabel=f"precision at IoU {found['iou_threshold']}", xlim=(0, 1), ylim=(0, 1.02),
           title=f"{run.model}: reliability (ECE {found['ece']:.3f}, {found['num_detections']} detections)")
    ax.legend(loc="upper left")
    return fig


def per_class_ap(runs: EvaluationRun | Sequence[EvaluationRun] | Comparison, *, column: str = "ap") -> Figure:
    """Grouped horizontal bars of a per-class column, one bar per run.

    ``column``: ``ap`` (AP50-95), ``ap50``, ``ap75``, ``ar``, ``precision``, ``recall``, ``f1``; ``mean_iou`` for SAM 2.
    """
    runs = _runs(runs)
    tables = [r.per_class.to_pylist() for r in runs]
    if any(t and column not in t[0] for t in tables):
        raise ValidationError("plots.column", f"per-class column {column!r} is missing from a run; its columns: "
                              f"{runs[0].per_class.column_names}.")
    classes = list(dict.fromkeys(row["class_name"] for t in tables for row in t))
    fig = _figure(6.4, max(3.0, 0.3 * len(classes) * max(1, len(runs) / 2) + 1.5))
    ax = fig.subplots()
    height = 0.8 / len(runs)
    for k, (run, table) in enumerate(zip(runs, tables)):
        values = {row["class_name"]: row[column] for row in table}
        y = np.arange(len(classes)) + (k - (len(runs) - 1) / 2) * height
        ax.barh(y, [values.get(c) or 0.0 for c in classes], height, label=run.model)
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set(xlabel=column, xlim=(0, 1), title=f"Per-class {column}")
    ax.legend(loc="lower right")
    return fig


def leaderboard(comparison: Comparison, *, metrics: Sequence[str] = ("mAP50_95", "mAP50", "precision", "recall",
                                                                     "F1")) -> Figure:
    """Grouped bars of leaderboard ``metrics`` (0..1 scores), one group per metric, one bar per model."""
    table = comparison.leaderboard
    unknown = [m for m in metrics if m not in table.column_names]
    if unknown:
        raise ValidationError("plots.metrics", f"unknown leaderboard metrics {unknown}; use some of "
                              f"{table.column_names[1:-1]}.")
    models = table.column("model").to_pylist()
    fig = _figure(max(6.4, 1.2 * len(metrics) + 2))
    ax = fig.subplots()
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        x = np.arange(len(metrics)) + (k - (len(models) - 1) / 2) * width
        ax.bar(x, [table.column(m)[k].as_py() or 0.0 for m in metrics], width, label=model)
    ax.set_xticks(range(len(metrics)), list(metrics))
    ax.set(ylim=(0, 1), ylabel="score", title=f"Leaderboard: {comparison.dataset} / {comparison.split}")
    ax.legend()
    return fig


def _runs(runs) -> list[EvaluationRun]:
    from mleval.evaluation.compare import Comparison

    if isinstance(runs, Comparison):
        return list(runs.runs)
    return [runs] if hasattr(runs, "per_class") else list(runs)
