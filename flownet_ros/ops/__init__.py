"""Custom operators: the FlowNetC correlation layer (compiled CPU/CUDA kernels, PyTorch reference)."""

from flownet_ros.ops.correlation import correlation, correlation_backend, correlation_reference, correlation_status
from flownet_ros.ops.shapes import output_shape

__all__ = ["correlation", "correlation_backend", "correlation_reference", "correlation_status", "output_shape"]
