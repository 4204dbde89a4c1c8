"""TIFF structure, as TIFF files and EXIF blocks share it: the byte order, and the first
directory's orientation tag."""

from __future__ import annotations

import struct

ORIENTATION = 0x0112
_BYTE_ORDERS = {b"II*\x00": "<", b"MM\x00*": ">"}


def byte_order(data: bytes, start: int = 0) -> str | None:
    """struct's byte order of the TIFF header at ``start``: "<", ">", or None when there is none."""
    return _BYTE_ORDERS.get(bytes(data[start:start + 4]))


def orientation(data: bytes, start: int = 0) -> int | None:
    """The first directory's orientation tag of the TIFF structure at ``start``: 0 when it has
    none, None when the directory is not laid out plainly."""
    order = byte_order(data, start)
    if order is None:
        return None
    (directory,) = struct.unpack_from(order + "I", data, start + 4)
    entries = start + directory + 2
    (count,) = struct.unpack_from(order + "H", data, entries - 2)
    for position in range(entries, entries + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", data, position)
        if tag == ORIENTATION:
            if kind != 3 or values != 1:  # not one SHORT
                return None
            return struct.unpack_from(order + "H", data, position + 8)[0]
    return 0
