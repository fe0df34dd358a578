"""Flow accuracy metrics on numpy arrays (torch tensors are accepted and moved to the CPU).

Shapes: flow [H,W,2] or [N,H,W,2] in pixels; valid [H,W] / [N,H,W] bool (None = all pixels).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

FL_ABS_THRESHOLD = 3.0  # px
FL_REL_THRESHOLD = 0.05  # fraction of |gt|


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def epe_map(pred, gt) -> np.ndarray:
    """End-point error per pixel: |pred - gt| -> float32 [..., H, W] (pixels)."""
    pred, gt = _as_numpy(pred), _as_numpy(gt)
    if pred.shape != gt.shape or pred.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be [...,H,W,2]; got {pred.shape} and {gt.shape}")
    d = pred.astype(np.float32) - gt.astype(np.float32)
    return np.sqrt(np.sum(d * d, axis=-1))


def _valid_mask(valid, shape) -> np.ndarray:
    if valid is None:
        return np.ones(shape, dtype=bool)
    valid = _as_numpy(valid).astype(bool)
    if valid.shape != shape:
        raise ValueError(f"valid mask shape {valid.shape} does not match flow {shape}")
    return valid


def epe(pred, gt, valid: Optional[np.ndarray] = None) -> float:
    """Mean end-point error (pixels) over valid pixels; NaN when no pixel is valid."""
    err = epe_map(pred, gt)
    mask = _valid_mask(valid, err.shape)
    if not mask.any():
        return float("nan")
    return float(err[mask].mean(dtype=np.float64))


def outlier_map(pred, gt) -> np.ndarray:
    """KITTI outliers: EPE > 3 px and EPE > 5 % of |gt| -> bool [..., H, W]."""
    err = epe_map(pred, gt)
    mag = np.sqrt(np.sum(_as_numpy(gt).astype(np.float32) ** 2, axis=-1))
    return (err > FL_ABS_THRESHOLD) & (err > FL_REL_THRESHOLD * mag)


def outlier_counts(pred, gt, valid: Optional[np.ndarray] = None) -> Tuple[int, int]:
    """(outlier pixels, valid pixels). Summed over a set, their ratio is the set's Fl-all as KITTI
    reports it: pooled over all valid pixels, not a mean of per-image rates (which differ when the
    number of valid pixels varies between images)."""
    out = outlier_map(pred, gt)
    mask = _valid_mask(valid, out.shape)
    return int(out[mask].sum()), int(mask.sum())


def fl_all(pred, gt, valid: Optional[np.ndarray] = None) -> float:
    """KITTI Fl-all: fraction (0..1) of valid pixels that are outliers; NaN when none is valid."""
    outliers, total = outlier_counts(pred, gt, valid)
    return outliers / total if total else float("nan")
