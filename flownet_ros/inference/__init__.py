"""Inference: preprocessing, the FlowEstimator, postprocessing."""

from flownet_ros.inference.estimator import FlowEstimator, resolve_device, set_cpu_threads

__all__ = ["FlowEstimator", "resolve_device", "set_cpu_threads"]
