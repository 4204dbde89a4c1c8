"""``ComparisonView(comparison)``: the leaderboard of a ``ws.compare`` with its plots."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from mleval.core.errors import MlevalError
from mleval.evaluation import plots
from ._render import figure_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mleval.evaluation.compare import Comparison


class ComparisonView(w.VBox):
    """The comparison's leaderboard (best in bold) and per-class AP, then tabs with the
    leaderboard bars, PR curves, per-class AP and each run's confusion matrix, drawn by
    ``mleval.evaluation.plots``."""

    def __init__(self, comparison: Comparison):
        self.comparison = comparison
        self.table = w.HTML(comparison._repr_html_())
        self.figures: dict[str, Figure] = {}
        self.message = w.HTML()
        failures = []
        makers = [("Leaderboard", plots.leaderboard, comparison), ("PR curves", plots.pr_curves, comparison),
                  ("Per-class AP", plots.per_class_ap, comparison)]
        makers += [(f"Confusion: {run.model}", plots.confusion_matrix, run) for run in comparison.runs
                   if run.confusion_matrix is not None]  # SAM 2 runs have none
        for title, make, subject in makers:
            try:
                self.figures[title] = make(subject)
            except MlevalError as error:  # a figure the run cannot give must not hide the others
                failures.append(f"{title}: {error}")
        self.tabs = w.Tab(children=[w.Image(value=figure_png(f), format="png") for f in self.figures.values()],
                          titles=list(self.figures))
        if failures:
            self.message.value = "<br>".join(f"<span style='color:#d62728'>{escape(f)}</span>" for f in failures)
        super().__init__([self.table, self.tabs, self.message])
