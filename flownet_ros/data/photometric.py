"""Photometric changes of image pairs in torch, batched, on the CPU or the GPU (flow untouched).

* :func:`camera_effects`: what differs between two frames of a real camera and what its pipeline
  does to both: exposure change of frame 2 (gain, offset), gamma, defocus / motion blur, sensor
  noise, JPEG compression (8x8 DCT quantisation with the standard tables, 4:2:0 chroma).
* :func:`paper_augment`: the FlowNet paper's photometric augmentation (contrast, per-channel colour,
  gamma, additive brightness, Gaussian noise; same parameters for both frames plus a small relative
  change of frame 2).

Images are float [B,3,H,W] RGB in 0..1. Per-sample parameters are drawn from one NumPy generator per
sample (so a batch is deterministic per sample id); noise fields come from a torch generator seeded
from it, on the images' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# ITU-T T.81 Annex K quantisation tables (quality 50)
_LUMA_Q = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
           14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA_Q = [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + [47, 66] \
    + [99] * 6 + [99] * 32
_RGB2YCC = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]


@dataclass(frozen=True)
class CameraConfig:
    """Ranges of :func:`camera_effects` (probabilities per sample; intensities on the 0..1 scale)."""

    gain_std: float = 0.03           # log-normal exposure gain of frame 2
    offset_std: float = 0.01         # additive offset of frame 2
    gamma: Tuple[float, float] = (0.8, 1.25)
    blur_prob: float = 0.2
    blur_sigma: Tuple[float, float] = (0.4, 1.5)   # px, both frames
    noise: Tuple[float, float] = (0.0, 0.02)       # std of the sensor noise, per frame
    jpeg_prob: float = 0.35
    jpeg_quality: Tuple[float, float] = (30.0, 95.0)


@dataclass(frozen=True)
class PaperAugmentConfig:
    """The paper's photometric ranges (Dosovitskiy et al. 2015, section 4)."""

    contrast: Tuple[float, float] = (-0.8, 0.4)
    colour: Tuple[float, float] = (0.5, 2.0)
    gamma: Tuple[float, float] = (0.7, 1.5)
    brightness: float = 0.2
    noise: Tuple[float, float] = (0.0, 0.04)
    rel_colour: float = 0.02
    rel_brightness: float = 0.02


def _col(values: Sequence, device) -> torch.Tensor:
    """Per-sample values -> [B,1,1,1] (or [B,3,1,1] for per-channel rows) float tensor."""
    t = torch.as_tensor(np.asarray(values, np.float32), device=device)
    return t.view(t.shape[0], -1, 1, 1)


def _noise(shape, seeds: Sequence[int], device) -> torch.Tensor:
    """One standard-normal field per sample, from a generator seeded per sample."""
    out = []
    for s in seeds:
        g = torch.Generator(device=device).manual_seed(int(s))
        out.append(torch.randn(shape, generator=g, device=device))
    return torch.stack(out)


def gaussian_blur(img: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Per-sample Gaussian blur of [B,C,H,W] (sigma [B] px; 0 = unchanged), separable, reflect border,
    kernel of 2 * radius + 1 taps (fixed, so a sample's result does not depend on its batch)."""
    b, c, h, w = img.shape
    if not bool((sigma > 0).any()):
        return img
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    s = sigma.to(img.dtype).clamp_min(1e-3).view(b, 1)
    k = torch.exp(-0.5 * (x.view(1, -1) / s) ** 2)
    k = torch.where((sigma > 0).view(b, 1), k, (x == 0).to(img.dtype).view(1, -1))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [B*C, K]
    y = F.pad(img.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def _dct_matrix(device, dtype) -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * n.view(1, -1) + 1) * n.view(-1, 1) * np.pi / 16) * np.sqrt(2 / 8)
    m[0] /= np.sqrt(2)
    return m.to(device, dtype)


def _quant_table(base: List[int], quality: torch.Tensor) -> torch.Tensor:
    """[B,8,8] quantisation steps (0..255 units) for JPEG qualities [B] (libjpeg's scaling)."""
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)
    table = torch.tensor(base, dtype=quality.dtype, device=quality.device).view(1, 8, 8)
    return ((table * scale.view(-1, 1, 1) + 50) / 100).floor().clamp(1, 255)


def _blockwise(x: torch.Tensor, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """DCT, quantise with steps ``q`` [B,8,8], inverse DCT of [B,C,H,W] (H, W multiples of 8)."""
    b, c, h, w = x.shape
    blocks = x.view(b, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)
    coef = d @ blocks @ d.T
    qq = q.view(b, 1, 1, 1, 8, 8)
    coef = torch.round(coef / qq) * qq
    return (d.T @ coef @ d).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)


def jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress and decode [B,3,H,W] 0..1 RGB at per-sample ``quality`` (0 = leave unchanged)."""
    b, _, h, w = img.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(img, (0, pw, 0, ph), mode="replicate") * 255.0
    m = torch.tensor(_RGB2YCC, dtype=img.dtype, device=img.device)
    ycc = torch.einsum("ij,bjhw->bihw", m, x)  # Y 0..255, Cb and Cr centred on 0
    d = _dct_matrix(img.device, img.dtype)
    q = quality.to(img.dtype)
    y = _blockwise(ycc[:, :1] - 128.0, _quant_table(_LUMA_Q, q), d) + 128.0
    chroma = F.avg_pool2d(ycc[:, 1:], 2)
    chroma = _blockwise(F.pad(chroma, (0, (-chroma.shape[-1]) % 8, 0, (-chroma.shape[-2]) % 8), mode="replicate"),
                        _quant_table(_CHROMA_Q, q), d)[..., : x.shape[-2] // 2, : x.shape[-1] // 2]
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), torch.cat([y, chroma], 1))
    out = (rgb / 255.0)[..., :h, :w].clamp(0, 1)
    return torch.where((quality > 0).view(b, 1, 1, 1), out, img)


def camera_effects(img1: torch.Tensor, img2: torch.Tensor, rngs: Sequence[np.random.Generator],
                   cfg: CameraConfig = CameraConfig()) -> Tuple[torch.Tensor, torch.Tensor]:
    """Real-camera changes (module docstring) of two [B,3,H,W] 0..1 batches; one generator per sample."""
    dev = img1.device
    gain = _col([np.exp(r.normal(0, cfg.gain_std)) for r in rngs], dev)
    offset = _col([r.normal(0, cfg.offset_std) for r in rngs], dev)
    gamma = _col([r.uniform(*cfg.gamma) for r in rngs], dev)
    sigma = torch.tensor([r.uniform(*cfg.blur_sigma) if r.random() < cfg.blur_prob else 0.0 for r in rngs],
                         device=dev)
    noise = [_col([r.uniform(*cfg.noise) for r in rngs], dev) for _ in range(2)]
    quality = [torch.tensor([r.uniform(*cfg.jpeg_quality) if r.random() < cfg.jpeg_prob else 0.0 for r in rngs],
                            device=dev) for _ in range(2)]
    seeds = [[int(r.integers(2 ** 62)) for r in rngs] for _ in range(2)]
    out = []
    for k, img in enumerate((img1, img2)):
        x = (img * gain + offset).clamp(0, 1) if k else img
        x = gaussian_blur(x.clamp(0, 1) ** gamma, sigma, radius=int(math.ceil(3 * cfg.blur_sigma[1])))
        x = (x + noise[k] * _noise(x.shape[1:], seeds[k], dev)).clamp(0, 1)
        out.append(jpeg(x, quality[k]))
    return out[0], out[1]


def paper_augment(img1: torch.Tensor, img2: torch.Tensor, rngs: Sequence[np.random.Generator],
                  cfg: PaperAugmentConfig = PaperAugmentConfig()) -> Tuple[torch.Tensor, torch.Tensor]:
    """The paper's photometric augmentation of two [B,3,H,W] 0..1 batches (module docstring)."""
    dev = img1.device
    mean = 0.5 * (img1.mean(dim=(1, 2, 3), keepdim=True) + img2.mean(dim=(1, 2, 3), keepdim=True))
    contrast = _col([1.0 + r.uniform(*cfg.contrast) for r in rngs], dev)
    lo, hi = np.log(cfg.colour)
    colour = _col([np.exp(r.uniform(lo, hi, 3)) for r in rngs], dev)
    gamma = _col([r.uniform(*cfg.gamma) for r in rngs], dev)
    bright = _col([r.normal(0, cfg.brightness) for r in rngs], dev)
    rel_colour = _col([np.exp(r.normal(0, cfg.rel_colour, 3)) for r in rngs], dev)
    rel_bright = _col([r.normal(0, cfg.rel_brightness) for r in rngs], dev)
    sigmas = [_col([r.uniform(*cfg.noise) for r in rngs], dev) for _ in range(2)]
    seeds = [[int(r.integers(2 ** 62)) for r in rngs] for _ in range(2)]
    out = []
    for k, (img, col, add) in enumerate(((img1, colour, bright), (img2, colour * rel_colour, bright + rel_bright))):
        x = (((img - mean) * contrast + mean) * col).clamp(0, 1) ** gamma + add
        out.append((x + sigmas[k] * _noise(x.shape[1:], seeds[k], dev)).clamp(0, 1))
    return out[0], out[1]
