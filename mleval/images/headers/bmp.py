"""BMP: an uncompressed bitmap with a Windows info header (version 3, 4 or 5)."""

from __future__ import annotations

import struct

from PIL import BmpImagePlugin

from mleval.images.headers import Header

_INFO_HEADER_SIZES = (40, 52, 56, 64, 108, 124)


def read(data: bytes) -> Header | None:
    if data[:2] != b"BM":
        return None
    header_size, width, height, _planes, bits, compression = struct.unpack_from("<IIIHHI", data, 14)
    if header_size not in _INFO_HEADER_SIZES or compression != 0:  # 0: no compression, no bit fields
        return None
    if height >> 24 == 0xFF:  # a negative height: the rows run top-down
        height = 2**32 - height
    mode = BmpImagePlugin.BIT2MODE.get(bits, (None,))[0]  # the table PIL reads with
    if mode == "P":
        mode = _palette_mode(data, 14 + header_size, bits)
    elif bits == 32 and BmpImagePlugin.USE_RAW_ALPHA:
        mode = "RGBA"
    return None if mode is None else Header(width, height, mode)


def _palette_mode(data: bytes, position: int, bits: int) -> str | None:
    # PIL reads a palette of greys in order (black and white for 2 colours) as mode L (or 1).
    (colours,) = struct.unpack_from("<I", data, 46)
    colours = colours or 1 << bits
    if colours > 256:
        return None
    palette = data[position:position + 4 * colours]
    if len(palette) < 4 * colours:
        return None
    greys = bytes((0, 255)) if colours == 2 else bytes(range(colours))
    grey = palette[0::4] == palette[1::4] == palette[2::4] == greys
    return ("1" if colours <= 2 else "L") if grey else "P"
