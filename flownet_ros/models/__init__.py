"""FlowNet models and checkpoint loading."""

from flownet_ros.models.checkpoint import CheckpointError, ModelSpec, load_checkpoint, save_checkpoint
from flownet_ros.models.flownet import FlowNetBase, FlowNetC, FlowNetS, build_model

__all__ = ["FlowNetBase", "FlowNetC", "FlowNetS", "build_model", "CheckpointError", "ModelSpec",
           "load_checkpoint", "save_checkpoint"]
