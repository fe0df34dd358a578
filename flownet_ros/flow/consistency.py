"""Per-pixel confidence and occlusion from forward-backward consistency of two flow fields.

``forward`` f (frame 1 -> frame 2) and ``backward`` b (frame 2 -> frame 1), both [H,W,2] px. For a pixel
x of frame 1 seen in both frames, following f and then b returns to x: f(x) + b(x + f(x)) = 0. With
b_w(x) = b(x + f(x)) (bilinear, :func:`backward_at_target`), the squared mismatch and its tolerance are

    d2 = |f + b_w|^2,    tol = a (|f|^2 + |b_w|^2) + c        (px^2)

(the tolerance grows with the motion because flow errors do). Then

* occluded: ``d2 > tol``, or x + f(x) leaves the image (the check cannot be made there);
* forward-backward confidence: ``exp(-d2 / tol)`` in (0, 1], 0 where x + f(x) leaves the image; the
  occlusion test is ``fb_confidence < exp(-1)``;
* with a photometric term: ``exp(-d2 / tol) * exp(-e / tau)`` with e = |I1(x) - I2(x + f(x))| (grey levels,
  mean over channels): a consistent match of different-looking pixels is not trusted either. The node's
  ~/confidence leaves it out by default (it ranked errors worse on the real-image set); the trust that
  ~/moving requires includes it (without it, consistent wrong matches on repeated texture look like
  moving objects).

Defaults a = 0.05, c = 2 px^2, tau = 20 grey levels, chosen by measurement on generated pairs and the real
set (docs/evaluation.md): the usual a = 0.01, c = 0.5 (Sundaram et al. 2010, Meister et al. 2018) marks
twice as many correctly matched pixels as occluded with this project's flow (precision 0.20 vs 0.35).
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from flownet_ros.flow.warping import inside_mask, photometric_residual, sample_points

__all__ = ["OCCLUSION_ALPHA", "OCCLUSION_BETA", "PHOTO_TAU", "CONFIDENCE_TAU", "backward_at_target", "fb_mismatch",
           "fb_confidence", "occlusion_from_confidence", "confidence", "consistency_maps", "with_photometric"]

OCCLUSION_ALPHA = 0.05  # a: tolerance per px^2 of motion
OCCLUSION_BETA = 2.0  # c: px^2, tolerance at zero motion
PHOTO_TAU = 20.0  # tau: grey levels of the photometric term (of the moving mask's trust)
CONFIDENCE_TAU = 0.0  # tau of the published confidence: none (docs/evaluation.md)


def _check(forward: np.ndarray, backward: np.ndarray) -> None:
    if forward.ndim != 3 or forward.shape[2] != 2 or forward.shape != backward.shape:
        raise ValueError(f"forward and backward flow must both be [H,W,2] of one size; got {forward.shape} "
                         f"and {backward.shape}")


def backward_at_target(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """b(x + f(x)) [H,W,2] float32 px: the backward flow read (bilinear) where each pixel's forward flow
    lands; the border value is repeated where the target leaves the image."""
    forward = np.asarray(forward, np.float32)
    backward = np.asarray(backward, np.float32)
    _check(forward, backward)
    pts = sample_points(forward)
    return cv2.remap(backward, pts[:, :, 0], pts[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fb_mismatch(forward: np.ndarray, backward: np.ndarray, alpha: float = OCCLUSION_ALPHA,
                beta: float = OCCLUSION_BETA) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (d2 [H,W] px^2, tol [H,W] px^2, inside [H,W] bool) of the module doc's test."""
    forward = np.asarray(forward, np.float32)
    bw = backward_at_target(forward, backward)
    d2 = np.sum((forward + bw) ** 2, axis=2)
    tol = alpha * (np.sum(forward ** 2, axis=2) + np.sum(bw ** 2, axis=2)) + beta
    return d2, tol, inside_mask(forward)


def fb_confidence(forward: np.ndarray, backward: np.ndarray, alpha: float = OCCLUSION_ALPHA,
                  beta: float = OCCLUSION_BETA) -> np.ndarray:
    """Confidence [H,W] float32 in [0, 1] of the forward flow: exp(-d2 / tol), 0 outside (module doc)."""
    if not (alpha >= 0 and beta > 0):
        raise ValueError(f"need alpha >= 0 and beta > 0, got {alpha}, {beta}")
    d2, tol, inside = fb_mismatch(forward, backward, alpha, beta)
    conf = np.exp(-d2 / tol).astype(np.float32)
    conf[~inside | ~np.isfinite(conf)] = 0.0
    return conf


def occlusion_from_confidence(confidence: np.ndarray) -> np.ndarray:
    """mono8 [H,W] uint8: 255 where the consistency check fails (confidence < exp(-1)), else 0."""
    return np.where(np.asarray(confidence) < np.exp(-1.0), 255, 0).astype(np.uint8)


def consistency_maps(forward: np.ndarray, backward: np.ndarray, img1: np.ndarray, img2: np.ndarray,
                     alpha: float = OCCLUSION_ALPHA, beta: float = OCCLUSION_BETA
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (forward-backward confidence [H,W] float32, occlusion mono8 [H,W] uint8 0/255, photometric residual
    e [H,W] float32 grey levels) of the module doc. ``img1``, ``img2`` HxWx3 of the pair (one channel order)."""
    fb = fb_confidence(forward, backward, alpha, beta)
    return fb, occlusion_from_confidence(fb), photometric_residual(img1, img2, forward)


def with_photometric(fb: np.ndarray, residual: np.ndarray, tau: float) -> np.ndarray:
    """``fb`` * exp(-``residual`` / ``tau``) [H,W] float32; ``fb`` itself for tau <= 0."""
    return fb * np.exp(-residual / np.float32(tau)) if tau > 0 else fb


def confidence(forward: np.ndarray, backward: np.ndarray, img1: np.ndarray, img2: np.ndarray,
               alpha: float = OCCLUSION_ALPHA, beta: float = OCCLUSION_BETA, tau: float = PHOTO_TAU) -> np.ndarray:
    """[H,W] float32 in [0, 1]: ``fb_confidence`` times exp(-photometric residual / ``tau``) (module doc)."""
    fb, _, residual = consistency_maps(forward, backward, img1, img2, alpha, beta)
    return with_photometric(fb, residual, tau)
