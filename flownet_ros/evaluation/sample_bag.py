"""A synthetic camera sequence with exact ground-truth flow, written as a real rosbag2.

``python -m flownet_ros.evaluation.sample_bag [--out data/sample_bag] [--frames 90] [--storage mcap]``

The scene is the procedural generator's (``flownet_ros.data.procedural``): a large textured
background plane and textured objects with alpha masks. Here they move *continuously*: a camera
pans, zooms and rolls slowly over the background while each object follows its own smooth
trajectory (translation, rotation, scale) in the scene, so consecutive frames form one coherent
sequence. For frame k the flow from frame k-1 is the affine motion of the front-most layer at each
frame-(k-1) pixel; pixels that leave the image or are occluded in frame k are NaN.

Topics (30 Hz by default, 640x480):
  /camera/image_raw  sensor_msgs/msg/Image rgb8, frame_id camera_optical_frame
  /camera/flow_gt    sensor_msgs/msg/Image 32FC2 (u, v pixels), stamped like the newer frame
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from flownet_ros.data.procedural import Layer, affine_flow, object_mask, render_layers, similarity_matrix
from flownet_ros.data.textures import random_texture
from flownet_ros.evaluation import workspace
from flownet_ros.evaluation.bagio import IMAGE, BagWriter, flow_message, rgb_message

DEFAULT_PATH = workspace() / "data" / "sample_bag"
IMAGE_TOPIC = "/camera/image_raw"
GT_TOPIC = "/camera/flow_gt"
FRAME_ID = "camera_optical_frame"
START_NS = 1_700_000_000 * 1_000_000_000  # fixed first stamp: the bag is identical on every run


@dataclass
class _Track:
    """One layer's texture (RGB or RGBA) and its smooth scene trajectory."""

    rgba: np.ndarray
    centre: np.ndarray  # scene position (px) at t = 0
    velocity: np.ndarray  # px/s
    wobble: np.ndarray  # amplitude (px) of a sinusoidal deviation
    wobble_hz: float
    angle: float  # rad at t = 0
    spin: float  # rad/s
    log_scale_amp: float
    scale_hz: float
    phase: float

    def to_scene(self, t: float) -> np.ndarray:
        """3x3 affine: layer texture pixel -> scene pixel at time ``t`` (s)."""
        th, tw = self.rgba.shape[:2]
        pos = self.centre + self.velocity * t + self.wobble * np.sin(2 * np.pi * self.wobble_hz * t + self.phase)
        scale = float(np.exp(self.log_scale_amp * np.sin(2 * np.pi * self.scale_hz * t + self.phase)))
        # rotate/scale about the texture centre, then move that centre to ``pos``
        return similarity_matrix(self.angle + self.spin * t, scale, pos[0] - tw / 2.0, pos[1] - th / 2.0,
                                 tw / 2.0, th / 2.0)


