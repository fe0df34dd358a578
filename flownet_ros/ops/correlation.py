"""FlowNet correlation layer (public entry point).

This first version dispatches to the pure-PyTorch reference only; the compiled
CPU/CUDA backends are added by the extension module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def correlation_reference(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 20,
                          stride2: int = 2, kernel_size: int = 1, stride1: int = 1) -> torch.Tensor:
    """Pure-PyTorch correlation (shift and multiply).

    f1, f2: [B, C, H, W]. Returns [B, D*D, H', W'] with D = 2*(max_displacement // stride2) + 1,
    H' = ceil(H / stride1), channel index (dy // stride2 + r) * D + (dx // stride2 + r), normalised by
    kernel_size^2 * C; displaced positions outside the image contribute 0.
    """
    b, c, h, w = f1.shape
    r = max_displacement // stride2
    k = (kernel_size - 1) // 2
    pad = max_displacement + k
    f1p = F.pad(f1, (k, k, k, k))
    f2p = F.pad(f2, (pad + k, pad + k, pad + k, pad + k))
    outs = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            oy, ox = pad + dy * stride2, pad + dx * stride2
            prod = f1p * f2p[:, :, oy:oy + h + 2 * k, ox:ox + w + 2 * k]
            s = prod.sum(1, keepdim=True)
            if kernel_size > 1:
                s = F.avg_pool2d(s, kernel_size, stride=1) * (kernel_size * kernel_size)
            outs.append(s[:, :, ::stride1, ::stride1])
    return torch.cat(outs, 1) / (kernel_size * kernel_size * c)


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 20, stride2: int = 2,
                kernel_size: int = 1, stride1: int = 1) -> torch.Tensor:
    """FlowNet correlation; see :func:`correlation_reference` for semantics and shapes."""
    return correlation_reference(f1, f2, max_displacement, stride2, kernel_size, stride1)
