"""A folder of camera frames (and optional ground-truth flow files) -> a rosbag2 the replay and report read.

``python -m flownet_ros.evaluation.images_to_bag FRAMES_DIR --out BAG [--fps 20 | --timestamps FILE]
[--encoding rgb8|bgr8|mono8|mono16|jpeg] [--flow FLOW_DIR] [--storage mcap|sqlite3]``

* Frames: the ``.png``, ``.jpg``/``.jpeg``, ``.ppm``/``.pgm`` and ``.bmp`` files of FRAMES_DIR in natural name
  order (``frame_2`` before ``frame_10``), written to ``--topic`` (default ``/camera/image_raw``) as
  sensor_msgs/Image in ``--encoding``, or with ``jpeg`` as sensor_msgs/CompressedImage on
  ``<topic>/compressed`` (JPEG files are copied byte for byte, other files encoded at ``--jpeg-quality``).
  ``mono16`` keeps 16-bit PNGs as they are and scales 8-bit pixels by 257.
* Stamps: frame k at ``--start + k / --fps`` seconds, or the k-th line of ``--timestamps`` (first number
  of each line, ``#`` comments and a header line skipped: seconds, or integer nanoseconds when >= 1e12,
  as in EuRoC's ``data.csv``); strictly increasing. Bag time = stamp.
* Ground truth (``--flow FLOW_DIR``): Middlebury ``.flo`` or KITTI 16-bit ``.png`` files in natural name
  order; file j is the flow from frame ``--flow-first + j`` to the next frame (Sintel's and Middlebury's
  numbering), written as a 32FC2 Image stamped like the newer frame on ``--gt-topic`` (default
  ``/camera/flow_gt``), NaN where the file has no ground truth: the convention the report scores against.

The bag is written under a temporary name and renamed into place, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from flownet_ros.cli import tool, user_path
from flownet_ros.evaluation.bagio import (
    COMPRESSED,
    IMAGE,
    STORAGES,
    compressed_message,
    flow_message,
    image_message,
    new_bag,
)
from flownet_ros.flow.io import read_flow

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp")
FLOW_SUFFIXES = (".flo", ".png")
ENCODINGS = ("rgb8", "bgr8", "mono8", "mono16", "jpeg")
NS_THRESHOLD = 10**12  # a timestamp this large is nanoseconds, not seconds (1e12 s is 31,700 years)


class ImagesError(ValueError):
    """A frame folder, frame, timestamps or flow file cannot be used. The message names the file."""


@dataclass
class ImagesOptions:
    """What to convert and how (see the module docstring)."""

    frames_dir: Path
    out: Path
    fps: float = 20.0
    start: float = 0.0
    timestamps: Optional[Path] = None
    encoding: str = "rgb8"
    topic: str = "/camera/image_raw"
    frame_id: str = "camera"
    flow_dir: Optional[Path] = None
    flow_first: int = 0
    gt_topic: str = "/camera/flow_gt"
    storage: str = "mcap"
    jpeg_quality: int = 90


def natural_key(path: Path) -> list:
    """Sort key: digit runs compare as numbers (``frame_2`` < ``frame_10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_files(folder: Path, suffixes: Sequence[str], what: str) -> List[Path]:
    if not folder.is_dir():
        raise ImagesError(f"{folder}: {what} folder not found")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes), key=natural_key)
    if not files:
        raise ImagesError(f"{folder}: no {what} files ({', '.join(suffixes)})")
    return files


