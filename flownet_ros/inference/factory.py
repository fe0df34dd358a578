"""One way to build any estimator: the node, evaluation, bag reports and benchmarks all describe what
they want with an :class:`EstimatorSpec` and call :func:`build_estimator`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from flownet_ros.inference.base import Estimator
from flownet_ros.inference.classic import DIS_PRESETS
from flownet_ros.inference.refine import REFINEMENTS
from flownet_ros.inference.runtime import PRECISIONS

BACKENDS = ("flownet", "dis", "farneback", "zero")


@dataclass(frozen=True)
class EstimatorSpec:
    """What to run.

    backend: ``flownet`` (a FlowNet checkpoint), ``dis`` (OpenCV DIS), ``farneback``, ``zero``.
    checkpoint: FlowNet file ('' = the shipped model). device / precision / inference_size: FlowNet only.
    refine: what refines the FlowNet's flow (``none``, ``variational``, ``dis``).
    bidirectional: run the FlowNet both ways and average (FlowEstimator; one batch of two pairs, ~1.5x the time).
    dis_preset: of the DIS backend and of the DIS refinement.
    """

    backend: str = "flownet"
    checkpoint: str = ""
    device: str = "auto"
    precision: str = "fp32"
    inference_size: Optional[Tuple[int, int]] = None
    refine: str = "none"
    dis_preset: str = "medium"
    bidirectional: bool = False

    def __post_init__(self):
        for name, value, allowed in (("backend", self.backend, BACKENDS), ("refine", self.refine, REFINEMENTS),
                                     ("dis_preset", self.dis_preset, tuple(DIS_PRESETS)),
                                     ("precision", self.precision, tuple(PRECISIONS))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.refine != "none" and self.backend != "flownet":
            raise ValueError(f"refine={self.refine} refines a network's flow; backend is {self.backend}")
        if self.bidirectional and self.backend != "flownet":
            raise ValueError(f"bidirectional runs a network both ways; backend is {self.backend}")
        if self.inference_size is not None:
            object.__setattr__(self, "inference_size", tuple(int(s) for s in self.inference_size))

    @property
    def name(self) -> str:
        """Short label for tables: ``flownet``, ``flownet+dis-medium``, ``dis-fast``, ``zero``, ..."""
        if self.backend == "dis":
            return f"dis-{self.dis_preset}"
        if self.backend != "flownet":
            return self.backend
        base = (Path(self.checkpoint).name if self.checkpoint else "flownet") + ("-bi" if self.bidirectional else "")
        if self.refine == "dis":
            return f"{base}+dis-{self.dis_preset}"
        return base if self.refine == "none" else f"{base}+{self.refine}"


def build_estimator(spec: EstimatorSpec) -> Estimator:
    """Build what ``spec`` describes (CheckpointError for a bad checkpoint, ValueError for bad settings)."""
    from flownet_ros.inference import classic

    if spec.backend == "dis":
        return classic.DISEstimator(spec.dis_preset)
    if spec.backend == "farneback":
        return classic.FarnebackEstimator()
    if spec.backend == "zero":
        return classic.ZeroFlowEstimator()
    from flownet_ros.inference.estimator import FlowEstimator

    net = FlowEstimator.from_checkpoint(spec.checkpoint or None, device=spec.device, precision=spec.precision,
                                        inference_size=spec.inference_size, bidirectional=spec.bidirectional)
    if spec.refine == "none":
        return net
    from flownet_ros.inference.refine import RefinedEstimator, make_refiner

    return RefinedEstimator(net, make_refiner(spec.refine, spec.dis_preset))
