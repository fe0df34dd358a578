"""Moving-object mask: pixels whose flow the camera's own motion cannot explain.

A static scene seen by a moving camera gives flow x1 -> x2 = x1 + f(x1) (px) that satisfies one of two
models, fitted robustly (RANSAC in OpenCV) to a grid sample of the flow (:func:`flownet_ros.flow.motion.sample_flow`):

* **epipolar** (any 3D scene, a translating camera): x2^T F x1 = 0 with the fundamental matrix F, or with
  intrinsics K the essential matrix E (F = K^-T E K^-1). Residual: the Sampson distance (px)
  ``|x2^T F x1| / sqrt((F x1)_1^2 + (F x1)_2^2 + (F^T x2)_1^2 + (F^T x2)_2^2)``;
* **homography** (a rotating camera, or a planar scene): x2 ~ H x1. Residual: the transfer error
  ``|H(x1) - x2|`` (px).

An epipolar model also explains motion along the epipolar lines, and is undetermined when there is no
parallax, so it is used only where it is worth its extra freedom: per frame, the model with the lower
GRIC (Torr's geometric robust information criterion) over the sampled points wins:

    GRIC = sum_i min(e_i^2 / sigma^2, 2 (r - d)) + ln(r) d n + ln(r n) k,
    r = 4; F: d = 3, k = 7; E: d = 3, k = 5; H: d = 2, k = 8,

with the noise sigma measured: max(threshold / 2, 1.4826 median of the epipolar model's residuals below
3 threshold), the more general model's (a fixed sigma lets the epipolar model win on mere flow noise, and it
then absorbs moving objects).

A pixel is moving where its residual exceeds max(``threshold`` px, ``rel_threshold`` |f|) (flow errors grow
with the motion), its flow is trusted (with a per-pixel
``confidence``, :mod:`flownet_ros.flow.consistency`: at least ``min_confidence``; only trusted pixels are
sampled for the fit), and it belongs to a connected region (8-neighbourhood) of at least ``min_blob`` x the
image area. Without the confidence, a region where the flow is wrong (repeated texture, occlusions) looks
exactly like a moving object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from flownet_ros.flow.motion import Intrinsics, sample_flow

__all__ = ["CameraModel", "fit_camera_model", "model_residual", "residual_map", "moving_mask", "gric"]

THRESHOLD_PX = 1.0  # residual above which a pixel moves by itself (docs/evaluation.md)
MIN_BLOB = 0.005  # smallest moving region, fraction of the image
REL_THRESHOLD = 0.05  # of the flow magnitude
MIN_CONFIDENCE = 0.7  # a pixel is marked moving only where its flow is at least this trusted
MODELS = ("homography", "fundamental", "essential", "none")
_DIMS = {"homography": (2, 8), "fundamental": (3, 7), "essential": (3, 5)}  # (d, k) of GRIC


@dataclass(frozen=True)
class CameraModel:
    """The camera-motion model chosen for one pair."""

    kind: str  # one of MODELS; 'none' = too few points to fit (nothing is marked moving)
    matrix: np.ndarray  # 3x3 H (frame 1 -> 2 px) or F (x2^T F x1 = 0, px); zeros for 'none'
    inlier_fraction: float  # of the sampled points, residual <= threshold
    gric: float  # of the chosen model
    num_points: int


def _ransac_method() -> int:
    return getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)  # USAC: OpenCV >= 4.5.1


def gric(e2: np.ndarray, sigma: float, kind: str) -> float:
    """Torr's GRIC of squared residuals ``e2`` [N] px^2 for model ``kind`` (module doc)."""
    d, k = _DIMS[kind]
    n, r = len(e2), 4
    rho = np.minimum(e2 / (sigma * sigma), 2.0 * (r - d))
    return float(rho.sum() + np.log(r) * d * n + np.log(r * n) * k)


