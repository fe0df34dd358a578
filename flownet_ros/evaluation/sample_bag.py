"""A synthetic camera sequence with exact ground-truth flow, written as a real rosbag2.

``python -m flownet_ros.evaluation.sample_bag [--out data/sample_bag] [--frames 90] [--storage mcap] [--speed 1]``

Rendered by the training generator's compositor (:mod:`flownet_ros.data.generator`) from real
photographs that ship inside scikit-image's wheel (no download): a camera pans, zooms and rolls slowly
over a photo while objects cut from other photos follow their own smooth trajectories (translation,
rotation, scale), so consecutive frames form one coherent sequence with sensor noise. For frame k the
flow from frame k-1 is the motion of the front-most layer at each frame-(k-1) pixel; pixels that leave
the image or are occluded in frame k are NaN. ``--speed F`` plays the motion F times faster at the same frame
rate (F = 15: a camera moving 30-80 px per frame, where DIS alone starts to fail).

Topics (30 Hz by default, 640x480):
  /camera/image_raw  sensor_msgs/msg/Image rgb8, frame_id camera_optical_frame
  /camera/flow_gt    sensor_msgs/msg/Image 32FC2 (u, v pixels), stamped like the newer frame
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import yaml

from flownet_ros.data import generator as G
from flownet_ros.data.homography import similarity
from flownet_ros.data.photos import skimage_photos
from flownet_ros.evaluation.bagio import IMAGE, flow_message, new_bag, rgb_message
from flownet_ros.paths import workspace

DEFAULT_PATH = workspace() / "data" / "sample_bag"
IMAGE_TOPIC = "/camera/image_raw"
GT_TOPIC = "/camera/flow_gt"
FRAME_ID = "camera_optical_frame"
START_NS = 1_700_000_000 * 1_000_000_000  # fixed first stamp: the bag is identical on every run
SAMPLE_KEY = "flownet_ros.sample_bag"  # metadata.yaml custom_data: marks a bag this tool wrote
#: scikit-image photos: the scene (background) first, then the objects' textures
PHOTOS = ("coffee", "astronaut", "chelsea", "rocket")


@dataclass
class _Track:
    """One object's smooth trajectory in scene (background photo) pixels."""

    centre: np.ndarray  # px at t = 0
    velocity: np.ndarray  # px/s
    wobble: np.ndarray  # amplitude (px) of a sinusoidal deviation
    wobble_hz: float
    angle: float  # rad at t = 0
    spin: float  # rad/s
    log_scale_amp: float
    scale_hz: float
    phase: float

    def pose(self, t: float) -> Tuple[np.ndarray, float, float]:
        pos = self.centre + self.velocity * t + self.wobble * np.sin(2 * np.pi * self.wobble_hz * t + self.phase)
        scale = float(np.exp(self.log_scale_amp * np.sin(2 * np.pi * self.scale_hz * t + self.phase)))
        return pos, self.angle + self.spin * t, scale


