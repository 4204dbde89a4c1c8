"""Taking image files into a workspace: probe, store by content, record in the catalog.

A file under 4 MiB is read once: its header is parsed from memory, its bytes hashed, and
written to the blob store unless the store holds them already; a larger file streams into
the store, hashed on the way. Bad files become entries of ``report.failed`` and the rest go
on. Rows reach the catalog one Arrow batch per chunk of files, so memory stays flat in the
number of files.

Probing and storing run in ``workers`` worker processes when the files are on disk and the
blob store is a local folder (header parsing holds Python's GIL, so threads would share one
core), and in threads otherwise; the catalog is written by the calling process alone, while
the workers already read the next chunk.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import stat
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mleval.catalog.catalog import new_id, utc_now
from mleval.core.errors import ImageFileError, MlevalError, StoreUnavailableError, ValidationError
from mleval.core.records import ImageRecord, RecordList
from mleval.images.probe import DEFAULT_MAX_PIXELS, ImageInfo, probe_image
from mleval.storage.blobs import BlobStore, StoredBlob

CHUNK_FILES = 1024  # files recorded in the catalog per transaction (about 7 ms of fixed cost each)
TASK_FILES = 128  # files per task handed to a worker (fewer, larger tasks: less time passing them)
PROCESS_MIN_FILES = 64  # fewer files are not worth starting processes for
WHOLE_READ_BYTES = 4 << 20  # smaller files are read whole; larger ones stream in chunks
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class UploadSource:
    """One thing to upload: a file on disk or bytes in memory, with the name to record."""

    name: str
    path: Path | None = None
    data: bytes | None = None


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
        path = Path(os.path.expanduser(item)) if isinstance(item, str) or str(item)[:1] == "~" else item
        if os.path.isdir(path):  # one stat, without pathlib's overhead: uploads list thousands of files
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
    data = source.data
    if data is None:
        # Plain descriptor calls: for thousands of small files, buffered file objects cost as much as the copy.
        try:
            fd = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ImageFileError("no such file.") from None
        try:
            status = os.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                raise ImageFileError("is a folder, not a file.")
            if status.st_size >= WHOLE_READ_BYTES:
                with open(fd, "rb", closefd=False) as stream:
                    info = probe_image(stream, max_pixels=max_pixels)
                    stream.seek(0)
                    return info, _store(blobs.put_stream, stream, blobs)
            data = _read_all(fd, status.st_size)
        finally:
            os.close(fd)
    # Probed from memory: no seeks or small reads, and the facts describe exactly the bytes stored.
    return probe_image(data, max_pixels=max_pixels), _store(blobs.put_bytes, data, blobs)


def _store(put: Callable, data: Any, blobs: BlobStore) -> StoredBlob:
    """A failed write is the store's failure, not the file's: it stops the upload (every other file
    would fail the same way) instead of being reported once per file."""
    try:
        return put(data)
    except OSError as error:
        raise StoreUnavailableError(
            f"the workspace's blob store {blobs.root_uri} cannot be written ({error.strerror or error})") from None


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size)  # one read, sized by the file
    while len(data) < size and (more := os.read(fd, size - len(data))):
        data += more
    return data


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
    chunks = _chunks(len(sources))
    report = UploadReport()
    seen: dict[str, str] = {}  # sha256 -> image id, across chunks of this upload
    done = 0
    with _older_objects_set_aside(), _FileWorkers(sources, blobs, max_pixels, max(1, workers)) as (pool, task):
        def submit(chunk: range) -> list:
            return [pool.submit(task, start, min(start + TASK_FILES, chunk.stop))
                    for start in range(chunk.start, chunk.stop, TASK_FILES)]

        # Two chunks in flight: the workers go on reading and storing while a chunk is recorded.
        in_flight = deque([submit(chunk) for chunk in chunks[:2]])
        for index, positions in enumerate(chunks):
            chunk = sources[positions.start:positions.stop]
            outcomes = _results(in_flight.popleft(), chunk, report)
            if index + 2 < len(chunks):
                in_flight.append(submit(chunks[index + 2]))
            _record_chunk(catalog, chunk, outcomes, split, dataset_id, seen, report)
            done += len(chunk)
            if progress is not None:
                progress(done, len(sources))
    return report


def _chunks(count: int) -> list[range]:
    """Positions of the files in chunks of CHUNK_FILES, the last chunk split so that its tail
    is small: nothing overlaps recording the last chunk in the catalog."""
    chunks = [range(start, min(start + CHUNK_FILES, count)) for start in range(0, count, CHUNK_FILES)]
    tail = 2 * TASK_FILES
    if chunks and len(chunks[-1]) > 2 * tail:
        last = chunks.pop()
        chunks += [range(last.start, last.stop - tail), range(last.stop - tail, last.stop)]
    return chunks


@contextmanager
def _older_objects_set_aside():
    """Garbage collections during the upload skip the objects that existed before it: one full
    collection over a notebook's large heap can take longer than the upload it interrupts."""
    if gc.get_freeze_count():  # the program freezes objects itself; leave that to it
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _FileWorkers:
    """The executor that probes and stores files, and the task function to submit to it: a
    task stores ``sources[start:stop]``."""

    def __init__(self, sources: list[UploadSource], blobs: BlobStore, max_pixels: int, workers: int):
        use_processes = (workers > 1 and blobs.is_local and sys.platform.startswith("linux")
                         and len(sources) >= PROCESS_MIN_FILES and all(s.path is not None for s in sources))
        if use_processes:
            # fork: the workers inherit the imported modules and the list of files (a task names
            # positions in it, nothing to pickle) and start in milliseconds; they only read files
            # and write blobs, and leave through os._exit (no parent's exit handlers).
            self.pool: Executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"),
                initializer=_set_worker_store, initargs=(sources, blobs, max_pixels, os.getpid()))
            self.task: Callable = _store_files_in_worker
        else:
            self.pool = ThreadPoolExecutor(workers)
            self.task = lambda start, stop: _store_files(sources[start:stop], blobs, max_pixels)

    def __enter__(self) -> tuple[Executor, Callable]:
        return self.pool, self.task

    def __exit__(self, error_type, *exc) -> None:
        # After a failure, wait until no worker writes any more; after success they are idle
        # and leave on their own.
        self.pool.shutdown(wait=error_type is not None, cancel_futures=True)