def model_residual(kind: str, matrix: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Residual [N] px of point pairs ``x1``, ``x2`` [N,2] under the model (module doc)."""
    m = np.asarray(matrix, np.float64)
    p1 = np.concatenate([x1, np.ones((len(x1), 1))], axis=1)
    if kind == "homography":
        q = p1 @ m.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.hypot(q[:, 0] / q[:, 2] - x2[:, 0], q[:, 1] / q[:, 2] - x2[:, 1])
    p2 = np.concatenate([x2, np.ones((len(x2), 1))], axis=1)
    l2, l1 = p1 @ m.T, p2 @ m  # F x1, F^T x2
    num = np.abs(np.sum(p2 * l2, axis=1))
    den = np.sqrt(l2[:, 0] ** 2 + l2[:, 1] ** 2 + l1[:, 0] ** 2 + l1[:, 1] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def _candidates(x1: np.ndarray, x2: np.ndarray, threshold: float, intrinsics: Optional[Intrinsics]):
    """Robust fits of the homography and the epipolar model -> [(kind, 3x3)], failures left out."""
    out = []
    h, _ = cv2.findHomography(x1, x2, _ransac_method(), threshold, maxIters=2000, confidence=0.999)
    if h is not None and h.shape == (3, 3):
        out.append(("homography", h))
    if intrinsics is None:
        f, _ = cv2.findFundamentalMat(x1, x2, _ransac_method(), threshold, 0.999, 2000)
        if f is not None and f.shape == (3, 3):
            out.append(("fundamental", f))
    else:
        k = np.array([[intrinsics.fx, 0, intrinsics.cx], [0, intrinsics.fy, intrinsics.cy], [0, 0, 1]])
        e, _ = cv2.findEssentialMat(x1, x2, k, cv2.RANSAC, 0.999, threshold)
        if e is not None and e.shape[0] >= 3 and e.shape[1] == 3:  # several solutions stacked: the first
            kinv = np.linalg.inv(k)
            out.append(("essential", kinv.T @ e[:3] @ kinv))
    return out


def fit_camera_model(flow: np.ndarray, threshold: float = THRESHOLD_PX, intrinsics: Optional[Intrinsics] = None,
                     valid: Optional[np.ndarray] = None, max_points: int = 2048, seed: int = 0) -> CameraModel:
    """Fit both models to a grid sample of HxWx2 ``flow`` (px; ``valid`` [H,W] bool pixels only) and keep
    the one with the lower GRIC."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 px, got {threshold}")
    x, y, u, v = sample_flow(flow, valid, max_points=max_points)
    x1 = np.stack([x, y], axis=1).astype(np.float32)
    x2 = np.stack([x + u, y + v], axis=1).astype(np.float32)
    best = CameraModel("none", np.zeros((3, 3)), 0.0, float("inf"), len(x))
    if len(x) < 16:
        return best
    cv2.setRNGSeed(seed)
    fits = [(kind, m, model_residual(kind, m, x1.astype(np.float64), x2.astype(np.float64)))
            for kind, m in _candidates(x1, x2, threshold, intrinsics)]
    sigma = threshold / 4.0  # noise floor: exact (synthetic) flow must not make a poor homography look good
    for kind, _, e in fits:
        if kind != "homography" and (e < 3 * threshold).any():
            sigma = max(sigma, 1.4826 * float(np.median(e[e < 3 * threshold])))
    for kind, m, e in fits:
        e2 = np.where(np.isfinite(e), e * e, np.inf)
        g = gric(e2, sigma, kind)
        if g < best.gric:
            best = CameraModel(kind, m, float(np.mean(e2 <= threshold * threshold)), g, len(x))
    return best


def residual_map(flow: np.ndarray, model: CameraModel) -> np.ndarray:
    """Residual [H,W] float32 px of every pixel's flow under ``model`` (0 for 'none', inf where NaN flow).

    The same formulas as :func:`model_residual`, written on the pixel grid (x as a row, y as a column)."""
    h, w = flow.shape[:2]
    if model.kind == "none":
        return np.zeros((h, w), np.float32)
    m = np.asarray(model.matrix, np.float64)
    x, y = np.arange(w, dtype=np.float64)[None, :], np.arange(h, dtype=np.float64)[:, None]
    x2, y2 = x + flow[..., 0], y + flow[..., 1]
    a, b, c = (m[k, 0] * x + m[k, 1] * y + m[k, 2] for k in range(3))  # M [x, y, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if model.kind == "homography":
            e = np.hypot(a / c - x2, b / c - y2)
        else:
            l1x, l1y = m[0, 0] * x2 + m[1, 0] * y2 + m[2, 0], m[0, 1] * x2 + m[1, 1] * y2 + m[2, 1]  # F^T x2
            e = np.abs(x2 * a + y2 * b + c) / np.sqrt(a * a + b * b + l1x * l1x + l1y * l1y)
    return np.where(np.isfinite(e), e, np.inf).astype(np.float32)


def moving_mask(flow: np.ndarray, threshold: float = THRESHOLD_PX, min_blob: float = MIN_BLOB,
                intrinsics: Optional[Intrinsics] = None, confidence: Optional[np.ndarray] = None,
                min_confidence: float = MIN_CONFIDENCE, rel_threshold: float = REL_THRESHOLD,
                model: Optional[CameraModel] = None
                ) -> Tuple[np.ndarray, CameraModel]:
    """-> (mono8 [H,W] uint8, 255 = moving, and the camera model used) for HxWx2 ``flow`` px.

    ``threshold`` px and ``rel_threshold`` (of |f|) on the residual, ``min_blob`` fraction of the image area,
    ``confidence`` [H,W] in [0, 1] or None (module doc); ``model`` skips the fit (fitted once, reused)."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be HxWx2, got shape {flow.shape}")
    trusted = None if confidence is None else np.asarray(confidence) >= min_confidence
    if trusted is not None and trusted.shape != flow.shape[:2]:
        raise ValueError(f"confidence {trusted.shape} and flow {flow.shape} must have the same H, W")
    model = model or fit_camera_model(flow, threshold, intrinsics, trusted)
    limit = np.maximum(np.float32(threshold), np.float32(rel_threshold) * np.linalg.norm(flow, axis=2))
    cand = residual_map(flow, model) > limit
    if trusted is not None:
        cand &= trusted
    _, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_blob * flow.shape[0] * flow.shape[1]
    keep[0] = False  # label 0: the background of the candidate image
    return np.where(keep[labels], 255, 0).astype(np.uint8), model