class SceneSequence:
    """Frames and ground-truth flow of a camera moving over a procedural scene.

    ``size`` = (H, W). Motion magnitudes scale with W (given at 640 px): the camera pans up to
    about 7 px/frame at 30 Hz, objects move 1-5 px/frame relative to the scene.
    """

    def __init__(self, size: Tuple[int, int] = (480, 640), fps: float = 30.0, seed: int = 0,
                 n_objects: int = 5):
        self.h, self.w = int(size[0]), int(size[1])
        if self.h < 16 or self.w < 16:
            raise ValueError(f"size must be at least 16x16, got {size}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        rng = np.random.default_rng([seed, 0x5A3B1E])
        px = self.w / 640.0
        # the scene texture is larger than the view so that panning reveals new content
        self.scene_h, self.scene_w = int(self.h * 1.6), int(self.w * 1.6)
        self.background = random_texture(rng, self.scene_h, self.scene_w, kind="leaves")
        self.pan_amp = np.array([0.2 * self.scene_w, 0.12 * self.scene_h]) * rng.uniform(0.8, 1.0, 2)
        self.pan_hz = rng.uniform(0.12, 0.18, 2)
        self.pan_phase = rng.uniform(0, 2 * np.pi, 2)
        self.zoom_phase = rng.uniform(0, 2 * np.pi)
        self.objects: List[_Track] = []
        side = min(self.h, self.w)
        for _ in range(n_objects):
            d = max(8, int(rng.uniform(0.15, 0.35) * side))
            rgba = np.dstack([random_texture(rng, d, d), object_mask(rng, d)])
            speed = rng.uniform(30, 150) * px
            heading = rng.uniform(0, 2 * np.pi)
            self.objects.append(_Track(
                rgba=rgba,
                centre=np.array([self.scene_w / 2 + rng.uniform(-0.3, 0.3) * self.w,
                                 self.scene_h / 2 + rng.uniform(-0.3, 0.3) * self.h]),
                velocity=speed * np.array([np.cos(heading), np.sin(heading)]),
                wobble=rng.uniform(5, 30, 2) * px, wobble_hz=rng.uniform(0.2, 0.6),
                angle=rng.uniform(0, 2 * np.pi), spin=rng.normal(0, 0.5),
                log_scale_amp=rng.uniform(0.0, 0.15), scale_hz=rng.uniform(0.1, 0.4),
                phase=rng.uniform(0, 2 * np.pi)))

    def camera(self, t: float) -> np.ndarray:
        """3x3 affine: scene pixel -> image pixel at time ``t`` (pan along a smooth curve, zoom, roll)."""
        centre = (np.array([self.scene_w / 2.0, self.scene_h / 2.0])
                  + self.pan_amp * np.sin(2 * np.pi * self.pan_hz * t + self.pan_phase))
        zoom = 1.12 + 0.08 * np.sin(2 * np.pi * 0.2 * t + self.zoom_phase)  # image px per scene px (>= 1.04)
        roll = 0.04 * np.sin(2 * np.pi * 0.15 * t + self.zoom_phase)
        c, s = zoom * np.cos(roll), zoom * np.sin(roll)
        # x_img = zoom * R(roll) (p - centre) + image centre
        return np.array([[c, -s, self.w / 2.0 - c * centre[0] + s * centre[1]],
                         [s, c, self.h / 2.0 - s * centre[0] - c * centre[1]],
                         [0.0, 0.0, 1.0]])

    def _affines(self, k: int) -> List[np.ndarray]:
        """Texture -> image affines of [background, objects...] at frame ``k``."""
        cam = self.camera(k / self.fps)
        return [cam] + [cam @ obj.to_scene(k / self.fps) for obj in self.objects]

    def frames(self, n: int) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
        """Yield (image uint8 [H,W,3] RGB, flow float32 [H,W,2] from the previous frame, NaN where
        unknown; None for the first frame) for frames 0..n-1."""
        textures = [self.background] + [o.rgba for o in self.objects]
        xs = np.arange(self.w, dtype=np.float32)[None, :]
        ys = np.arange(self.h, dtype=np.float32)[:, None]
        prev_affines = self._affines(0)
        layers = [Layer(tex, a, np.eye(3)) for tex, a in zip(textures, prev_affines)]
        img, prev_ids, prev_rois = render_layers(layers[0], layers[1:], 1, self.h, self.w)
        yield img, None
        for k in range(1, n):
            affines = self._affines(k)
            layers = [Layer(tex, a0, a1 @ np.linalg.inv(a0)) for tex, a0, a1 in zip(textures, prev_affines, affines)]
            img, ids, rois = render_layers(layers[0], layers[1:], 2, self.h, self.w)
            yield img, self._flow(layers, prev_ids, prev_rois, ids, xs, ys)
            prev_affines, prev_ids, prev_rois = affines, ids, rois

    def _flow(self, layers: Sequence[Layer], ids1: np.ndarray, rois1: list, ids2: np.ndarray,
              xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Flow of the front-most layer at each frame-1 pixel; NaN where it leaves the image or is occluded."""
        flow = np.empty((self.h, self.w, 2), np.float32)
        flow[:, :, 0], flow[:, :, 1] = affine_flow(layers[0].motion, xs, ys)
        for k, (layer, box) in enumerate(zip(layers[1:], rois1), start=1):
            if box is None:
                continue
            x0, y0, x1, y1 = box
            sel = ids1[y0:y1, x0:x1] == k
            if sel.any():
                u, v = affine_flow(layer.motion, xs[:, x0:x1], ys[y0:y1])
                flow[y0:y1, x0:x1, 0][sel] = u[sel]
                flow[y0:y1, x0:x1, 1][sel] = v[sel]
        tx, ty = flow[:, :, 0] + xs, flow[:, :, 1] + ys
        inside = (tx >= 0) & (tx <= self.w - 1) & (ty >= 0) & (ty <= self.h - 1)
        front2 = cv2.remap(ids2, tx, ty, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        flow[~(inside & (front2 == ids1))] = np.nan
        return flow


def write_sample_bag(path: str | os.PathLike = DEFAULT_PATH, frames: int = 90, size: Tuple[int, int] = (480, 640),
                     fps: float = 30.0, seed: int = 0, storage: str = "mcap", overwrite: bool = False,
                     progress: bool = True) -> Path:
    """Write the sequence as a rosbag2 directory at ``path`` (atomically: a partial bag never
    appears there). Returns the path."""
    if frames < 2:
        raise ValueError(f"need at least 2 frames, got {frames}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite)")
    tmp_root = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp = tmp_root / path.name  # same name: the storage file inside is named after the bag directory
    if tmp_root.exists():
        shutil.rmtree(tmp_root)
    scene = SceneSequence(size, fps, seed)
    from tqdm import tqdm

    try:
        with BagWriter(tmp, storage, custom={"flownet_ros.sample_bag": f"seed={seed} size={size[1]}x{size[0]} "
                                                                     f"fps={fps:g} frames={frames}"}) as writer:
            writer.add(IMAGE_TOPIC, IMAGE)
            writer.add(GT_TOPIC, IMAGE)
            for k, (img, flow) in enumerate(tqdm(scene.frames(frames), total=frames, desc="sample bag",
                                                 unit="frame", disable=not progress, leave=False)):
                stamp = START_NS + round(k * 1e9 / fps)
                writer.write(IMAGE_TOPIC, stamp, rgb_message(img, stamp, FRAME_ID))
                if flow is not None:
                    writer.write(GT_TOPIC, stamp, flow_message(flow, stamp, FRAME_ID))
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp_root.exists():
            shutil.rmtree(tmp_root)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.sample_bag", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_PATH, help=f"bag directory (default {DEFAULT_PATH})")
    p.add_argument("--frames", type=int, default=90, help="number of frames (default 90 = 3 s at 30 Hz)")
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        out = write_sample_bag(args.out, args.frames, tuple(args.size), args.fps, args.seed, args.storage,
                               args.overwrite, not args.quiet)
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.frames} frames {args.size[1]}x{args.size[0]} at {args.fps:g} Hz with ground-truth flow "
          f"({IMAGE_TOPIC}, {GT_TOPIC}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
