"""Taking image files into a workspace: probe, store by content, record in the catalog.

Each file is streamed once into the blob store (hashed on the way) after its header has
been probed; bad files become entries of ``report.failed`` and the rest go on. Rows reach
the catalog one Arrow batch per chunk of files, so memory stays flat in the number of files.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mleval.catalog.catalog import new_id, utc_now
from mleval.core.errors import ImageFileError, MlevalError
from mleval.core.records import ImageRecord, RecordList
from mleval.images.probe import DEFAULT_MAX_PIXELS, ImageInfo, probe_image
from mleval.storage.blobs import BlobStore, StoredBlob

CHUNK_FILES = 256
WHOLE_READ_BYTES = 4 << 20  # smaller files are read once; larger ones stream in chunks
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class UploadSource:
    """One thing to upload: a file on disk or bytes in memory, with the name to record."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        return open(self.path, "rb") if self.path is not None else io.BytesIO(self.data or b"")


@dataclass(frozen=True)
class UploadFailure:
    source: str
    reason: str


@dataclass(frozen=True)
class UploadDuplicate:
    source: str
    image_id: str  # the image already in the workspace with the same bytes


@dataclass
class UploadReport:
    succeeded: RecordList[ImageRecord] = field(default_factory=RecordList)
    duplicates: list[UploadDuplicate] = field(default_factory=list)
    failed: list[UploadFailure] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"UploadReport({len(self.succeeded)} succeeded, {len(self.duplicates)} duplicates, "
            f"{len(self.failed)} failed)"
        )

    def _repr_html_(self) -> str:
        failures = "".join(f"<li><code>{f.source}</code>: {f.reason}</li>" for f in self.failed[:20])
        return f"<b>{self!r}</b>" + (f"<ul>{failures}</ul>" if failures else "")


def collect_sources(items: Any) -> list[UploadSource]:
    """Normalise what a user may pass: paths, folders, (name, bytes) pairs, {name: bytes},
    file-like objects with a ``name``, or a list of any of these. Folders are walked
    recursively in sorted order, skipping hidden files."""
    if isinstance(items, (str, Path, tuple, bytes)) or hasattr(items, "read"):
        items = [items]
    elif isinstance(items, dict):
        items = list(items.items())
    sources: list[UploadSource] = []
    for item in items:
        sources.extend(_sources_of(item))
    return sources


def _sources_of(item: Any) -> Iterator[UploadSource]:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (bytes, bytearray, memoryview)):
        yield UploadSource(name=str(item[0]), data=bytes(item[1]))
    elif hasattr(item, "read"):
        yield UploadSource(name=os.path.basename(getattr(item, "name", "upload")), data=item.read())
    elif isinstance(item, (str, Path)):
        path = Path(item).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield UploadSource(name=name, path=Path(root) / name)
        else:
            yield UploadSource(name=path.name, path=path)
    else:
        raise MlevalError(
            f"cannot upload {type(item).__name__} {item!r:.80}: pass file paths, folders, "
            "(filename, bytes) pairs, a {filename: bytes} dict or open binary files."
        )


def _probe_and_store(source: UploadSource, blobs: BlobStore, max_pixels: int) -> tuple[ImageInfo, StoredBlob]:
    try:
        stream = source.open()
    except FileNotFoundError:
        raise ImageFileError("no such file.") from None
    except IsADirectoryError:
        raise ImageFileError("is a folder, not a file.") from None
    with stream:
        head = stream.read(WHOLE_READ_BYTES)
        if len(head) < WHOLE_READ_BYTES:  # the whole file came in one read: probe and store from it
            return probe_image(io.BytesIO(head), max_pixels=max_pixels), blobs.put_bytes(head)
        info = probe_image(stream, max_pixels=max_pixels)
        stream.seek(0)
        return info, blobs.put_stream(stream)


def upload_images(
    catalog: Any,
    blobs: BlobStore,
    sources: Iterable[UploadSource],
    *,
    split: str,
    dataset_id: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: ProgressCallback | None = None,
    workers: int = 2,
) -> UploadReport:
    """Upload ``sources`` into ``split`` (and ``dataset_id`` when given); see module docstring."""
    sources = list(sources)
    chunks = [sources[start:start + CHUNK_FILES] for start in range(0, len(sources), CHUNK_FILES)]
    report = UploadReport()
    seen: dict[str, str] = {}  # sha256 -> image id, across chunks of this upload
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        def submit(chunk: list[UploadSource]) -> list:
            return [pool.submit(_attempt, source, blobs, max_pixels) for source in chunk]

        pending = submit(chunks[0]) if chunks else []
        for index, chunk in enumerate(chunks):
            outcomes = [future.result() for future in pending]
            # The next chunk's files are read and stored while this one is recorded in the catalog.
            pending = submit(chunks[index + 1]) if index + 1 < len(chunks) else []
            _record_chunk(catalog, chunk, outcomes, split, dataset_id, seen, report)
            done += len(chunk)
            if progress is not None:
                progress(done, len(sources))
    return report


def _attempt(source: UploadSource, blobs: BlobStore, max_pixels: int):
    try:
        return _probe_and_store(source, blobs, max_pixels)
    except ImageFileError as error:
        return error
    except OSError as error:
        return ImageFileError(f"could not be read ({error.strerror or error}).")


def _record_chunk(catalog, chunk, outcomes, split, dataset_id, seen, report: UploadReport) -> None:
    stored = [(s, o) for s, o in zip(chunk, outcomes) if not isinstance(o, Exception)]
    for source, outcome in zip(chunk, outcomes):
        if isinstance(outcome, Exception):
            report.failed.append(UploadFailure(str(source.path or source.name), str(outcome)))
    hashes = sorted({blob.sha256 for _, (_, blob) in stored} - seen.keys())
    if hashes:
        existing = catalog.query("SELECT id, sha256 FROM images WHERE sha256 IN (SELECT unnest(?))", [hashes])
        seen.update(zip(existing.column("sha256").to_pylist(), map(str, existing.column("id").to_pylist())))
    rows, linked = [], []
    for source, (info, blob) in stored:
        if blob.sha256 in seen:
            report.duplicates.append(UploadDuplicate(str(source.path or source.name), seen[blob.sha256]))
            linked.append(seen[blob.sha256])
            continue
        image_id = new_id()
        seen[blob.sha256] = image_id
        linked.append(image_id)
        rows.append({
            "id": image_id,
            "filename": source.name,
            "file_path": blob.key,
            "sha256": blob.sha256,
            "file_size": blob.size,
            "format": info.format.value,
            "width": info.width,
            "height": info.height,
            "dataset_split": split,
            "upload_timestamp": utc_now(),
            "metadata": {"mode": info.mode, "pages": info.pages, "exif_orientation": info.exif_orientation,
                         **({"source_path": str(source.path)} if source.path else {})},
        })
    if rows:
        catalog.insert("images", rows)
        report.succeeded.extend(ImageRecord.from_row(row) for row in rows)
    if dataset_id is not None and linked:
        catalog.link_dataset_images(dataset_id, linked)
