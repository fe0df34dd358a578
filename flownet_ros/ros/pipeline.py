"""Flow, colour coding and global motion of consecutive frames (no ROS needed).

Each frame is prepared for the estimator once (uploaded to the GPU, converted to grey, ...) and kept
for the next pair; the flow comes to the host once per pair. What is computed follows ``Wanted``
(the node derives it from its subscriber counts, as image_pipeline's nodes do): no flow at all when
nobody listens, no colour coding or motion fit when nobody wants those, and the backward flow (for
confidence, occlusion and the moving-object mask) only while someone wants one of those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import numpy as np

from flownet_ros.flow import consistency
from flownet_ros.flow.colour import flow_to_color
from flownet_ros.flow.motion import GlobalMotion, Intrinsics, fit_motion
from flownet_ros.flow.moving import MIN_BLOB, MIN_CONFIDENCE, THRESHOLD_PX, CameraModel, moving_mask
from flownet_ros.inference.base import Estimator
from flownet_ros.ros.pairing import Frame, FramePairer

PREPARED = "prepared"  # Frame.cache key of the estimator's per-frame data


class NonFiniteFlowError(ValueError):
    """The estimator's flow of a pair has NaN/inf values (a network with corrupt weights, fp16/bf16
    overflow): such a flow is never published nor coloured nor fitted. The message says how much."""


@dataclass
class PipelineSettings:
    """Run-time switches (changed by the node's parameter callback and its subscriber counts)."""

    publish_color: bool = True
    color_max_flow: float = 0.0  # px; 0 = automatic per frame
    publish_motion: bool = True
    motion_threshold: float = 1.0  # px, inlier threshold of the motion fit
    occlusion_alpha: float = consistency.OCCLUSION_ALPHA  # a of the occlusion test
    occlusion_beta: float = consistency.OCCLUSION_BETA  # c of the occlusion test, px^2
    confidence_tau: float = consistency.CONFIDENCE_TAU  # grey levels of ~/confidence's photometric term (0: none)
    moving_tau: float = consistency.PHOTO_TAU  # grey levels of the photometric term of the moving mask's trust
    moving_threshold: float = THRESHOLD_PX  # px, residual above which a pixel moves by itself
    moving_min_blob: float = MIN_BLOB  # smallest moving region, fraction of the image
    moving_min_confidence: float = MIN_CONFIDENCE  # moving only where the flow is this trusted


@dataclass(frozen=True)
class Wanted:
    """Which outputs someone is listening to."""

    flow: bool = True  # the flow itself (and everything derived from it)
    color: bool = True
    motion: bool = True
    confidence: bool = False  # confidence and occlusion (they need the backward flow)
    moving: bool = False  # the moving-object mask (needs the confidence)


@dataclass
class FlowResult:
    """Everything computed for one pair (older -> newer)."""

    older: Frame
    newer: Frame
    flow: np.ndarray  # HxWx2 float32 px
    color: Optional[np.ndarray]  # HxWx3 uint8 RGB, None when not wanted
    motion: Optional[GlobalMotion]  # None when not wanted or dt <= 0
    inference_s: float  # flow computation time (preparation of the newer frame included)
    info: Dict[str, Any] = field(default_factory=dict)  # the estimator's account (adaptive: which path ran)
    confidence: Optional[np.ndarray] = None  # HxW float32 [0, 1], None when not wanted
    occlusion: Optional[np.ndarray] = None  # HxW uint8 0/255
    moving: Optional[np.ndarray] = None  # HxW uint8 0/255
    camera_model: Optional[CameraModel] = None  # the fit behind ``moving``

    @property
    def dt(self) -> float:
        return (self.newer.stamp_ns - self.older.stamp_ns) * 1e-9


class FlowPipeline:
    """``process(frame)`` -> FlowResult for (previous frame, frame), or None when the pair was reset.

    ``intrinsics(width, height)`` returns the camera intrinsics for the image size or None.
    ``on_reset(reason)`` is told why a frame did not pair.
    """

    def __init__(self, estimator: Estimator, pairer: FramePairer, settings: Optional[PipelineSettings] = None,
                 intrinsics: Optional[Callable[[int, int], Optional[Intrinsics]]] = None,
                 on_reset: Optional[Callable[[str], None]] = None):
        self.estimator = estimator
        self.pairer = pairer
        self.settings = settings or PipelineSettings()
        self.intrinsics = intrinsics or (lambda w, h: None)
        self.on_reset = on_reset or (lambda reason: None)

    def process(self, frame: Frame, wanted: Wanted = Wanted()) -> Optional[FlowResult]:
        """Pair ``frame`` with the previous one and compute what is ``wanted`` (None: reset, or no flow
        wanted; the frame still becomes the previous frame, so pairing goes on). NonFiniteFlowError when
        the flow has NaN/inf values (the frame still becomes the previous frame)."""
        t0 = time.perf_counter()
        prev, why = self.pairer.push(frame)
        if prev is None:
            self.on_reset(why)
        if not wanted.flow:
            return None
        frame.cache[PREPARED] = self.estimator.prepare(frame.image, "rgb")
        if prev is None:
            return None
        first = prev.cache.pop(PREPARED, None)
        if first is None:  # the previous frame arrived while nobody listened
            first = self.estimator.prepare(prev.image, "rgb")
        flow = self.estimator.flow(first, frame.cache[PREPARED])
        bad = np.count_nonzero(~np.isfinite(flow))
        if bad:
            raise NonFiniteFlowError(f"the flow of this pair has {bad / flow.size:.1%} NaN/inf values "
                                     "(network output: corrupt weights or fp16/bf16 overflow?)")
        result = FlowResult(prev, frame, flow, None, None, time.perf_counter() - t0,
                            self.estimator.last_flow_info())
        s = self.settings
        if s.publish_color and wanted.color:
            result.color = flow_to_color(flow, s.color_max_flow if s.color_max_flow > 0 else None)
        if s.publish_motion and wanted.motion and result.dt > 0:
            h, w = frame.size
            result.motion = fit_motion(flow, result.dt, self.intrinsics(w, h), threshold=s.motion_threshold)
        if wanted.confidence or wanted.moving:
            self._consistency(result, first, wanted.moving)
        return result

    def _consistency(self, r: FlowResult, first: Any, with_moving: bool) -> None:
        """Backward flow with the same estimator (frames already prepared), then confidence, occlusion and,
        with ``with_moving``, the moving-object mask (flownet_ros.flow.consistency / .moving)."""
        s = self.settings
        backward = self.estimator.flow(r.newer.cache[PREPARED], first)
        fb, r.occlusion, residual = consistency.consistency_maps(
            r.flow, backward, r.older.image, r.newer.image, s.occlusion_alpha, s.occlusion_beta)
        r.confidence = consistency.with_photometric(fb, residual, s.confidence_tau)
        if with_moving:
            h, w = r.newer.size
            r.moving, r.camera_model = moving_mask(
                r.flow, s.moving_threshold, s.moving_min_blob, self.intrinsics(w, h),
                consistency.with_photometric(fb, residual, s.moving_tau), s.moving_min_confidence)
