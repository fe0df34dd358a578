"""Planar camera motion as 3x3 homographies (pixel -> pixel), and their exact flow.

Used by the training generator (:mod:`flownet_ros.data.generator`) to draw layer motions and by the
real-image evaluation set (:mod:`flownet_ros.data.realimages`) to move the camera over a photograph.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np


def similarity(scale: float, angle: float, centre_from: Sequence[float], centre_to: Sequence[float]) -> np.ndarray:
    """3x3 map x -> scale * R(angle) (x - centre_from) + centre_to (angle in radians)."""
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m[:2, 2] = np.asarray(centre_to, float) - m[:2, :2] @ np.asarray(centre_from, float)
    return m


def corner_motion(size: Tuple[int, int], shift: Sequence[float], angle: float = 0.0, zoom: float = 1.0,
                  jitter: np.ndarray = None, centre: Sequence[float] = None) -> np.ndarray:
    """Homography moving the image corners by a rotation ``angle`` (rad) and zoom about ``centre``
    (default the image centre), then ``shift`` (px), plus per-corner ``jitter`` ([4,2] px: perspective)."""
    h, w = size
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    centre = corners.mean(axis=0) if centre is None else np.asarray(centre, np.float64)
    moved = (similarity(zoom, angle, centre, centre + np.asarray(shift, np.float64))
             @ np.c_[corners, np.ones(4)].T).T[:, :2]
    if jitter is not None:
        moved = moved + jitter
    return cv2.getPerspectiveTransform(corners.astype(np.float32), moved.astype(np.float32)).astype(np.float64)


def homography_flow(h: np.ndarray, size: Tuple[int, int], step: int = 1) -> np.ndarray:
    """[H,W,2] float32 flow x -> h(x) - x of the 3x3 homography ``h`` at every ``step``-th pixel of a
    ``size`` image."""
    height, width = size
    xs, ys = np.meshgrid(np.arange(0, width, step, dtype=np.float64), np.arange(0, height, step, dtype=np.float64))
    den = h[2, 0] * xs + h[2, 1] * ys + h[2, 2]
    u = (h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / den - xs
    v = (h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / den - ys
    return np.stack([u, v], axis=-1).astype(np.float32)


def mean_motion(h: np.ndarray, size: Tuple[int, int]) -> float:
    """Mean flow magnitude (px) of ``h`` over a ``size`` image (on an 8-px grid)."""
    return float(np.linalg.norm(homography_flow(h, size, step=8), axis=-1).mean())


def scaled_to(magnitude: float, size: Tuple[int, int], shift, angle, zoom, jitter, centre=None,
              iterations: int = 3) -> np.ndarray:
    """:func:`corner_motion` with shift, rotation, log-zoom and jitter scaled together so that the mean
    flow over the image is ``magnitude`` px (a few fixed-point steps; the flow is nearly linear in them)."""
    k = 1.0
    for _ in range(iterations):
        h = corner_motion(size, np.asarray(shift) * k, angle * k, zoom ** k, None if jitter is None else jitter * k,
                          centre)
        k *= magnitude / max(mean_motion(h, size), 1e-9)
    return corner_motion(size, np.asarray(shift) * k, angle * k, zoom ** k, None if jitter is None else jitter * k,
                         centre)
