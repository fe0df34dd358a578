"""Flow, colour coding and global motion of consecutive frames (no ROS needed).

With a :class:`~flownet_ros.inference.FlowEstimator` each frame is uploaded to the device once (its
tensor is kept for the next pair), the colour coding runs on the GPU when the flow is there, and the
flow comes to the host once per pair. Other backends (``DISEstimator``) work on the host images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from flownet_ros.flow.colour import flow_to_color, flow_to_color_torch
from flownet_ros.flow.motion import GlobalMotion, Intrinsics, fit_motion
from flownet_ros.inference.postprocess import to_numpy_hwc
from flownet_ros.inference.preprocess import to_tensor
from flownet_ros.ros.pairing import Frame, FramePairer


@dataclass
class PipelineSettings:
    """Run-time switches (changed by the node's parameter callback)."""

    publish_color: bool = True
    color_max_flow: float = 0.0  # px; 0 = automatic per frame
    publish_motion: bool = True
    motion_threshold: float = 1.0  # px, inlier threshold of the motion fit


@dataclass
class FlowResult:
    """Everything computed for one pair (older -> newer)."""

    older: Frame
    newer: Frame
    flow: np.ndarray  # HxWx2 float32 px
    color: Optional[np.ndarray]  # HxWx3 uint8 RGB or None
    motion: Optional[GlobalMotion]  # None when disabled or dt <= 0
    inference_s: float  # flow (+ colour) computation time

    @property
    def dt(self) -> float:
        return (self.newer.stamp_ns - self.older.stamp_ns) * 1e-9


class FlowPipeline:
    """``process(frame)`` -> FlowResult for (previous frame, frame), or None when the pair was reset.

    ``intrinsics(width, height)`` returns the camera intrinsics for the image size or None.
    ``on_reset(reason)`` is told why a frame did not pair.
    """

    def __init__(self, estimator, pairer: FramePairer, settings: Optional[PipelineSettings] = None,
                 intrinsics: Optional[Callable[[int, int], Optional[Intrinsics]]] = None,
                 on_reset: Optional[Callable[[str], None]] = None):
        self.estimator = estimator
        self.pairer = pairer
        self.settings = settings or PipelineSettings()
        self.intrinsics = intrinsics or (lambda w, h: None)
        self.on_reset = on_reset or (lambda reason: None)
        self._on_device = hasattr(estimator, "estimate_tensor")

    def process(self, frame: Frame) -> Optional[FlowResult]:
        prev, why = self.pairer.push(frame)
        if prev is None:
            self.on_reset(why)
            if self._on_device:  # upload now so the next pair needs one upload only
                frame.cache["tensor"] = to_tensor(frame.image, self.estimator.device)
            return None
        s = self.settings
        max_flow = s.color_max_flow if s.color_max_flow > 0 else None
        t0 = time.perf_counter()
        if self._on_device:
            cur = to_tensor(frame.image, self.estimator.device)
            frame.cache["tensor"] = cur
            old = prev.cache.get("tensor")
            if old is None:
                old = to_tensor(prev.image, self.estimator.device)
            flow_t = self.estimator.estimate_tensor(old, cur, "rgb")  # [1,2,H,W] px
            on_gpu = flow_t.device.type == "cuda"
            color = flow_to_color_torch(flow_t, max_flow)[0].cpu().numpy() if s.publish_color and on_gpu else None
            flow = to_numpy_hwc(flow_t)[0]  # the flow's one trip to the host
            if s.publish_color and not on_gpu:  # on the CPU the numpy colour coding is the faster one
                color = flow_to_color(flow, max_flow)
        else:
            flow = self.estimator.estimate(prev.image, frame.image, "rgb")
            color = flow_to_color(flow, max_flow) if s.publish_color else None
        inference_s = time.perf_counter() - t0
        prev.cache.clear()
        result = FlowResult(prev, frame, flow, color, None, inference_s)
        if s.publish_motion and result.dt > 0:
            h, w = frame.size
            result.motion = fit_motion(flow, result.dt, self.intrinsics(w, h), threshold=s.motion_threshold)
        return result
