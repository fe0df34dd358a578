"""Inference: preprocessing, the FlowEstimator, postprocessing."""

from flownet_ros.inference.estimator import FlowEstimator, resolve_device
from flownet_ros.inference.runtime import keep_frame_buffers_in_heap, set_cpu_threads

__all__ = ["FlowEstimator", "resolve_device", "keep_frame_buffers_in_heap", "set_cpu_threads"]
