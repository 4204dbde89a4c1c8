"""TIFF: every page's directory in a classic (not Big) TIFF, with one sample format per pixel,
interleaved samples and a compression other than old-style JPEG."""

from __future__ import annotations

import struct

from PIL import TiffImagePlugin

from mleval.images.headers import Header, exif

_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC, _FILL_ORDER = 256, 257, 258, 259, 262, 266
_STRIP_OFFSETS, _SAMPLES, _STRIP_BYTES, _PLANAR = 273, 277, 279, 284
_TILE_OFFSETS, _TILE_BYTES, _EXTRA_SAMPLES, _SAMPLE_FORMAT = 324, 325, 338, 339
_NEEDED = frozenset({_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC, _FILL_ORDER, _STRIP_OFFSETS, _SAMPLES,
                     _STRIP_BYTES, _PLANAR, _TILE_OFFSETS, _TILE_BYTES, _EXTRA_SAMPLES, _SAMPLE_FORMAT,
                     exif.ORIENTATION, 0xBC01})
_UNITS = {3: "H", 4: "I"}  # SHORT, LONG: the types these tags take
_MAX_PAGES = 10_000


def read(data: bytes) -> Header | None:
    order = exif.byte_order(data)
    if order is None:
        return None
    (directory,) = struct.unpack_from(order + "I", data, 4)
    first, pages, seen = None, 0, set()
    while directory:
        if directory in seen or pages == _MAX_PAGES:
            return None
        seen.add(directory)
        tags, directory = _directory(data, order, directory)
        page = None if tags is None else _page(data, order, tags)
        if page is None:
            return None
        first = first or page
        pages += 1
    if first is None:
        return None
    width, height, mode, orientation = first
    if orientation in (5, 6, 7, 8):  # PIL gives a TIFF's size upright
        width, height = height, width
    return Header(width, height, mode, pages, orientation or 1)


def _directory(data: bytes, order: str, position: int) -> tuple[dict[int, tuple[int, ...]] | None, int]:
    """The tags this reader uses (None when one has a type they do not take), and the position
    of the next directory."""
    (count,) = struct.unpack_from(order + "H", data, position)
    tags: dict[int, tuple[int, ...]] | None = {}
    for entry in range(position + 2, position + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag in _NEEDED and tags is not None:
            unit = _UNITS.get(kind)
            if unit is None:
                tags = None
                continue
            inline = values * struct.calcsize(unit) <= 4
            start = entry + 8 if inline else struct.unpack_from(order + "I", data, entry + 8)[0]
            tags[tag] = struct.unpack_from(f"{order}{values}{unit}", data, start)
    (following,) = struct.unpack_from(order + "I", data, position + 2 + 12 * count)
    return tags, following


def _page(data: bytes, order: str, tags: dict[int, tuple[int, ...]]) -> tuple[int, int, str, int] | None:
    """Width, height, PIL's mode and orientation of one page; None when PIL reads it another way
    or its image data runs past the end of the file."""
    compression = tags.get(_COMPRESSION, (1,))[0]
    if (0xBC01 in tags or compression == 6 or compression not in TiffImagePlugin.COMPRESSION_INFO
            or tags.get(_PLANAR, (1,))[0] != 1 or _WIDTH not in tags or _HEIGHT not in tags):
        return None
    for offsets_tag, counts_tag in ((_STRIP_OFFSETS, _STRIP_BYTES), (_TILE_OFFSETS, _TILE_BYTES)):
        ends = [offset + count for offset, count in zip(tags.get(offsets_tag, ()), tags.get(counts_tag, ()))]
        if ends and max(ends) > len(data):
            return None
    bits, samples = tags.get(_BITS, (1,)), tags.get(_SAMPLES, (1,))[0]
    if len(bits) == 1:
        bits *= samples  # one value for every sample
    sample_format = tags.get(_SAMPLE_FORMAT, (1,))
    if len(set(sample_format)) == 1:
        sample_format = sample_format[:1]  # one format for all samples, as PIL keys it
    key = ("II" if order == "<" else "MM").encode(), tags.get(_PHOTOMETRIC, (0,))[0], sample_format, \
        tags.get(_FILL_ORDER, (1,))[0], bits, tags.get(_EXTRA_SAMPLES, ())
    mode = TiffImagePlugin.OPEN_INFO.get(key, (None,))[0] if len(bits) == samples else None
    if mode is None:
        return None
    return tags[_WIDTH][0], tags[_HEIGHT][0], mode, tags.get(exif.ORIENTATION, (0,))[0]
