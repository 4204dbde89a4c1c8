"""GIF: the logical screen, the first frame's palette, and a walk over the blocks to count frames."""

from __future__ import annotations

import struct

from PIL import GifImagePlugin

from mleval.images.headers import Header

_GREY_RAMP = bytes(value for index in range(256) for value in (index, index, index))


def read(data: bytes) -> Header | None:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    if GifImagePlugin.LOADING_STRATEGY == GifImagePlugin.LoadingStrategy.RGB_ALWAYS:
        return None  # PIL then opens the first frame as RGB or RGBA
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    position = 13
    coloured = False  # PIL reads a palette of greys 0..255 in order as mode L, any other as P
    if flags & 0x80:
        position, coloured = _palette(data, position, flags)
    frames = 0
    while position < len(data):
        block = data[position]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then data sub-blocks
            if not data[position + 2]:
                return None  # no sub-blocks: PIL reads the next byte as one
            position = _skip_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor, palette, LZW code size, data sub-blocks
            left, top, frame_width, frame_height, frame_flags = struct.unpack_from("<HHHHB", data, position + 1)
            position += 10
            frame_coloured = coloured  # without a palette of its own, a frame takes the global one
            if frame_flags & 0x80:
                position, frame_coloured = _palette(data, position, frame_flags)
            if not frames:  # PIL takes the first frame's mode, and its extent when larger than the screen
                width, height = max(width, left + frame_width), max(height, top + frame_height)
                coloured = frame_coloured
            frames += 1
            position = _skip_sub_blocks(data, position + 1)
        else:  # PIL steps over stray bytes between blocks
            position += 1
    if not frames:
        return None
    return Header(width, height, "P" if coloured else "L", frames)


def _palette(data: bytes, position: int, flags: int) -> tuple[int, bool]:
    size = 3 << ((flags & 7) + 1)
    return position + size, data[position:position + size] != _GREY_RAMP[:size]


def _skip_sub_blocks(data: bytes, position: int) -> int:
    while length := data[position]:
        position += length + 1
    return position + 1
