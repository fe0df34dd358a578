"""Multi-scale end-point-error loss of FlowNet (Dosovitskiy et al. 2015, section 4; FlowNetPytorch's multiscaleEPE).

The network returns (flow2, flow3, flow4, flow5, flow6) in pixels / ``div_flow`` at H/4 .. H/64.
Each scale is compared with the ground truth downsampled by area (average) pooling and divided by
``div_flow``. As in the original Caffe recipe and FlowNetPytorch, a scale's term is the *sum* of the
per-pixel EPE over valid pixels divided by the batch size, so the weights 0.005 .. 0.32 (flow2 ..
flow6) balance the scales' pixel counts (16x more pixels per finer level, 2x-4x smaller weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: Weights of flow2, flow3, flow4, flow5, flow6 (the order the model returns them).
PAPER_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)
SCALE_NAMES = ("flow2", "flow3", "flow4", "flow5", "flow6")


def downsample_target(flow: torch.Tensor, valid: Optional[torch.Tensor], size: Tuple[int, int]
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Area-downsample [B,2,H,W] flow (and [B,H,W] bool valid) to ``size`` = (h, w).

    Returns (flow [B,2,h,w], valid [B,h,w] bool). The flow values are NOT rescaled: FlowNet
    predicts every scale in full-resolution pixel units (/ div_flow). With a mask, a coarse pixel
    averages only its valid fine pixels and is valid when at least one of them is.
    """
    if valid is None:
        return F.adaptive_avg_pool2d(flow, size), torch.ones((flow.shape[0],) + tuple(size), dtype=torch.bool,
                                                              device=flow.device)
    v = valid.to(flow.dtype).unsqueeze(1)
    pooled_v = F.adaptive_avg_pool2d(v, size)
    pooled_f = F.adaptive_avg_pool2d(flow * v, size)
    out = pooled_f / pooled_v.clamp_min(1e-12)
    return out, pooled_v[:, 0] > 0


def epe_sum(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Sum over valid pixels of ||pred - target||_2; pred, target [B,2,h,w], valid [B,h,w] bool."""
    err = torch.linalg.vector_norm(pred.float() - target.float(), dim=1)
    return (err * valid.to(err.dtype)).sum()


@dataclass
class LossOutput:
    """total: weighted sum (scalar tensor with grad); per_scale: unweighted terms (/div_flow units, sum
    over pixels / batch); epe_px: mean EPE in pixels over valid pixels, per scale. The per-scale values
    are detached scalar tensors: reading them (``float``) waits for the device, so the trainer does it
    only when it logs."""

    total: torch.Tensor
    per_scale: Dict[str, torch.Tensor]
    epe_px: Dict[str, torch.Tensor]


class MultiScaleEPE(torch.nn.Module):
    """loss = sum_s w_s * (sum over valid px of EPE(pred_s, down_s(gt) / div_flow)) / B."""

    def __init__(self, weights: Sequence[float] = PAPER_WEIGHTS, div_flow: float = 20.0):
        super().__init__()
        if len(weights) != len(SCALE_NAMES):
            raise ValueError(f"need {len(SCALE_NAMES)} weights (flow2..flow6), got {len(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.div_flow = float(div_flow)

    def forward(self, preds: Sequence[torch.Tensor], flow: torch.Tensor,
                valid: Optional[torch.Tensor] = None) -> LossOutput:
        """preds: (flow2, .., flow6) [B,2,h_s,w_s] in px/div_flow; flow: [B,2,H,W] px; valid: [B,H,W] bool."""
        if len(preds) != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} predictions, got {len(preds)}")
        batch = flow.shape[0]
        target = flow.float() / self.div_flow
        total = flow.new_zeros((), dtype=torch.float32)
        per_scale, epe_px = {}, {}
        for name, w, pred in zip(SCALE_NAMES, self.weights, preds):
            t, v = downsample_target(target, valid, tuple(pred.shape[-2:]))
            term = epe_sum(pred, t, v) / batch
            total = total + w * term
            per_scale[name] = term.detach()
            epe_px[name] = term.detach() * batch * self.div_flow / v.sum().clamp_min(1)
        return LossOutput(total=total, per_scale=per_scale, epe_px=epe_px)
