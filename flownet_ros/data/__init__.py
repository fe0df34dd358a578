"""Datasets of optical flow pairs.

Every dataset is a ``torch.utils.data.Dataset`` whose item is a dict
``{'img1': uint8 [H,W,3] RGB, 'img2': same, 'flow': float32 [H,W,2] pixels (img1 -> img2),
'valid': bool [H,W]}``.
"""

from flownet_ros.data.procedural import ProceduralConfig, ProceduralFlowDataset, export_chairs, render_pair

__all__ = ["ProceduralConfig", "ProceduralFlowDataset", "export_chairs", "render_pair"]
