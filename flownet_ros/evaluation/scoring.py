"""Scores of flow estimates: one module for the dataset path (``evaluate``) and the bag path (``report``).

Per pair (:func:`score_pair`): photometric error of the warped newer frame and, with ground truth,
EPE over valid pixels, EPE over all pixels, KITTI outlier counts and EPE sums per motion-magnitude
bin. Per method (:class:`Series`, :func:`summarize`), over a chosen set of pairs:

* ``epe`` / ``epe_all``: mean over pairs of the per-pair mean EPE (px; valid / all pixels);
* ``fl_all``: outlier pixels / valid pixels, pooled over all pairs (KITTI);
* ``epe_bins``: EPE per ground-truth magnitude bin (0-5, 5-10, 10-20, 20-40, >40 px), pooled over the
  valid pixels of all pairs that fall into the bin;
* ``photometric_error``: mean over pairs of mean |older - newer warped back| (0..255);
* ``latency_ms_median`` / ``_p95`` / ``_max``: of the per-pair times (compute or end-to-end);
* ``pairs_nonfinite``: pairs whose flow has NaN/inf values.

A NaN/inf flow vector is the worst possible estimate, never a missing one: its EPE is infinite (so the
pair's and the set's mean EPE are inf), it is an outlier for Fl-all, and the pair's photometric error
is inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from flownet_ros.flow.metrics import epe_map, outlier_counts
from flownet_ros.flow.warping import photometric_error

MAGNITUDE_EDGES = (0.0, 5.0, 10.0, 20.0, 40.0, math.inf)
BIN_LABELS = ("0-5", "5-10", "10-20", "20-40", ">40")
NAN = math.nan


def _nan_bins() -> np.ndarray:
    return np.full(len(BIN_LABELS), np.nan)


@dataclass
class PairScore:
    """Scores of one flow estimate; NaN where a value does not exist (no ground truth, no images)."""

    photometric: float = NAN
    epe: float = NAN
    epe_all: float = NAN
    outliers: float = NAN
    valid_px: float = NAN
    bin_error: np.ndarray = field(default_factory=_nan_bins)  # sum of EPE of the valid pixels per bin
    bin_count: np.ndarray = field(default_factory=_nan_bins)  # number of valid pixels per bin
    nonfinite_px: int = 0  # pixels whose flow is NaN/inf

    @property
    def fl_all(self) -> float:
        """Outlier fraction (0..1) of this pair; NaN without ground truth or valid pixels."""
        return self.outliers / self.valid_px if self.valid_px > 0 else NAN  # NaN > 0 is False


def score_pair(flow: np.ndarray, gt: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None,
               img1: Optional[np.ndarray] = None, img2: Optional[np.ndarray] = None) -> PairScore:
    """Scores of ``flow`` ([H,W,2] px); ground truth ``gt`` (finite) with ``valid`` [H,W] bool
    (None = all pixels), and the image pair for the photometric error, each optional. Non-finite flow
    scores as the worst (module docstring)."""
    s = PairScore()
    flow = np.asarray(flow)
    bad = ~np.isfinite(flow).all(axis=-1)
    s.nonfinite_px = int(bad.sum())
    if s.nonfinite_px:
        flow = np.where(bad[..., None], np.float32(np.inf), flow)  # error inf, an outlier everywhere
    if img1 is not None and img2 is not None:
        s.photometric = math.inf if s.nonfinite_px else photometric_error(img1, img2, flow)
    if gt is None:
        return s
    valid = np.ones(gt.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    err = epe_map(flow, gt)
    s.epe_all = float(err.mean(dtype=np.float64))
    s.epe = float(err[valid].mean(dtype=np.float64)) if valid.any() else NAN
    s.outliers, s.valid_px = outlier_counts(flow, gt, valid)
    mag = np.linalg.norm(gt[valid], axis=-1)
    which = np.digitize(mag, MAGNITUDE_EDGES[1:-1])
    s.bin_count = np.bincount(which, minlength=len(BIN_LABELS)).astype(np.float64)
    s.bin_error = np.bincount(which, weights=err[valid].astype(np.float64), minlength=len(BIN_LABELS))
    return s


@dataclass
class Series:
    """Per-pair results of one method; ``scores[i]`` is None where the method gave no flow for pair i."""

    name: str
    description: str = ""
    scores: List[Optional[PairScore]] = field(default_factory=list)
    latency_ms: List[float] = field(default_factory=list)
    recv_ns: List[float] = field(default_factory=list)  # receive times of a node's outputs (bag path)

    def add(self, score: Optional[PairScore] = None, latency_ms: float = NAN, recv_ns: float = NAN) -> None:
        self.scores.append(score)
        self.latency_ms.append(latency_ms)
        self.recv_ns.append(recv_ns)

    def values(self, key: str) -> np.ndarray:
        """Per-pair ``key`` of :class:`PairScore` (NaN where there is no score)."""
        return np.array([getattr(s, key) if s is not None else NAN for s in self.scores], dtype=np.float64)

    def last(self) -> Dict[str, float]:
        """The latest pair's latency and scores, for per-frame records."""
        s = self.scores[-1] or PairScore()
        return {"latency_ms": self.latency_ms[-1], "photometric": s.photometric, "epe": s.epe, "fl_all": s.fl_all}