def read_stamps(path: Path, count: int) -> List[int]:
    """Stamps (ns) from a timestamps file (see the module docstring); exactly ``count``, increasing."""
    if not path.is_file():
        raise ImagesError(f"{path}: timestamps file not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ImagesError(f"{path}: not a text file of timestamps") from None
    stamps = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        field = re.split(r"[\s,;]+", line.split("#", 1)[0].strip())[0]
        if not field:
            continue
        try:
            value = int(field) if field.isdigit() else float(field)
        except ValueError:
            if not stamps and lineno == 1:
                continue  # a header line
            raise ImagesError(f"{path}:{lineno}: not a timestamp: {field!r}") from None
        stamps.append(int(value) if value >= NS_THRESHOLD else round(float(value) * 1e9))
    if len(stamps) != count:
        raise ImagesError(f"{path}: {len(stamps)} timestamps for {count} frames")
    bad = next((k for k in range(1, count) if stamps[k] <= stamps[k - 1]), None)
    if bad is not None or (stamps and stamps[0] < 0):
        raise ImagesError(f"{path}: timestamps must be >= 0 and strictly increasing (entry {bad or 0})")
    return stamps


def frame_stamps(opts: ImagesOptions, count: int) -> List[int]:
    if opts.timestamps is not None:
        return read_stamps(opts.timestamps, count)
    if opts.fps <= 0 or opts.start < 0:
        raise ImagesError(f"--fps must be > 0 and --start >= 0, got {opts.fps} and {opts.start}")
    return [round((opts.start + k / opts.fps) * 1e9) for k in range(count)]


def read_pixels(path: Path, encoding: str) -> np.ndarray:
    """The pixels of one frame file in ``encoding``'s layout (RGB / BGR order, one channel for mono)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImagesError(f"{path}: cannot decode the image (corrupt or not an image)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if encoding.startswith("mono"):
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if encoding == "mono16":
            return grey.astype(np.uint16) * 257 if grey.dtype == np.uint8 else grey.astype(np.uint16)
        return grey if grey.dtype == np.uint8 else (grey >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8)
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
    return bgr if encoding == "bgr8" else np.ascontiguousarray(bgr[..., ::-1])


def frame_message(path: Path, stamp: int, opts: ImagesOptions) -> Tuple[object, Tuple[int, int]]:
    """One frame file -> (rosbags Image (raw encodings) or CompressedImage (``jpeg``), (height, width))."""
    if opts.encoding != "jpeg":
        pixels = read_pixels(path, opts.encoding)
        return image_message(pixels, stamp, opts.frame_id, opts.encoding), pixels.shape[:2]
    if path.suffix.lower() in (".jpg", ".jpeg"):
        data = path.read_bytes()
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ImagesError(f"{path}: cannot decode the image (corrupt or not a JPEG)")
        shape = decoded.shape[:2]
    else:
        pixels = read_pixels(path, "bgr8")
        ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])
        if not ok:
            raise ImagesError(f"{path}: OpenCV could not encode it as JPEG")
        data, shape = buf.tobytes(), pixels.shape[:2]
    return compressed_message(data, stamp, opts.frame_id, "bgr8; jpeg compressed bgr8"), shape


def ground_truth(opts: ImagesOptions, frames: List[Path]) -> Iterator[tuple]:
    """(index of the newer frame, [H,W,2] float32 flow with NaN where unknown, flow file) per flow file."""
    files = list_files(opts.flow_dir, FLOW_SUFFIXES, "flow")
    if opts.flow_first < 0 or opts.flow_first + len(files) > len(frames) - 1:
        raise ImagesError(f"{opts.flow_dir}: {len(files)} flow files from frame {opts.flow_first} do not fit "
                          f"{len(frames)} frames ({len(frames) - 1} pairs)")
    for j, path in enumerate(files):
        flow, valid = read_flow(path)
        yield opts.flow_first + j + 1, np.where(valid[..., None], flow, np.nan).astype(np.float32), path


def convert(opts: ImagesOptions) -> dict:
    """Write the bag (see the module docstring); returns {'bag', 'frames', 'gt', 'topic', 'gt_topic'}."""
    if opts.encoding not in ENCODINGS:
        raise ImagesError(f"encoding must be one of {ENCODINGS}, got {opts.encoding!r}")
    frames = list_files(opts.frames_dir, FRAME_SUFFIXES, "frame")
    if len(frames) < 2:
        raise ImagesError(f"{opts.frames_dir}: {len(frames)} frame file(s); a flow sequence needs at least 2")
    stamps = frame_stamps(opts, len(frames))
    topic = opts.topic.rstrip("/") + "/compressed" if opts.encoding == "jpeg" else opts.topic
    gts = list(ground_truth(opts, frames)) if opts.flow_dir is not None else []  # checked before writing
    gt_at = {k: (flow, path) for k, flow, path in gts}
    with new_bag(opts.out, opts.storage, {"flownet_ros.images_from": str(opts.frames_dir)}) as writer:
        writer.add(topic, COMPRESSED if opts.encoding == "jpeg" else IMAGE)
        if gts:
            writer.add(opts.gt_topic, IMAGE)
        for k, (path, stamp) in enumerate(zip(frames, stamps)):
            msg, (h, w) = frame_message(path, stamp, opts)
            writer.write(topic, stamp, msg)
            if k in gt_at:
                flow, flow_path = gt_at[k]
                if flow.shape[:2] != (h, w):
                    raise ImagesError(f"{flow_path}: flow is {flow.shape[1]}x{flow.shape[0]}, frame {path} is "
                                      f"{w}x{h}")
                writer.write(opts.gt_topic, stamp, flow_message(flow, stamp, opts.frame_id))
    return {"bag": opts.out, "frames": len(frames), "gt": len(gts), "topic": topic,
            "gt_topic": opts.gt_topic if gts else None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.images_to_bag",
                                description=__doc__.split("\n")[0])
    p.add_argument("frames_dir", type=user_path, help="folder of frames (png/jpg/ppm/pgm/bmp, natural name order)")
    p.add_argument("--out", type=user_path, required=True, help="bag directory to write (must not exist)")
    p.add_argument("--fps", type=float, default=20.0, help="frame rate when there is no --timestamps (default 20)")
    p.add_argument("--start", type=float, default=0.0, help="stamp of the first frame in seconds (with --fps)")
    p.add_argument("--timestamps", type=user_path, help="one stamp per frame: seconds, or nanoseconds (>= 1e12)")
    p.add_argument("--encoding", choices=ENCODINGS, default="rgb8",
                   help="Image encoding, or jpeg = CompressedImage on <topic>/compressed (default rgb8)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="for frames that are not JPEG files already")
    p.add_argument("--topic", default="/camera/image_raw")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--flow", dest="flow_dir", type=user_path,
                   help="folder of ground-truth .flo / KITTI .png files; file j = frame first+j -> first+j+1")
    p.add_argument("--flow-first", type=int, default=0, help="frame index the first flow file starts at")
    p.add_argument("--gt-topic", default="/camera/flow_gt")
    p.add_argument("--storage", choices=tuple(STORAGES), default="mcap")
    return p


@tool("python -m flownet_ros.evaluation.images_to_bag")
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    opts = ImagesOptions(**{k: v for k, v in vars(args).items()})
    done = convert(opts)
    gt = f", {done['gt']} ground-truth flows on {done['gt_topic']}" if done["gt"] else ""
    print(f"wrote {done['frames']} frames on {done['topic']}{gt} -> {done['bag']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
