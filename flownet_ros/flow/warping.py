"""Backward warping of image 2 by the flow (frame 1 -> frame 2), and photometric error.

``warp_backward(img2, flow)[y, x] = img2 at (x + u, y + v)`` with bilinear interpolation; this
approximates image 1 wherever the pixel is visible in both frames. Neighbours outside the
image count as zero, exactly like ``torch.nn.functional.grid_sample(..., align_corners=True,
padding_mode='zeros')``, so the numpy and torch versions agree.
"""

from __future__ import annotations

import functools
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _check(img: np.ndarray, flow: np.ndarray) -> None:
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be [H,W,2], got shape {flow.shape}")
    if img.ndim not in (2, 3) or img.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image {img.shape} and flow {flow.shape} must have the same H, W")


@functools.lru_cache(maxsize=1)
def remap_position_step() -> float:
    """Spacing (px) of the sample positions ``cv2.remap`` resolves with bilinear interpolation: 1/32 in
    OpenCV 4 (fixed-point interpolation tables: positions are rounded to the nearest 1/32), 0 in OpenCV 5
    (exact). Measured once on a ramp, not assumed from the version number.

    A bilinear result can then differ from the exact one by up to ``step / 2`` times the local change of
    the data per pixel along each axis: the tolerance of anything compared with a remap."""
    ramp = np.tile(np.arange(4, dtype=np.float32), (4, 1))
    x = np.full((1, 1), 1.3, np.float32)
    got = float(cv2.remap(ramp, x, np.ones((1, 1), np.float32), cv2.INTER_LINEAR)[0, 0])
    return 0.0 if abs(got - 1.3) < 1e-4 else 1.0 / 32.0


def sample_points(flow: np.ndarray) -> np.ndarray:
    """[H,W,2] flow -> [H,W,2] float32 target positions (x + u, y + v) in pixels."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.stack([xs + flow[:, :, 0], ys + flow[:, :, 1]], axis=2).astype(np.float32)


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """[H,W] bool: the flow target lies inside the image, 0 <= x+u <= W-1 and 0 <= y+v <= H-1."""
    pts = sample_points(np.asarray(flow, dtype=np.float32))
    h, w = flow.shape[:2]
    return ((pts[:, :, 0] >= 0) & (pts[:, :, 0] <= w - 1) & (pts[:, :, 1] >= 0) & (pts[:, :, 1] <= h - 1))


def warp_backward(img2: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Resample [H,W,C] (or [H,W]) ``img2`` at x + flow -> float32 array of the same shape.

    ``flow`` is [H,W,2] in pixels (frame 1 -> frame 2); the result approximates image 1.
    """
    img2 = np.asarray(img2)
    flow = np.asarray(flow, dtype=np.float32)
    _check(img2, flow)
    pts = sample_points(flow)
    # OpenCV's bilinear remap on float32 input matches grid_sample(align_corners=True, zeros) to ~1e-5
    # and is ~15x faster than numpy gathers (it dominated the bag report's time). OpenCV 4 rounds the
    # sample positions to 1/32 px (remap_position_step): up to ~5 of 255 off on noise images.
    out = cv2.remap(img2.astype(np.float32, copy=False), pts[:, :, 0], pts[:, :, 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(img2.shape)  # remap drops a trailing channel axis of size 1


def warp_backward_torch(img: torch.Tensor, flow: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Resample [B,C,H,W] ``img`` at x + flow ([B,2,H,W], pixels) with grid_sample -> [B,C,H,W]
    float; outside the image: zeros (``padding="zeros"``) or the nearest border value (``"border"``)."""
    if img.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2 or img.shape[0] != flow.shape[0] \
            or img.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"need img [B,C,H,W] and flow [B,2,H,W] of the same B, H, W; got "
                         f"{tuple(img.shape)} and {tuple(flow.shape)}")
    b, _, h, w = flow.shape
    flow = flow.float()
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # [B,H,W,2]
    return F.grid_sample(img.float(), grid, mode="bilinear", padding_mode=padding, align_corners=True)


def bidirectional_average(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """[B,2,H,W] forward (1 -> 2) and backward (2 -> 1) flow in pixels of this grid -> the 1 -> 2 flow
    (forward(x) - backward(x + forward(x))) / 2. The motion adds up; an error that does not change sign
    with the direction of motion (a bias that depends on the image content) cancels."""
    return 0.5 * (forward.float() - warp_backward_torch(backward, forward, padding="border"))


def photometric_error(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray,
                      valid: Optional[np.ndarray] = None) -> float:
    """Mean absolute difference (0..255 units, over pixels and channels) between ``img1`` and
    ``img2`` warped back by ``flow``, over pixels whose target lies inside the image (and
    ``valid``, [H,W] bool, when given). NaN when no pixel qualifies."""
    flow = np.asarray(flow, dtype=np.float32)
    diff = photometric_residual(img1, img2, flow)
    mask = inside_mask(flow)
    if valid is not None:
        mask &= np.asarray(valid, dtype=bool)
    if not mask.any():
        return float("nan")
    return float(diff[mask].mean(dtype=np.float64))


def photometric_residual(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """[H,W] float32 |img1 - img2 warped back by flow| (0..255 units), the mean over channels."""
    img1 = np.asarray(img1)
    if img1.shape != np.asarray(img2).shape:
        raise ValueError(f"image shapes differ: {img1.shape} vs {np.asarray(img2).shape}")
    diff = np.abs(warp_backward(img2, flow) - img1.astype(np.float32))
    return diff.mean(axis=2, dtype=np.float32) if diff.ndim == 3 else diff
