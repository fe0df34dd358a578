"""Image decoding without ROS (and without cv_bridge, which is broken with NumPy 2).

Every input conversion returns an HxWx3 uint8 RGB array (what the flow estimators take) or raises
:class:`ImageConversionError` (a ValueError) saying what is wrong with the image, or
:class:`flownet_ros.imaging.limits.FrameSizeError` (a ValueError) for a frame beyond the size limits.
``image_msg_to_array`` / ``image_msg_to_flow`` read the node's output images (``32FC2`` flow, ``rgb8``).

The functions take plain fields (``encoding, height, width, step, is_bigendian, data``); the ``*_msg``
wrappers take any object with the fields of ``sensor_msgs/Image`` / ``CompressedImage`` (an rclpy message,
a message deserialised by ``rosbags``), so nothing here imports ROS. Building messages is
:mod:`flownet_ros.ros.conversions`.
"""

from __future__ import annotations

from typing import List, Optional

import cv2
import numpy as np

from flownet_ros.imaging.capture import captured_stderr
from flownet_ros.imaging.limits import DEFAULT_MAX_PIXELS, check_decode_work, check_frame_size, compressed_size

__all__ = [
    "ImageConversionError", "quoted", "SUPPORTED_ENCODINGS", "bytes_per_pixel", "check_raw", "raw_to_rgb",
    "image_msg_to_rgb", "compressed_to_rgb", "compressed_msg_to_rgb", "to_8bit", "mono_to_rgb", "OUTPUT_ENCODINGS",
    "image_msg_to_array", "image_msg_to_flow",
]


class ImageConversionError(ValueError):
    """An image message cannot be converted (unknown encoding, inconsistent sizes, corrupt data)."""


MAX_SHOWN = 64  # characters of a message's own strings (encoding, format, frame_id) shown in errors and logs


def quoted(value, limit: int = MAX_SHOWN) -> str:
    """``repr`` of a string from a message, cut to ``limit`` characters: a log line never carries a
    sender's 10,000-character encoding in full."""
    value = str(value)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


# encoding -> (channels, bytes per channel). YUV 4:2:2 is 2 bytes per pixel (one Y + half a U/V).
_LAYOUT = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1), "8UC1": (1, 1),
    "rgb16": (3, 2), "bgr16": (3, 2), "rgba16": (4, 2), "bgra16": (4, 2), "mono16": (1, 2), "16UC1": (1, 2),
    "bayer_rggb8": (1, 1), "bayer_bggr8": (1, 1), "bayer_gbrg8": (1, 1), "bayer_grbg8": (1, 1),
    "bayer_rggb16": (1, 2), "bayer_bggr16": (1, 2), "bayer_gbrg16": (1, 2), "bayer_grbg16": (1, 2),
    "uyvy": (2, 1), "yuyv": (2, 1), "yuv422": (2, 1), "yuv422_yuy2": (2, 1),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)

# ROS names the Bayer pattern by the 2x2 block at the top-left pixel (bayer_rggb: R at (0, 0)).
# OpenCV's legacy codes name it by the second row's middle pixels, so rggb is "BG", and so on.
# The legacy codes exist in every OpenCV version (the RGGB-style aliases only in recent ones);
# test_conversions checks the mapping with a mosaic built from a known RGB image.
_BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
          "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
# Humble calls UYVY "yuv422" and YUYV "yuv422_yuy2"; Jazzy and later call them "uyvy" and "yuyv".
_YUV = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuv422": cv2.COLOR_YUV2RGB_UYVY,
        "yuyv": cv2.COLOR_YUV2RGB_YUYV, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV}


def bytes_per_pixel(encoding: str) -> int:
    """Bytes one pixel takes in a row of ``encoding``; ImageConversionError if unsupported."""
    try:
        channels, depth = _LAYOUT[encoding]
    except KeyError:
        raise ImageConversionError(f"unsupported encoding {quoted(encoding)} (supported: "
                                   f"{', '.join(SUPPORTED_ENCODINGS)})") from None
    return channels * depth


