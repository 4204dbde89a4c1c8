"""JPEG: the marker segments up to the first scan; an 8-bit frame of 1, 3 or 4 components."""

from __future__ import annotations

import struct

from PIL import JpegImagePlugin

from mleval.images.headers import Header, exif

_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # components -> mode, as PIL's JPEG reader maps them
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
        handler = JpegImagePlugin.MARKER.get(0xFF00 | marker, (None, None, None))[2]  # PIL's table of markers
        if handler is None:  # a marker PIL refuses, or one it reads without a length
            return None
        (length,) = struct.unpack_from(">H", data, position + 2)
        segment = position + 4
        if length < 2 or position + 2 + length > len(data):  # PIL reads each segment whole
            return None
        if marker == 0xDA:  # start of scan: the header is complete
            break
        if handler is JpegImagePlugin.SOF:
            if frame is not None or length < 8:
                return None
            frame = struct.unpack_from(">BHHB", data, segment)  # bits, height, width, components
        elif handler is JpegImagePlugin.DQT and not _quantization_tables_fit(data[segment:position + 2 + length]):
            return None
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


def _quantization_tables_fit(segment: bytes) -> bool:
    """Whether a DQT segment holds whole tables of 64 one- or two-byte values, as PIL requires."""
    position = 0
    while position < len(segment):
        position += 1 + 64 * (1 if segment[position] < 16 else 2)
    return position == len(segment)