def _stat(values: Sequence[float], fn) -> float:
    """``fn`` of the values that exist (NaN = no value; inf, the score of a NaN flow, is kept)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(fn(v)) if v.size else NAN


def _pooled(num: np.ndarray, den: np.ndarray) -> float:
    ok = ~np.isnan(num) & ~np.isnan(den)
    total = den[ok].sum()
    return float(num[ok].sum() / total) if total > 0 else NAN


def summarize(series: Series, pairs: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Accuracy over the pairs in the bool mask ``pairs`` (default all) and latency over all pairs."""
    chosen = [s for s, keep in zip(series.scores, np.ones(len(series.scores), bool) if pairs is None else pairs)
              if keep and s is not None]
    bins_err = np.array([s.bin_error for s in chosen]).reshape(-1, len(BIN_LABELS))
    bins_n = np.array([s.bin_count for s in chosen]).reshape(-1, len(BIN_LABELS))
    return {
        "method": series.name,
        "description": series.description,
        "pairs_scored": len(chosen),
        "epe": _stat([s.epe for s in chosen], np.mean),
        "epe_all": _stat([s.epe_all for s in chosen], np.mean),
        "fl_all": _pooled(np.array([s.outliers for s in chosen]), np.array([s.valid_px for s in chosen])),
        "epe_bins": {label: _pooled(bins_err[:, k], bins_n[:, k]) for k, label in enumerate(BIN_LABELS)},
        "photometric_error": _stat([s.photometric for s in chosen], np.mean),
        "latency_ms_median": _stat(series.latency_ms, np.median),
        "latency_ms_mean": _stat(series.latency_ms, np.mean),
        "latency_ms_p95": _stat(series.latency_ms, lambda v: np.percentile(v, 95)),
        "latency_ms_max": _stat(series.latency_ms, np.max),
        "pairs_nonfinite": sum(s.nonfinite_px > 0 for s in chosen),
    }


#: Fractions of pixels removed, least confident first, at which sparsification curves are sampled.
SPARSIFICATION_FRACTIONS = tuple(np.round(np.arange(0.0, 1.0, 0.02), 2))


def sparsification_curve(err: np.ndarray, confidence: np.ndarray, seed: int = 0) -> np.ndarray:
    """Mean of ``err`` [N] over the pixels left after removing each fraction of
    :data:`SPARSIFICATION_FRACTIONS` with the lowest ``confidence`` [N] -> [F]. Ties are broken at random
    (``seed``) so that pixel order does not count as information. The oracle is ``confidence = -err``."""
    err = np.asarray(err, np.float64).ravel()
    conf = np.asarray(confidence, np.float64).ravel()
    if err.shape != conf.shape or err.size == 0:
        raise ValueError(f"need err and confidence of one non-zero size, got {err.shape} and {conf.shape}")
    order = np.lexsort((np.random.default_rng(seed).random(err.size), -conf))  # most confident first
    mean_first = np.cumsum(err[order]) / np.arange(1, err.size + 1)
    kept = np.maximum(1, np.ceil((1.0 - np.asarray(SPARSIFICATION_FRACTIONS)) * err.size).astype(int))
    return mean_first[kept - 1]


def ause(err: np.ndarray, confidence: np.ndarray) -> float:
    """Area between the sparsification curve of ``confidence`` and the oracle's, in the units of ``err``
    (mean over :data:`SPARSIFICATION_FRACTIONS`; 0 = ranks pixels exactly as their errors)."""
    return float(np.mean(sparsification_curve(err, confidence) - sparsification_curve(err, -np.asarray(err))))