def check_raw(encoding: str, height: int, width: int, step: int, data_len: int,
              max_pixels: Optional[int] = None) -> None:
    """Cheap consistency checks of a raw image message (no pixel is touched); with ``max_pixels``, also
    the frame size limits of :func:`flownet_ros.imaging.limits.check_frame_size`."""
    bpp = bytes_per_pixel(encoding)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image: {width}x{height}")
    if max_pixels is not None:
        check_frame_size(width, height, max_pixels)
    if step < width * bpp:
        raise ImageConversionError(f"step {step} is smaller than width * bytes per pixel = "
                                   f"{width} * {bpp} = {width * bpp} for {encoding}")
    if data_len < step * height:
        raise ImageConversionError(f"data has {data_len} bytes, expected step * height = "
                                   f"{step} * {height} = {step * height}")
    if encoding in _YUV and width % 2:
        raise ImageConversionError(f"{encoding} needs an even width, got {width}")


def to_8bit(img: np.ndarray) -> np.ndarray:
    """uint16 image -> uint8 by a right shift chosen from the data's bit depth.

    The shift is ``bits - 8`` where ``bits`` is the bit count of the largest value rounded up to an
    even number of at least 8 (so 10-, 12- and 14-bit sensors use their full range and the mapping
    stays the same from frame to frame unless the brightest pixel crosses a bit boundary).
    A per-frame min/max stretch would change brightness between the two frames of a pair.
    """
    if img.dtype == np.uint8:
        return img
    peak = int(img.max()) if img.size else 0
    bits = max(8, peak.bit_length())
    bits += bits % 2
    return (img >> (bits - 8)).astype(np.uint8)


def mono_to_rgb(px: np.ndarray) -> np.ndarray:
    """HxW or HxWx1 uint8 (mono8) or uint16 (mono16) grey -> HxWx3 uint8 RGB, 16 bits reduced by :func:`to_8bit`."""
    px = to_8bit(px.reshape(px.shape[0], px.shape[1], 1))
    return np.ascontiguousarray(np.repeat(px, 3, axis=2))


def _rows(data, height: int, width: int, step: int, row_bytes: int) -> np.ndarray:
    """[height, row_bytes] uint8 view of the pixel bytes, dropping the row padding."""
    buf = np.frombuffer(data, dtype=np.uint8, count=step * height)
    return buf.reshape(height, step)[:, :row_bytes]


def raw_to_rgb(encoding: str, height: int, width: int, step: int, is_bigendian: bool, data) -> np.ndarray:
    """Raw image fields -> HxWx3 uint8 RGB (C-contiguous, owning its memory)."""
    check_raw(encoding, height, width, step, len(data))
    channels, depth = _LAYOUT[encoding]
    rows = _rows(data, height, width, step, width * channels * depth)
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        px = np.ascontiguousarray(rows).view(dtype).astype(np.uint16).reshape(height, width, channels)
    else:
        px = rows.reshape(height, width, channels)

    if encoding.startswith("bayer_"):
        # demosaic at the native depth, then reduce: the 16-bit OpenCV path interpolates exactly
        rgb = cv2.cvtColor(np.ascontiguousarray(px[..., 0]), _BAYER[encoding[6:10]])
        return np.ascontiguousarray(to_8bit(rgb))
    if encoding in _YUV:
        return cv2.cvtColor(np.ascontiguousarray(px), _YUV[encoding])
    if channels == 1:
        return mono_to_rgb(px)
    px = to_8bit(px)
    if encoding.startswith("bgr"):
        return np.ascontiguousarray(px[..., 2::-1])
    return np.ascontiguousarray(px[..., :3])


