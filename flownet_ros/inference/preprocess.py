"""Network-size selection, upload and input normalisation.

All tensors are [B,3,H,W] float32 in the network's colour order unless stated otherwise.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from flownet_ros.models.checkpoint import ModelSpec

#: Longer side (px) of the automatic network size: larger inputs are scaled down to it. Measured on the
#: real-image set (docs/evaluation.md): the shipped CPU model is most accurate at 256x320 for 640x480
#: frames, raw and refined, and 2-3x faster than at 384x512 / 512x640. The flow is always returned at the
#: input resolution.
AUTO_MAX_SIDE = 320


def network_size(height: int, width: int, inference_size: Optional[Sequence[int]] = None,
                 multiple: int = 64, max_side: int = AUTO_MAX_SIDE) -> Tuple[int, int]:
    """(H, W) the network runs at: ``inference_size`` if given (rounded to ``multiple``), else the input
    size scaled down to at most ``max_side`` on its longer side, each side rounded to the nearest
    multiple of 64 (at least 64)."""
    if inference_size is not None and len(inference_size) == 2 and all(int(s) > 0 for s in inference_size):
        height, width = int(inference_size[0]), int(inference_size[1])
    else:
        scale = min(1.0, max_side / max(height, width))
        height, width = height * scale, width * scale
    return (max(multiple, int(height / multiple + 0.5) * multiple),   # half rounds up, not to even
            max(multiple, int(width / multiple + 0.5) * multiple))


def to_tensor(imgs: np.ndarray, device: torch.device) -> torch.Tensor:
    """[N,H,W,3] or [H,W,3] uint8 -> [N,3,H,W] float32 0..255 on ``device``."""
    arr = np.ascontiguousarray(imgs)
    if not arr.flags.writeable:  # e.g. a view of a ROS/bag message buffer; torch needs writable memory
        arr = arr.copy()
    t = torch.from_numpy(arr)
    if t.ndim == 3:
        t = t[None]
    return t.to(device, non_blocking=True).permute(0, 3, 1, 2).float()


def normalize_pair(t1: torch.Tensor, t2: torch.Tensor, spec: ModelSpec, input_order: str = "rgb"
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """0..255 [B,3,H,W] in ``input_order`` -> network input as the checkpoint expects it."""
    if input_order not in ("rgb", "bgr"):
        raise ValueError(f"colour order must be 'rgb' or 'bgr', got {input_order!r}")
    if input_order != spec.color_order:
        t1, t2 = t1.flip(1), t2.flip(1)
    if spec.normalization == "sample_mean":
        mean = 0.5 * (t1.mean(dim=(2, 3), keepdim=True) + t2.mean(dim=(2, 3), keepdim=True))
        return (t1 - mean) / 255.0, (t2 - mean) / 255.0
    mean = torch.tensor(spec.mean, dtype=t1.dtype, device=t1.device).view(1, 3, 1, 1)
    if spec.color_order == "bgr":
        mean = mean.flip(1)
    return t1 / 255.0 - mean, t2 / 255.0 - mean


def resize(t: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B,C,H,W] to ``size`` (no-op when equal)."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)
