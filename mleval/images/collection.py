"""``ws.images``: upload, list, view, assign to splits, delete."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mleval.catalog.rules import check_split
from mleval.catalog.repositories import ImageRepository
from mleval.core.records import ImageRecord, RecordList, image_id_of
from mleval.core.progress import Progress, ProgressOption, check_progress
from mleval.images.ingest import UploadReport, collect_sources, upload_images
from mleval.images.probe import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from PIL import Image

    from mleval.datasets import DatasetCollection
    from mleval.stores import WorkspaceStores

__all__ = ["ImageCollection", "check_split", "image_id_of"]


class ImageCollection:
    def __init__(self, stores: WorkspaceStores, datasets: DatasetCollection):
        self._ws = stores
        self._datasets = datasets

    def upload(
        self,
        sources: Any,
        *,
        split: str = "train",
        dataset: Any = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: ProgressOption = True,
        workers: int | None = None,
    ) -> UploadReport:
        """Upload files, folders, ``(filename, bytes)`` pairs or open files into ``split``.

        Bad files land in ``report.failed`` with a reason and the rest go on; files already
        in the workspace are reported in ``report.duplicates`` and stored once. With
        ``dataset`` (a name or record) the images, duplicates included, join that dataset.
        ``progress``: a bar over the files (the default; False for none), or a callable
        ``progress(done, total)`` called after each chunk of files; ``workers`` (default:
        the CPU count, at most 8) processes read and store files on disk in parallel
        (threads for in-memory data or an object-store workspace).
        """
        check_split(split)
        check_progress(progress)
        dataset_id = self._datasets.get(dataset).id if dataset is not None else None
        listed = collect_sources(sources)
        with Progress(progress, total=len(listed), desc=f"upload to {split}", unit="file") as bar:
            return upload_images(
                self._ws.catalog,
                self._ws.blobs,
                listed,
                split=split,
                dataset_id=dataset_id,
                max_pixels=max_pixels,
                progress=bar.update_to,
                workers=workers or min(8, os.cpu_count() or 1),
            )

    def list(
        self,
        *,
        split: str | None = None,
        dataset: Any = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> RecordList[ImageRecord]:
        """Images in upload order, optionally of one split and/or one dataset."""
        return ImageRepository(self._ws.catalog).list(
            split=None if split is None else check_split(split),
            dataset_id=None if dataset is None else self._datasets.get(dataset).id, limit=limit, offset=offset)

    def count(self, *, split: str | None = None) -> int:
        return ImageRepository(self._ws.catalog).count(split=None if split is None else check_split(split))

    def get(self, image: ImageRecord | str) -> ImageRecord:
        return ImageRecord.from_row(self._ws.catalog.get("images", image_id_of(image)))

    def assign(self, images: Sequence[ImageRecord | str], split: str) -> int:
        """Move images to ``split``; dataset split counts follow."""
        return self._ws.catalog.assign_split([image_id_of(i) for i in images], check_split(split))

    def read_bytes(self, image: ImageRecord | str) -> bytes:
        return self._ws.blobs.read_bytes(self.get(image).file_path)

    def open(self, image: ImageRecord | str) -> Image.Image:
        """The image as a PIL image (first page of a multi-page file)."""
        from PIL import Image

        record = self.get(image)
        local = self._ws.blobs.local_path(record.file_path)
        return Image.open(local) if local else Image.open(self._ws.blobs.open(record.file_path))

    def delete(self, images: Sequence[ImageRecord | str]) -> int:
        """Delete images with their annotations and dataset links (the stored bytes stay, shared)."""
        return self._ws.catalog.delete("images", [image_id_of(i) for i in images])
