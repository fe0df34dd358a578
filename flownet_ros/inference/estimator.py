"""FlowEstimator: a FlowNet on image pairs, any input size, flow in input pixels."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from flownet_ros.flow.warping import bidirectional_average
from flownet_ros.inference.base import Estimator, check_color_order, check_image, check_pair
from flownet_ros.inference.postprocess import to_numpy_hwc, upsample_flow
from flownet_ros.inference.preprocess import network_size, normalize_pair, resize, to_tensor
from flownet_ros.inference.runtime import autocast, effective_precision, resolve_device
from flownet_ros.models.checkpoint import ModelSpec, default_checkpoint_path, load_checkpoint
from flownet_ros.models.flownet import FlowNetBase


class FlowEstimator(Estimator):
    """Runs a FlowNet on image pairs.

    ``estimate(img1, img2)``: two HxWx3 uint8 arrays -> HxWx2 float32 flow (u right, v down) in
    pixels from img1 to img2 at the input resolution. The network runs at ``inference_size``
    ((H, W), multiples of 64) if given, else at the input size rounded to multiples of 64; its
    1/4-resolution prediction is upsampled once, straight to the input size. ``bidirectional``: the
    network also runs from img2 to img1 (in the same batch) and the two are averaged
    (:func:`~flownet_ros.flow.bidirectional_average`), which cancels its direction-independent bias
    (the error that made small motions worse than zero flow); a batch of two pairs, about 1.5x the time on CPU.
    """

    runtime_settings = ("inference_size", "bidirectional")

    def __init__(self, model: FlowNetBase, spec: ModelSpec, device: str = "auto", precision: str = "fp32",
                 inference_size: Optional[Sequence[int]] = None, checkpoint: str = "", bidirectional: bool = False):
        self.torch_device = resolve_device(device)
        self.precision = effective_precision(precision, self.torch_device)
        self.spec = spec
        self.checkpoint = checkpoint
        self.bidirectional = False
        self.inference_size: Optional[Tuple[int, int]] = None
        self.configure(inference_size=inference_size, bidirectional=bidirectional)
        if self.torch_device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.model = model.to(self.torch_device).eval()

    @classmethod
    def from_checkpoint(cls, path: Optional[str] = None, **kwargs) -> "FlowEstimator":
        """Load ``path`` (any supported format); ``None`` or ``''`` = the shipped default model."""
        device = resolve_device(kwargs.get("device", "auto"))
        path = path or str(default_checkpoint_path(prefer_cuda=device.type == "cuda"))
        model, spec = load_checkpoint(path)
        return cls(model.float(), spec, checkpoint=str(path), **kwargs)

    @property
    def device(self) -> str:
        return str(self.torch_device)

    def configure(self, **settings) -> None:
        """``inference_size`` ((H, W) multiples of 64, or None = automatic), ``bidirectional`` (bool)."""
        if settings.get("inference_size"):
            settings["inference_size"] = tuple(int(s) for s in settings["inference_size"])
        elif "inference_size" in settings:
            settings["inference_size"] = None
        if "bidirectional" in settings:
            settings["bidirectional"] = bool(settings["bidirectional"])
        super().configure(**settings)

    @property
    def description(self) -> str:
        return (f"{self.spec.arch} width {self.spec.width:g} ({self.spec.source}) "
                f"from {self.checkpoint or 'memory'}{', bidirectional' if self.bidirectional else ''}")

    def network_size(self, height: int, width: int) -> Tuple[int, int]:
        """(H, W) the network runs at for an input of this size."""
        return network_size(height, width, self.inference_size)

    def prepare(self, image: np.ndarray, color_order: str = "rgb") -> torch.Tensor:
        """HxWx3 uint8 -> [1,3,H,W] float32 0..255 on the device, in the network's colour order."""
        image = check_image("image", image)
        check_color_order(color_order)
        t = to_tensor(image, self.torch_device)
        return t.flip(1) if color_order != self.spec.color_order else t

    @torch.inference_mode()
    def flow_tensor(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] float 0..255 in the network's colour order -> [B,2,H,W] float32 flow in pixels."""
        if first.shape != second.shape or first.ndim != 4 or first.shape[1] != 3:
            raise ValueError(f"expected two [B,3,H,W] tensors of one shape, got {tuple(first.shape)} "
                             f"and {tuple(second.shape)}")
        size = tuple(first.shape[-2:])
        net = self.network_size(*size)
        a, b = normalize_pair(first.to(self.torch_device).float(), second.to(self.torch_device).float(),
                              self.spec, self.spec.color_order)
        a, b = resize(a, net), resize(b, net)
        both_ways = self.bidirectional  # read once: the node may change it from another thread
        if both_ways:
            a, b = torch.cat([a, b]), torch.cat([b, a])
        with autocast(self.precision):
            low = self.model.predict(a, b).float()
        if both_ways:
            low = self._average_directions(low, net)
        return upsample_flow(low, net, size)

    @staticmethod
    def _average_directions(low: torch.Tensor, net: Tuple[int, int]) -> torch.Tensor:
        """[2B,2,h,w] forward then backward flow in pixels of the ``net`` image -> [B,2,h,w] averaged
        on the h x w grid (flow converted to grid pixels for the warp, and back)."""
        forward, backward = low.chunk(2)
        to_grid = torch.tensor([low.shape[-1] / net[1], low.shape[-2] / net[0]], device=low.device).view(1, 2, 1, 1)
        return bidirectional_average(forward * to_grid, backward * to_grid) / to_grid

    def flow(self, first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
        return to_numpy_hwc(self.flow_tensor(first, second))[0]

    def estimate_batch(self, imgs1: np.ndarray, imgs2: np.ndarray, color_order: str = "rgb",
                       batch_size: int = 8) -> np.ndarray:
        """[N,H,W,3] uint8 pairs -> [N,H,W,2] float32 flow, ``batch_size`` pairs per forward pass."""
        imgs1, imgs2 = np.asarray(imgs1), np.asarray(imgs2)
        if imgs1.ndim != 4 or imgs1.shape[3] != 3:
            raise ValueError(f"expected [N,H,W,3] arrays, got shape {imgs1.shape}")
        if imgs1.shape != imgs2.shape:
            raise ValueError(f"batch shapes differ: {imgs1.shape} vs {imgs2.shape}")
        if len(imgs1):
            check_pair(imgs1[0], imgs2[0])
        check_color_order(color_order)
        out = []
        for i in range(0, len(imgs1), batch_size):
            a, b = (to_tensor(x[i:i + batch_size], self.torch_device) for x in (imgs1, imgs2))
            if color_order != self.spec.color_order:
                a, b = a.flip(1), b.flip(1)
            out.append(to_numpy_hwc(self.flow_tensor(a, b)))
        return np.concatenate(out) if out else np.zeros(imgs1.shape[:3] + (2,), np.float32)
