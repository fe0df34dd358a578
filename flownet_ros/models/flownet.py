"""FlowNetS and FlowNetC (Dosovitskiy et al., ICCV 2015).

Layer names follow the public checkpoints (flownet2-pytorch and FlowNetPytorch), so their
state_dicts load without renaming. Every predicted flow is in units of (full-resolution
pixels) / ``div_flow``; :meth:`FlowNetBase.forward` returns the five training scales, or in
eval mode the flow at the input resolution in pixels; :meth:`FlowNetBase.predict` the finest
scale in pixels, for callers that resample it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from flownet_ros.ops import correlation

ARCHS = ("flownetc", "flownets")
BIAS_LAYOUTS = ("flownet2", "flownetpytorch")


@dataclass(frozen=True)
class BiasLayout:
    """Which layer groups carry a bias (flownet2-pytorch or FlowNetPytorch)."""

    deconv: bool
    predict: bool
    upsample: bool

    @staticmethod
    def of(layout: str, arch: str) -> "BiasLayout":
        if layout == "flownet2":
            return BiasLayout(deconv=True, predict=True, upsample=(arch == "flownetc"))
        if layout == "flownetpytorch":
            return BiasLayout(deconv=False, predict=False, upsample=False)
        raise ValueError(f"bias_layout must be one of {BIAS_LAYOUTS}, got {layout!r}")


def conv(cin: int, cout: int, k: int = 3, s: int = 1, batch_norm: bool = False) -> nn.Sequential:
    """Conv2d(k, s, same padding) [+ BatchNorm] + LeakyReLU(0.1); index 0 is the conv."""
    if batch_norm:
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=False),
                             nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=True),
                         nn.LeakyReLU(0.1, inplace=True))


def deconv(cin: int, cout: int, bias: bool) -> nn.Sequential:
    """ConvTranspose2d(4, 2, 1) + LeakyReLU(0.1): doubles H and W."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias), nn.LeakyReLU(0.1, inplace=True))


def predict_flow(cin: int, bias: bool) -> nn.Conv2d:
    """3x3 conv to 2 channels (u, v), no activation."""
    return nn.Conv2d(cin, 2, 3, 1, 1, bias=bias)


def upsample_flow(bias: bool) -> nn.ConvTranspose2d:
    """Learned x2 upsampling of a 2-channel flow."""
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=bias)


def crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop [B,C,h,w] to ref's spatial size (deconvs of odd-sized maps overshoot by one)."""
    return x[:, :, : ref.shape[2], : ref.shape[3]]


@dataclass(frozen=True)
class Widths:
    """Channel counts for a width multiplier (1.0 = paper)."""

    c1: int
    c2: int
    c3: int
    c4: int
    c5: int
    c6: int
    redir: int
    d5: int
    d4: int
    d3: int
    d2: int

    @staticmethod
    def of(width: float) -> "Widths":
        if not 0.0 < width <= 4.0:
            raise ValueError(f"width must be in (0, 4], got {width}")

        def s(n: int) -> int:
            return max(4, int(round(n * width)))

        return Widths(s(64), s(128), s(256), s(512), s(512), s(1024), s(32), s(512), s(256), s(128), s(64))


