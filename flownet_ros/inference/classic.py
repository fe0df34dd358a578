"""Flow without a network: OpenCV DIS (Kroeger et al., ECCV 2016), OpenCV Farneback (2003), zero flow.

All run on the CPU on grey-level frames (``prepare`` converts each frame once). DIS is the node's
CPU backend and, seeded with the network's flow, one of its refinements
(:mod:`flownet_ros.inference.refine`); Farneback and zero flow are baselines for evaluation.
"""

from __future__ import annotations

import cv2
import numpy as np

from flownet_ros.inference.base import Estimator, check_color_order, check_image

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
#: cv2.calcOpticalFlowFarneback(pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags):
#: OpenCV's sample settings with 5 pyramid levels, so motions of tens of pixels are reachable.
FARNEBACK_ARGS = (0.5, 5, 15, 3, 5, 1.2, 0)


def to_grey(image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
    """HxWx3 uint8 RGB/BGR (or mono, :func:`check_image`) -> HxW uint8 luma."""
    image = check_image("image", image)
    check_color_order(color_order)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if color_order == "rgb" else cv2.COLOR_BGR2GRAY)


def create_dis(preset: str):
    """A cv2.DISOpticalFlow with ``preset`` (ultrafast, fast, medium). Not thread-safe: one per thread."""
    if preset not in DIS_PRESETS:
        raise ValueError(f"DIS preset must be one of {', '.join(DIS_PRESETS)}, got {preset!r}")
    return cv2.DISOpticalFlow_create(DIS_PRESETS[preset])


def dis_flow(dis, grey1: np.ndarray, grey2: np.ndarray, initial: np.ndarray = None) -> np.ndarray:
    """DIS flow grey1 -> grey2; ``initial`` (HxWx2 float32, not modified) is the starting field.

    OpenCV 4.5, 4.6 and 5 use a flow array passed to ``calc`` as the initial field when it has the
    images' size and type CV_32FC2 (there is no setter), and overwrite it with the result.
    """
    flow = None if initial is None else np.array(initial, dtype=np.float32, order="C", copy=True)
    return np.ascontiguousarray(dis.calc(grey1, grey2, flow), dtype=np.float32)


class GreyEstimator(Estimator):
    """Base of the CPU methods: frames are prepared as grey-level images."""

    device = "cpu"

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        return to_grey(image, color_order)


class DISEstimator(GreyEstimator):
    """Dense Inverse Search on grey-level frames. Not thread-safe (one OpenCV object): one per thread."""

    def __init__(self, preset: str):
        self._dis = create_dis(preset)
        self.preset = preset

    @property
    def description(self) -> str:
        return f"OpenCV {cv2.__version__} DIS optical flow (preset {self.preset})"

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return dis_flow(self._dis, first, second)


class FarnebackEstimator(GreyEstimator):
    """Farneback's polynomial-expansion flow with :data:`FARNEBACK_ARGS`."""

    @property
    def description(self) -> str:
        return f"OpenCV {cv2.__version__} Farneback optical flow {FARNEBACK_ARGS}"

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(first, second, None, *FARNEBACK_ARGS).astype(np.float32, copy=False)


class ZeroFlowEstimator(Estimator):
    """Baseline: no motion anywhere (what any estimator must beat)."""

    device = "cpu"
    description = "zero flow"

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> tuple:
        return check_image("image", image).shape[:2]

    def flow(self, first: tuple, second: tuple) -> np.ndarray:
        return np.zeros(tuple(first) + (2,), np.float32)
