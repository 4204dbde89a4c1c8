"""Importing COCO / YOLO / Pascal VOC datasets into a workspace (see the package docstring)."""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.catalog.catalog import utc_now
from mleval.catalog.repositories import AnnotationRepository, ImageRepository
from mleval.core.progress import Progress, ProgressOption, check_progress
from mleval.formats import (
    ItemError,
    LabelledDataset,
    LabelledImage,
    LabelledObject,
    read,
)
from mleval.formats.records import normalize_split
from mleval.images.ingest import CHUNK_FILES, UploadSource, upload_images

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

__all__ = ["ImportReport", "import_dataset"]

_SLACK_PX = 1e-6  # boxes this close to the image edge are clipped without a report


@dataclass
class ImportReport:
    """What ``import_dataset`` did. ``errors`` lists what was left out or changed, item by item
    (the reader's errors, failed uploads, objects the catalog cannot hold); the rest was imported."""

    dataset: str
    format: str
    images: int = 0  # new images stored
    duplicates: int = 0  # images already in the workspace (same bytes), linked to the dataset
    annotations: int = 0  # one per image with objects
    objects: int = 0
    already_imported: int = 0  # images whose annotations an earlier import with this user_tag stored
    errors: list[ItemError] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)  # read, upload, annotations

    def __repr__(self) -> str:
        head = (
            f"ImportReport({self.dataset!r} from {self.format}: {self.images} images imported, "
            f"{self.duplicates} duplicates, {self.annotations} annotations ({self.objects} objects), "
            f"{self.already_imported} already imported, {len(self.errors)} errors)"
        )
        lines = [f"  {error}" for error in self.errors[:10]]
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more in .errors")
        return "\n".join([head, *lines])


def import_dataset(
    ws: WorkspaceContext,
    path: str | Path,
    *,
    format: str,
    name: str,
    split: str | None = None,
    user_tag: str | None = "import",
    progress: ProgressOption = True,
    **options: Any,
) -> ImportReport:
    """Import a COCO / YOLO / VOC dataset (folder, file or .zip) into dataset ``name`` (created if missing).

    Each image goes to the split its file gives, else ``split``, else train. ``options`` go to
    the format's reader (e.g. ``image_root`` for COCO). See the module docstring for re-imports.
    ``progress``: a bar over the images uploaded (False for none, or a callable ``progress(done, total)``).
    """
    check_progress(progress)
    fallback_split = normalize_split(split) or "train"
    started = time.perf_counter()
    labelled = read(path, format=format, **options)
    report = ImportReport(dataset=name, format=format, errors=list(labelled.errors))
    report.timings_s["read"] = time.perf_counter() - started

    started = time.perf_counter()
    dataset_id = ws.datasets.get_or_create(name).id
    with Progress(progress, total=len(labelled.images), desc=f"import {format} into {name}", unit="img") as bar:
        image_ids = _upload(ws, labelled.images, fallback_split, dataset_id, report, bar)
    report.timings_s["upload"] = time.perf_counter() - started

    started = time.perf_counter()
    rows = _annotation_rows(ws, labelled, image_ids, user_tag, report)
    if rows.num_rows:
        ws.annotations.add_batch(rows)
    report.timings_s["annotations"] = time.perf_counter() - started
    return report


def _upload(
    ws: WorkspaceContext, images: list[LabelledImage], fallback_split: str, dataset_id: str, report: ImportReport,
    bar: Progress,
) -> list[str | None]:
    """Upload every image into its split; returns each image's id (None where the upload failed)."""
    ids: list[str | None] = [None] * len(images)
    done = 0
    by_split: dict[str, list[int]] = {}
    for index, image in enumerate(images):
        by_split.setdefault(image.split or fallback_split, []).append(index)
    for split, members in by_split.items():
        for batch in _batches(members, images):
            sources: dict[str, int] = {}  # upload's name for a source -> image index
            listed: list[UploadSource] = []
            for index in batch:
                image = images[index]
                try:
                    source = _source(image)
                except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # e.g. a damaged zip member
                    report.errors.append(ItemError(image.file_name, f"image bytes could not be read ({exc}); left out"))
                    continue
                sources[str(source.path or source.name)] = index
                listed.append(source)
            uploaded = upload_images(ws.catalog, ws.blobs, listed, split=split, dataset_id=dataset_id)
            failed = {f.source: f.reason for f in uploaded.failed}
            duplicate = {d.source: d.image_id for d in uploaded.duplicates}
            new = iter(uploaded.succeeded)  # in source order, skipping failures and duplicates
            for key, index in sources.items():
                if key in failed:
                    report.errors.append(ItemError(images[index].file_name, f"{failed[key]} Left out."))
                elif key in duplicate:
                    ids[index] = duplicate[key]
                    report.duplicates += 1
                else:
                    ids[index] = next(new).id
                    report.images += 1
            if duplicate:
                _report_moved(ws, {sources[key]: image_id for key, image_id in duplicate.items()}, split, images,
                              report)
            done += len(batch)
            bar.update_to(done)
    return ids


