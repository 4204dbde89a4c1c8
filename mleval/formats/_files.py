"""Files under a dataset root, read from a folder or a .zip, and written atomically to either.

Readers walk a root given as ``pathlib.Path`` (a folder) or ``zipfile.Path`` (a zip), which
share the few methods used here (``/``, ``exists``, ``is_dir``, ``iterdir``, ``read_bytes``,
``name``, ``suffix``). Writers build the whole output under a temporary name beside the
target and rename it into place at the end, so a failed export never leaves half a dataset.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from mleval.core.errors import MlevalError, ValidationError
from mleval.formats.records import LabelledImage

Node = Path | zipfile.Path

IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"})
_UPRIGHT_SWAP = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image by 90 degrees
_EXIF_ORIENTATION = 0x0112


class FormatError(ValidationError):
    """A dataset file as a whole cannot be read or written (missing, not parseable, wrong layout)."""


def line_column(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based ``(line, column)`` of ``offset`` in ``text``, as parsers report where a file is broken."""
    newline = "\n" if isinstance(text, str) else b"\n"
    line_start = text.rfind(newline, 0, offset) + 1  # type: ignore[arg-type]
    return text.count(newline, 0, offset) + 1, offset - line_start + 1  # type: ignore[arg-type]


def undecodable(rel: str, exc: UnicodeDecodeError) -> str:
    """Message for a file whose bytes are not UTF-8: where the first bad byte is."""
    line, column = line_column(exc.object, exc.start)
    return f"{rel}: not UTF-8 text (line {line}, column {column}: byte 0x{exc.object[exc.start]:02x}, {exc.reason})"


def open_root(path: str | os.PathLike[str]) -> Node:
    """A folder as ``Path``, a .zip as ``zipfile.Path`` (its file stays open while the result lives)."""
    p = Path(path)
    if not p.exists():
        raise FormatError("formats.path_exists", f"{p}: no such file or folder; check the path.")
    if p.is_file() and p.suffix.lower() == ".zip":
        try:
            return zipfile.Path(zipfile.ZipFile(p))
        except zipfile.BadZipFile as exc:
            raise FormatError("formats.zip_readable", f"{p}: not a readable zip file ({exc}).") from None
    return p


def child(root: Node, rel: str) -> Node:
    """``root / rel`` for a relative POSIX path (an absolute path is taken as is for folders)."""
    if isinstance(root, Path):
        return root / rel
    rel = posixpath.normpath(rel.lstrip("/"))
    return root if rel in ("", ".") else root / rel


def relative(node: Node, root: Node) -> str:
    """POSIX path of ``node`` relative to ``root`` (for messages and file names)."""
    if isinstance(node, Path) and isinstance(root, Path):
        try:
            return node.relative_to(root).as_posix()
        except ValueError:
            return node.as_posix()
    at, base = node.at.rstrip("/"), root.at.rstrip("/")  # type: ignore[union-attr]
    return at[len(base) + 1 :] if base and at.startswith(base + "/") else at


def single_subfolder(root: Node, marker: Callable[[Node], bool], *, depth: int = 2) -> Node:
    """``root``, or the folder that has the layout's marker down a chain of lone subfolders
    (zips often nest one or two: ``VOCdevkit/VOC2012/``). ``root`` when none has it."""
    node = root
    for _ in range(depth + 1):
        if marker(node):
            return node
        dirs = [c for c in node.iterdir() if c.is_dir() and not c.name.startswith((".", "__MACOSX"))]
        if len(dirs) != 1:
            break
        node = dirs[0]
    return root


def walk_files(folder: Node) -> Iterator[Node]:
    """Every file under ``folder``, recursively (folders top-down, names sorted)."""
    if isinstance(folder, Path):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(filenames):
                yield base / name
        return
    for entry in sorted(folder.iterdir(), key=lambda n: n.name):
        if entry.is_dir():
            yield from walk_files(entry)
        else:
            yield entry


def is_file(node: Node) -> bool:
    """``node.is_file()``, but False for a name the file system cannot hold (OSError: file name too long)."""
    try:
        return node.is_file()
    except OSError:
        return False


def local_path(node: Node) -> Path | None:
    return node if isinstance(node, Path) else None


def opener(node: Node) -> Callable[[], bytes] | None:
    """A callable returning the file's bytes, for files inside a zip (None for plain files)."""
    return None if isinstance(node, Path) else node.read_bytes


