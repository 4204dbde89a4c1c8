"""TIFF: every page's directory in a classic (not Big) TIFF, with one sample format per pixel,
interleaved samples and a compression other than old-style JPEG.

Directories are read as PIL reads them: the first entry of a tag counts, entries of an unknown
type or without values are skipped, and the tag data stored outside the directories may add up
to the file's size at most.
"""

from __future__ import annotations

import struct

from PIL import TiffImagePlugin

from mleval.images.headers import Header, exif

_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC, _FILL_ORDER = 256, 257, 258, 259, 262, 266
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES, _PLANAR = 273, 277, 278, 279, 284
_COLOR_MAP, _TILE_OFFSETS, _TILE_BYTES, _EXTRA_SAMPLES, _SAMPLE_FORMAT = 320, 324, 325, 338, 339
_MEDIA_PHOTO = 0xBC01  # a Windows Media Photo file, which PIL refuses
_NEEDED = frozenset({_WIDTH, _HEIGHT, _BITS, _COMPRESSION, _PHOTOMETRIC, _FILL_ORDER, _STRIP_OFFSETS, _SAMPLES,
                     _ROWS_PER_STRIP, _STRIP_BYTES, _PLANAR, _COLOR_MAP, _TILE_OFFSETS, _TILE_BYTES, _EXTRA_SAMPLES,
                     _SAMPLE_FORMAT, exif.ORIENTATION, _MEDIA_PHOTO})
_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
_UNITS = {3: "H", 4: "I"}  # SHORT, LONG: the types the needed tags take here
_MAX_PAGES = 10_000


class _NotPlain(Exception):
    """The file is laid out in a way this reader leaves to PIL."""


def read(data: bytes) -> Header | None:
    order = exif.byte_order(data)
    if order is None:
        return None
    (directory,) = struct.unpack_from(order + "I", data, 4)
    pages: list[tuple[int, int, str, int]] = []
    seen, budget = set(), len(data)
    try:
        while directory:
            if directory in seen or len(pages) == _MAX_PAGES:
                return None
            seen.add(directory)
            tags, budget, directory = _directory(data, order, directory, budget)
            pages.append(_page(data, order, tags))
    except _NotPlain:
        return None
    if not pages:
        return None
    width, height, mode, orientation = pages[0]
    if orientation in (5, 6, 7, 8):  # PIL gives a TIFF's size upright
        width, height = height, width
    return Header(width, height, mode, len(pages), orientation or 1)


def _directory(data: bytes, order: str, position: int, budget: int) -> tuple[dict[int, tuple[int, ...]], int, int]:
    """The needed tags of the directory at ``position``, the tag data budget left after it, and
    the position of the next directory."""
    (count,) = struct.unpack_from(order + "H", data, position)
    tags: dict[int, tuple[int, ...]] = {}
    spent = 0
    for entry in range(position + 2, position + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag in tags or kind not in _TYPE_BYTES or not values:
            continue
        size, start = values * _TYPE_BYTES[kind], entry + 8
        if size > 4:
            spent += size
            start = struct.unpack_from(order + "I", data, entry + 8)[0]
            if spent > budget or start + size > len(data):  # PIL drops the tag
                if tag in _NEEDED:
                    raise _NotPlain(f"tag {tag} dropped")
                continue
        if tag in _NEEDED:
            unit = _UNITS.get(kind)
            if unit is None:
                raise _NotPlain(f"tag {tag} of type {kind}")
            tags[tag] = struct.unpack_from(f"{order}{values}{unit}", data, start)
    (following,) = struct.unpack_from(order + "I", data, position + 2 + 12 * count)
    return tags, budget - spent, following


def _page(data: bytes, order: str, tags: dict[int, tuple[int, ...]]) -> tuple[int, int, str, int]:
    """Width, height, PIL's mode and orientation of one page."""
    compression = tags.get(_COMPRESSION, (1,))[0]
    if (_MEDIA_PHOTO in tags or compression == 6 or compression not in TiffImagePlugin.COMPRESSION_INFO
            or tags.get(_PLANAR, (1,))[0] != 1 or _WIDTH not in tags or _HEIGHT not in tags
            or (_STRIP_OFFSETS not in tags and _TILE_OFFSETS not in tags)):
        raise _NotPlain("a layout PIL reads another way")
    for offsets_tag, counts_tag in ((_STRIP_OFFSETS, _STRIP_BYTES), (_TILE_OFFSETS, _TILE_BYTES)):
        offsets, counts = tags.get(offsets_tag, ()), tags.get(counts_tag, ())
        if len(offsets) != len(counts) or any(offset + count > len(data) for offset, count in zip(offsets, counts)):
            raise _NotPlain("image data missing or past the end of the file")
    bits, samples = tags.get(_BITS, (1,)), tags.get(_SAMPLES, (1,))[0]
    if len(bits) == 1:
        bits *= samples  # one value for every sample
    sample_format = tags.get(_SAMPLE_FORMAT, (1,))
    if len(set(sample_format)) == 1:
        sample_format = sample_format[:1]  # one format for all samples, as PIL keys it
    key = ("II" if order == "<" else "MM").encode(), tags.get(_PHOTOMETRIC, (0,))[0], sample_format, \
        tags.get(_FILL_ORDER, (1,))[0], bits, tags.get(_EXTRA_SAMPLES, ())
    mode = TiffImagePlugin.OPEN_INFO.get(key, (None,))[0] if len(bits) == samples else None
    if mode is None or (mode in ("P", "PA") and _COLOR_MAP not in tags):
        raise _NotPlain("a pixel layout PIL does not read, or a palette without its colour map")
    return tags[_WIDTH][0], tags[_HEIGHT][0], mode, tags.get(exif.ORIENTATION, (0,))[0]
