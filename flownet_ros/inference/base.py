"""The interface every flow estimator implements (network, DIS, Farneback, zero flow, refined).

Frames go through ``prepare`` once (upload to the GPU, grey conversion, ...), so that a stream of
frames (the ROS node) pays for it once per frame, not twice per pair; ``flow`` then compares two
prepared frames. ``estimate`` does both for a single pair.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, Tuple

import numpy as np

from flownet_ros.imaging.decode import mono_to_rgb

COLOR_ORDERS = ("rgb", "bgr")


class Estimator(abc.ABC):
    """Dense optical flow between two frames of one camera: the one interface of every backend.

    Subclasses define ``description``, ``device``, ``prepare`` and ``flow``; ``estimate`` checks a pair and
    does both. Settings that may change while frames flow (the node's run-time parameters) go through
    ``configure``; which ones an estimator takes is its ``runtime_settings``.
    """

    #: names ``configure`` accepts (e.g. ``inference_size``, ``bidirectional`` for a network)
    runtime_settings: Tuple[str, ...] = ()

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """One line: what runs (model file, preset, library version)."""

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """Where it runs: 'cpu', 'cuda:0', ..."""

    @abc.abstractmethod
    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> Any:
        """HxWx3 uint8 frame (or HxW / HxWx1 mono8 / mono16) -> whatever ``flow`` needs of it (opaque)."""

    @abc.abstractmethod
    def flow(self, first: Any, second: Any) -> np.ndarray:
        """Two prepared frames of one size -> HxWx2 float32 flow in pixels, first -> second
        (u right, v down), at the frames' resolution."""

    def estimate(self, img1: np.ndarray, img2: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        """``flow(prepare(img1), prepare(img2))`` after checking the pair."""
        img1, img2 = check_pair(img1, img2)
        check_color_order(color_order)
        return self.flow(self.prepare(img1, color_order), self.prepare(img2, color_order))

    def last_flow_info(self) -> Dict[str, Any]:
        """What the last ``flow`` call did, for diagnostics and reports (the adaptive backend: which path ran,
        its check's score, its time); empty for estimators with one path."""
        return {}

    def configure(self, **settings: Any) -> None:
        """Change run-time settings (names in ``runtime_settings``); ValueError for any other name. Safe to
        call between two ``flow`` calls from another thread: each setting is one attribute assignment."""
        unknown = sorted(set(settings) - set(self.runtime_settings))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no run-time setting {', '.join(unknown)} "
                             f"(it has: {', '.join(self.runtime_settings) or 'none'})")
        for name, value in settings.items():
            setattr(self, name, value)


def check_image(name: str, img: np.ndarray) -> np.ndarray:
    """``img`` as a non-empty HxWx3 uint8 array, else ValueError. Grey frames (HxW or HxWx1, uint8 mono8 or
    uint16 mono16) become RGB as the node converts them (:func:`flownet_ros.imaging.decode.mono_to_rgb`)."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(img).__name__}")
    grey = img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1)
    if img.dtype != np.uint8 and not (grey and img.dtype == np.uint16):
        raise ValueError(f"{name} must be uint8 (or uint16 if grey), got {img.dtype}")
    if not grey and (img.ndim != 3 or img.shape[2] != 3):
        raise ValueError(f"{name} must be HxWx3, HxWx1 or HxW, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {img.shape}")
    return mono_to_rgb(img) if grey else img


def check_pair(img1: np.ndarray, img2: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(img1, img2) as HxWx3 uint8 arrays (:func:`check_image`) of the same size, else ValueError."""
    img1, img2 = check_image("img1", img1), check_image("img2", img2)
    if img1.shape != img2.shape:
        raise ValueError(f"image sizes differ: img1 {img1.shape[:2]} vs img2 {img2.shape[:2]}")
    return img1, img2


def check_color_order(color_order: str) -> None:
    if color_order not in COLOR_ORDERS:
        raise ValueError(f"colour order must be 'rgb' or 'bgr', got {color_order!r}")