def image_size(node: Node) -> tuple[int, int]:
    """``(width, height)`` from the image header, without decoding pixels, in the EXIF-upright frame.

    Raises OSError (or PIL's UnidentifiedImageError, an OSError) when the file is not an image.
    """
    from PIL import Image

    with node.open("rb") as handle, Image.open(handle) as im:
        width, height = im.size
        orientation = None
        # Only formats whose EXIF sits in the header: PNG keeps it after the pixels.
        if im.format in ("JPEG", "MPO", "WEBP"):
            orientation = im.getexif().get(_EXIF_ORIENTATION)
        elif im.format == "TIFF":
            orientation = getattr(im, "tag_v2", {}).get(_EXIF_ORIENTATION)
    if orientation in _UPRIGHT_SWAP:
        width, height = height, width
    return int(width), int(height)


def safe_relative(name: str) -> str:
    """``name`` as a relative POSIX path that stays inside the output folder, or ValidationError."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.as_posix() in ("", ".") or (
            ":" in pure.parts[0] and len(pure.parts[0]) == 2):
        raise ValidationError("formats.file_name_relative", f"file name {name!r} must be a relative path without '..' "
                                                            "(inside the dataset's folder).")
    return pure.as_posix()


def is_relative_inside(name: str) -> bool:
    """Whether :func:`safe_relative` takes ``name`` (a path that stays inside its folder)."""
    try:
        safe_relative(name)
    except ValidationError:
        return False
    return True


class Output:
    """An output folder or .zip, written under a temporary name and moved into place on ``commit``.

    A folder target must not exist or be empty, so an export never mixes with older files.
    ``on_image(done)`` is called after each image put (a progress bar's update).
    """

    def __init__(self, target: str | os.PathLike[str], *, on_image: Callable[[int], None] | None = None):
        self.target = Path(target)
        self._on_image = on_image
        self._images_put = 0
        self.is_zip = self.target.suffix.lower() == ".zip"
        if not self.is_zip and self.target.exists() and (not self.target.is_dir() or any(self.target.iterdir())):
            raise FormatError(
                "formats.output_empty",
                f"{self.target} exists and is not an empty folder; export into a new folder (or a .zip path).",
            )
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.target.with_name(f".{self.target.name}.tmp-{uuid.uuid4().hex[:8]}")
        self._zip: zipfile.ZipFile | None = None
        self._made: set[Path] = set()
        if self.is_zip:
            self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_DEFLATED)
        else:
            self._tmp.mkdir()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def _file(self, rel: str) -> Path:
        path = self._tmp / rel
        parent = path.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        return path

    def write_bytes(self, rel: str, data: bytes, *, compress: bool = True) -> None:
        if self._zip is not None:
            self._zip.writestr(rel, data, compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        else:
            self._file(rel).write_bytes(data)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def put_image(self, rel: str, image: LabelledImage, *, link: bool = False) -> str | None:
        """Copy (or hard-link) the image's bytes to ``rel``; returns why not, or None on success."""
        self._images_put += 1
        if self._on_image is not None:
            self._on_image(self._images_put)
        try:
            if image.source_path is not None:
                if not image.source_path.is_file():
                    return f"source image {image.source_path} does not exist; annotations written without it"
                if self._zip is not None:
                    self._zip.write(image.source_path, rel, compress_type=zipfile.ZIP_STORED)
                elif link:
                    try:
                        os.link(image.source_path, self._file(rel))
                    except OSError:  # another filesystem, or links not allowed: copy instead
                        shutil.copyfile(image.source_path, self._file(rel))
                else:
                    shutil.copyfile(image.source_path, self._file(rel))
                return None
            if image.open_bytes is not None:
                self.write_bytes(rel, image.open_bytes(), compress=False)
                return None
        except (OSError, MlevalError) as exc:
            return f"could not copy the image bytes ({exc}); annotations written without it"
        return "no image bytes (no source_path nor open_bytes); annotations written without it"

    def commit(self) -> None:
        if self._zip is not None:
            self._zip.close()
            os.replace(self._tmp, self.target)
            return
        if self.target.exists():
            self.target.rmdir()  # empty, checked in __init__
        os.rename(self._tmp, self.target)

    def abort(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._tmp.unlink(missing_ok=True)
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