def _results(pending: list, chunk: list[UploadSource], report: UploadReport) -> list:
    try:
        return [outcome for future in pending for outcome in future.result()]
    except StoreUnavailableError as error:
        first = chunk[0]
        raise StoreUnavailableError(
            f"{error} while storing the files from {first.path or first.name} on. The {len(report.succeeded)} new "
            f"images and {len(report.duplicates)} duplicates recorded before stay; nothing after them was recorded. "
            "When the store is back, upload the same files again: those already stored are reported as "
            "duplicates, the rest are added (ws.gc() removes blobs a failed upload stored but never recorded)."
        ) from None
    except BrokenProcessPool:
        first, last = chunk[0], chunk[-1]
        raise MlevalError(
            f"a worker process died while reading the files from {first.path or first.name} to "
            f"{last.path or last.name} (out of memory, or a decoder crashed on a file); the files before "
            "them are stored. Upload those files again with workers=1 to find the one that fails.") from None


_worker_store: tuple[list[UploadSource], BlobStore, int] | None = None


def _set_worker_store(sources: list[UploadSource], blobs: BlobStore, max_pixels: int, parent: int) -> None:
    global _worker_store
    _die_with(parent)
    # The objects inherited from the parent stay out of this process's garbage collections, which
    # would otherwise walk them all and copy every memory page they sit on.
    gc.freeze()
    _worker_store = (sources, blobs, max_pixels)


