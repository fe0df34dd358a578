"""FlowNet's geometric training augmentation (Dosovitskiy et al. 2015, section 4), for datasets of files.

One random similarity transform (translation, rotation, scale) applied to both images plus a smaller
relative one applied to the second image only; the output is a crop of fixed size. The flow is
transformed consistently: for an output pixel p of image 1, with x = G1^-1(p) in the input image 1,
the new flow is G2(x + flow(x)) - p. Pixels whose source leaves input image 1, whose input flow is
invalid, or whose target leaves the output crop become invalid.

The photometric half of the paper's augmentation runs batched on the training device
(:func:`flownet_ros.data.photometric.paper_augment`); the photo generator renders its own geometry.

Usage: ``aug = Augmentor(crop=(320, 448)); sample = aug(sample, np.random.default_rng(seed))`` on
the item dicts of :mod:`flownet_ros.data` (img1/img2 uint8 [H,W,3], flow float32 [H,W,2] px,
valid bool [H,W]).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

DISCONTINUITY_PX = 1.0  # neighbours differing more than this: take the nearest flow, not a blend


def _pair(value, name: str) -> Tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"{name} range must be (low, high) with low <= high, got {value}")
    return lo, hi


def _similarity(scale: float, angle_deg: float, centre_from: Sequence[float], centre_to: Sequence[float]
                ) -> np.ndarray:
    """3x3 map x -> scale * R(angle) * (x - centre_from) + centre_to."""
    a = np.radians(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m[:2, 2] = np.asarray(centre_to, float) - m[:2, :2] @ np.asarray(centre_from, float)
    return m


def sample_flow(flow: np.ndarray, valid: np.ndarray, x: np.ndarray, y: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Sample [H,W,2] flow and [H,W] valid at float positions x, y ([h,w] each, float32).

    Bilinear where the 2x2 neighbourhood agrees within :data:`DISCONTINUITY_PX`, the nearest
    neighbour across motion boundaries. Valid needs the whole 2x2 neighbourhood valid (the nearest
    pixel valid at boundaries) and the position inside [0, W-1] x [0, H-1].
    Returns (flow [h,w,2] float32, valid [h,w] bool).
    """
    h, w = flow.shape[:2]
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    flow = np.ascontiguousarray(flow, np.float32)
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    # per 2x2 block starting at (row, col): flow range and all-valid
    block = np.ones((2, 2), np.uint8)
    rng_u = cv2.dilate(flow[:, :, 0], block, anchor=(0, 0)) - cv2.erode(flow[:, :, 0], block, anchor=(0, 0))
    rng_v = cv2.dilate(flow[:, :, 1], block, anchor=(0, 0)) - cv2.erode(flow[:, :, 1], block, anchor=(0, 0))
    edge_in = (np.maximum(rng_u, rng_v) > DISCONTINUITY_PX).astype(np.uint8)
    valid_u8 = valid.astype(np.uint8)
    all_valid = cv2.erode(valid_u8, block, anchor=(0, 0))
    # nearest lookups of the block maps at the block's top-left pixel (floor of the position)
    xf, yf = x - np.float32(0.5), y - np.float32(0.5)
    nearest = dict(interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    edge = cv2.remap(edge_in, xf, yf, **nearest).astype(bool)
    ok_block = cv2.remap(all_valid, xf, yf, **nearest).astype(bool)
    bil = cv2.remap(flow, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    near = cv2.remap(flow, x, y, **nearest)
    ok_near = cv2.remap(valid_u8, x, y, **nearest).astype(bool)
    out = np.where(edge[..., None], near, bil)
    ok = np.where(edge, ok_near, ok_block)
    return out, ok & inside


class Augmentor:
    """Geometric FlowNet augmentation; ``aug(sample, rng) -> sample`` (new dict, input untouched).

    ``translate`` (fraction of the input size, uniform +-), ``rotate`` (degrees, uniform +-), ``scale``
    (zoom range, uniform), and the relative transform of image 2: ``rel_translate`` (fraction of the crop
    size), ``rel_rotate`` (degrees), ``rel_scale`` (range). ``geometric=False``: a plain random crop.
    Defaults are the paper's values.
    """

    def __init__(self, crop: Optional[Sequence[int]] = (320, 448), geometric: bool = True,
                 translate: float = 0.2, rotate: float = 17.0, scale: Sequence[float] = (0.9, 2.0),
                 rel_translate: float = 0.03, rel_rotate: float = 3.0, rel_scale: Sequence[float] = (0.95, 1.05)):
        if crop is not None:
            if len(crop) != 2 or min(int(c) for c in crop) < 1:
                raise ValueError(f"crop must be (H, W) with positive sizes, got {crop}")
            crop = (int(crop[0]), int(crop[1]))
        self.crop = crop
        self.geometric = bool(geometric)
        self.translate, self.rotate = float(translate), float(rotate)
        self.scale = _pair(scale, "scale")
        if self.scale[0] <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.rel_translate, self.rel_rotate = float(rel_translate), float(rel_rotate)
        self.rel_scale = _pair(rel_scale, "rel_scale")
        if self.rel_scale[0] <= 0:
            raise ValueError(f"rel_scale must be positive, got {rel_scale}")

    def __repr__(self) -> str:
        return f"Augmentor({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def __call__(self, sample: Dict[str, np.ndarray], rng: np.random.Generator) -> Dict[str, np.ndarray]:
        if self.geometric or self.crop is not None:
            return self.geometric_transform(dict(sample), rng)
        return dict(sample)

    # -- geometry -------------------------------------------------------------------------------
    def sample_transforms(self, rng: np.random.Generator, in_size: Tuple[int, int], out_size: Tuple[int, int]
                          ) -> Tuple[np.ndarray, np.ndarray]:
        """Random (G1, G2), 3x3 maps from input image coordinates to output crop coordinates."""
        (h, w), (oh, ow) = in_size, out_size
        c_out = ((ow - 1) / 2.0, (oh - 1) / 2.0)
        if not self.geometric:  # plain random crop: integer offsets, exact copy of pixels
            if oh > h or ow > w:
                raise ValueError(f"crop {out_size} is larger than the image {in_size}")
            x0, y0 = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
            g = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
            return g, g.copy()
        t = rng.uniform(-self.translate, self.translate, 2) * (w, h)
        centre_in = ((w - 1) / 2.0 + t[0], (h - 1) / 2.0 + t[1])
        g1 = _similarity(rng.uniform(*self.scale), rng.uniform(-self.rotate, self.rotate), centre_in, c_out)
        rt = rng.uniform(-self.rel_translate, self.rel_translate, 2) * (ow, oh)
        rel = _similarity(rng.uniform(*self.rel_scale), rng.uniform(-self.rel_rotate, self.rel_rotate),
                          c_out, (c_out[0] + rt[0], c_out[1] + rt[1]))
        return g1, rel @ g1

    def geometric_transform(self, sample: Dict[str, np.ndarray], rng: np.random.Generator) -> Dict[str, np.ndarray]:
        img1, img2, flow = sample["img1"], sample["img2"], sample["flow"]
        h, w = img1.shape[:2]
        valid = sample.get("valid")
        valid = np.ones((h, w), bool) if valid is None else valid
        oh, ow = self.crop if self.crop is not None else (h, w)
        g1, g2 = self.sample_transforms(rng, (h, w), (oh, ow))
        if not self.geometric:  # integer crop: exact slices
            x0, y0 = int(-g1[0, 2]), int(-g1[1, 2])
            sl = (slice(y0, y0 + oh), slice(x0, x0 + ow))
            f = flow[sl].astype(np.float32)
            ok = valid[sl] & (f[:, :, 0] + np.arange(ow, dtype=np.float32) >= 0) \
                & (f[:, :, 0] + np.arange(ow, dtype=np.float32) <= ow - 1) \
                & (f[:, :, 1] + np.arange(oh, dtype=np.float32)[:, None] >= 0) \
                & (f[:, :, 1] + np.arange(oh, dtype=np.float32)[:, None] <= oh - 1)
            f = np.where(ok[..., None], f, np.float32(0))
            return {**sample, "img1": img1[sl].copy(), "img2": img2[sl].copy(), "flow": f, "valid": ok}
        warp = lambda img, g: cv2.warpAffine(img, g[:2], (ow, oh), flags=cv2.INTER_LINEAR,  # noqa: E731
                                             borderMode=cv2.BORDER_REFLECT_101)
        out_img1, out_img2 = warp(img1, g1), warp(img2, g2)
        # source positions in input image 1 of every output pixel
        inv1 = np.linalg.inv(g1).astype(np.float32)
        xs = np.arange(ow, dtype=np.float32)[None, :]
        ys = np.arange(oh, dtype=np.float32)[:, None]
        sx = inv1[0, 0] * xs + inv1[0, 1] * ys + inv1[0, 2]
        sy = inv1[1, 0] * xs + inv1[1, 1] * ys + inv1[1, 2]
        f, ok = sample_flow(flow, valid, sx, sy)
        tx = sx + f[:, :, 0]
        ty = sy + f[:, :, 1]
        g2 = g2.astype(np.float32)
        new_flow = np.empty((oh, ow, 2), np.float32)
        new_flow[:, :, 0] = g2[0, 0] * tx + g2[0, 1] * ty + g2[0, 2] - xs
        new_flow[:, :, 1] = g2[1, 0] * tx + g2[1, 1] * ty + g2[1, 2] - ys
        px = new_flow[:, :, 0] + xs
        py = new_flow[:, :, 1] + ys
        ok &= (px >= 0) & (px <= ow - 1) & (py >= 0) & (py <= oh - 1)
        new_flow[~ok] = 0.0
        return {**sample, "img1": out_img1, "img2": out_img2, "flow": new_flow, "valid": ok}
