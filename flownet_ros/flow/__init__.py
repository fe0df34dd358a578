"""Flow utilities: files (.flo, KITTI PNG), Middlebury colour coding, metrics, warping."""

from flownet_ros.flow.colour import flow_to_color, flow_to_color_torch
from flownet_ros.flow.io import FlowFileError, read_flo, read_flow, read_kitti_flow, write_flo, write_kitti_flow
from flownet_ros.flow.metrics import epe, epe_map, fl_all
from flownet_ros.flow.warping import bidirectional_average, photometric_error, warp_backward, warp_backward_torch

__all__ = ["FlowFileError", "read_flo", "write_flo", "read_kitti_flow", "write_kitti_flow", "read_flow",
           "flow_to_color", "flow_to_color_torch", "epe", "epe_map", "fl_all", "warp_backward",
           "warp_backward_torch", "bidirectional_average", "photometric_error"]
