"""Read an image file's header: format, size, mode, pages, without decoding its pixels.

A file given as bytes is read by ``headers`` when its layout is a common one (WebP's always by
``webp_header``), else by PIL, which also names what is wrong with a damaged file. Either way
the size must stay within ``max_pixels`` and PIL's ``Image.MAX_IMAGE_PIXELS`` limit.

Truncation is caught by a cheap structural check per format (the end marker of a JPEG,
PNG or GIF, the RIFF length of a WebP, the file length a BMP header declares, the strip
and tile extents of each TIFF page), so a 20,000 x 20,000 TIFF is never decoded to be
taken in.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# The supported formats' readers are imported here, which registers them with PIL: on a first
# open PIL would otherwise import all of its ~50 format plugins (twice the time).
from PIL import (  # noqa: F401
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
)

from mleval.core.enums import ImageFormat
from mleval.core.errors import ImageFileError
from mleval.images.headers import read_header
from mleval.images.webp_header import WebPHeaderError, read_webp_header

DEFAULT_MAX_PIXELS = 400_000_000  # 20,000 x 20,000
_PIL_FORMATS = {  # PIL format name -> ours
    "JPEG": ImageFormat.JPEG,
    "MPO": ImageFormat.JPEG,  # multi-picture JPEG from cameras; the first picture is a plain JPEG
    "PNG": ImageFormat.PNG,
    "TIFF": ImageFormat.TIFF,
    "BMP": ImageFormat.BMP,
    "GIF": ImageFormat.GIF,
}
# PIL's reader names (MPO opens through JPEG's); WebP headers are read by webp_header.py.
_READERS = ("JPEG", "PNG", "TIFF", "BMP", "GIF")
_TAIL_BYTES = 1024


@dataclass(frozen=True)
class ImageInfo:
    format: ImageFormat
    width: int
    height: int
    mode: str  # PIL mode: "RGB", "RGBA", "L", "I;16", ...
    pages: int  # frames of a multi-page TIFF or an animated GIF/WebP
    file_size: int
    exif_orientation: int = 1  # width/height above are of the upright image, as decoders show it


# Formats whose EXIF sits in the header; PNG keeps it anywhere, and reading it decodes the pixels.
_EXIF_FORMATS = (ImageFormat.JPEG, ImageFormat.TIFF)


def _exif_orientation(image: Image.Image, image_format: ImageFormat) -> int:
    # A TIFF's own tags hold it, already read: getexif() would read the directory again.
    return _orientation(lambda: image.tag_v2 if image_format == ImageFormat.TIFF else image.getexif())


def _orientation(tags) -> int:
    try:
        return int(tags().get(0x0112, 1) or 1)
    except Exception:  # a damaged EXIF block does not make the pixels unusable
        return 1


def _exif_block_orientation(block: bytes | None) -> int:
    def tags() -> Image.Exif:
        exif = Image.Exif()
        exif.load(block)
        return exif

    return _orientation(tags) if block else 1


def probe_image(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Header facts of an image file, a whole file's bytes or a seekable binary stream.

    Raises :class:`ImageFileError` with the reason when the file is empty, not an image,
    of an unsupported format, larger than ``max_pixels``, or truncated.
    """
    if isinstance(source, bytes):
        return _probe_stream(io.BytesIO(source), max_pixels, source)
    stream, owned = (open(source, "rb"), True) if isinstance(source, (str, Path)) else (source, False)
    try:
        return _probe_stream(stream, max_pixels)
    finally:
        if owned:
            stream.close()


def _probe_stream(stream: BinaryIO, max_pixels: int, data: bytes | None = None) -> ImageInfo:
    stream.seek(0, os.SEEK_END)
    file_size = stream.tell()
    if file_size == 0:
        raise ImageFileError("the file is empty (0 bytes).")
    stream.seek(0)
    sniffed = _sniff_format(stream.read(16))
    if sniffed == ImageFormat.WEBP:
        return _probe_webp(stream, file_size, max_pixels)
    header = read_header(sniffed, data) if data is not None and sniffed is not None else None
    if header is None:
        return _probe_with_pil(stream, file_size, max_pixels)
    _check_complete(sniffed, stream, file_size)
    width, height = _upright_within_limit(sniffed, header.width, header.height, header.orientation, max_pixels)
    return ImageInfo(sniffed, width, height, header.mode, header.frames, file_size, header.orientation)


def _probe_with_pil(stream: BinaryIO, file_size: int, max_pixels: int) -> ImageInfo:
    try:
        image_format, (width, height), mode, pages, orientation = _read_with_pil(stream, file_size)
    except ImageFileError:
        raise
    except Image.DecompressionBombError as error:
        raise _bomb(str(error)) from None
    except UnidentifiedImageError:
        stream.seek(0)
        sniffed = _sniff_format(stream.read(16))
        if sniffed is not None:
            raise ImageFileError(f"the file starts like a {sniffed} image but its header is damaged.") from None
        raise ImageFileError(
            "not an image, or an image format mleval does not read; supported formats: "
            + ", ".join(ImageFormat)
            + "."
        ) from None
    except Exception as error:  # PIL's readers raise many kinds of error on a cut or damaged header
        detail = str(error) or type(error).__name__
        raise ImageFileError(f"the file is truncated or its header is damaged ({detail}).") from None
    width, height = _upright_within_limit(image_format, width, height, orientation, max_pixels)
    return ImageInfo(image_format, width, height, mode, pages, file_size, orientation)


