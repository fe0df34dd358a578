"""Bring network-resolution flow back to the input resolution."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F


def resize_flow(flow: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """[B,2,h,w] flow in pixels of an h x w image -> [B,2,H,W] in pixels of the H x W image.

    Bilinear resampling of the field, then u scaled by W/w and v by H/h.
    """
    h, w = flow.shape[-2:]
    height, width = size
    if (h, w) == (height, width):
        return flow
    out = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    scale = torch.tensor([width / w, height / h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out * scale


def to_numpy_hwc(flow: torch.Tensor) -> np.ndarray:
    """[B,2,H,W] -> numpy [B,H,W,2] float32 (contiguous)."""
    return flow.permute(0, 2, 3, 1).float().contiguous().cpu().numpy()
