"""Read an image file's facts (format, size, mode, pages, orientation) and refuse one that is not whole.

Three steps, each done by a library:

1. the first bytes name the format (a magic-byte sniff), so a file of another kind is named;
2. PIL reads the header (``Image.open(formats=[...])``), under PIL's ``Image.MAX_IMAGE_PIXELS``
   and our ``max_pixels``: a decompression bomb is refused before anything is decoded;
3. the file is decoded to prove it is complete. A JPEG is decoded by libjpeg-turbo in strict
   mode (simplejpeg) at 1/8 scale, which still reads every entropy-coded byte: PIL steps over a
   JPEG cut short that ends in an end-of-image marker and fills the rest with grey. Every other
   format is decoded by PIL, every page or frame of it, with truncated images refused
   (PIL's default: ``ImageFile.LOAD_TRUNCATED_IMAGES`` off).

Decoding costs time and, for PNG, TIFF, GIF, BMP and WebP, the image's memory (a 20,000 x 20,000
RGB TIFF needs 1.2 GB for a moment): the price of knowing that what is stored can be read back.
"""

from __future__ import annotations

import io
import os
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
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from mleval.core.enums import ImageFormat
from mleval.core.errors import ImageFileError

DEFAULT_MAX_PIXELS = 400_000_000  # 20,000 x 20,000
_PIL_FORMATS = {  # PIL format name -> ours
    "JPEG": ImageFormat.JPEG,
    "MPO": ImageFormat.JPEG,  # multi-picture JPEG from cameras; the first picture is a plain JPEG
    "PNG": ImageFormat.PNG,
    "TIFF": ImageFormat.TIFF,
    "BMP": ImageFormat.BMP,
    "GIF": ImageFormat.GIF,
    "WEBP": ImageFormat.WEBP,
}
# Formats whose EXIF PIL reads with the header; PNG keeps it anywhere, and reading it decodes the pixels.
_EXIF_FORMATS = (ImageFormat.JPEG, ImageFormat.TIFF, ImageFormat.WEBP)
# libjpeg's warnings that say the entropy-coded data ran out: the rest of the picture is missing.
_JPEG_CUT_SHORT = ("premature end",)


@dataclass(frozen=True)
class ImageInfo:
    format: ImageFormat
    width: int
    height: int
    mode: str  # PIL mode: "RGB", "RGBA", "L", "I;16", ...
    pages: int  # frames of a multi-page TIFF or an animated GIF/WebP
    file_size: int
    exif_orientation: int = 1  # width/height above are of the upright image, as decoders show it


