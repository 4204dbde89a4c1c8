"""Exporting a workspace dataset as COCO / YOLO / Pascal VOC (see the package docstring)."""

from __future__ import annotations

import functools
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mleval.catalog.repositories import AnnotationRepository, ImageRepository
from mleval.core.detections import Detections
from mleval.core.errors import ValidationError
from mleval.core.progress import Progress, ProgressOption, check_progress
from mleval.formats import (
    FORMATS,
    ItemError,
    LabelledDataset,
    LabelledImage,
    write,
    write_coco_results,
)
from mleval.formats._files import IMAGE_SUFFIXES
from mleval.formats.records import normalize_split, objects_of

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

__all__ = ["ExportReport", "export_dataset"]

_COCO_SPLIT_FILE = {"train": "instances_train.json", "validation": "instances_val.json",
                    "test": "instances_test.json", None: "instances.json"}  # as write_coco names them


@dataclass
class ExportReport:
    """What ``export_dataset`` wrote: the dataset at ``path``, and ``prediction_files`` (COCO results
    lists, paths inside the zip for a .zip export) when predictions were asked for. ``issues`` lists
    what the format could not hold as given."""

    path: Path
    format: str
    images: int
    objects: int
    categories: list[str]
    predictions: int = 0
    prediction_files: list[Path] = field(default_factory=list)
    issues: list[ItemError] = field(default_factory=list)

    def __repr__(self) -> str:
        head = (
            f"ExportReport({str(self.path)!r}, {self.format}: {self.images} images, {self.objects} objects, "
            f"{len(self.categories)} classes, {self.predictions} predictions, {len(self.issues)} issues)"
        )
        return "\n".join([head, *(f"  {issue}" for issue in self.issues[:10])])


# -- import -----------------------------------------------------------------------------------


def export_dataset(
    ws: WorkspaceContext,
    *,
    dataset: Any,
    format: str,
    path: str | Path,
    include_predictions: bool = False,
    model: Any = None,
    split: str | None = None,
    progress: ProgressOption = True,
    **options: Any,
) -> ExportReport:
    """Write dataset ``dataset``'s images (one ``split`` or all) and their ground truth as ``format``
    to a new folder or a ``.zip`` (COCO also: one ``.json``). ``options`` go to the writer
    (``link_images=True`` hard-links the blobs instead of copying; do not edit such files in place).

    With ``include_predictions`` (COCO only), ``model``'s predictions on these images (its latest
    annotation per image, any review state) are written as COCO results lists that
    ``pycocotools.coco.COCO(instances).loadRes(results)`` accepts: ``predictions/instances_<split>.json``
    in the export, one per ``annotations/instances_<split>.json``, or ``<name>_predictions.json``
    beside a single-file ``.json`` export. ``progress``: a bar over the images written (False for
    none, or a callable ``progress(done, total)``).
    """
    check_progress(progress)
    fmt = format.strip().lower() if isinstance(format, str) else format
    if fmt not in FORMATS:
        raise ValidationError("formats.format_name", f"unknown format {format!r}; use one of: {', '.join(FORMATS)}.")
    if include_predictions and (fmt != "coco" or model is None):
        raise ValidationError(
            "export.predictions",
            "predictions are exported as COCO results files: pass format='coco' and model=<name or record> "
            f"(got format={format!r}, model={model!r}).",
        )
    record = ws.datasets.get(dataset)
    model_id = ws.models.get(model).id if include_predictions else None
    split = normalize_split(split)
    images = _catalog_images(ws, record.id, split)
    _attach_objects(ws, images, record.id, split)
    labelled = LabelledDataset(categories=_workspace_categories(ws), images=list(images.values()))
    with Progress(progress, total=len(images), desc=f"export {record.name} as {fmt}", unit="img") as bar:
        summary = write(labelled, path, format=fmt, on_image=bar.update_to, **options)
    report = ExportReport(path=summary.path, format=fmt, images=summary.images, objects=summary.objects,
                          categories=list(labelled.categories), issues=list(summary.issues))
    if include_predictions:
        _write_predictions(ws, labelled, images, record.id, split, model_id, Path(path), report)
    return report