def _die_with(parent: int) -> None:
    """End this worker when the uploading process dies: killed (SIGKILL), it never tells its pool's
    workers to leave, and they would wait for tasks forever, holding its pipes."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(0)


def _store_files_in_worker(start: int, stop: int) -> list:
    sources, blobs, max_pixels = _worker_store
    return _store_files(sources[start:stop], blobs, max_pixels)


def _store_files(sources: list[UploadSource], blobs: BlobStore, max_pixels: int) -> list:
    return [_attempt(source, blobs, max_pixels) for source in sources]


def _attempt(source: UploadSource, blobs: BlobStore, max_pixels: int):
    try:
        return _probe_and_store(source, blobs, max_pixels)
    except ImageFileError as error:
        return error
    except OSError as error:
        return ImageFileError(f"could not be read ({error.strerror or error}).")


def _record_chunk(catalog, chunk, outcomes, split, dataset_id, seen, report: UploadReport) -> None:
    stored = []
    for source, outcome in zip(chunk, outcomes):
        if isinstance(outcome, Exception):
            report.failed.append(UploadFailure(str(source.path or source.name), str(outcome)))
        else:
            stored.append((source, *outcome))
    # Only bytes the blob store held before can be an image of the catalog: the workers wrote the
    # others just now. Asking about those too would scan all the catalog's images for every chunk.
    _find_images(catalog, {blob.sha256 for _, _, blob in stored if blob.already_stored}, seen)
    try:
        _insert_chunk(catalog, stored, split, dataset_id, seen, report)
    except ValidationError as error:
        # An image whose blob had been deleted from the store: its bytes were written again just
        # now. Ask the catalog about every file of the chunk, then record it again.
        if error.rule != "image.unique" or not _find_images(catalog, {blob.sha256 for _, _, blob in stored}, seen):
            raise
        _insert_chunk(catalog, stored, split, dataset_id, seen, report)


def safe_filename(name: str) -> str:
    """The name to record for an upload: ``name`` itself when it is a plain relative path, else its
    base name (an absolute path or one that climbs with ``..`` would make exports reference files
    outside what they wrote), without control characters; "upload" when nothing is left."""
    cleaned = "".join(c for c in str(name) if c.isprintable()).replace("\\", "/").strip()
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if cleaned.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        parts = [p for p in parts[-1:] if p != ".."]
    return "/".join(parts) or "upload"


def _find_images(catalog, hashes: set[str], seen: dict[str, str]) -> int:
    """Add the catalog's images among ``hashes`` to ``seen`` (sha256 -> image id); how many it found."""
    hashes = sorted(hashes - seen.keys())
    if not hashes:
        return 0
    from mleval.catalog.repositories import ImageRepository

    existing = ImageRepository(catalog).ids_by_sha256(hashes)
    seen.update(existing)
    return len(existing)


def _insert_chunk(catalog, stored, split, dataset_id, seen, report: UploadReport) -> None:
    records, linked, duplicates, new = [], [], [], {}
    now = utc_now()
    for source, info, blob in stored:
        known = seen.get(blob.sha256) or new.get(blob.sha256)
        if known:
            duplicates.append(UploadDuplicate(str(source.path or source.name), known))
            linked.append(known)
            continue
        filename = safe_filename(source.name)
        record = ImageRecord(
            id=new_id(), filename=filename, format=info.format.value, width=info.width, height=info.height,
            file_size=blob.size, dataset_split=split, file_path=blob.key, sha256=blob.sha256, upload_timestamp=now,
            metadata={"mode": info.mode, "pages": info.pages, "exif_orientation": info.exif_orientation,
                      **({"source_path": str(source.path)} if source.path else {}),
                      **({"original_name": source.name} if filename != source.name else {})})
        new[blob.sha256] = record.id
        linked.append(record.id)
        records.append(record)
    if records:
        catalog.insert("images", _images_table(records))
    seen.update(new)
    report.succeeded.extend(records)
    report.duplicates.extend(duplicates)
    if dataset_id is not None and linked:
        catalog.link_dataset_images(dataset_id, linked)


def _images_table(records: list[ImageRecord]) -> pa.Table:
    columns = {name: [getattr(record, name) for record in records]
               for name in ("id", "filename", "file_path", "sha256", "file_size", "format", "width", "height",
                            "dataset_split")}
    return pa.table({
        **columns,
        "upload_timestamp": pa.array([record.upload_timestamp for record in records], pa.timestamp("us", "UTC")),
        "metadata": [json.dumps(record.metadata) for record in records],
    })