class FlowNetBase(nn.Module):
    """Shared output handling: training scales vs. full-resolution flow in pixels."""

    arch = ""

    def __init__(self, width: float, batch_norm: bool, bias_layout: str, div_flow: float):
        super().__init__()
        self.width = float(width)
        self.batch_norm = bool(batch_norm)
        self.bias_layout = bias_layout
        self.div_flow = float(div_flow)
        self.w = Widths.of(width)
        self.bias = BiasLayout.of(bias_layout, self.arch)

    def add_encoder_tail_and_decoder(self) -> None:
        """conv4 .. conv6_1 (shared by FlowNetS and FlowNetC) and the refinement layers, registered at
        top level so the public checkpoint keys match."""
        w, bn, bias = self.w, self.batch_norm, self.bias
        self.conv4 = conv(w.c3, w.c4, 3, 2, bn)
        self.conv4_1 = conv(w.c4, w.c4, 3, 1, bn)
        self.conv5 = conv(w.c4, w.c5, 3, 2, bn)
        self.conv5_1 = conv(w.c5, w.c5, 3, 1, bn)
        self.conv6 = conv(w.c5, w.c6, 3, 2, bn)
        self.conv6_1 = conv(w.c6, w.c6, 3, 1, bn)
        c6, c5, c4, c3, c2 = w.c6, w.c5, w.c4, w.c3, w.c2
        self.deconv5 = deconv(c6, w.d5, bias.deconv)
        self.deconv4 = deconv(c5 + w.d5 + 2, w.d4, bias.deconv)
        self.deconv3 = deconv(c4 + w.d4 + 2, w.d3, bias.deconv)
        self.deconv2 = deconv(c3 + w.d3 + 2, w.d2, bias.deconv)
        self.predict_flow6 = predict_flow(c6, bias.predict)
        self.predict_flow5 = predict_flow(c5 + w.d5 + 2, bias.predict)
        self.predict_flow4 = predict_flow(c4 + w.d4 + 2, bias.predict)
        self.predict_flow3 = predict_flow(c3 + w.d3 + 2, bias.predict)
        self.predict_flow2 = predict_flow(c2 + w.d2 + 2, bias.predict)
        self.upsampled_flow6_to_5 = upsample_flow(bias.upsample)
        self.upsampled_flow5_to_4 = upsample_flow(bias.upsample)
        self.upsampled_flow4_to_3 = upsample_flow(bias.upsample)
        self.upsampled_flow3_to_2 = upsample_flow(bias.upsample)

    def encode_tail(self, x3: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """conv3_1 features [B,c3,H/8,W/8] -> conv4_1, conv5_1, conv6_1 at H/16, H/32, H/64."""
        x4 = self.conv4_1(self.conv4(x3))
        x5 = self.conv5_1(self.conv5(x4))
        return x4, x5, self.conv6_1(self.conv6(x5))

    def decode(self, x2, x3, x4, x5, x6) -> Tuple[torch.Tensor, ...]:
        """Skip features at H/4 .. H/64 -> (flow2, flow3, flow4, flow5, flow6), each [B,2,h,w]."""
        flow6 = self.predict_flow6(x6)
        cat5 = torch.cat((x5, crop_like(self.deconv5(x6), x5),
                          crop_like(self.upsampled_flow6_to_5(flow6), x5)), 1)
        flow5 = self.predict_flow5(cat5)
        cat4 = torch.cat((x4, crop_like(self.deconv4(cat5), x4),
                          crop_like(self.upsampled_flow5_to_4(flow5), x4)), 1)
        flow4 = self.predict_flow4(cat4)
        cat3 = torch.cat((x3, crop_like(self.deconv3(cat4), x3),
                          crop_like(self.upsampled_flow4_to_3(flow4), x3)), 1)
        flow3 = self.predict_flow3(cat3)
        cat2 = torch.cat((x2, crop_like(self.deconv2(cat3), x2),
                          crop_like(self.upsampled_flow3_to_2(flow3), x2)), 1)
        flow2 = self.predict_flow2(cat2)
        return flow2, flow3, flow4, flow5, flow6

    def features(self, img1: torch.Tensor, img2: torch.Tensor):
        """Skip features (conv2 of image 1, conv3_1, conv4_1, conv5_1, conv6_1)."""
        raise NotImplementedError

    def predict(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Finest prediction [B,2,H/4,W/4] in pixels of the H x W input (flow2 * div_flow).

        For inference: the caller upsamples it once, straight to the resolution it needs.
        """
        return self.div_flow * self.decode(*self.features(img1, img2))[0]

    def forward(self, img1: torch.Tensor, img2: torch.Tensor):
        """img1, img2: normalised [B,3,H,W].

        Training: (flow2, flow3, flow4, flow5, flow6) at H/4 .. H/64, in pixels / div_flow.
        Eval: [B,2,H,W] flow in pixels at the input resolution (bilinear upsampling of flow2).
        """
        if self.training:
            return self.decode(*self.features(img1, img2))
        return F.interpolate(self.predict(img1, img2), size=img1.shape[-2:], mode="bilinear", align_corners=False)


class FlowNetC(FlowNetBase):
    """FlowNetC: siamese conv1-3, correlation (d=20, s2=2 -> 441 channels), then FlowNetS-like."""

    arch = "flownetc"

    def __init__(self, width: float = 1.0, batch_norm: bool = False, bias_layout: str = "flownet2",
                 div_flow: float = 20.0):
        super().__init__(width, batch_norm, bias_layout, div_flow)
        w, bn = self.w, batch_norm
        self.conv1 = conv(3, w.c1, 7, 2, bn)
        self.conv2 = conv(w.c1, w.c2, 5, 2, bn)
        self.conv3 = conv(w.c2, w.c3, 5, 2, bn)
        self.conv_redir = conv(w.c3, w.redir, 1, 1, bn)
        self.corr_activation = nn.LeakyReLU(0.1, inplace=True)
        self.conv3_1 = conv(w.redir + 441, w.c3, 3, 1, bn)
        self.add_encoder_tail_and_decoder()

    def features(self, img1, img2):
        """Returns skip features (conv2a, conv3_1, conv4_1, conv5_1, conv6_1)."""
        both = torch.cat((img1, img2), 0)  # one pass through the shared tower
        c2 = self.conv2(self.conv1(both))
        c3 = self.conv3(c2)
        b = img1.shape[0]
        c2a, c3a, c3b = c2[:b], c3[:b], c3[b:]
        corr = self.corr_activation(correlation(c3a, c3b, max_displacement=20, stride2=2,
                                                kernel_size=1, stride1=1))
        x3 = self.conv3_1(torch.cat((self.conv_redir(c3a), corr), 1))
        x4, x5, x6 = self.encode_tail(x3)
        return c2a, x3, x4, x5, x6


class FlowNetS(FlowNetBase):
    """FlowNetS: both images stacked into 6 channels, plain encoder-decoder."""

    arch = "flownets"

    def __init__(self, width: float = 1.0, batch_norm: bool = False, bias_layout: str = "flownet2",
                 div_flow: float = 20.0):
        super().__init__(width, batch_norm, bias_layout, div_flow)
        w, bn = self.w, batch_norm
        self.conv1 = conv(6, w.c1, 7, 2, bn)
        self.conv2 = conv(w.c1, w.c2, 5, 2, bn)
        self.conv3 = conv(w.c2, w.c3, 5, 2, bn)
        self.conv3_1 = conv(w.c3, w.c3, 3, 1, bn)
        self.add_encoder_tail_and_decoder()

    def features(self, img1, img2):
        c2 = self.conv2(self.conv1(torch.cat((img1, img2), 1)))
        x3 = self.conv3_1(self.conv3(c2))
        x4, x5, x6 = self.encode_tail(x3)
        return c2, x3, x4, x5, x6


def build_model(arch: str, width: float = 1.0, batch_norm: bool = False, bias_layout: str = "flownet2",
                div_flow: float = 20.0) -> FlowNetBase:
    """Construct FlowNetC or FlowNetS by name."""
    classes = {"flownetc": FlowNetC, "flownets": FlowNetS}
    if arch not in classes:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    return classes[arch](width=width, batch_norm=batch_norm, bias_layout=bias_layout, div_flow=div_flow)
