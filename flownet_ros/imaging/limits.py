"""Frame sizes the node accepts, decided before any pixel is decoded.

A compressed image of a few kilobytes can declare a huge frame (a 16 KB PNG of 4096x4096, a few hundred
KB for 16384x16384): its size is read from the PNG / JPEG header and checked first. Every frame must
also suit the pipeline: sides of at least :data:`MIN_SIDE` px (the flow needs neighbourhoods; the
network pads each side to 64), an aspect ratio of at most :data:`MAX_ASPECT` (a thin image would cost
the network many times its own size), sides below :data:`MAX_SIDE` (OpenCV's remap, used by the colour
coding, needs < 32767) and at most ``max_pixels`` pixels.

Decoding work is bounded too, not only pixels: a progressive JPEG is decoded scan by scan, and a file can
append thousands of (even empty) scans, each costing a pass over the frame (200,000 scans in 3 MB kept a
node busy for 45 s). Encoders write 1 scan (baseline) or about 6-20 (progressive: libjpeg's default is 10
for colour, mozjpeg's optimised ones about a dozen); more than :data:`MAX_JPEG_SCANS` is refused before
decoding (:class:`DecodeWorkError`).
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple

MIN_SIDE = 16
MAX_SIDE = 16384
MAX_ASPECT = 8.0
DEFAULT_MAX_PIXELS = 3_000_000  # above 2208x1242 (ZED 2K), 1920x1200; below 4K UHD (8.3 MP)
MAX_JPEG_SCANS = 100

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FrameSizeError(ValueError):
    """A frame is too large or has a shape the pipeline refuses. The message says which limit."""


class DecodeWorkError(ValueError):
    """Compressed data that would cost unbounded decoding work (a JPEG with too many scans)."""


def jpeg_scans(data) -> int:
    """Start-of-scan markers (FF DA) in JPEG bytes: the number of scans, or more (entropy-coded data never
    holds FF DA, since a coded FF byte is followed by 00 or a restart marker; an EXIF thumbnail adds its own).
    One pass in C over the data, no decoding."""
    return (data if isinstance(data, bytes) else bytes(data)).count(b"\xff\xda")


def check_decode_work(codec: str, data) -> None:
    """DecodeWorkError for a JPEG with more than :data:`MAX_JPEG_SCANS` scans (module docstring)."""
    if codec == "jpeg":
        scans = jpeg_scans(data)
        if scans > MAX_JPEG_SCANS:
            raise DecodeWorkError(f"JPEG with {scans} scans refused before decoding: at most {MAX_JPEG_SCANS} "
                                  "(each scan is a pass over the frame; encoders write 1-20)")


def check_frame_size(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """FrameSizeError unless a width x height frame is within every limit (module docstring)."""
    if min(width, height) < MIN_SIDE:
        raise FrameSizeError(f"{width}x{height} is too small: each side must be at least {MIN_SIDE} px")
    if max(width, height) > MAX_SIDE:
        raise FrameSizeError(f"{width}x{height} is too large: each side must be at most {MAX_SIDE} px")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise FrameSizeError(f"{width}x{height} is too thin: aspect ratio above {MAX_ASPECT:g}:1")
    if width * height > max_pixels:
        raise FrameSizeError(f"{width}x{height} = {width * height} pixels exceeds max_pixels ({max_pixels})")


def png_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG's IHDR chunk, None if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from a JPEG's first start-of-frame marker, None if there is none."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def compressed_size(data: bytes) -> Tuple[str, Optional[Tuple[int, int]]]:
    """(codec, (width, height) or None) of compressed image bytes, from the header only."""
    head = bytes(data[:65536]) if not isinstance(data, bytes) else data
    if head.startswith(_PNG_SIGNATURE):
        return "png", png_size(head)
    if head.startswith(b"\xff\xd8"):
        return "jpeg", jpeg_size(head if len(head) < 65536 else bytes(data))
    return "unknown", None
