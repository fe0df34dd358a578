"""Custom operators: the FlowNetC correlation layer."""

from flownet_ros.ops.correlation import correlation, correlation_reference

__all__ = ["correlation", "correlation_reference"]