def probe_image(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Header facts of an image file, a whole file's bytes or a seekable binary stream.

    Raises :class:`ImageFileError` with the reason when the file is empty, not an image,
    of an unsupported format, larger than ``max_pixels``, truncated or damaged.
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
    """``data``: the file's bytes when the caller holds them already (``stream`` reads the same)."""
    stream.seek(0, os.SEEK_END)
    file_size = stream.tell()
    if file_size == 0:
        raise ImageFileError("the file is empty (0 bytes).")
    stream.seek(0)
    head = stream.read(16)
    sniffed = _sniff_format(head)
    stream.seek(0)
    if sniffed is None:
        raise _not_supported(stream)
    if sniffed == ImageFormat.WEBP and int.from_bytes(head[4:8], "little") + 8 > file_size:
        # libwebp would only say it "could not create decoder object"
        raise _truncated(f"the RIFF header declares {int.from_bytes(head[4:8], 'little') + 8} bytes, "
                         f"the file has {file_size}")
    with warnings.catch_warnings():  # PIL warns of damage it steps over; the verdict here says what matters
        warnings.simplefilter("ignore")
        try:
            image = Image.open(stream, formats=[sniffed.value])
        except Image.DecompressionBombError as error:
            raise _bomb(str(error)) from None
        except Exception as error:  # PIL's readers raise many kinds of error on a damaged header
            raise ImageFileError(f"the file starts like a {sniffed} image but its header is damaged "
                                 f"({_detail(error)}).") from None
        with image:
            image_format = _PIL_FORMATS[image.format]
            orientation = _exif_orientation(image, image_format)
            width, height = _upright_within_limit(image_format, *image.size, orientation, max_pixels)
            mode = image.mode
            pages = _decode_every_page(image, image_format, stream, data)
    return ImageInfo(image_format, width, height, mode, pages, file_size, orientation)


def _decode_every_page(image: Image.Image, image_format: ImageFormat, stream: BinaryIO,
                       data: bytes | None) -> int:
    """The number of pages, each decoded once: raises when any of them is cut short or damaged."""
    if image_format == ImageFormat.JPEG:
        if data is None:
            stream.seek(0)
            data = stream.read()
        _decode_jpeg(data)
        return 1
    pages = getattr(image, "n_frames", 1) if image_format != ImageFormat.GIF else 0
    page = 0
    try:
        while True:
            image.load()
            page += 1
            if image_format != ImageFormat.GIF and page >= pages:
                return pages
            image.seek(page)
    except EOFError:  # a GIF's frames are counted by walking them
        if image_format == ImageFormat.GIF and page:
            return page
        raise _truncated(f"page {page + 1} cannot be read") from None
    except Exception as error:
        where = f"page {page + 1} of {pages}: " if pages > 1 else ""
        raise _truncated(where + _detail(error)) from None


def _decode_jpeg(data: bytes) -> None:
    import simplejpeg

    try:
        _, _, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        target = {"CMYK": "CMYK", "YCCK": "CMYK", "Gray": "GRAY"}.get(colorspace, "RGB")
        simplejpeg.decode_jpeg(data, colorspace=target, min_factor=8, strict=True)
    except ValueError as error:
        if any(words in str(error).lower() for words in _JPEG_CUT_SHORT):
            raise _truncated(str(error).rstrip(".")) from None
        try:  # another recoverable libjpeg warning (e.g. extraneous bytes before a marker): PIL shows it too
            simplejpeg.decode_jpeg(data, colorspace=target, min_factor=8, strict=False)
        except ValueError as hard:
            raise _truncated(str(hard).rstrip(".")) from None


def _exif_orientation(image: Image.Image, image_format: ImageFormat) -> int:
    if image_format not in _EXIF_FORMATS:
        return 1
    try:  # a TIFF's own tags hold it, already read: getexif() would read the directory again
        tags = image.tag_v2 if image_format == ImageFormat.TIFF else image.getexif()
        return int(tags.get(0x0112, 1) or 1)
    except Exception:  # a damaged EXIF block does not make the pixels unusable
        return 1


def _upright_within_limit(image_format: ImageFormat, width: int, height: int, orientation: int,
                          max_pixels: int) -> tuple[int, int]:
    # Stored rotated by 90 degrees: the upright image is height x width. PIL gives a TIFF's size
    # upright already (and turns its pixels when it decodes them).
    if orientation in (5, 6, 7, 8) and image_format != ImageFormat.TIFF:
        width, height = height, width
    if width <= 0 or height <= 0:
        raise ImageFileError(f"the header declares an empty image ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageFileError(
            f"decompression bomb guard: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,}; pass a larger max_pixels to upload it if it is genuine."
        )
    return width, height


def _bomb(detail: str) -> ImageFileError:
    return ImageFileError(
        f"decompression bomb: {detail} If the image is genuine, raise max_pixels and PIL.Image.MAX_IMAGE_PIXELS.")


def _truncated(detail: str) -> ImageFileError:
    return ImageFileError(f"the file is truncated or damaged: {detail}; upload a complete copy.")


def _detail(error: Exception) -> str:
    return str(error) or type(error).__name__


def _not_supported(stream: BinaryIO) -> ImageFileError:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = Image.open(stream).format  # an image in a format mleval does not take in: name it
    except Exception:
        return ImageFileError(
            "not an image, or an image format mleval does not read; supported formats: "
            + ", ".join(ImageFormat) + "."
        )
    return ImageFileError(f"{other} images are not supported; convert to one of: {', '.join(ImageFormat)}.")


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
