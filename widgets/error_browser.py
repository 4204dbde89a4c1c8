"""``ErrorBrowser(ws, run)``: an evaluation run's objects, one thumbnail each, cropped around the object.

Each tile shows the detection (in the model's colour) and the ground truth it matched, came
closest to or is (green), with its kind, class, score and IoU; filters pick the kind, the class
and a minimum score. A tile's button hands the image to ``on_select`` callbacks, so
``browser.on_select(annotator.show)`` opens it in the Annotator to fix the label.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mleval.evaluation.diagnostics import OBJECT_KINDS
from ._render import GROUND_TRUTH_COLOUR, MODEL_COLOURS, draw_boxes, fit, png_bytes, upright_image

if TYPE_CHECKING:
    from mleval.core.records import ImageRecord
    from mleval.evaluation.run_store import EvaluationRun
    from mleval.workspace import Workspace

ALL = "(all)"
KIND_NAMES = {"tp": "true positives", "fp": "false positives", "fn": "false negatives (missed)",
              "cls": "wrong class", "loc": "loose box", "dupe": "duplicates", "bkg": "on background"}


class ErrorBrowser(w.VBox):
    """Objects of ``run`` (``run.objects(kind)``), ``page_size`` thumbnails a page, most confident first."""

    def __init__(self, ws: Workspace, run: EvaluationRun, *, kind: str = "fp", page_size: int = 12,
                 thumbnail_px: int = 160, columns: int = 4, context: float = 0.5):
        self._ws, self.run = ws, run
        self.page_size, self.thumbnail_px, self.context = int(page_size), int(thumbnail_px), float(context)
        self.page = 0
        self.rows: list[dict] = []  # every row of the current filters
        self._callbacks: list[Callable[[ImageRecord], Any]] = []
        self._pictures: dict[str, Any] = {}
        classes = [ALL] + sorted({c["class_name"] for c in run.per_class.to_pylist()})
        self.kind = w.Dropdown(options=[(f"{k}: {KIND_NAMES[k]}", k) for k in OBJECT_KINDS], value=kind,
                               description="Kind")
        self.class_name = w.Dropdown(options=classes, value=ALL, description="Class")
        self.min_score = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="Min score",
                                       continuous_update=False)
        self.previous_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.summary = w.HTML()
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({int(columns)}, {thumbnail_px + 10}px)"))
        self.previous_button.on_click(lambda _: self.show_page(self.page - 1))
        self.next_button.on_click(lambda _: self.show_page(self.page + 1))
        for control in (self.kind, self.class_name, self.min_score):
            control.observe(lambda _: self.refresh(), names="value")
        super().__init__([w.HBox([self.kind, self.class_name, self.min_score]),
                          w.HBox([self.previous_button, self.summary, self.next_button]), self.grid])
        self.refresh()

    def on_select(self, callback: Callable[[ImageRecord], Any]) -> Callable[[ImageRecord], Any]:
        """Call ``callback(image_record)`` when a tile's button is clicked (e.g. ``annotator.show``)."""
        self._callbacks.append(callback)
        return callback

    def select(self, image_id: str) -> None:
        record = self._ws.images.get(image_id)
        for callback in self._callbacks:
            callback(record)

    def refresh(self) -> None:
        """Read the run's rows for the current filters and show their first page."""
        self.rows = self.run.objects(self.kind.value, class_name=None if self.class_name.value == ALL else
                                     self.class_name.value,
                                     min_score=self.min_score.value or None).to_pylist()
        self.show_page(0)

    def show_page(self, page: int) -> None:
        pages = max(1, -(-len(self.rows) // self.page_size))
        self.page = min(max(0, int(page)), pages - 1)
        shown = self.rows[self.page * self.page_size:(self.page + 1) * self.page_size]
        self.grid.children = [self._tile(row) for row in shown]
        self.summary.value = (f"{len(self.rows)} {escape(KIND_NAMES[self.kind.value])} of "
                              f"<b>{escape(self.run.model)}</b> on {escape(str(self.run.dataset))}/"
                              f"{escape(str(self.run.split))}; page {self.page + 1} of {pages}")
        self.previous_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1

    def _ground_truth_box(self, row: dict) -> list[float] | None:
        if row["kind"] == "fn":
            return row["box"]
        if row["annotation_id"] is None:
            return None
        annotation = self._ws.annotations.get(row["annotation_id"])
        return list(annotation.boxes_xyxy[row["object_index"]])

    def _tile(self, row: dict) -> w.VBox:
        if row["image_id"] not in self._pictures:
            self._pictures[row["image_id"]] = upright_image(self._ws, row["image_id"])
        picture = self._pictures[row["image_id"]]
        truth = self._ground_truth_box(row)
        boxes = [(truth, row["confused_class"] or (row["class_name"] if row["kind"] == "fn" else ""),
                  GROUND_TRUTH_COLOUR)] if truth is not None else []
        if row["kind"] != "fn":
            boxes.append((row["box"], "", MODEL_COLOURS[0]))
        x1, y1, x2, y2 = _union([b for b, _, _ in boxes])
        pad = self.context * max(x2 - x1, y2 - y1, 8)
        crop = (max(0, int(x1 - pad)), max(0, int(y1 - pad)),
                min(picture.width, int(x2 + pad) + 1), min(picture.height, int(y2 + pad) + 1))
        region = picture.crop(crop)
        moved = [([b[0] - crop[0], b[1] - crop[1], b[2] - crop[0], b[3] - crop[1]], t, c) for b, t, c in boxes]
        thumbnail, scale = fit(region, self.thumbnail_px)
        thumbnail = draw_boxes(thumbnail, moved, scale=scale, width_px=2, halo=True)
        score = "" if row["score"] is None else f" {row['score']:.2f}"
        iou = "" if row["best_iou"] is None else f", IoU {row['best_iou']:.2f}"
        caption = w.HTML(f"<small><b>{escape(row['kind'])}</b> {escape(row['class_name'])}{score}{iou}"
                         + (f" (on {escape(row['confused_class'])})" if row["confused_class"] else "") + "</small>")
        button = w.Button(description="Annotate", icon="pencil",
                          tooltip=f"open image {row['image_id']} in the annotator",
                          layout=w.Layout(width=f"{self.thumbnail_px}px"))
        button.on_click(lambda _, image_id=row["image_id"]: self.select(image_id))
        return w.VBox([w.Image(value=png_bytes(thumbnail), format="png"), caption, button])


def _union(boxes: list[list[float]]) -> tuple[float, float, float, float]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
