"""Which two frames of an image stream form a flow pair.

Frames are paired with the previous frame the worker *processed*; under overload the frames dropped
from the queue in between are simply skipped (the pair spans them, and its time difference is the
stamp difference of the two frames actually used).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

import numpy as np

from flownet_ros.imaging.decode import quoted


@dataclass
class Frame:
    """One converted camera frame."""

    image: np.ndarray  # HxWx3 uint8 RGB
    stamp_ns: int  # header.stamp in ns (the source's clock)
    header: Any  # std_msgs/Header of the message (copied to outputs)
    encoding: str  # source encoding ('jpeg'/'png' format string for compressed input)
    seq: int = 0  # receive counter of the node
    cache: dict = field(default_factory=dict)  # per-frame data of the estimator (see FlowPipeline)

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


class FramePairer:
    """Keeps the last frame and decides whether the next one pairs with it.

    ``push(frame)`` returns ``(previous_frame, None)`` when they pair, else ``(None, reason)``; in both
    cases ``frame`` becomes the new previous frame. A pair is refused (reset) on the first frame, a
    change of image size or encoding, a stamp going backwards (bag loop, sim-time reset), or a stamp
    gap above ``max_gap_s`` (<= 0: no limit). Equal stamps pair (dt = 0: no motion rates).
    """

    FIRST = "no previous frame"

    def __init__(self, max_gap_s: float = 1.0):
        self.max_gap_s = float(max_gap_s)
        self.previous: Optional[Frame] = None

    def reset(self) -> None:
        self.previous = None

    def reason(self, prev: Optional[Frame], frame: Frame) -> Optional[str]:
        if prev is None:
            return self.FIRST
        if prev.size != frame.size:
            return f"image size changed from {prev.size[1]}x{prev.size[0]} to {frame.size[1]}x{frame.size[0]}"
        if prev.encoding != frame.encoding:
            return f"encoding changed from {quoted(prev.encoding)} to {quoted(frame.encoding)}"
        gap = (frame.stamp_ns - prev.stamp_ns) * 1e-9
        if gap < 0:
            return f"stamp went back by {-gap:.3f} s"
        if self.max_gap_s > 0 and gap > self.max_gap_s:
            return f"stamp gap {gap:.3f} s exceeds max_frame_gap {self.max_gap_s:g} s"
        return None

    def push(self, frame: Frame) -> Tuple[Optional[Frame], Optional[str]]:
        prev = self.previous
        why = self.reason(prev, frame)
        self.previous = frame
        if why is not None:
            if prev is not None:
                prev.cache.clear()
            return None, why
        return prev, None
