"""Inference: every flow estimator behind one interface (:class:`Estimator`), built by one factory.

``base`` (the interface), ``backends`` (the registry: each backend, how it is built, what it can do),
``estimator`` (FlowNet: preprocessing, network, upsampling), ``classic`` (DIS, Farneback, zero flow),
``refine`` (the Refiner interface: variational / DIS refinement of a network's flow), ``factory``
(:class:`EstimatorSpec` -> estimator, the tools' estimator options), ``runtime`` (device, precision, CPU).
"""

from flownet_ros.inference.backends import BACKENDS, Backend, get_backend
from flownet_ros.inference.base import Estimator
from flownet_ros.inference.estimator import FlowEstimator
from flownet_ros.inference.factory import EstimatorSpec, build_estimator
from flownet_ros.inference.runtime import keep_frame_buffers_in_heap, resolve_device, set_cpu_threads

__all__ = ["BACKENDS", "Backend", "Estimator", "EstimatorSpec", "FlowEstimator", "build_estimator", "get_backend",
           "keep_frame_buffers_in_heap", "resolve_device", "set_cpu_threads"]
