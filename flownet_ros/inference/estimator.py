"""FlowEstimator: images in, dense flow in pixels out, any input size."""

from __future__ import annotations

import contextlib
import logging
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from flownet_ros.inference.postprocess import resize_flow, to_numpy_hwc
from flownet_ros.inference.preprocess import check_pair, network_size, normalize_pair, resize, to_tensor
from flownet_ros.models.checkpoint import ModelSpec, default_checkpoint_path, load_checkpoint
from flownet_ros.models.flownet import FlowNetBase

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` = CUDA if available else CPU; ``cuda`` without CUDA raises ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


class FlowEstimator:
    """Runs a FlowNet on image pairs.

    ``estimate(img1, img2)``: two HxWx3 uint8 arrays -> HxWx2 float32 flow (u right, v down) in
    pixels from img1 to img2 at the input resolution. The network runs at ``inference_size``
    ((H, W), multiples of 64) if given, else at the input size rounded to multiples of 64.
    """

    def __init__(self, model: FlowNetBase, spec: ModelSpec, device: str = "auto", precision: str = "fp32",
                 inference_size: Optional[Sequence[int]] = None, checkpoint: str = ""):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = resolve_device(device)
        if precision != "fp32" and self.device.type != "cuda":
            log.warning("precision %s needs CUDA; running fp32 on %s", precision, self.device)
            precision = "fp32"
        self.precision = precision
        self.spec = spec
        self.checkpoint = checkpoint
        self.inference_size = tuple(int(s) for s in inference_size) if inference_size else None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: Optional[str] = None, **kwargs) -> "FlowEstimator":
        """Load ``path`` (any supported format); ``None`` or ``''`` = the shipped default model."""
        device = resolve_device(kwargs.get("device", "auto"))
        path = path or str(default_checkpoint_path(prefer_cuda=device.type == "cuda"))
        model, spec = load_checkpoint(path)
        return cls(model.float(), spec, checkpoint=str(path), **kwargs)

    @property
    def description(self) -> str:
        return (f"{self.spec.arch} width {self.spec.width:g} ({self.spec.source}) "
                f"from {self.checkpoint or 'memory'}")

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def estimate_tensor(self, t1: torch.Tensor, t2: torch.Tensor, color_order: str = "rgb") -> torch.Tensor:
        """[B,3,H,W] float 0..255 (on any device) -> [B,2,H,W] float32 flow in pixels on ``self.device``."""
        if t1.shape != t2.shape or t1.ndim != 4 or t1.shape[1] != 3:
            raise ValueError(f"expected two [B,3,H,W] tensors of one shape, got {tuple(t1.shape)} "
                             f"and {tuple(t2.shape)}")
        size = tuple(t1.shape[-2:])
        net = network_size(*size, self.inference_size)
        a, b = normalize_pair(t1.to(self.device).float(), t2.to(self.device).float(), self.spec, color_order)
        a, b = resize(a, net), resize(b, net)
        with self._autocast():
            flow = self.model(a, b)
        return resize_flow(flow.float(), size)

    def estimate(self, img1: np.ndarray, img2: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        """HxWx3 uint8 pair -> HxWx2 float32 flow in pixels (img1 -> img2)."""
        check_pair(img1, img2)
        flow = self.estimate_tensor(to_tensor(img1, self.device), to_tensor(img2, self.device), color_order)
        return to_numpy_hwc(flow)[0]

    def estimate_batch(self, imgs1: np.ndarray, imgs2: np.ndarray, color_order: str = "rgb",
                       batch_size: int = 8) -> np.ndarray:
        """[N,H,W,3] uint8 pairs -> [N,H,W,2] float32 flow, ``batch_size`` pairs per forward pass."""
        imgs1, imgs2 = np.asarray(imgs1), np.asarray(imgs2)
        if imgs1.ndim != 4:
            raise ValueError(f"expected [N,H,W,3] arrays, got shape {imgs1.shape}")
        check_pair(imgs1[0], imgs2[0]) if len(imgs1) else None
        if imgs1.shape != imgs2.shape:
            raise ValueError(f"batch shapes differ: {imgs1.shape} vs {imgs2.shape}")
        out = []
        for i in range(0, len(imgs1), batch_size):
            flow = self.estimate_tensor(to_tensor(imgs1[i:i + batch_size], self.device),
                                        to_tensor(imgs2[i:i + batch_size], self.device), color_order)
            out.append(to_numpy_hwc(flow))
        return np.concatenate(out) if out else np.zeros(imgs1.shape[:3] + (2,), np.float32)

    def network_size_for(self, height: int, width: int) -> Tuple[int, int]:
        return network_size(height, width, self.inference_size)
