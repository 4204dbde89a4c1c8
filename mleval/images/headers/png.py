"""PNG: the IHDR chunk, and the chunks before the first IDAT (an APNG is left to PIL)."""

from __future__ import annotations

import struct
import zlib

from PIL import PngImagePlugin

from mleval.images.headers import Header

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read(data: bytes) -> Header | None:
    if data[:8] != _SIGNATURE or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    width, height, bits, color, compression, filtering = struct.unpack_from(">IIBBBB", data, 16)
    mode = PngImagePlugin._MODES.get((bits, color), (None,))[0]  # the table PIL reads with
    if mode is None or compression or filtering:
        return None
    position = 8
    while True:  # PIL checks the checksum of every chunk before the first IDAT; an acTL makes an animation
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IDAT":
            return Header(width, height, mode)
        if not kind.isalpha() or kind in (b"acTL", b"IEND") or not _crc_ok(data, position, length):
            return None
        position += 12 + length


def _crc_ok(data: bytes, position: int, length: int) -> bool:
    stored = struct.unpack_from(">I", data, position + 8 + length)[0]
    return zlib.crc32(data[position + 4:position + 8 + length]) == stored
