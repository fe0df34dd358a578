"""Inference: every flow estimator behind one interface (:class:`Estimator`), built by one factory.

``base`` (the interface), ``estimator`` (FlowNet: preprocessing, network, upsampling), ``classic``
(DIS, Farneback, zero flow), ``refine`` (variational / DIS refinement of a network's flow),
``factory`` (:class:`EstimatorSpec` -> estimator), ``runtime`` (device, precision, CPU settings).
"""

from flownet_ros.inference.base import Estimator
from flownet_ros.inference.estimator import FlowEstimator
from flownet_ros.inference.factory import BACKENDS, EstimatorSpec, build_estimator
from flownet_ros.inference.runtime import keep_frame_buffers_in_heap, resolve_device, set_cpu_threads

__all__ = ["BACKENDS", "Estimator", "EstimatorSpec", "FlowEstimator", "build_estimator", "keep_frame_buffers_in_heap",
           "resolve_device", "set_cpu_threads"]
