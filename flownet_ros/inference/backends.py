"""The backend registry: every flow method the package can run, with what it can do.

Each :class:`Backend` says how it is built from an :class:`~flownet_ros.inference.factory.EstimatorSpec`
and declares its capabilities; the spec's validation, the factory, the node's ``backend`` parameter, the
evaluation baselines and the docs all read them from here. Adding a backend = one entry in
:data:`BACKENDS` plus its :class:`~flownet_ros.inference.base.Estimator` class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

from flownet_ros.inference.base import Estimator
from flownet_ros.inference.classic import DIS_PRESETS

Spec = Any  # an EstimatorSpec (inference.factory, which imports this module)


@dataclass(frozen=True)
class Backend:
    """One flow method and its capabilities."""

    name: str
    summary: str  # one line for parameter descriptions and docs
    build: Callable[[Spec], Estimator]
    network: bool = False  # runs a FlowNet checkpoint: device, precision, the correlation extension
    refinable: bool = False  # the spec's ``refine`` applies to its flow
    bidirectional: bool = False  # can run both ways and average
    resizable: bool = False  # its network size can change at run time (``configure(inference_size=...)``)
    cuda: bool = False  # can run on a CUDA device
    presets: Tuple[str, ...] = ()  # its ``dis_preset`` values, when the preset selects the method itself
    node: bool = True  # offered by the node's ``backend`` parameter (False: an evaluation baseline only)
    label: str = ""  # table labels: this prefix, then the model (network backends) or the name
    gated: bool = False  # runs the network only where DIS fails its check (``network_threshold`` applies)


def _network(spec: Spec) -> Estimator:
    from flownet_ros.inference.estimator import FlowEstimator

    return FlowEstimator.from_checkpoint(spec.checkpoint or None, device=spec.device, precision=spec.precision,
                                         inference_size=spec.inference_size, bidirectional=spec.bidirectional)


def _refiner(spec: Spec):
    from flownet_ros.inference.refine import make_refiner

    return None if spec.refine == "none" else make_refiner(spec.refine, spec.dis_preset)


def _flownet(spec: Spec) -> Estimator:
    from flownet_ros.inference.refine import RefinedEstimator

    network, refiner = _network(spec), _refiner(spec)
    return network if refiner is None else RefinedEstimator(network, refiner)


def _adaptive(spec: Spec) -> Estimator:
    from flownet_ros.inference.adaptive import AdaptiveEstimator

    return AdaptiveEstimator(_network(spec), _refiner(spec), spec.dis_preset, spec.network_threshold)


def _dis(spec: Spec) -> Estimator:
    from flownet_ros.inference.classic import DISEstimator

    return DISEstimator(spec.dis_preset)


def _farneback(spec: Spec) -> Estimator:
    from flownet_ros.inference.classic import FarnebackEstimator

    return FarnebackEstimator()


def _zero(spec: Spec) -> Estimator:
    from flownet_ros.inference.classic import ZeroFlowEstimator

    return ZeroFlowEstimator()


BACKENDS: Dict[str, Backend] = {b.name: b for b in (
    Backend("flownet", "FlowNetC checkpoint on every pair, refined by 'refine'", _flownet, network=True,
            refinable=True, bidirectional=True, resizable=True, cuda=True),
    Backend("adaptive", "OpenCV DIS first; the FlowNetC, refined by 'refine', only on pairs where DIS's flow fails "
            "a photometric check (network_threshold); every pair on CUDA", _adaptive, network=True, refinable=True,
            bidirectional=True, resizable=True, cuda=True, label="adaptive:", gated=True),
    Backend("dis", "OpenCV DIS with dis_preset, CPU, no model", _dis, presets=tuple(DIS_PRESETS)),
    Backend("farneback", "OpenCV Farneback, CPU (evaluation baseline)", _farneback, node=False),
    Backend("zero", "zero flow (evaluation baseline)", _zero, node=False),
)}

NODE_BACKENDS = tuple(name for name, b in BACKENDS.items() if b.node)


def get_backend(name: str) -> Backend:
    """The registered backend ``name`` (ValueError naming the choices otherwise)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return BACKENDS[name]
