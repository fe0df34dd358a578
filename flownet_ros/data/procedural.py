"""Procedural "flying objects" optical flow pairs in the spirit of Flying Chairs.

A pair is a textured background plane plus several textured foreground objects (polygons,
ellipses, noise blobs, compound bar shapes) with alpha masks. Every layer has its own random
affine motion (translation, rotation, scale) between frame 1 and frame 2. Both frames are
rendered from the same textures with ``cv2.warpAffine``, so the ground truth is exact: the flow
at a frame-1 pixel is the motion of the front-most layer there (alpha >= 0.5), and a pixel is
valid unless it leaves the image or is covered by another layer in frame 2 (occlusion). The
only deviation from the continuous model is OpenCV's 1/32-px fixed-point interpolation.

Sizes are (H, W); motion magnitudes are given at a 512-px-wide reference and scale with W.
Determinism: the pair for ``(seed, index)`` comes from ``numpy.random.default_rng([seed, index])``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from torch.utils.data import Dataset

from flownet_ros.data.textures import BACKGROUND_PROBS, pyramid_noise, random_texture
from flownet_ros.flow.io import write_flo

REFERENCE_WIDTH = 512.0


@dataclass(frozen=True)
class ProceduralConfig:
    """Generator parameters (pixels at 512 px width; scaled with the image width)."""

    min_objects: int = 3
    max_objects: int = 8
    object_size: Tuple[float, float] = (0.12, 0.5)     # object diameter, fraction of min(H, W)
    bg_translation: float = 7.0       # mean |t| (px) of the background, exponential (heavy tail)
    obj_translation: float = 11.0     # mean |t| (px) of an object relative to the background
    bg_rotation_deg: float = 2.5      # std of the background rotation
    obj_rotation_deg: float = 10.0    # std of an object's rotation about its centre
    bg_log_scale: float = 0.04        # std of log(scale) of the background
    obj_log_scale: float = 0.08       # std of log(scale) of an object
    large_motion_prob: float = 0.1    # chance that a layer's translation mean is x3 (tail)
    blur_prob: float = 0.2            # chance of a mild Gaussian blur of both frames
    blur_sigma: Tuple[float, float] = (0.3, 1.2)

    def __post_init__(self):
        if not (0 <= self.min_objects <= self.max_objects):
            raise ValueError(f"need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        lo, hi = self.object_size
        if not (0 < lo <= hi):
            raise ValueError(f"object_size must be 0 < lo <= hi, got {self.object_size}")


def similarity_matrix(angle: float, scale: float, tx: float, ty: float, cx: float, cy: float) -> np.ndarray:
    """3x3 affine: rotate by ``angle`` (rad) and scale about (cx, cy), then translate by (tx, ty)."""
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, cx - c * cx + s * cy + tx],
                     [s, c, cy - s * cx - c * cy + ty],
                     [0.0, 0.0, 1.0]])


def _sample_translation(rng: np.random.Generator, mean: float, tail_prob: float) -> Tuple[float, float]:
    if rng.random() < tail_prob:
        mean *= 3.0
    mag = rng.exponential(mean)
    ang = rng.uniform(0, 2 * np.pi)
    return mag * np.cos(ang), mag * np.sin(ang)


def object_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 [size,size] mask (255 inside) of a random shape centred in the square."""
    m = np.zeros((size, size), np.uint8)
    c = size / 2.0
    r = size / 2.0 * 0.95
    kind = rng.random()
    if kind < 0.35:  # star-shaped polygon
        k = int(rng.integers(3, 13))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.35, 1.0, k)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 255)
    elif kind < 0.55:  # ellipse
        axes = (int(r), int(max(2, r * rng.uniform(0.25, 1.0))))
        cv2.ellipse(m, (int(c), int(c)), axes, rng.uniform(0, 180), 0, 360, 255, -1)
    elif kind < 0.8:  # noise blob: thresholded smooth noise inside a radial envelope
        n = pyramid_noise(rng, size, size, beta=1.2, finest=2)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        d = np.sqrt((xs - c) ** 2 + (ys - c) ** 2) / np.float32(r)
        m[(n * np.float32(0.6) + np.float32(1.2) - np.float32(1.6) * d * d) > 0] = 255
    else:  # compound of bars and boxes (thin structures, like chair legs)
        for _ in range(int(rng.integers(2, 6))):
            a = rng.uniform(0, np.pi)
            length = r * rng.uniform(0.4, 1.0)
            width = max(2.0, r * rng.uniform(0.06, 0.5))
            off = rng.uniform(-0.4, 0.4, 2) * r
            box = ((c + off[0], c + off[1]), (2 * length, width), np.degrees(a))
            cv2.fillPoly(m, [np.round(cv2.boxPoints(box)).astype(np.int32)], 255)
    if not m.any():
        cv2.circle(m, (int(c), int(c)), int(max(1, r / 2)), 255, -1)
    return m


