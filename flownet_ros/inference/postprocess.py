"""Bring network flow back to the input resolution."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F


def upsample_flow(flow: torch.Tensor, flow_image_size: Tuple[int, int], size: Tuple[int, int]) -> torch.Tensor:
    """[B,2,h,w] flow in pixels of an image of ``flow_image_size`` (H', W'), sampled on any grid covering
    that image (e.g. the network's 1/4-resolution output) -> [B,2,H,W] in pixels of an H x W image.

    One bilinear resampling straight to ``size``, then u scaled by W/W' and v by H/H'.
    """
    height, width = size
    out = flow if tuple(flow.shape[-2:]) == (height, width) else F.interpolate(
        flow, size=(height, width), mode="bilinear", align_corners=False)
    sy, sx = height / flow_image_size[0], width / flow_image_size[1]
    if (sx, sy) == (1.0, 1.0):
        return out
    return out * torch.tensor([sx, sy], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)


def to_numpy_hwc(flow: torch.Tensor) -> np.ndarray:
    """[B,2,H,W] -> numpy [B,H,W,2] float32 (contiguous)."""
    return flow.permute(0, 2, 3, 1).float().contiguous().cpu().numpy()