def _report_moved(
    ws: WorkspaceContext, duplicates: dict[int, str], split: str, images: list[LabelledImage], report: ImportReport
) -> None:
    """Images already in the workspace stay in their split (moving them would change other datasets)."""
    current = ImageRepository(ws.catalog).splits(sorted(set(duplicates.values())))
    for index, image_id in duplicates.items():
        if current[image_id] != split:
            report.errors.append(ItemError(
                images[index].file_name,
                f"already in the workspace in split {current[image_id]!r}; kept there, not moved to {split!r} "
                "(ws.images.assign moves it)",
            ))


def _batches(members: list[int], images: list[LabelledImage]):
    """Chunks of at most CHUNK_FILES images whose upload names are unique within the chunk
    (two zip members may share a file_name across splits), so outcomes map back by name."""
    batch: list[int] = []
    keys: set[str] = set()
    for index in members:
        image = images[index]
        key = str(image.source_path) if image.source_path is not None else image.file_name
        if key in keys or len(batch) >= CHUNK_FILES:
            yield batch
            batch, keys = [], set()
        batch.append(index)
        keys.add(key)
    if batch:
        yield batch


def _source(image: LabelledImage) -> UploadSource:
    if image.source_path is not None:
        return UploadSource(name=image.file_name, path=image.source_path)
    data = image.read_bytes()
    if data is None:
        raise ValueError("the reader found no file for it")
    return UploadSource(name=image.file_name, data=data)


