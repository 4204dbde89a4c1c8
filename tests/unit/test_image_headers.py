"""The header readers against PIL: the same size, mode, frames and orientation on every layout
they take, and None (so PIL reads it) on the layouts they leave to PIL."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import BmpImagePlugin, GifImagePlugin, Image, PngImagePlugin

from mleval.core.enums import ImageFormat
from mleval.core.errors import ImageFileError
from mleval.images.headers import read_header
from mleval.images.probe import probe_image
from mleval.synthetic import generate_image_files

_RNG = np.random.default_rng(0)


def _image(mode: str, size=(37, 21)) -> Image.Image:
    width, height = size
    if mode in ("I;16", "I;16B", "I", "F"):
        return Image.fromarray(_RNG.integers(0, 65535, (height, width), np.uint16)).convert(mode)
    if mode == "P":
        return _image("RGB", size).quantize(16)
    if mode == "1":
        return _image("L", size).convert("1")
    bands = len(mode) if mode != "CMYK" else 4
    return Image.frombytes(mode, size, _RNG.integers(0, 255, (height, width, bands), np.uint8).tobytes())


def _saved(image: Image.Image | list[Image.Image], fmt: str, **options) -> bytes:
    frames = image if isinstance(image, list) else [image]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=len(frames) > 1, append_images=frames[1:], **options)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _grey_gif() -> bytes:
    return _saved(_image("L"), "GIF")


def _gif_frame_beyond_the_screen() -> bytes:
    data = bytearray(_grey_gif())
    data[6:10] = (30).to_bytes(2, "little") + (15).to_bytes(2, "little")  # screen smaller than the frame
    return bytes(data)


def _png_16_bit_colour(channels: int) -> bytes:
    return cv2.imencode(".png", _RNG.integers(0, 65535, (21, 37, channels), np.uint16))[1].tobytes()


def _top_down_bmp() -> bytes:
    data = bytearray(_saved(_image("RGB"), "BMP"))
    data[22:26] = (-21).to_bytes(4, "little", signed=True)
    return bytes(data)


def _text(note: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", note)
    return info


def _pages(mode: str, count: int) -> list[Image.Image]:
    return [_image(mode) for _ in range(count)]


READ = {  # layouts the readers take
    "jpeg rgb": _saved(_image("RGB"), "JPEG"),
    "jpeg grey": _saved(_image("L"), "JPEG"),
    "jpeg cmyk": _saved(_image("CMYK"), "JPEG"),
    "jpeg progressive": _saved(_image("RGB"), "JPEG", progressive=True, optimize=True),
    "jpeg exif rotated": _saved(_image("RGB"), "JPEG", exif=_exif(6)),
    "jpeg exif upside down, icc, comment": _saved(_image("RGB"), "JPEG", exif=_exif(3), icc_profile=b"\0" * 300,
                                                  comment=b"a note"),
    "jpeg exif without orientation": _saved(_image("RGB"), "JPEG", exif=Image.Exif().tobytes()),
    "png rgb": _saved(_image("RGB"), "PNG"),
    "png rgba": _saved(_image("RGBA"), "PNG"),
    "png grey": _saved(_image("L"), "PNG"),
    "png grey alpha": _saved(_image("LA"), "PNG"),
    "png 16-bit grey": _saved(_image("I;16"), "PNG"),
    "png 16-bit rgb": _png_16_bit_colour(3),
    "png 16-bit rgba": _png_16_bit_colour(4),
    "png bilevel": _saved(_image("1"), "PNG"),
    "png palette": _saved(_image("P"), "PNG"),
    "png 4-bit palette, transparency": _saved(_image("P"), "PNG", bits=4, transparency=0),
    "png text and icc": _saved(_image("RGB"), "PNG", icc_profile=b"\0" * 300, pnginfo=_text("a note")),
    "gif grey": _grey_gif(),
    "gif colour": _saved(_image("P"), "GIF"),
    "gif animated, looping, comment": _saved(_pages("P", 3), "GIF", loop=0, duration=50, comment=b"hi"),
    "gif transparency": _saved(_image("P"), "GIF", transparency=3),
    "gif frame beyond the screen": _gif_frame_beyond_the_screen(),
    "bmp rgb": _saved(_image("RGB"), "BMP"),
    "bmp rgba (32-bit)": _saved(_image("RGBA"), "BMP"),
    "bmp grey": _saved(_image("L"), "BMP"),
    "bmp bilevel": _saved(_image("1"), "BMP"),
    "bmp palette": _saved(_image("P"), "BMP"),
    "bmp top-down": _top_down_bmp(),
    "tiff rgb": _saved(_image("RGB"), "TIFF"),
    "tiff rgb lzw": _saved(_image("RGB"), "TIFF", compression="tiff_lzw"),
    "tiff rgb deflate": _saved(_image("RGB"), "TIFF", compression="tiff_deflate"),
    "tiff rgb packbits": _saved(_image("RGB"), "TIFF", compression="packbits"),
    "tiff rgb jpeg": _saved(_image("RGB"), "TIFF", compression="jpeg"),
    "tiff rgba": _saved(_image("RGBA"), "TIFF"),
    "tiff grey": _saved(_image("L"), "TIFF"),
    "tiff grey alpha": _saved(_image("LA"), "TIFF"),
    "tiff 16-bit": _saved(_image("I;16"), "TIFF"),
    "tiff 16-bit big-endian": _saved(_image("I;16B"), "TIFF"),
    "tiff 32-bit integer": _saved(_image("I"), "TIFF"),
    "tiff float": _saved(_image("F"), "TIFF"),
    "tiff bilevel": _saved(_image("1"), "TIFF"),
    "tiff palette": _saved(_image("P"), "TIFF"),
    "tiff cmyk": _saved(_image("CMYK"), "TIFF"),
    "tiff rotated": _saved(_image("RGB"), "TIFF", exif=_exif(6)),
    "tiff three pages": _saved(_pages("L", 3), "TIFF"),
    "tiff pages of two modes": _saved([_image("RGB"), _image("I;16")], "TIFF"),
}

LEFT_TO_PIL = {  # layouts the readers leave to PIL
    "apng": _saved(_pages("RGB", 2), "PNG"),
    "mpo": _saved(_pages("RGB", 2), "MPO"),
    "jpeg orientation in xmp only": _saved(
        _image("RGB"), "JPEG", xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
                               b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'),
    "big tiff": _saved(_image("RGB"), "TIFF", big_tiff=True),
}


def _pil_facts(data: bytes) -> tuple:
    """What PIL reads: size, mode, frames, and the orientation as the probe takes it (EXIF for
    JPEG, the first directory's tag for TIFF, none for the others)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format in ("JPEG", "MPO"):
            orientation = image.getexif().get(0x0112, 1)
        else:
            orientation = image.tag_v2.get(0x0112, 1) if image.format == "TIFF" else 1
        return (*image.size, image.mode, getattr(image, "n_frames", 1), orientation)


def _format(data: bytes) -> ImageFormat:
    with Image.open(io.BytesIO(data)) as image:
        return ImageFormat.JPEG if image.format == "MPO" else ImageFormat(image.format)


@pytest.mark.parametrize("layout", list(READ))
def test_headers_read_match_pil(layout):
    data = READ[layout]
    header = read_header(_format(data), data)
    assert header is not None, "expected the reader to take this layout"
    assert (header.width, header.height, header.mode, header.frames, header.orientation) == _pil_facts(data)


@pytest.mark.parametrize("layout", list(LEFT_TO_PIL))
def test_unusual_layouts_are_left_to_pil_and_still_probed(layout):
    data = LEFT_TO_PIL[layout]
    assert read_header(_format(data), data) is None
    info = probe_image(data)
    width, height, mode, frames, orientation = _pil_facts(data)
    if orientation in (5, 6, 7, 8) and info.format != ImageFormat.TIFF:
        width, height = height, width
    assert (info.width, info.height, info.mode, info.pages, info.exif_orientation) == (
        width, height, mode, frames, orientation)


def test_readers_follow_pils_settings(monkeypatch):
    monkeypatch.setattr(GifImagePlugin, "LOADING_STRATEGY", GifImagePlugin.LoadingStrategy.RGB_ALWAYS)
    assert read_header(ImageFormat.GIF, READ["gif colour"]) is None
    monkeypatch.setattr(BmpImagePlugin, "USE_RAW_ALPHA", True)
    assert read_header(ImageFormat.BMP, READ["bmp rgba (32-bit)"]).mode == _pil_facts(READ["bmp rgba (32-bit)"])[2]


def _outcome(source) -> object:
    try:
        return probe_image(source)
    except ImageFileError:
        return "refused"


@pytest.mark.parametrize("layout", list(READ))
def test_damaged_headers_get_the_same_verdict_from_the_readers_and_from_pil(layout):
    # Bytes go through the readers (PIL only where they leave a file to it), a stream through
    # PIL alone: a file changed at random in its first bytes, or cut, is refused by both or
    # read the same by both.
    rng = np.random.default_rng(sum(layout.encode()))
    data = READ[layout]
    for _ in range(60):
        damaged = bytearray(data)
        for position in rng.integers(0, min(len(data), 300), int(rng.integers(1, 3))):
            damaged[position] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            damaged = damaged[:int(rng.integers(1, len(data)))]
        damaged = bytes(damaged)
        assert _outcome(damaged) == _outcome(io.BytesIO(damaged))


def test_every_generated_file_takes_the_readers(tmp_path):
    # The files benchmarks/ingest.py measures: all of their layouts are read here, not by PIL.
    for path in generate_image_files(tmp_path, count=60, min_size=16, max_size=96, seed=3):
        data = path.read_bytes()
        fmt = _format(data)
        if fmt == ImageFormat.WEBP:
            continue  # read by webp_header
        header = read_header(fmt, data)
        assert header is not None, path.name
        assert (header.width, header.height, header.mode, header.frames, header.orientation) == _pil_facts(data)
