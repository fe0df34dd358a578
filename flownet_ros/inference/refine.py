"""Refinement of a network's flow (the FlowNet paper's "+v" variants).

The network finds large displacements that coarse-to-fine methods miss, but its flow is predicted at
1/4 resolution: smooth, biased by a fraction of a pixel, blurred at motion boundaries. A refinement
on the full-resolution grey frames restores sub-pixel accuracy and edges:

* ``variational``: OpenCV's variational refinement (``cv2.VariationalRefinement``: data, smoothness
  and gradient-constancy terms, fixed-point + SOR iterations), the energy FlowNet+v used (EpicFlow's);
* ``dis``: DIS seeded by the network's flow (patch search around it on every pyramid level, then the
  same variational step), preset selectable.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, Tuple

import cv2
import numpy as np

from flownet_ros.inference.base import Estimator
from flownet_ros.inference.classic import create_dis, dis_flow, to_grey


class Refiner(abc.ABC):
    """Refines a flow on the full-resolution grey frames. Not thread-safe (OpenCV objects): one per thread."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """One line: what refines (library, preset)."""

    @abc.abstractmethod
    def refine(self, grey1: np.ndarray, grey2: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """HxW uint8 frames and HxWx2 float32 flow grey1 -> grey2 in px -> refined flow (a new array).
        A flow with any NaN/inf value comes back unrefined (:func:`unrefinable`)."""


def unrefinable(flow: np.ndarray) -> bool:
    """Whether ``flow`` has NaN/inf values: OpenCV's DIS crashes the process (SIGSEGV) when seeded with
    them, and no refinement repairs a network that failed, so refiners return such a flow as it is and
    its users refuse it (the node does not publish it, the scoring counts it as the worst)."""
    return not np.isfinite(flow).all()


class VariationalRefiner(Refiner):
    """``cv2.VariationalRefinement`` with OpenCV's default weights. One instance per thread."""

    def __init__(self):
        self._vr = cv2.VariationalRefinement_create()

    @property
    def description(self) -> str:
        return f"OpenCV {cv2.__version__} variational refinement"

    def refine(self, grey1: np.ndarray, grey2: np.ndarray, flow: np.ndarray) -> np.ndarray:
        out = np.array(flow, dtype=np.float32, order="C", copy=True)
        if unrefinable(out):
            return out
        self._vr.calc(grey1, grey2, out)  # in place: the argument is the initial and the result
        return out


class DISRefiner(Refiner):
    """DIS (``preset``) started from the given flow. One instance per thread."""

    def __init__(self, preset: str):
        self._dis = create_dis(preset)
        self.preset = preset

    @property
    def description(self) -> str:
        return f"OpenCV {cv2.__version__} DIS ({self.preset}) seeded by the network"

    def refine(self, grey1: np.ndarray, grey2: np.ndarray, flow: np.ndarray) -> np.ndarray:
        if unrefinable(flow):
            return np.array(flow, dtype=np.float32, copy=True)
        return dis_flow(self._dis, grey1, grey2, initial=flow)


#: refinement name -> builder taking the DIS preset; ``none`` (no refinement) has no entry
REFINERS: Dict[str, Any] = {"variational": lambda dis_preset: VariationalRefiner(), "dis": DISRefiner}
REFINEMENTS = ("none",) + tuple(REFINERS)


def make_refiner(name: str, dis_preset: str) -> Refiner:
    """A name of :data:`REFINERS` -> a refiner (``none`` has none: use the estimator as it is)."""
    if name not in REFINERS:
        raise ValueError(f"refinement must be one of {', '.join(REFINERS)}, got {name!r}")
    return REFINERS[name](dis_preset)


class RefinedEstimator(Estimator):
    """An estimator whose flow is refined on the grey frames; each frame is prepared once for both."""

    def __init__(self, base: Estimator, refiner: Refiner):
        self.base = base
        self.refiner = refiner
        self.runtime_settings = base.runtime_settings

    def configure(self, **settings) -> None:
        """The base estimator's run-time settings."""
        self.base.configure(**settings)

    def last_flow_info(self):
        return self.base.last_flow_info()

    @property
    def description(self) -> str:
        return f"{self.base.description}; refined by {self.refiner.description}"

    @property
    def device(self) -> str:
        return self.base.device

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> Tuple[Any, np.ndarray]:
        return self.base.prepare(image, color_order), to_grey(image, color_order)

    def flow(self, first: Tuple[Any, np.ndarray], second: Tuple[Any, np.ndarray]) -> np.ndarray:
        return self.refiner.refine(first[1], second[1], self.base.flow(first[0], second[0]))
