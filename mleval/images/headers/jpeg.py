"""JPEG: the marker segments up to the first scan; an 8-bit frame of 1, 3 or 4 components."""

from __future__ import annotations

import struct

from mleval.images.headers import Header, exif

_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # components -> mode, as PIL's JPEG reader maps them
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_EXIF, _XMP = b"Exif\x00\x00", b"http://ns.adobe.com/xap/1.0/\x00"


def read(data: bytes) -> Header | None:
    if data[:3] != b"\xff\xd8\xff":
        return None
    frame = orientation = None  # orientation: None until an EXIF segment is read, 0 if it has none
    has_xmp = False
    position = 2
    while True:
        if data[position] != 0xFF:
            return None  # bytes between segments: PIL skips them
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xDA:  # start of scan: the header is complete
            break
        if marker < 0xC0 or 0xD0 <= marker <= 0xD9:  # not a segment with a length here
            return None
        (length,) = struct.unpack_from(">H", data, position + 2)
        segment = position + 4
        if marker in _START_OF_FRAME:
            if frame is not None:
                return None
            frame = struct.unpack_from(">BHHB", data, segment)  # bits, height, width, components
        elif marker == 0xE1 and orientation is None and data[segment:segment + 6] == _EXIF:
            orientation = exif.orientation(data, segment + 6)
            if orientation is None:
                return None
        elif marker == 0xE1 and data[segment:segment + 29] == _XMP:
            has_xmp = True
        elif marker == 0xE2 and data[segment:segment + 4] == b"MPF\x00":
            return None  # a multi-picture file: PIL counts its pictures
        position += 2 + length
    if frame is None:
        return None
    bits, height, width, components = frame
    mode = _MODES.get(components)
    if bits != 8 or mode is None or not width or not height or (has_xmp and not orientation):
        return None  # without EXIF orientation PIL looks for one in the XMP packet
    return Header(width, height, mode, orientation=orientation or 1)
