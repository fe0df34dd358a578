"""Adaptive flow: DIS first, the network (refined by DIS) only on pairs where DIS's flow fails a check.

Most frames a robot sees move by a few pixels, where DIS alone is as good as the network refined by DIS at
half the cost; the network earns its time on large motions, repeated texture and viewpoint changes, where
DIS's coarse-to-fine search locks onto the wrong match. Such a wrong match leaves a photometric error that a
right one does not: frame 2 warped back by DIS's flow differs from frame 1 by more than the image's own
gradients explain. :func:`dis_failure_score` measures that on half-resolution frames (a few ms at VGA); above
``network_threshold`` the pair goes to the network, seeded DIS refining its flow as in the ``flownet``
backend. On CUDA the network runs on every pair (it is cheaper there than DIS on the CPU).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import cv2
import numpy as np

from flownet_ros.flow.warping import inside_mask, warp_backward
from flownet_ros.inference.base import Estimator
from flownet_ros.inference.classic import create_dis, dis_flow, to_grey
from flownet_ros.inference.refine import Refiner

#: default of ``network_threshold`` (the score is scaled so that 1 is the boundary): chosen on warped
#: training photos, not on the evaluation set (docs/evaluation.md, "Adaptive backend")
NETWORK_THRESHOLD = 1.0
#: photometric ratio and flow spread at which DIS's flow counts as failed (each alone reaches score 1)
RESIDUAL_RATIO_LIMIT = 0.5
SPREAD_LIMIT = 0.7
_GRADIENT_FLOOR = 4.0  # grey levels per pixel added to the gradient: flat areas do not divide by ~0


def residual_ratio(grey1: np.ndarray, grey2: np.ndarray, flow: np.ndarray) -> float:
    """Mean over pixels whose target stays in the image of |grey1 - grey2 warped back by flow| /
    (|grad grey1| + 4) (dimensionless; ~0.1-0.4 for a right flow on textured photos, > 1 for a wrong match;
    10.0 when every target leaves the image). Frames HxW uint8, flow HxWx2 px."""
    inside = inside_mask(flow)
    if not inside.any():
        return 10.0
    residual = np.abs(warp_backward(grey2, flow) - grey1.astype(np.float32))
    gx = cv2.Sobel(grey1, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey1, cv2.CV_32F, 0, 1, ksize=3)
    gradient = cv2.magnitude(gx, gy) * np.float32(1 / 8)  # Sobel 3x3 weights sum to 8 per unit step
    return float((residual / (gradient + _GRADIENT_FLOOR))[inside].mean(dtype=np.float64))


def flow_spread(flow: np.ndarray) -> float:
    """(95th percentile - median) of |flow| / (median + 2 px): a few wild vectors in a calm field (DIS in
    textureless areas) or a field torn apart (a wrong match on part of the image) give > 0.7; a camera motion
    gives 0.1-0.5."""
    magnitude = cv2.magnitude(flow[..., 0], flow[..., 1]).ravel()
    median, p95 = np.percentile(magnitude, [50, 95])
    return float((p95 - median) / (median + 2.0))


def dis_failure_score(grey1: np.ndarray, grey2: np.ndarray, flow: np.ndarray) -> float:
    """How likely DIS's ``flow`` (HxWx2 px, grey1 -> grey2) is wrong: max(residual_ratio / 0.5,
    flow_spread / 0.7) on half-resolution frames (a few ms at VGA); 1 is the boundary."""
    size = (max(1, grey1.shape[1] // 2), max(1, grey1.shape[0] // 2))
    g1 = cv2.resize(grey1, size, interpolation=cv2.INTER_AREA)
    g2 = cv2.resize(grey2, size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(flow, size, interpolation=cv2.INTER_AREA)  # still in full-resolution pixels
    return max(residual_ratio(g1, g2, small * np.float32(0.5)) / RESIDUAL_RATIO_LIMIT,
               flow_spread(small) / SPREAD_LIMIT)


@dataclass
class _Frame:
    """A prepared frame: grey for DIS, the image for the network (prepared for it on first need)."""

    image: np.ndarray
    color_order: str
    grey: np.ndarray
    network: Any = None


@dataclass(frozen=True)
class PathRecord:
    """Which path gave a flow, why, and what it cost."""

    path: str  # 'dis' or 'network'
    score: float  # dis_failure_score of DIS's flow (NaN where DIS did not run)
    seconds: float


class AdaptiveEstimator(Estimator):
    """DIS (``dis_preset``), then ``network`` + ``refiner`` where :func:`dis_failure_score` exceeds
    ``network_threshold`` (0 = the network on every pair, like the ``flownet`` backend)."""

    def __init__(self, network: Estimator, refiner: Optional[Refiner], dis_preset: str,
                 network_threshold: float = NETWORK_THRESHOLD):
        self.network, self.refiner, self.dis_preset = network, refiner, dis_preset
        self._dis = create_dis(dis_preset)
        self.network_first = network.device.startswith("cuda")
        self.runtime_settings = network.runtime_settings + ("network_threshold",)
        self.network_threshold = float(network_threshold)
        self.last: Optional[PathRecord] = None

    @property
    def description(self) -> str:
        when = "every pair (CUDA)" if self.network_first else f"DIS failure score > {self.network_threshold:g}"
        refined = f" refined by {self.refiner.description}" if self.refiner else ""
        return (f"adaptive: OpenCV {cv2.__version__} DIS ({self.dis_preset}); {self.network.description}"
                f"{refined} on {when}")

    @property
    def device(self) -> str:
        return self.network.device

    def configure(self, **settings) -> None:
        """The network's run-time settings and ``network_threshold``."""
        if "network_threshold" in settings:
            self.network_threshold = float(settings.pop("network_threshold"))
        self.network.configure(**settings)

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> _Frame:
        return _Frame(image, color_order, to_grey(image, color_order))

    def _network_frame(self, frame: _Frame) -> Any:
        if frame.network is None:
            frame.network = self.network.prepare(frame.image, frame.color_order)
        return frame.network

    def flow(self, first: _Frame, second: _Frame) -> np.ndarray:
        t0 = time.perf_counter()
        score = float("nan")
        if not self.network_first and self.network_threshold > 0:
            flow = dis_flow(self._dis, first.grey, second.grey)
            score = dis_failure_score(first.grey, second.grey, flow)
            if score <= self.network_threshold:
                self.last = PathRecord("dis", score, time.perf_counter() - t0)
                return flow
        coarse = self.network.flow(self._network_frame(first), self._network_frame(second))
        flow = coarse if self.refiner is None else self.refiner.refine(first.grey, second.grey, coarse)
        self.last = PathRecord("network", score, time.perf_counter() - t0)
        return flow

    def last_flow_info(self) -> Dict[str, Any]:
        """The path of the last ``flow`` call: {'path', 'score', 'seconds'} (empty before the first)."""
        return {} if self.last is None else {"path": self.last.path, "score": self.last.score,
                                             "seconds": self.last.seconds}
