"""The interface every flow estimator implements (network, DIS, Farneback, zero flow, refined).

Frames go through ``prepare`` once (upload to the GPU, grey conversion, ...), so that a stream of
frames (the ROS node) pays for it once per frame, not twice per pair; ``flow`` then compares two
prepared frames. ``estimate`` does both for a single pair.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

COLOR_ORDERS = ("rgb", "bgr")


@runtime_checkable
class Estimator(Protocol):
    """Dense optical flow between two frames of one camera."""

    @property
    def description(self) -> str:
        """One line: what runs (model file, preset, library version)."""

    @property
    def device(self) -> str:
        """Where it runs: 'cpu', 'cuda:0', ..."""

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> Any:
        """HxWx3 uint8 frame (or HxW / HxWx1 mono8 / mono16) -> whatever ``flow`` needs of it (opaque)."""

    def flow(self, first: Any, second: Any) -> np.ndarray:
        """Two prepared frames of one size -> HxWx2 float32 flow in pixels, first -> second
        (u right, v down), at the frames' resolution."""

    def estimate(self, img1: np.ndarray, img2: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        """``flow(prepare(img1), prepare(img2))`` after checking the pair."""


def check_image(name: str, img: np.ndarray) -> np.ndarray:
    """``img`` as a non-empty HxWx3 uint8 array, else ValueError. Grey frames (HxW or HxWx1, uint8 mono8 or
    uint16 mono16) become RGB as the node converts them (:func:`flownet_ros.ros.conversions.mono_to_rgb`)."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(img).__name__}")
    grey = img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1)
    if img.dtype != np.uint8 and not (grey and img.dtype == np.uint16):
        raise ValueError(f"{name} must be uint8 (or uint16 if grey), got {img.dtype}")
    if not grey and (img.ndim != 3 or img.shape[2] != 3):
        raise ValueError(f"{name} must be HxWx3, HxWx1 or HxW, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {img.shape}")
    if grey:
        from flownet_ros.ros.conversions import mono_to_rgb  # ROS-free; imported here to keep base light

        return mono_to_rgb(img)
    return img


def check_pair(img1: np.ndarray, img2: np.ndarray):
    """(img1, img2) as HxWx3 uint8 arrays (:func:`check_image`) of the same size, else ValueError."""
    img1, img2 = check_image("img1", img1), check_image("img2", img2)
    if img1.shape != img2.shape:
        raise ValueError(f"image sizes differ: img1 {img1.shape[:2]} vs img2 {img2.shape[:2]}")
    return img1, img2


def check_color_order(color_order: str) -> None:
    if color_order not in COLOR_ORDERS:
        raise ValueError(f"colour order must be 'rgb' or 'bgr', got {color_order!r}")


class FrameEstimator:
    """Base class: ``estimate`` = ``flow(prepare(img1), prepare(img2))``; subclasses define the two."""

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> Any:
        raise NotImplementedError

    def flow(self, first: Any, second: Any) -> np.ndarray:
        raise NotImplementedError

    def estimate(self, img1: np.ndarray, img2: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        img1, img2 = check_pair(img1, img2)
        check_color_order(color_order)
        return self.flow(self.prepare(img1, color_order), self.prepare(img2, color_order))
