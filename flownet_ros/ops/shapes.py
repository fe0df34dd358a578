"""Shape arithmetic of the correlation op (no torch, no extension): shared by the op, its fake
(meta) kernels and the models."""

from __future__ import annotations


def output_shape(shape, max_displacement: int = 20, stride2: int = 2, kernel_size: int = 1, stride1: int = 1):
    """[B, C, H, W] -> (B, D*D, H', W') of the correlation output."""
    b, _, h, w = shape
    d = 2 * (max_displacement // stride2) + 1
    return (b, d * d, (h + stride1 - 1) // stride1, (w + stride1 - 1) // stride1)
