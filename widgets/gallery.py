"""``Gallery(ws)``: a page of thumbnails with ground truth and predictions drawn over them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mleval.core.enums import DatasetSplit, ReviewState
from ._render import Palette, draw_boxes, fit, png_bytes, upright_image

if TYPE_CHECKING:
    from mleval.core.records import AnnotationRecord, ImageRecord
    from mleval.workspace import Workspace

ALL = "(all)"


class Gallery(w.VBox):
    """Thumbnails of ``ws.images.list(split=, dataset=)``, ``page_size`` per page.

    Ground truth (user annotations and accepted proposals) is drawn in one colour and each
    model's pending predictions in its own; the legend names them. ``on_select(callback)``
    registers ``callback(image_record)``, called when a thumbnail's button is clicked (e.g.
    ``gallery.on_select(annotator.show)``).
    """

    def __init__(self, ws: Workspace, *, split: str | None = None, dataset: str | None = None, page_size: int = 12,
                 thumbnail_px: int = 160, columns: int = 4):
        self._ws = ws
        self.page_size = int(page_size)
        self.thumbnail_px = int(thumbnail_px)
        self.page = 0
        self.images: list[ImageRecord] = []  # those on the current page
        self.has_next = False
        self._callbacks: list[Callable[[ImageRecord], Any]] = []
        self._palette = Palette()
        self._model_names: dict[str, str] = {}
        self.split = w.Dropdown(options=[ALL] + [s.value for s in DatasetSplit], value=split or ALL,
                                description="Split")
        if dataset is not None:
            dataset = ws.datasets.get(dataset).name  # an unknown name fails here, with the names there are
        self.dataset = w.Dropdown(options=self._dataset_options(), value=dataset or ALL, description="Dataset")
        self.show_ground_truth = w.Checkbox(value=True, description="ground truth", indent=False)
        self.show_predictions = w.Checkbox(value=True, description="predictions", indent=False)
        self.previous_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.page_label = w.Label()
        self.legend = w.HTML()
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({int(columns)}, {thumbnail_px + 10}px)"))
        self.previous_button.on_click(lambda _: self.show_page(self.page - 1))
        self.next_button.on_click(lambda _: self.show_page(self.page + 1))
        for control in (self.split, self.dataset, self.show_ground_truth, self.show_predictions):
            control.observe(lambda _: self.refresh(first_page=True), names="value")
        super().__init__([
            w.HBox([self.split, self.dataset, self.show_ground_truth, self.show_predictions]),
            w.HBox([self.previous_button, self.page_label, self.next_button]),
            self.legend, self.grid,
        ])
        self.refresh()

    def on_select(self, callback: Callable[[ImageRecord], Any]) -> Callable[[ImageRecord], Any]:
        self._callbacks.append(callback)
        return callback

    def select(self, image: ImageRecord) -> None:
        for callback in self._callbacks:
            callback(image)

    def _dataset_options(self) -> list[str]:
        return [ALL] + [d.name for d in self._ws.datasets.list()]

    def refresh(self, *, first_page: bool = False) -> None:
        """Reload the current page (the first with ``first_page``) from the workspace."""
        options = self._dataset_options()
        if list(self.dataset.options) != options:
            current = self.dataset.value
            self.dataset.options = options
            self.dataset.value = current if current in options else ALL
        self.show_page(0 if first_page else self.page)

    def show_page(self, page: int) -> None:
        page = max(0, int(page))
        split = None if self.split.value == ALL else self.split.value
        dataset = None if self.dataset.value == ALL else self.dataset.value
        # one more than a page tells whether a next page exists without counting
        records = self._ws.images.list(split=split, dataset=dataset, limit=self.page_size + 1,
                                       offset=page * self.page_size)
        if not records and page > 0:
            return self.show_page(page - 1)
        self.page = page
        self.has_next = len(records) > self.page_size
        self.images = list(records[:self.page_size])
        sources: list[str] = []
        self.grid.children = [self._tile(image, sources) for image in self.images]
        self.page_label.value = (f"page {page + 1}: images {page * self.page_size + 1}-"
                                 f"{page * self.page_size + len(self.images)}" if self.images else "no images")
        self.previous_button.disabled = page == 0
        self.next_button.disabled = not self.has_next
        self.legend.value = self._palette.legend_html(sources) if sources else ""

    def _overlays(self, image: ImageRecord) -> list[AnnotationRecord]:
        shown = []
        if self.show_ground_truth.value:
            shown += self._ws.annotations.list(image=image, ground_truth=True)
        if self.show_predictions.value:
            shown += [a for a in self._ws.annotations.list(image=image, creation_method="model", ground_truth=False)
                      if a.review_state != ReviewState.REJECTED]
        return shown

    def _source(self, annotation: AnnotationRecord) -> str:
        if annotation.creation_method == "user" or annotation.review_state == ReviewState.ACCEPTED:
            return "ground truth"
        if annotation.model_id not in self._model_names:
            self._model_names[annotation.model_id] = self._ws.models.get(annotation.model_id).name
        return self._model_names[annotation.model_id]

    def _tile(self, image: ImageRecord, sources: list[str]) -> w.VBox:
        picture = upright_image(self._ws, image)
        thumbnail, scale = fit(picture, self.thumbnail_px)
        boxes = []
        for annotation in self._overlays(image):
            source = self._source(annotation)
            sources.append(source)
            colour = self._palette.colour(source)
            boxes += [(box, label, colour) for box, label in zip(annotation.boxes_xyxy, annotation.class_labels)]
        thumbnail = draw_boxes(thumbnail, boxes, scale=scale, width_px=1)
        button = w.Button(description=image.filename, tooltip=f"open {image.filename} ({image.id})",
                          layout=w.Layout(width=f"{self.thumbnail_px}px"))
        button.on_click(lambda _, record=image: self.select(record))
        return w.VBox([w.Image(value=png_bytes(thumbnail), format="png"), button])