def _annotation_rows(
    ws: WorkspaceContext,
    labelled: LabelledDataset,
    image_ids: list[str | None],
    user_tag: str | None,
    report: ImportReport,
) -> pa.Table:
    """One annotation row per image that has objects and no earlier import of them.

    Boxes are checked against the catalog's rule (inside the image, positive area) in one numpy
    pass: a box that sticks out is clipped, one with no area inside is left out, both reported.
    """
    import numpy as np

    sizes, done = _catalog_state(ws, image_ids, user_tag)
    chosen: list[tuple[LabelledImage, str]] = []
    first_of: dict[str, str] = {}  # image id -> file_name whose objects this import takes
    for image, image_id in zip(labelled.images, image_ids):
        if image_id is None or not image.objects:
            continue
        if image_id in done:
            report.already_imported += 1
        elif image_id in first_of:
            report.errors.append(ItemError(
                image.file_name, f"same bytes as {first_of[image_id]}, whose objects were imported; its own left out"
            ))
        elif (image.width, image.height) != sizes[image_id]:
            width, height = sizes[image_id]
            report.errors.append(ItemError(
                image.file_name,
                f"annotations are for a {image.width}x{image.height} image but the file is {width}x{height} "
                "(upright); annotations left out, image imported",
            ))
        else:
            first_of[image_id] = image.file_name
            chosen.append((image, image_id))

    objects = [obj for image, _ in chosen for obj in image.objects]
    counts = np.array([len(image.objects) for image, _ in chosen], dtype=np.int64)
    boxes = np.array([obj.bbox_xyxy for obj in objects], dtype=np.float64).reshape(-1, 4)
    limits = np.repeat(np.array([[image.width, image.height] for image, _ in chosen], dtype=np.float64).reshape(-1, 2),
                       counts, axis=0)
    clipped = np.concatenate([np.maximum(boxes[:, :2], 0.0), np.minimum(boxes[:, 2:], limits)], axis=1)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    moved = ~empty & (np.abs(clipped - boxes).max(axis=1, initial=0.0) > _SLACK_PX)
    owner = np.repeat(np.arange(len(chosen)), counts)
    start = np.concatenate([[0], np.cumsum(counts)])
    for k in np.flatnonzero(empty | moved):
        image, obj = chosen[owner[k]][0], objects[k]
        item = f"{image.file_name}: object {k - start[owner[k]]} ({obj.label})"
        size = f"{image.width}x{image.height} image"
        reason = (f"box {list(obj.bbox_xyxy)} has no area inside the {size}; left out" if empty[k]
                  else f"box {list(obj.bbox_xyxy)} extends beyond the {size}; clipped to {clipped[k].tolist()}")
        report.errors.append(ItemError(item, reason))

    keep = ~empty
    kept_counts = np.bincount(owner[keep], minlength=len(chosen))
    rows = np.flatnonzero(kept_counts)
    bounds = np.concatenate([[0], np.cumsum(kept_counts[rows])]).tolist()
    offsets = pa.array(bounds, pa.int32())
    kept = [obj for obj, k in zip(objects, keep.tolist()) if k]
    class_index = labelled.class_ids()
    positions = [class_index.get(obj.label) for obj in kept]
    special = [bool(obj.polygons) or obj.rle is not None or obj.iscrowd or bool(obj.attributes) for obj in kept]
    segments, metadata = [], []
    for row, lo, hi in zip(rows.tolist(), bounds, bounds[1:]):
        details = kept[lo:hi] if any(special[lo:hi]) else None
        segments.append(_segments_json(details) if details else None)
        metadata.append(_metadata_json(chosen[row][0].file_name, positions[lo:hi], details))
    n = len(rows)
    report.annotations, report.objects = n, len(kept)
    now = pa.array([utc_now()] * n, pa.timestamp("us", tz="UTC"))  # one instant: class order comes from the file
    tag = pa.array([user_tag] * n, pa.string())
    return pa.table({
        "image_id": pa.array([chosen[i][1] for i in rows], pa.string()),
        "class_labels": pa.ListArray.from_arrays(offsets, pa.array([obj.label for obj in kept], pa.string())),
        "bounding_boxes": pa.ListArray.from_arrays(
            offsets, pa.FixedSizeListArray.from_arrays(pa.array(clipped[keep].ravel()), 4)
        ),
        "segments": pa.array(segments, pa.string()),
        "user_tag": tag,
        "updated_by": tag,
        "metadata": pa.array(metadata, pa.string()),
        "created_at": now,
        "updated_at": now,
    })


def _catalog_state(
    ws: WorkspaceContext, image_ids: list[str | None], user_tag: str | None
) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """(width, height) of each image as the catalog has it (upright), and the images that already
    hold ground truth with ``user_tag``."""
    known = sorted({i for i in image_ids if i is not None})
    if not known:
        return {}, set()
    sizes = ImageRepository(ws.catalog).sizes(known)
    return sizes, AnnotationRepository(ws.catalog).images_with_ground_truth(known, user_tag=user_tag)


def _segments_json(objects: list[LabelledObject]) -> str | None:
    if not any(obj.has_mask for obj in objects):
        return None
    return json.dumps([
        {"rle": obj.rle} if obj.rle is not None else {"polygons": obj.polygons} if obj.polygons else None
        for obj in objects
    ])


def _metadata_json(file_name: str, positions: list[int | None], details: list[LabelledObject] | None) -> str:
    """Where the annotation came from, each object's class id in the file (to number classes on
    export as the file did) and the per-object flags no column holds (crowd, VOC attributes)."""
    meta: dict[str, Any] = {"source_file": file_name, "category_index": positions}
    if details and any(obj.iscrowd for obj in details):
        meta["iscrowd"] = [int(obj.iscrowd) for obj in details]
    if details and any(obj.attributes for obj in details):
        meta["attributes"] = [obj.attributes or None for obj in details]
    return json.dumps(meta)


# -- export -----------------------------------------------------------------------------------

