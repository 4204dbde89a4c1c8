"""A WebP file's header facts from its RIFF chunks, without a decoder.

PIL opens a WebP through libwebp's animation decoder, which allocates a canvas for the
pixels first: a third of ingest's time per WebP file. The container says all a probe needs
(https://developers.google.com/speed/webp/docs/riff_container): the canvas size, whether
there is alpha, the animation frames and the EXIF chunk. Modes are PIL's ("RGB", "RGBA").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

_ALPHA_FLAG, _ANIMATION_FLAG = 0x10, 0x02  # VP8X feature flags


class WebPHeaderError(ValueError):
    """The RIFF container or its first chunk is not a WebP header."""


@dataclass(frozen=True)
class WebPHeader:
    width: int
    height: int
    mode: str
    frames: int
    exif: bytes | None


def read_webp_header(stream: BinaryIO, file_size: int) -> WebPHeader:
    """Header facts of the WebP file in ``stream`` (seekable, ``file_size`` bytes long)."""
    stream.seek(0)
    head = stream.read(30)
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise WebPHeaderError("no RIFF/WEBP header")
    end = min(file_size, 8 + struct.unpack_from("<I", head, 4)[0])
    first = head[12:16]
    if first == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise WebPHeaderError("no VP8 start code")
        width, height = (value & 0x3FFF for value in struct.unpack_from("<HH", head, 26))
        return WebPHeader(width, height, "RGB", 1, None)
    if first == b"VP8L":
        (bits,) = struct.unpack_from("<I", head, 21)
        if head[20] != 0x2F or bits >> 29:
            raise WebPHeaderError("no VP8L signature")
        mode = "RGBA" if bits >> 28 & 1 else "RGB"
        return WebPHeader((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, mode, 1, None)
    if first != b"VP8X":
        raise WebPHeaderError(f"unknown first chunk {first!r}")
    flags = head[20]
    width = int.from_bytes(head[24:27], "little") + 1
    height = int.from_bytes(head[27:30], "little") + 1
    frames, exif = _frames_and_exif(stream, end, animated=bool(flags & _ANIMATION_FLAG))
    return WebPHeader(width, height, "RGBA" if flags & _ALPHA_FLAG else "RGB", frames, exif)


def _frames_and_exif(stream: BinaryIO, end: int, *, animated: bool) -> tuple[int, bytes | None]:
    frames, exif, offset = 0, None, 12
    while offset + 8 <= end:
        stream.seek(offset)
        name, size = struct.unpack("<4sI", stream.read(8))
        if offset + 8 + size > end:
            raise WebPHeaderError(f"chunk {name!r} at byte {offset} runs past the end of the file")
        if name == b"ANMF":
            frames += 1
        elif name == b"EXIF":
            exif = stream.read(size)
        offset += 8 + size + (size & 1)  # chunks are padded to an even size
    return (frames if animated else 1) or 1, exif