def _read_with_pil(stream: BinaryIO, file_size: int) -> tuple[ImageFormat, tuple[int, int], str, int, int]:
    stream.seek(0)
    with warnings.catch_warnings():  # PIL warns of damage it steps over; the verdict here says what matters
        warnings.simplefilter("ignore")
        image = _open_supported(stream)
        image_format = _PIL_FORMATS[image.format]
        orientation = _exif_orientation(image, image_format) if image_format in _EXIF_FORMATS else 1
        if image_format == ImageFormat.TIFF:
            _check_tiff_extents(image, file_size)
        else:
            _check_complete(image_format, stream, file_size)  # before walking the frames: a cut file is reported as cut
        return image_format, image.size, image.mode, getattr(image, "n_frames", 1), orientation


def _bomb(detail: str) -> ImageFileError:
    return ImageFileError(
        f"decompression bomb: {detail}. If the image is genuine, raise max_pixels and PIL.Image.MAX_IMAGE_PIXELS.")


def _probe_webp(stream: BinaryIO, file_size: int, max_pixels: int) -> ImageInfo:
    _check_complete(ImageFormat.WEBP, stream, file_size)  # first: a cut file is reported as cut
    try:
        header = read_webp_header(stream, file_size)
    except (WebPHeaderError, struct.error) as error:
        raise ImageFileError(f"the file starts like a WEBP image but its header is damaged ({error}).") from None
    orientation = _exif_block_orientation(header.exif)
    width, height = _upright_within_limit(ImageFormat.WEBP, header.width, header.height, orientation, max_pixels)
    return ImageInfo(ImageFormat.WEBP, width, height, header.mode, header.frames, file_size, orientation)


def _upright_within_limit(image_format: ImageFormat, width: int, height: int, orientation: int,
                          max_pixels: int) -> tuple[int, int]:
    # Stored rotated by 90 degrees: the upright image is height x width. PIL gives a TIFF's size
    # upright already (and turns its pixels when it decodes them).
    if orientation in (5, 6, 7, 8) and image_format != ImageFormat.TIFF:
        width, height = height, width
    pil_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if pil_limit and width * height > pil_limit:  # where PIL refuses to open an image
        raise _bomb(f"{width * height:,} pixels exceed PIL's limit of {pil_limit:,}")
    if width <= 0 or height <= 0:
        raise ImageFileError(f"the header declares an empty image ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageFileError(
            f"decompression bomb guard: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,}; pass a larger max_pixels to upload it if it is genuine."
        )
    return width, height


def _open_supported(stream: BinaryIO) -> Image.Image:
    # Trying only the supported formats' readers halves the time to open a header.
    try:
        return Image.open(stream, formats=_READERS)
    except UnidentifiedImageError:
        stream.seek(0)
        other = Image.open(stream)  # an image in a format mleval does not take in: name it
    raise ImageFileError(f"{other.format} images are not supported; convert to one of: {', '.join(ImageFormat)}.")


_MAGIC = (
    (b"\xff\xd8\xff", ImageFormat.JPEG),
    (b"\x89PNG\r\n\x1a\n", ImageFormat.PNG),
    (b"GIF8", ImageFormat.GIF),
    (b"BM", ImageFormat.BMP),
    (b"II*\x00", ImageFormat.TIFF),
    (b"MM\x00*", ImageFormat.TIFF),
)


def _sniff_format(head: bytes) -> ImageFormat | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)


def _tail(stream: BinaryIO, file_size: int) -> bytes:
    stream.seek(max(0, file_size - _TAIL_BYTES))
    return stream.read(_TAIL_BYTES)


def _truncated(detail: str) -> ImageFileError:
    return ImageFileError(f"the file is truncated or damaged: {detail}; upload a complete copy.")


def _check_complete(image_format: ImageFormat, stream: BinaryIO, file_size: int) -> None:
    """Raises when the end of the file shows it was cut (a TIFF's pages are checked by the
    headers reader, or by ``_check_tiff_extents``)."""
    if image_format == ImageFormat.JPEG:
        if b"\xff\xd9" not in _tail(stream, file_size):
            raise _truncated("no JPEG end-of-image marker")
    elif image_format == ImageFormat.PNG:
        if b"IEND" not in _tail(stream, file_size)[-32:]:
            raise _truncated("no PNG IEND chunk at the end")
    elif image_format == ImageFormat.GIF:
        if not _tail(stream, file_size).rstrip(b"\x00").endswith(b"\x3b"):
            raise _truncated("no GIF trailer")
    elif image_format == ImageFormat.WEBP:
        stream.seek(4)
        (riff_size,) = struct.unpack("<I", stream.read(4))
        if riff_size + 8 > file_size:
            raise _truncated(f"the WebP header declares {riff_size + 8} bytes, the file has {file_size}")
    elif image_format == ImageFormat.BMP:
        stream.seek(2)
        (declared,) = struct.unpack("<I", stream.read(4))
        if declared > file_size:
            raise _truncated(f"the BMP header declares {declared} bytes, the file has {file_size}")


def _check_tiff_extents(image: Image.Image, file_size: int) -> None:
    # StripOffsets/StripByteCounts (273/279) or TileOffsets/TileByteCounts (324/325), per page.
    for page in range(getattr(image, "n_frames", 1)):
        try:
            image.seek(page)
        except (EOFError, OSError) as error:
            raise _truncated(f"TIFF page {page} cannot be read ({error})") from None
        tags = image.tag_v2
        for offsets_tag, counts_tag in ((273, 279), (324, 325)):
            offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
            if offsets is None or counts is None:
                continue
            offsets = offsets if isinstance(offsets, tuple) else (offsets,)
            counts = counts if isinstance(counts, tuple) else (counts,)
            end = max((o + c for o, c in zip(offsets, counts)), default=0)
            if end > file_size:
                raise _truncated(f"TIFF page {page} needs {end} bytes, the file has {file_size}")
    image.seek(0)
