"""numpy -> sensor_msgs/Image for the node's outputs (``32FC2`` flow, ``rgb8`` colour), without cv_bridge.

Reading images (input decoding, reading these outputs back) is :mod:`flownet_ros.imaging.decode`, which
needs no ROS; this module imports ``sensor_msgs`` when a message is built.
"""

from __future__ import annotations

import array
import sys

import numpy as np

from flownet_ros.imaging.decode import OUTPUT_ENCODINGS

__all__ = ["array_to_image_msg", "flow_to_image_msg", "rgb_to_image_msg"]


def array_to_image_msg(arr: np.ndarray, encoding: str, header=None):
    """HxW(xC) array -> sensor_msgs/Image (no row padding, host byte order)."""
    from sensor_msgs.msg import Image

    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f"cannot build an Image of encoding {encoding!r} (supported: {sorted(OUTPUT_ENCODINGS)})")
    dtype, channels = OUTPUT_ENCODINGS[encoding]
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ValueError(f"{encoding} needs an HxWx{channels} array, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and arr.dtype.itemsize > 1)
    msg.step = int(arr.shape[1] * channels * arr.dtype.itemsize)
    msg.data = array.array("B", arr.tobytes())
    return msg


def flow_to_image_msg(flow: np.ndarray, header=None):
    """HxWx2 float32 flow (u right, v down, pixels) -> ``32FC2`` Image, step = width * 8."""
    return array_to_image_msg(flow, "32FC2", header)


def rgb_to_image_msg(rgb: np.ndarray, header=None):
    """HxWx3 uint8 RGB -> ``rgb8`` Image."""
    return array_to_image_msg(rgb, "rgb8", header)