def image_msg_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 RGB."""
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)


def compressed_to_rgb(fmt: str, data, max_pixels: int = DEFAULT_MAX_PIXELS,
                      messages: Optional[List[str]] = None) -> np.ndarray:
    """CompressedImage fields -> HxWx3 uint8 RGB via cv2.imdecode (JPEG or PNG).

    ``fmt`` is "ORIG_PIXFMT; CODEC compressed [COMPRESSED_PIXFMT]" (empty = bgr8/mono8 jpeg). The codec
    and the frame size are read from the data's own header and checked against the size limits
    (:mod:`flownet_ros.imaging.limits`) before anything is decoded, so a small file that declares a huge
    frame costs nothing, nor does a JPEG with thousands of scans (DecodeWorkError); compressedDepth (a
    depth-map format with its own header) is refused. With a ``messages`` list, what libjpeg / libpng
    print on stderr while decoding is appended to it instead (:mod:`flownet_ros.imaging.capture`).
    """
    if "compresseddepth" in fmt.replace(" ", "").lower():
        raise ImageConversionError(f"compressedDepth images are depth maps, not camera images (format "
                                   f"{quoted(fmt)})")
    if len(data) == 0:
        raise ImageConversionError("compressed image has no data")
    codec, size = compressed_size(data)
    if codec == "unknown":
        raise ImageConversionError(f"corrupt compressed image: neither PNG nor JPEG data ({len(data)} bytes, "
                                   f"format {quoted(fmt)})")
    if size is None:
        raise ImageConversionError(f"corrupt {codec} ({len(data)} bytes): no image size in its header")
    check_frame_size(size[0], size[1], max_pixels)
    check_decode_work(codec, data)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        if messages is None:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        else:
            with captured_stderr(messages):
                img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        img, err = None, str(exc).strip().splitlines()[-1]
    else:
        err = "not a decodable image"
    if img is None or img.size == 0:
        raise ImageConversionError(f"corrupt compressed image ({len(buf)} bytes, format {quoted(fmt)}): {err}")
    if (img.shape[1], img.shape[0]) != tuple(size):
        raise ImageConversionError(f"{codec} decodes to {img.shape[1]}x{img.shape[0]}, its header says "
                                   f"{size[0]}x{size[1]}")
    img = to_8bit(img) if img.dtype == np.uint16 else img
    if img.dtype != np.uint8:
        raise ImageConversionError(f"compressed image decodes to unsupported pixel type {img.dtype}")
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def compressed_msg_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS,
                          messages: Optional[List[str]] = None) -> np.ndarray:
    """sensor_msgs/CompressedImage -> HxWx3 uint8 RGB (``messages``: see :func:`compressed_to_rgb`)."""
    return compressed_to_rgb(msg.format, msg.data, max_pixels, messages)


# ---- the node's output images ---------------------------------------------------------------------

# encoding -> (dtype, channels) of the images the node publishes (built by flownet_ros.ros.conversions)
OUTPUT_ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "rgba8": (np.uint8, 4),
              "32FC1": (np.float32, 1), "32FC2": (np.float32, 2), "32FC3": (np.float32, 3),
              "mono16": (np.uint16, 1)}


def image_msg_to_array(msg) -> np.ndarray:
    """Image of an output encoding (:data:`OUTPUT_ENCODINGS`) -> HxWxC array (a copy)."""
    if msg.encoding not in OUTPUT_ENCODINGS:
        raise ImageConversionError(f"image_msg_to_array does not read {quoted(msg.encoding)}")
    dtype, channels = OUTPUT_ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row = msg.width * channels * dtype.itemsize
    if msg.height <= 0 or msg.width <= 0 or msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ImageConversionError(f"inconsistent {msg.encoding} image: {msg.width}x{msg.height}, "
                                   f"step {msg.step}, {len(msg.data)} bytes")
    rows = np.ascontiguousarray(_rows(msg.data, msg.height, msg.width, msg.step, row))
    return rows.view(dtype).astype(dtype.newbyteorder("=")).reshape(msg.height, msg.width, channels)


def image_msg_to_flow(msg) -> np.ndarray:
    """``32FC2`` Image -> HxWx2 float32 flow in pixels."""
    if msg.encoding != "32FC2":
        raise ImageConversionError(f"flow images are 32FC2, got {quoted(msg.encoding)}")
    return image_msg_to_array(msg)
