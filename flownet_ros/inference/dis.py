"""OpenCV DIS optical flow (Kroeger et al., ECCV 2016) behind the FlowEstimator interface.

A CPU-only baseline and fallback backend: no network, no GPU, a few ms per VGA pair with the
``ultrafast`` preset. Same ``estimate(img1, img2, color_order) -> HxWx2 float32`` contract as
:class:`flownet_ros.inference.FlowEstimator`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from flownet_ros.inference.preprocess import check_pair

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


class DISEstimator:
    """Dense Inverse Search flow on the grey-level images.

    Not thread-safe (one OpenCV DIS object): use one instance per thread.
    """

    def __init__(self, preset: str = "medium"):
        if preset not in PRESETS:
            raise ValueError(f"DIS preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.preset = preset
        self.device = torch.device("cpu")
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    @property
    def description(self) -> str:
        return f"OpenCV {cv2.__version__} DIS optical flow (preset {self.preset})"

    def estimate(self, img1: np.ndarray, img2: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        """HxWx3 uint8 pair -> HxWx2 float32 flow in pixels (img1 -> img2; u right, v down)."""
        if color_order not in ("rgb", "bgr"):
            raise ValueError(f"colour order must be 'rgb' or 'bgr', got {color_order!r}")
        check_pair(img1, img2)
        code = cv2.COLOR_RGB2GRAY if color_order == "rgb" else cv2.COLOR_BGR2GRAY
        g1, g2 = cv2.cvtColor(img1, code), cv2.cvtColor(img2, code)
        flow = self._dis.calc(g1, g2, None)
        return np.ascontiguousarray(flow, dtype=np.float32)
