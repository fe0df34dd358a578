"""Inference: preprocessing, the FlowEstimator, postprocessing."""

from flownet_ros.inference.estimator import FlowEstimator, resolve_device

__all__ = ["FlowEstimator", "resolve_device"]
