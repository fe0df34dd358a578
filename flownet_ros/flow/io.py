"""Optical flow files: Middlebury ``.flo`` and KITTI 16-bit flow PNG.

Flow arrays are [H,W,2] float32 in pixels, channel 0 = u (x, right), channel 1 = v (y, down),
mapping frame-1 pixels to frame 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

import cv2
import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

FLO_MAGIC = 202021.25  # bytes "PIEH" read as a little-endian float32
FLO_HEADER_BYTES = 12  # float32 magic, int32 width, int32 height
FLO_MAX_SIDE = 1 << 15  # larger sides are certainly a corrupt header
KITTI_OFFSET = 2 ** 15
KITTI_SCALE = 64.0


class FlowFileError(ValueError):
    """A flow file is missing pieces, corrupt, or cannot be written. The message names the file."""


def _check_flow_array(flow: np.ndarray, path: PathLike) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] < 1 or flow.shape[1] < 1:
        raise FlowFileError(f"{os.fspath(path)}: flow to write must be [H,W,2], got shape {flow.shape}")
    return flow


def read_flo(path: PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file -> [H,W,2] float32 (pixels).

    Raises FileNotFoundError when missing and FlowFileError (naming the file) when the magic,
    the header or the payload size is wrong.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FLO_HEADER_BYTES:
        raise FlowFileError(f"{path}: truncated .flo file ({len(data)} bytes, header needs {FLO_HEADER_BYTES})")
    magic = np.frombuffer(data, dtype="<f4", count=1, offset=0)[0]
    if magic != np.float32(FLO_MAGIC):
        raise FlowFileError(f"{path}: not a .flo file (magic {magic!r} != {FLO_MAGIC}; bytes {data[:4]!r})")
    width, height = (int(x) for x in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    if not (0 < width <= FLO_MAX_SIDE and 0 < height <= FLO_MAX_SIDE):
        raise FlowFileError(f"{path}: corrupt .flo header: absurd size {width}x{height}")
    expected = FLO_HEADER_BYTES + width * height * 2 * 4
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "oversized"
        raise FlowFileError(f"{path}: {what} .flo file: {len(data)} bytes, {width}x{height} needs {expected}")
    flow = np.frombuffer(data, dtype="<f4", count=width * height * 2, offset=FLO_HEADER_BYTES)
    return flow.reshape(height, width, 2).astype(np.float32)  # native-order, writable copy


def write_flo(path: PathLike, flow: np.ndarray) -> None:
    """Write [H,W,2] flow (pixels) as a little-endian Middlebury ``.flo`` file."""
    flow = _check_flow_array(flow, path)
    height, width = flow.shape[:2]
    header = np.array([FLO_MAGIC], dtype="<f4").tobytes() + np.array([width, height], dtype="<i4").tobytes()
    payload = np.ascontiguousarray(flow, dtype="<f4").tobytes()
    with open(path, "wb") as f:
        f.write(header)
        f.write(payload)


def read_kitti_flow(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read a KITTI 16-bit flow PNG -> (flow [H,W,2] float32 pixels, valid [H,W] bool).

    Channels in the file are (u, v, valid) in RGB order, flow = (value - 2^15) / 64; OpenCV
    returns BGR, so they are reversed here. Invalid pixels get zero flow.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KITTI flow file not found")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FlowFileError(f"{path}: cannot decode as PNG (corrupt or not an image)")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise FlowFileError(f"{path}: KITTI flow must be a 16-bit 3-channel PNG, got dtype {raw.dtype} "
                            f"shape {raw.shape}")
    rgb = raw[:, :, ::-1]
    valid = rgb[:, :, 2] > 0
    flow = (rgb[:, :, :2].astype(np.float32) - KITTI_OFFSET) / KITTI_SCALE
    flow[~valid] = 0.0
    return flow, valid


def write_kitti_flow(path: PathLike, flow: np.ndarray, valid: np.ndarray = None) -> None:
    """Write [H,W,2] flow (pixels) and [H,W] bool ``valid`` (default: finite pixels) as a KITTI PNG.

    Values are quantised to 1/64 px and clipped to the representable range (+-512 px).
    """
    path = Path(path)
    flow = _check_flow_array(flow, path).astype(np.float32)
    finite = np.isfinite(flow).all(axis=2)
    valid = finite if valid is None else (np.asarray(valid, dtype=bool) & finite)
    if valid.shape != flow.shape[:2]:
        raise FlowFileError(f"{path}: valid mask shape {valid.shape} does not match flow {flow.shape[:2]}")
    if path.suffix.lower() != ".png":
        raise FlowFileError(f"{path}: KITTI flow files must have the .png extension")
    coded = np.where(finite[..., None], flow, 0.0) * KITTI_SCALE + KITTI_OFFSET
    coded = np.clip(np.round(coded), 0, 65535).astype(np.uint16)
    rgb = np.dstack([coded, valid.astype(np.uint16)])
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise FlowFileError(f"{path}: OpenCV could not write the PNG")


def read_flow(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read ``.flo`` or KITTI ``.png`` by extension -> (flow [H,W,2] float32, valid [H,W] bool).

    For ``.flo`` the valid mask marks finite values below 1e9 px (Middlebury's "unknown" marker).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".flo":
        flow = read_flo(path)
        valid = np.isfinite(flow).all(axis=2) & (np.abs(flow) < 1e9).all(axis=2)
        flow[~valid] = 0.0
        return flow, valid
    if suffix == ".png":
        return read_kitti_flow(path)
    raise FlowFileError(f"{path}: unknown flow file type {suffix!r} (expected .flo or .png)")