class SceneSequence:
    """Frames and ground-truth flow of a camera moving over a photo with moving objects.

    ``size`` = (H, W). The camera pans along a smooth curve (a few px per frame at 30 Hz), zooms and
    rolls; objects move 1-5 px per frame relative to the scene (at 640 px width). ``speed`` multiplies every
    motion per frame (scene time runs ``speed`` times faster than the frame clock).
    """

    def __init__(self, size: Tuple[int, int] = (480, 640), fps: float = 30.0, seed: int = 0, n_objects: int = 4,
                 speed: float = 1.0):
        self.h, self.w = int(size[0]), int(size[1])
        if self.h < 16 or self.w < 16:
            raise ValueError(f"size must be at least 16x16, got {size}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.fps, self.speed = float(fps), float(speed)
        rng = np.random.default_rng([seed, 0x5A3B1E])
        self.atlas = G.PhotoAtlas(self._photos())
        ph, pw = self.atlas.sizes[0]
        self.base_scale = 1.3 * max(self.w / pw, self.h / ph)  # image px per scene px at zoom 1
        self.scene = np.array([pw, ph], float)
        view = np.array([self.w, self.h]) / (1.12 * self.base_scale)  # scene px seen at the mean zoom
        self.pan_amp = 0.5 * (self.scene - view) * rng.uniform(0.7, 0.9, 2)
        self.pan_hz, self.pan_phase = rng.uniform(0.12, 0.18, 2), rng.uniform(0, 2 * np.pi, 2)
        self.zoom_phase = rng.uniform(0, 2 * np.pi)
        self.objects = [self._object(rng, k % (len(PHOTOS) - 1) + 1) for k in range(n_objects)]
        self.tracks = [self._track(rng) for _ in range(n_objects)]
        self.grid = G.pixel_grid((self.h, self.w), torch.device("cpu"))
        self.rng = rng

    def _photos(self) -> List[np.ndarray]:
        """The photos, shrunk (area filter) when the view would shrink them anyway: rendering at about one
        photo pixel per image pixel or more never aliases, so small test sequences stay coherent too."""
        photos = skimage_photos(PHOTOS)
        ph, pw = photos[0].shape[:2]
        shrink = 1.3 * max(self.w / pw, self.h / ph)
        if shrink >= 1.0:
            return photos
        return [cv2.resize(p, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA) for p in photos]

    def _object(self, rng: np.random.Generator, photo: int) -> Dict[str, object]:
        ph, pw = self.atlas.sizes[photo]
        r = rng.uniform(0.12, 0.22) * min(self.h, self.w) / self.base_scale  # scene px = texture px
        centre = [rng.uniform(r, max(r, pw - r)), rng.uniform(r, max(r, ph - r))]
        shape = G._star(rng) if rng.random() < 0.5 else G._polygons(rng)
        return {"photo": photo, "flat": False, "present": True, "centre": centre, "r_photo": r,
                "r_img": r * self.base_scale, **shape}

    def _track(self, rng: np.random.Generator) -> _Track:
        px = 1.0 / self.base_scale * (self.w / 640.0)  # scene px per image px at 640 width
        heading = rng.uniform(0, 2 * np.pi)
        return _Track(centre=self.scene / 2 + rng.uniform(-0.25, 0.25, 2) * self.scene,
                      velocity=rng.uniform(30, 120) * px * np.array([np.cos(heading), np.sin(heading)]),
                      wobble=rng.uniform(5, 30, 2) * px, wobble_hz=rng.uniform(0.2, 0.6),
                      angle=rng.uniform(0, 2 * np.pi), spin=rng.normal(0, 0.5), log_scale_amp=rng.uniform(0.0, 0.15),
                      scale_hz=rng.uniform(0.1, 0.4), phase=rng.uniform(0, 2 * np.pi))

    def camera(self, t: float) -> np.ndarray:
        """3x3: scene pixel -> image pixel at time ``t`` (s): pan along a smooth curve, zoom, roll."""
        centre = self.scene / 2 + self.pan_amp * np.sin(2 * np.pi * self.pan_hz * t + self.pan_phase)
        zoom = self.base_scale * (1.12 + 0.08 * np.sin(2 * np.pi * 0.2 * t + self.zoom_phase))
        roll = 0.04 * np.sin(2 * np.pi * 0.15 * t + self.zoom_phase)
        return similarity(zoom, roll, centre, ((self.w - 1) / 2, (self.h - 1) / 2))

    def _affines(self, k: int) -> List[np.ndarray]:
        """Texture -> image maps of [background, objects...] at frame ``k``."""
        t = k * self.speed / self.fps
        cam = self.camera(t)
        maps = [cam]
        for obj, track in zip(self.objects, self.tracks):
            pos, angle, scale = track.pose(t)
            maps.append(cam @ similarity(scale, angle, obj["centre"], pos))
        return maps

    def _layers(self, maps: Sequence[np.ndarray]) -> List[Dict[str, torch.Tensor]]:
        layers = [{"a1": maps[0], "motion": np.eye(3), "photo": 0, "flat": False, "present": True, "kind": 0,
                   "defocus": 0.0}] + [{**obj, "a1": m, "motion": np.eye(3)} for obj, m in zip(self.objects, maps[1:])]
        return G.layers_of(G.stack_scenes([layers], torch.device("cpu")))

    def _render(self, k: int) -> Tuple[np.ndarray, torch.Tensor, List[np.ndarray]]:
        maps = self._affines(k)
        img, ids = G.render(self.atlas, self._layers(maps), "inv1", torch.zeros(1), self.grid)
        noisy = img[0].permute(1, 2, 0).numpy() * 255.0 + self.rng.normal(0, 1.0, (self.h, self.w, 3))
        return np.clip(noisy + 0.5, 0, 255).astype(np.uint8), ids, maps

    def frames(self, n: int) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
        """Yield (image uint8 [H,W,3] RGB, flow float32 [H,W,2] from the previous frame, NaN where
        unknown; None for the first frame) for frames 0..n-1."""
        img, prev_ids, prev_maps = self._render(0)
        yield img, None
        for k in range(1, n):
            img, ids, maps = self._render(k)
            motion = torch.as_tensor(np.array([[m1 @ np.linalg.inv(m0) for m0, m1 in zip(prev_maps, maps)]]),
                                     dtype=torch.float32)
            flow, valid = G.flow_and_valid(motion, prev_ids, ids, self.grid)
            flow = flow[0].permute(1, 2, 0).numpy().copy()
            flow[~valid[0].numpy()] = np.nan
            yield img, flow
            prev_ids, prev_maps = ids, maps


def is_sample_bag(path: Path) -> bool:
    """True for a rosbag2 directory written by :func:`write_sample_bag`: its metadata.yaml carries this tool's
    custom_data key and the folder holds nothing but that file and the bag's storage files."""
    meta = path / "metadata.yaml"
    if not path.is_dir() or not meta.is_file():
        return False
    try:
        custom = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"].get("custom_data") or {}
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        return False
    stray = [p for p in path.iterdir() if p.name != "metadata.yaml" and p.suffix not in (".mcap", ".db3")]
    return SAMPLE_KEY in custom and not stray


def write_sample_bag(path: str | os.PathLike = DEFAULT_PATH, frames: int = 90, size: Tuple[int, int] = (480, 640),
                     fps: float = 30.0, seed: int = 0, storage: str = "mcap", overwrite: bool = False,
                     progress: bool = True, speed: float = 1.0) -> Path:
    """Write the sequence as a rosbag2 directory at ``path`` (atomically: a partial bag never
    appears there). Returns the path. ``overwrite`` replaces only a sample bag this tool wrote before
    (FileExistsError for anything else: it never deletes what it did not write)."""
    if frames < 2:
        raise ValueError(f"need at least 2 frames, got {frames}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite)")
    if path.exists() and not is_sample_bag(path):
        raise FileExistsError(f"{path} exists and is not a sample bag written by this tool: not overwritten")
    scene = SceneSequence(size, fps, seed, speed=speed)
    from tqdm import tqdm

    custom = {SAMPLE_KEY: f"seed={seed} size={size[1]}x{size[0]} fps={fps:g} frames={frames} speed={speed:g}"}
    with new_bag(path, storage, custom, replace=True) as writer:
        writer.add(IMAGE_TOPIC, IMAGE)
        writer.add(GT_TOPIC, IMAGE)
        for k, (img, flow) in enumerate(tqdm(scene.frames(frames), total=frames, desc="sample bag",
                                             unit="frame", disable=not progress, leave=False)):
            stamp = START_NS + round(k * 1e9 / fps)
            writer.write(IMAGE_TOPIC, stamp, rgb_message(img, stamp, FRAME_ID))
            if flow is not None:
                writer.write(GT_TOPIC, stamp, flow_message(flow, stamp, FRAME_ID))
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.sample_bag", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_PATH, help=f"bag directory (default {DEFAULT_PATH})")
    p.add_argument("--frames", type=int, default=90, help="number of frames (default 90 = 3 s at 30 Hz)")
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed", type=float, default=1.0, help="motion per frame x this (15: 30-80 px per frame)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        out = write_sample_bag(args.out, args.frames, tuple(args.size), args.fps, args.seed, args.storage,
                               args.overwrite, not args.quiet, args.speed)
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.frames} frames {args.size[1]}x{args.size[0]} at {args.fps:g} Hz with ground-truth flow "
          f"({IMAGE_TOPIC}, {GT_TOPIC}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