def _catalog_images(ws: WorkspaceContext, dataset_id: str, split: str | None) -> dict[str, LabelledImage]:
    """The dataset's images (upload order) as LabelledImages without objects, by image id, with
    file names made unique per split (two uploads may share a name)."""
    rows = ImageRepository(ws.catalog).of_dataset(dataset_id, split)
    images: dict[str, LabelledImage] = {}
    taken: set[tuple[str, str]] = set()
    for row in rows:
        image_id, key = str(row["id"]), row["file_path"]
        name = _file_name(row["filename"], row["format"], image_id, row["dataset_split"], taken)
        local = ws.blobs.local_path(key)
        images[image_id] = LabelledImage(
            file_name=name,
            width=row["width"],
            height=row["height"],
            split=row["dataset_split"],
            source_path=Path(local) if local else None,
            open_bytes=functools.partial(ws.blobs.read_bytes, key),
        )
    return images


def _file_name(filename: str, image_format: str, image_id: str, split: str, taken: set[tuple[str, str]]) -> str:
    """The upload's name with an image suffix (YOLO finds images by it), made unique within its
    split by stem, since YOLO labels and VOC ids drop the suffix."""
    name = filename.replace("\\", "/").lstrip("/")
    stem, dot, suffix = name.rpartition(".")
    if not dot or f".{suffix.lower()}" not in IMAGE_SUFFIXES:
        stem, suffix = name, {"JPEG": "jpg", "TIFF": "tif"}.get(image_format, image_format.lower())
    if (split, stem.lower()) in taken:
        stem = f"{stem}-{image_id[:8]}"
    taken.add((split, stem.lower()))
    return f"{stem}.{suffix}"


def _attach_objects(
    ws: WorkspaceContext,
    images: dict[str, LabelledImage],
    dataset_id: str,
    split: str | None,
    *,
    model_id: str | None = None,
    latest_only: bool = False,
) -> None:
    """Append the objects of the dataset's ground truth (or with ``model_id``, that model's
    predictions; ``latest_only``: the newest per image) to their images, oldest first."""
    table = AnnotationRepository(ws.catalog).objects_of_dataset(dataset_id, split=split, model_id=model_id,
                                                                latest_only=latest_only)
    for row in table.to_pylist():
        attributes = (json.loads(row["metadata"]) if row["metadata"] else {}).get("attributes")
        images[str(row["image_id"])].objects.extend(objects_of(Detections.from_annotation(row), attributes))


def _workspace_categories(ws: WorkspaceContext) -> list[str]:
    """Every ground-truth label of the workspace, in first-appearance order (see module docstring)."""
    return AnnotationRepository(ws.catalog).ground_truth_labels_in_order()


def _write_predictions(
    ws: WorkspaceContext,
    labelled: LabelledDataset,
    images: dict[str, LabelledImage],
    dataset_id: str,
    split: str | None,
    model_id: str,
    target: Path,
    report: ExportReport,
) -> None:
    """One COCO results list per split (or one beside a single .json), for splits with predictions:
    pycocotools' loadRes cannot read an empty list."""
    predicted = {
        image_id: LabelledImage(image.file_name, image.width, image.height, image.split)
        for image_id, image in images.items()
    }
    _attach_objects(ws, predicted, dataset_id, split, model_id=model_id, latest_only=True)
    suffix = target.suffix.lower()
    groups: dict[str | None, list[LabelledImage]] = {}
    for image in predicted.values():
        if image.objects:
            groups.setdefault(None if suffix == ".json" else image.split, []).append(image)
    with tempfile.TemporaryDirectory() as tmp:
        for group, members in groups.items():
            name = _COCO_SPLIT_FILE[group]
            destination = {".json": target.with_name(f"{target.stem}_predictions.json"),
                           ".zip": Path(tmp) / name}.get(suffix, target / "predictions" / name)
            summary = write_coco_results(LabelledDataset(labelled.categories, members), destination,
                                         reference=labelled)
            report.predictions += summary.objects
            report.issues.extend(summary.issues)
            if suffix == ".zip":
                with zipfile.ZipFile(target, "a") as archive:
                    archive.write(destination, f"predictions/{name}")
                destination = target / "predictions" / name
            report.prediction_files.append(destination)
