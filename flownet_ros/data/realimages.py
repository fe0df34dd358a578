"""Real images with ground-truth motion, for evaluation only (none of it is ever trained on).

Three groups, each reproducible from public packages (:mod:`flownet_ros.data.photos`):

* ``stereo``: real stereo pairs with measured disparity d, seen as flow left -> right (u = -d, v = 0):
  Middlebury Aloe (OpenCV's sample data in Debian's opencv-doc), at half size (641x555, disparity
  halved; structured-light ground truth, pixels where it is missing or changes by more than 2 px
  inside the 2x2 block are invalid) and Middlebury 2014 Motorcycle (``skimage.data.stereo_motorcycle``,
  741x500).
* ``graffiti``: Oxford Graffiti image 1 -> 3 (opencv-doc), a planar scene with its published
  homography: flow H(x) - x, valid where H(x) falls inside image 3. Viewpoint change, 10-290 px.
* ``photos``: held-out photographs (plasma-workspace-wallpapers) seen through two random camera
  homographies at 640x480: frame 2 is the photo warped by the motion, so the flow is exact. The target
  motion of pair j cycles through :data:`PHOTO_MOTIONS_PX` (small to large, horizontal-heavy, with
  rotation, zoom and perspective); frame 2 gets a small gain change, both frames sensor noise.

Items are dicts like every dataset of :mod:`flownet_ros.data` (img1, img2 uint8 RGB, flow float32 px,
valid bool), plus ``name`` and ``group``; sizes differ between items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from torch.utils.data import Dataset

from flownet_ros.data.datasets import DatasetError, read_image
from flownet_ros.data.homography import homography_flow, scaled_to
from flownet_ros.data.photos import load_photo, photo_files, require

GROUPS = ("stereo", "graffiti", "photos")
#: Mean flow magnitude (px at 640x480) aimed at by photo pair j (cycled): many small motions, a long tail.
PHOTO_MOTIONS_PX = (0.5, 2.0, 4.0, 7.5, 15.0, 30.0, 60.0)
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
Item = Dict[str, object]


def _stereo_item(name: str, left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
                 valid: np.ndarray) -> Item:
    """Left -> right flow of a rectified pair: u = -disparity; invalid where the target leaves the image."""
    w = left.shape[1]
    xs = np.arange(w, dtype=np.float32)[None, :]
    d = np.where(valid, disparity, 0).astype(np.float32)
    flow = np.stack([-d, np.zeros_like(d)], axis=-1)
    return {"name": name, "group": "stereo", "img1": left, "img2": right, "flow": flow,
            "valid": valid & (xs - d >= 0)}


def aloe_half(root: Optional[Path] = None) -> Item:
    """Middlebury Aloe at half resolution (OpenCV sample data; aloeGT.png = disparity in px, 0 = unknown)."""
    d = require("opencv-doc", root) / OPENCV_DATA
    left, right = read_image(d / "aloeL.jpg"), read_image(d / "aloeR.jpg")
    gt = cv2.imread(str(d / "aloeGT.png"), cv2.IMREAD_GRAYSCALE)
    if gt is None:
        raise DatasetError(f"{d / 'aloeGT.png'}: cannot decode the disparity image")
    h, w = (gt.shape[0] // 2) * 2, (gt.shape[1] // 2) * 2
    blocks = gt[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2)
    lo, hi = blocks.min(axis=(1, 3)), blocks.max(axis=(1, 3))
    valid = (lo > 0) & (hi - lo <= 2.0)
    half = lambda img: cv2.resize(img[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # noqa: E731
    return _stereo_item("aloe (Middlebury, half size)", half(left), half(right), blocks.mean(axis=(1, 3)) / 2,
                        valid)


def motorcycle() -> Item:
    """Middlebury 2014 Motorcycle as scikit-image ships it (disparity in px, inf = unknown)."""
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    return _stereo_item("motorcycle (Middlebury 2014, scikit-image)", np.ascontiguousarray(left),
                        np.ascontiguousarray(right), disp, np.isfinite(disp))


def _inside(flow: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    h, w = size
    tx = flow[..., 0] + np.arange(flow.shape[1], dtype=np.float32)[None, :]
    ty = flow[..., 1] + np.arange(flow.shape[0], dtype=np.float32)[:, None]
    return (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)


def graffiti(root: Optional[Path] = None) -> Item:
    """Oxford Graffiti 1 -> 3 with the published homography H1to3p (OpenCV sample data)."""
    d = require("opencv-doc", root) / OPENCV_DATA
    img1, img3 = read_image(d / "graf1.png"), read_image(d / "graf3.png")
    fs = cv2.FileStorage(str(d / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
    h = fs.getNode("H13").mat()
    fs.release()
    if h is None or h.shape != (3, 3):
        raise DatasetError(f"{d / 'H1to3p.xml'}: no 3x3 matrix H13")
    flow = homography_flow(h, img1.shape[:2])
    return {"name": "graffiti 1-3 (Oxford)", "group": "graffiti", "img1": img1, "img2": img3, "flow": flow,
            "valid": _inside(flow, img3.shape[:2])}


def camera_motion(rng: np.random.Generator, size: Tuple[int, int], magnitude: float) -> np.ndarray:
    """3x3 homography (frame-1 pixel -> frame-2 pixel) with a mean flow of ``magnitude`` px: a translation
    (horizontal-heavy), rotation and zoom about the centre, and perspective, in proportion."""
    h, w = size
    angle = rng.uniform(0, 2 * np.pi)
    radius = 0.5 * np.hypot(w, h)
    return scaled_to(magnitude, size, shift=magnitude * rng.uniform(0.6, 1.0) * np.array([np.cos(angle),
                                                                                            0.6 * np.sin(angle)]),
                     angle=rng.uniform(-0.3, 0.3) * magnitude / radius,
                     zoom=float(np.exp(rng.uniform(-0.3, 0.3) * magnitude / radius)),
                     jitter=rng.uniform(-0.15, 0.15, (4, 2)) * magnitude)


def warped_photo_pair(photo: np.ndarray, rng: np.random.Generator, magnitude: float,
                      size: Tuple[int, int] = (480, 640)) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame 1, frame 2, flow) of a camera moving over ``photo``: frame 1 is a view of the photo at a
    random place and scale (0.8-1.25 photo px per image px), frame 2 that view moved by
    :func:`camera_motion`. Every frame-1 pixel shows the photo, so only leaving the image invalidates."""
    h, w = size
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.8, 1.25) * max(h / ph, w / pw, 1.0)   # image px per photo px
    x0 = rng.uniform(0, pw - w / scale)
    y0 = rng.uniform(0, ph - h / scale)
    a1 = np.array([[scale, 0, -scale * x0], [0, scale, -scale * y0], [0, 0, 1]])  # photo -> frame 1
    motion = camera_motion(rng, size, magnitude)
    frames = [cv2.warpPerspective(photo, a, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
              for a in (a1, motion @ a1)]
    gain = rng.uniform(0.97, 1.03)
    out = []
    for k, img in enumerate(frames):
        f = img.astype(np.float32) * np.float32(gain if k else 1.0)
        f += rng.normal(0.0, 1.0, f.shape).astype(np.float32)  # sensor noise, 1 grey level
        out.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return out[0], out[1], homography_flow(motion, size)


class RealImagePairs(Dataset):
    """The real-image evaluation set (module docstring). ``groups`` selects parts; ``pairs_per_photo``
    pairs per held-out photo (deterministic for ``seed``)."""

    def __init__(self, groups: Sequence[str] = GROUPS, pairs_per_photo: int = len(PHOTO_MOTIONS_PX),
                 size: Tuple[int, int] = (480, 640), seed: int = 0, root: Optional[str] = None):
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown group(s) {unknown}; choose from {GROUPS}")
        self.root = Path(root) if root else None
        self.size, self.seed = (int(size[0]), int(size[1])), int(seed)
        self._items: List[Callable[[], Item]] = []
        if "stereo" in groups:
            self._items += [lambda: aloe_half(self.root), motorcycle]
        if "graffiti" in groups:
            self._items.append(lambda: graffiti(self.root))
        if "photos" in groups:
            files = photo_files("eval", self.root)
            for p, path in enumerate(files):
                for j in range(int(pairs_per_photo)):
                    self._items.append(lambda p=p, path=path, j=j: self._photo_item(p, path, j))

    def _photo_item(self, p: int, path: Path, j: int) -> Item:
        rng = np.random.default_rng([self.seed, p, j])
        magnitude = PHOTO_MOTIONS_PX[j % len(PHOTO_MOTIONS_PX)]
        img1, img2, flow = warped_photo_pair(load_photo(path, max_side=1280), rng, magnitude, self.size)
        name = path.parts[-4] if path.parent.name == "images" else path.stem
        return {"name": f"photo {name} #{j} ({magnitude:g} px)", "group": "photos", "img1": img1, "img2": img2,
                "flow": flow, "valid": _inside(flow, self.size)}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Item:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} real-image pairs")
        return self._items[index]()