class Layer:
    """A texture (uint8 RGBA, or RGB for the opaque background) with its texture -> image affines
    for frame 1 (``a1``) and frame 2 (``a2 = motion @ a1``), all 3x3."""

    def __init__(self, rgba: np.ndarray, a1: np.ndarray, motion: np.ndarray):
        self.rgba = rgba
        self.a1 = a1
        self.motion = motion  # frame-1 image coords -> frame-2 image coords (3x3)
        self.a2 = motion @ a1

    def bbox(self, a: np.ndarray, h: int, w: int) -> Optional[Tuple[int, int, int, int]]:
        th, tw = self.rgba.shape[:2]
        corners = np.array([[0, 0, 1], [tw, 0, 1], [0, th, 1], [tw, th, 1]], float).T
        p = a[:2] @ corners
        x0, y0 = max(0, int(np.floor(p[0].min())) - 1), max(0, int(np.floor(p[1].min())) - 1)
        x1, y1 = min(w, int(np.ceil(p[0].max())) + 2), min(h, int(np.ceil(p[1].max())) + 2)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1


def render_layers(bg: Layer, objects: Sequence[Layer], frame: int, h: int, w: int
                  ) -> Tuple[np.ndarray, np.ndarray, list]:
    """Composite one frame back to front -> (uint8 [h,w,3] image, uint8 [h,w] front layer id
    (0 = background, k = k-th object, where its alpha >= 0.5), per-object ROI or None)."""
    a = bg.a1 if frame == 1 else bg.a2
    img = cv2.warpAffine(bg.rgba, a[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    ids = np.zeros((h, w), np.uint8)
    rois = []
    for k, obj in enumerate(objects, start=1):
        a = obj.a1 if frame == 1 else obj.a2
        box = obj.bbox(a, h, w)
        rois.append(box)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        m = a[:2].copy()
        m[0, 2] -= x0
        m[1, 2] -= y0
        patch = cv2.warpAffine(obj.rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        alpha = patch[:, :, 3]
        al = alpha.astype(np.float32)
        al *= np.float32(1.0 / 255.0)
        img[y0:y1, x0:x1] = cv2.blendLinear(img[y0:y1, x0:x1], np.ascontiguousarray(patch[:, :, :3]),
                                            np.float32(1.0) - al, al)
        ids[y0:y1, x0:x1][alpha >= 128] = k
    return img, ids, rois


def affine_flow(motion: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Flow (u, v) of the 3x3 ``motion`` at pixel rows ``ys`` [h,1] and columns ``xs`` [1,w]."""
    m = motion.astype(np.float32)
    u = (m[0, 0] - np.float32(1)) * xs + (m[0, 1] * ys + m[0, 2])
    v = m[1, 0] * xs + ((m[1, 1] - np.float32(1)) * ys + m[1, 2])
    return u, v


def render_pair(rng_or_seed: Union[np.random.Generator, int, Sequence[int]], size: Tuple[int, int] = (384, 512),
                config: Optional[ProceduralConfig] = None) -> Dict[str, np.ndarray]:
    """Generate one pair -> {'img1','img2': uint8 [H,W,3] RGB, 'flow': float32 [H,W,2] px, 'valid': bool [H,W]}.

    ``rng_or_seed``: a numpy Generator (consumed) or a seed / seed sequence for ``default_rng``.
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    cfg = config or ProceduralConfig()
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8x8, got {size}")
    px = w / REFERENCE_WIDTH

    # background: texture of the image size; frame 1 sees it with a random sub-pixel offset so both
    # frames are equally interpolated; reflection padding supplies texture beyond the borders
    bg_rgb = random_texture(rng, h, w, probs=BACKGROUND_PROBS)
    a1 = similarity_matrix(0.0, 1.0, *rng.uniform(-0.5, 0.5, 2), 0.0, 0.0)
    tx, ty = _sample_translation(rng, cfg.bg_translation * px, cfg.large_motion_prob)
    centre = (rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h)
    bg_motion = similarity_matrix(np.radians(rng.normal(0, cfg.bg_rotation_deg)),
                        float(np.exp(rng.normal(0, cfg.bg_log_scale))), tx, ty, *centre)
    bg = Layer(bg_rgb, a1, bg_motion)

    objects = []
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    side = min(h, w)
    for _ in range(n_obj):
        d = max(6, int(rng.uniform(*cfg.object_size) * side))
        rgb = random_texture(rng, d, d)
        rgba = np.dstack([rgb, object_mask(rng, d)])
        cx, cy = rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h
        place = similarity_matrix(rng.uniform(0, 2 * np.pi), 1.0, cx - d / 2.0, cy - d / 2.0, d / 2.0, d / 2.0)
        # objects move with part of the camera (background) motion plus their own
        otx, oty = _sample_translation(rng, cfg.obj_translation * px, cfg.large_motion_prob)
        follow = rng.uniform(0, 1)
        own = similarity_matrix(np.radians(rng.normal(0, cfg.obj_rotation_deg)),
                      float(np.exp(rng.normal(0, cfg.obj_log_scale))), otx, oty, cx, cy)
        shared = similarity_matrix(0.0, 1.0, follow * tx, follow * ty, 0.0, 0.0)
        objects.append(Layer(rgba, place, shared @ own))

    img1, ids1, rois1 = render_layers(bg, objects, 1, h, w)
    img2, ids2, _ = render_layers(bg, objects, 2, h, w)

    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    flow = np.empty((h, w, 2), np.float32)
    flow[:, :, 0], flow[:, :, 1] = affine_flow(bg.motion, xs, ys)
    for k, (obj, box) in enumerate(zip(objects, rois1), start=1):
        if box is None:
            continue
        x0, y0, x1, y1 = box
        sel = ids1[y0:y1, x0:x1] == k
        if not sel.any():
            continue
        ou, ov = affine_flow(obj.motion, xs[:, x0:x1], ys[y0:y1])
        region = flow[y0:y1, x0:x1]
        region[:, :, 0][sel] = ou[sel]
        region[:, :, 1][sel] = ov[sel]

    # valid: the target (x+u, y+v) lies in the image and the same layer is in front at its nearest
    # pixel in frame 2 (otherwise the point is occluded there)
    tx2 = flow[:, :, 0] + xs
    ty2 = flow[:, :, 1] + ys
    inside = (tx2 >= 0) & (tx2 <= w - 1) & (ty2 >= 0) & (ty2 <= h - 1)
    front2 = cv2.remap(ids2, tx2, ty2, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    valid = inside & (front2 == ids1)

    if rng.random() < cfg.blur_prob:
        sigma = rng.uniform(*cfg.blur_sigma)
        img1 = cv2.GaussianBlur(img1, (0, 0), sigma)
        img2 = cv2.GaussianBlur(img2, (0, 0), sigma)
    return {"img1": img1, "img2": img2, "flow": flow, "valid": valid}


class ProceduralFlowDataset(Dataset):
    """Torch Dataset of procedural pairs: item ``i`` = ``render_pair(default_rng([seed, i]), size)``.

    Items are dicts as every flownet_ros dataset: img1/img2 uint8 [H,W,3] RGB, flow float32
    [H,W,2] pixels, valid bool [H,W]. Extra keyword arguments override :class:`ProceduralConfig`.
    """

    def __init__(self, size: Tuple[int, int] = (384, 512), length: int = 10000, seed: int = 0, **config):
        if len(size) != 2 or min(int(s) for s in size) < 8:
            raise ValueError(f"size must be (H, W) >= 8, got {size}")
        if int(length) < 1:
            raise ValueError(f"length must be positive, got {length}")
        known = {f.name for f in fields(ProceduralConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise TypeError(f"unknown procedural generator option(s) {unknown}; known: {sorted(known)}")
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        self.size = (int(size[0]), int(size[1]))
        self.length = int(length)
        self.seed = int(seed)
        self.config = replace(ProceduralConfig(), **config)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} procedural pairs")
        return render_pair(np.random.default_rng([self.seed, index]), self.size, self.config)


def export_chairs(directory: Union[str, "os.PathLike[str]"], n: int, size: Tuple[int, int] = (384, 512),
                  seed: int = 0, val_fraction: float = 640 / 22872, **config) -> Path:
    """Write ``n`` procedural pairs in the Flying Chairs layout and return the split-list path.

    Files: ``NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo`` (numbered from 00001) and
    ``FlyingChairs_train_val.txt`` with one line per pair: ``1`` = train, ``2`` = validation (the
    last ``round(n * val_fraction)`` pairs, at least one when n >= 2). Pair i is item i-1 of
    ``ProceduralFlowDataset(size, n, seed)``. The Chairs format has no valid mask, so the
    occlusion mask is not stored.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ds = ProceduralFlowDataset(size=size, length=max(1, n), seed=seed, **config)
    n_val = int(round(n * val_fraction))
    if n >= 2:
        n_val = min(max(1, n_val), n - 1)
    lines = []
    for i in range(n):
        item = ds[i]
        stem = out / f"{i + 1:05d}"
        for key in ("img1", "img2"):
            path = f"{stem}_{key}.ppm"
            if not cv2.imwrite(path, np.ascontiguousarray(item[key][:, :, ::-1])):
                raise OSError(f"{path}: OpenCV could not write the image")
        write_flo(f"{stem}_flow.flo", item["flow"])
        lines.append("2" if i >= n - n_val else "1")
    split = out / "FlyingChairs_train_val.txt"
    split.write_text("".join(line + "\n" for line in lines))
    return split
