"""``Annotator(ws, images, classes=, user_tag=)``: draw boxes, save them, review model proposals.

The boxes of a ``BBoxWidget`` are in the original image's pixels (the widget scales its
drawing by the displayed size over ``naturalWidth``), as ``{"x", "y", "width", "height",
"label"}``; saving turns them into ``boxes_xyxy`` of one user annotation per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w
from jupyter_bbox_widget import BBoxWidget

from mleval.core.enums import CreationMethod, ReviewState
from mleval.core.errors import ConflictError, MlevalError
from ._render import (
    PROPOSAL_COLOUR,
    Palette,
    boxes_png,
    overlay_mask,
    png_bytes,
    upright_image,
)

if TYPE_CHECKING:
    from mleval.assist import Proposal
    from mleval.core.records import AnnotationRecord, ImageRecord
    from mleval.workspace import Workspace

PREVIEW_MIN_PX = 320
PENDING = (ReviewState.GENERATED.value, ReviewState.REVIEWED.value)


def bbox_to_xyxy(bbox: dict[str, Any], *, width: int, height: int) -> list[float]:
    """A BBoxWidget box (x, y, width, height in image pixels) as [x1, y1, x2, y2], clipped to the image."""
    x1, y1 = float(bbox["x"]), float(bbox["y"])
    x2, y2 = x1 + float(bbox["width"]), y1 + float(bbox["height"])
    # dragging may leave a box partly outside the picture, and negative sizes flip corners
    x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
    y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
    return [x1, y1, x2, y2]


def xyxy_to_bbox(box_xyxy: Sequence[float], label: str) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    return {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "label": label}


class Annotator(w.VBox):
    """Annotate ``images`` (records or ids) one at a time.

    Each image has at most one user annotation edited here (the latest user annotation on it,
    whoever made it): Save adds it, or updates it at the revision that was loaded, so a save
    over someone else's newer edit is refused and shown (``conflict`` keeps the error; their
    edit stays stored and Reload shows it). In the drawing, Enter saves and moves on, Space
    skips to the next image, Tab selects boxes, digits pick the class.

    ``detector`` (a model name or record) proposes boxes (``ws.prelabel``); ``assist_model``
    (SAM 2) proposes a mask from the selected box (``ws.assist``). Proposals are drawn in the
    preview and accepted or rejected with the buttons (``ws.annotations.review``).
    """

    def __init__(self, ws: Workspace, images: Sequence[ImageRecord | str], *, classes: Sequence[str],
                 user_tag: str, detector: Any = "yolo11n", assist_model: Any = "sam2.1_t", conf: float = 0.25):
        self._ws = ws
        self.images: list[ImageRecord] = [ws.images.get(i) for i in images]
        self.classes = [str(c) for c in classes]
        self.user_tag = str(user_tag)
        self.detector = detector
        self.assist_model = assist_model
        self.conf = float(conf)
        self.index = 0
        self.annotation: AnnotationRecord | None = None  # the stored user annotation the drawing edits
        self.conflict: ConflictError | None = None
        self.proposals: dict[str, AnnotationRecord] = {}  # pending model annotations on this image, by id
        self._masks: dict[str, Any] = {}  # annotation id -> (H, W) bool mask of proposals made here
        self._palette = Palette()

        self.bbox = BBoxWidget(classes=self.classes, label=self.classes[0] if self.classes else "")
        self.bbox.on_submit(self._save_and_next)
        self.bbox.on_skip(self.next)
        self.title = w.HTML()
        self.message = w.HTML()
        self.previous_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.save_button = w.Button(description="Save", button_style="success", icon="save")
        self.reload_button = w.Button(description="Reload", icon="refresh", tooltip="load the stored annotation")
        self.propose_button = w.Button(description="Propose with model", icon="magic")
        self.assist_button = w.Button(description="SAM 2 from box", icon="crosshairs",
                                      tooltip="segment the selected box with SAM 2")
        self.proposal_list = w.Select(options=[], rows=4, description="Proposals",
                                      layout=w.Layout(width="420px"))
        self.accept_button = w.Button(description="Accept", button_style="success", icon="check")
        self.reject_button = w.Button(description="Reject", button_style="danger", icon="times")
        self.use_button = w.Button(description="Copy to drawing", icon="copy",
                                   tooltip="add the selected proposal's boxes to the drawing, to edit and save")
        self.preview = w.Image(format="png", layout=w.Layout(max_width="480px"))
        self.previous_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())
        self.save_button.on_click(lambda _: self.save())
        self.reload_button.on_click(lambda _: self.reload())
        self.propose_button.on_click(lambda _: self.propose())
        self.assist_button.on_click(lambda _: self.assist())
        self.accept_button.on_click(lambda _: self.review("accept"))
        self.reject_button.on_click(lambda _: self.review("reject"))
        self.use_button.on_click(lambda _: self.copy_proposal())
        super().__init__([
            self.title,
            w.HBox([self.previous_button, self.next_button, self.save_button, self.reload_button]),
            self.bbox,
            self.message,
            w.HBox([self.propose_button, self.assist_button]),
            w.HBox([self.proposal_list, w.VBox([self.accept_button, self.reject_button, self.use_button])]),
            self.preview,
        ])
        if self.images:
            self.go(0)
        else:
            self._say("No images to annotate.", error=True)

    @property
    def image(self) -> ImageRecord:
        return self.images[self.index]

    # -- navigation -------------------------------------------------------------------------
    def go(self, index: int) -> None:
        """Show image ``index`` with its stored user annotation and pending proposals."""
        if not self.images:
            return
        self.index = max(0, min(int(index), len(self.images) - 1))
        self._picture = upright_image(self._ws, self.image)
        self.bbox.bboxes = []
        self.bbox.image_bytes = png_bytes(self._picture)
        self.title.value = (f"<b>{escape(self.image.filename)}</b> ({self.index + 1} / {len(self.images)}, "
                            f"{self.image.width}x{self.image.height} px, {escape(self.image.dataset_split)})")
        self.previous_button.disabled = self.index == 0
        self.next_button.disabled = self.index == len(self.images) - 1
        self._masks.clear()
        self.reload()

    def show(self, image: ImageRecord | str) -> None:
        """Show ``image``, adding it to the list when it is not there (``gallery.on_select(annotator.show)``)."""
        record = self._ws.images.get(image)
        ids = [i.id for i in self.images]
        if record.id not in ids:
            self.images.append(record)
            ids.append(record.id)
        self.go(ids.index(record.id))

    def next(self) -> None:
        self.go(self.index + 1)

    def previous(self) -> None:
        self.go(self.index - 1)

    def reload(self) -> None:
        """Load the stored user annotation into the drawing (dropping unsaved boxes) and the proposals."""
        stored = self._ws.annotations.list(image=self.image, creation_method=CreationMethod.USER)
        self.annotation = stored[-1] if stored else None
        self.conflict = None
        self.bbox.bboxes = [] if self.annotation is None else [
            xyxy_to_bbox(box, label) for box, label in zip(self.annotation.boxes_xyxy, self.annotation.class_labels)]
        self._load_proposals()
        state = ("no annotation yet" if self.annotation is None else
                 f"annotation revision {self.annotation.revision} by "
                 f"{escape(self.annotation.updated_by or self.annotation.user_tag or 'unknown')}")
        self._say(state)

    # -- saving -----------------------------------------------------------------------------
    def boxes_xyxy(self) -> tuple[list[str], list[list[float]]]:
        """The drawing's labels and boxes (image pixels, xyxy)."""
        labels = [str(b.get("label") or "") for b in self.bbox.bboxes]
        boxes = [bbox_to_xyxy(b, width=self.image.width, height=self.image.height) for b in self.bbox.bboxes]
        return labels, boxes

    def save(self) -> AnnotationRecord | None:
        """Store the drawing as this image's user annotation; returns it, or None when refused."""
        labels, boxes = self.boxes_xyxy()
        unlabelled = [i + 1 for i, label in enumerate(labels) if not label]
        if unlabelled:
            self._say(f"Box {unlabelled} has no class: select it and pick a class, then save.", error=True)
            return None
        try:
            if self.annotation is None:
                record = self._ws.annotations.add(self.image, labels=labels, boxes_xyxy=boxes, user_tag=self.user_tag)
            else:
                record = self._ws.annotations.update(self.annotation.id, revision=self.annotation.revision,
                                                     labels=labels, boxes_xyxy=boxes, user_tag=self.user_tag)
        except ConflictError as error:
            self.conflict = error
            self._say(f"Not saved: {escape(error.changed_by or 'someone else')} saved this annotation first "
                      f"(revision {error.current.get('revision')}); their edit is kept. Your boxes are still in the "
                      f"drawing: press Reload to see theirs, then redo your change and save. ({escape(str(error))})",
                      error=True)
            return None
        except MlevalError as error:
            self._say(f"Not saved: {escape(str(error))}", error=True)
            return None
        self.annotation, self.conflict = record, None
        self._say(f"Saved {len(labels)} boxes (revision {record.revision}).")
        return record

    def _save_and_next(self) -> None:
        if self.save() is not None and self.index < len(self.images) - 1:
            self.next()

    # -- proposals --------------------------------------------------------------------------
    def propose(self) -> str | None:
        """The detector's boxes on this image, stored as a proposal; returns its annotation id."""
        try:
            result = self._ws.prelabel([self.image], self.detector, conf=self.conf)[0]
        except MlevalError as error:
            self._say(f"Proposal failed: {escape(str(error))}", error=True)
            return None
        self._load_proposals(select=result.annotation_id)
        if result.annotation_id is None:
            self._say(f"{escape(result.model)} found nothing on this image at conf {self.conf}.")
        else:
            self._say(f"{escape(result.model)} proposed {len(result.detections)} boxes: accept or reject them.")
        return result.annotation_id

    def assist(self) -> Proposal | None:
        """SAM 2 segments the selected box; the mask is stored as a proposal and drawn in the preview."""
        selected = self.bbox.selected_index
        if not 0 <= selected < len(self.bbox.bboxes):
            self._say("Select a box first (click it, or Tab), then ask SAM 2.", error=True)
            return None
        bbox = self.bbox.bboxes[selected]
        box = bbox_to_xyxy(bbox, width=self.image.width, height=self.image.height)
        try:
            proposal = self._ws.assist(self.image, model=self.assist_model, box=box,
                                       label=bbox.get("label") or "object", user_tag=self.user_tag)
        except MlevalError as error:
            self._say(f"SAM 2 failed: {escape(str(error))}", error=True)
            return None
        self._masks[proposal.annotation_id] = proposal.mask
        self._load_proposals(select=proposal.annotation_id)
        self._say(f"SAM 2 mask proposed (score {proposal.score:.2f}): accept or reject it.")
        return proposal

    def review(self, action: str) -> AnnotationRecord | None:
        """``accept`` or ``reject`` the proposal selected in the list."""
        annotation_id = self.proposal_list.value
        if annotation_id is None:
            self._say("Select a proposal first.", error=True)
            return None
        try:
            record = self._ws.annotations.review(annotation_id, action, user_tag=self.user_tag)
        except MlevalError as error:
            self._say(f"Could not {action}: {escape(str(error))}", error=True)
            return None
        self._masks.pop(annotation_id, None)
        self._load_proposals()
        self._say(f"Proposal {action}ed: now {record.review_state}.")
        return record

    def copy_proposal(self) -> None:
        """Add the selected proposal's boxes to the drawing (not saved until Save)."""
        proposal = self.proposals.get(self.proposal_list.value)
        if proposal is None:
            self._say("Select a proposal first.", error=True)
            return
        self.bbox.bboxes = [*self.bbox.bboxes, *(xyxy_to_bbox(box, label) for box, label
                                                 in zip(proposal.boxes_xyxy, proposal.class_labels))]
        self._say(f"Copied {len(proposal.class_labels)} boxes into the drawing: edit them, then Save.")

    def _load_proposals(self, *, select: str | None = None) -> None:
        pending = [a for a in self._ws.annotations.list(image=self.image, creation_method=CreationMethod.MODEL)
                   if a.review_state in PENDING]
        self.proposals = {a.id: a for a in pending}
        names = {}
        for a in pending:
            if a.model_id not in names:
                names[a.model_id] = self._ws.models.get(a.model_id).name
        self.proposal_list.options = [(_proposal_text(a, names[a.model_id]), a.id) for a in pending]
        self.proposal_list.value = select if select in self.proposals else (pending[-1].id if pending else None)
        self._draw_preview(names)

    def _draw_preview(self, names: dict[str, str]) -> None:
        picture = self._picture
        boxes = []
        for annotation in self.proposals.values():
            if annotation.id in self._masks:
                picture = overlay_mask(picture, self._masks[annotation.id], colour=PROPOSAL_COLOUR)
                colour = PROPOSAL_COLOUR
            else:
                colour = self._palette.colour(names[annotation.model_id])
            boxes += [(box, label, colour) for box, label in zip(annotation.boxes_xyxy, annotation.class_labels)]
        self.preview.value = boxes_png(picture, boxes, min_side_px=PREVIEW_MIN_PX)
        self.preview.layout.display = None if boxes else "none"

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.value = f"<span style='color:#d62728'>{text}</span>" if error else text


def _proposal_text(annotation: AnnotationRecord, model_name: str) -> str:
    classes = ", ".join(sorted(set(annotation.class_labels)))
    return f"{model_name}: {len(annotation.class_labels)} x {classes} ({annotation.review_state})"
