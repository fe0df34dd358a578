"""TensorBoard logging of a training run (main process only; a no-op elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch


class TrainLog:
    """Scalars (loss, per-scale terms, EPE, learning rate, throughput) and validation images."""

    def __init__(self, out_dir: Path, enabled: bool, purge_step: Optional[int] = None):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tb"), purge_step=purge_step or None)

    def scalars(self, step: int, stats: Dict[str, float]) -> None:
        w = self.writer
        if w is None:
            return
        for k, v in stats.items():
            if k.startswith("loss_"):
                w.add_scalar(f"loss/{k[5:]}", v, step)
            elif k.startswith("epe_"):
                w.add_scalar(f"epe_scale/{k[4:]}", v, step)
            elif k == "loss":
                w.add_scalar("loss/total", v, step)
            else:  # epe, zero_flow_epe (the batch's |gt|: a plateau check), lr, grad_norm, it_per_s, pairs_per_s
                w.add_scalar(f"train/{k}", v, step)

    def validation(self, step: int, val: Dict[str, Any]) -> None:
        w = self.writer
        if w is None:
            return
        from flownet_ros.flow.colour import flow_to_color_torch

        w.add_scalar("val/epe", val["epe"], step)
        w.add_scalar("val/zero_flow_epe", val["zero_epe"], step)
        if val.get("images") is not None:
            img1, gt, pred = val["images"]
            max_flow = float(torch.linalg.vector_norm(gt, dim=0).max().clamp_min(1.0))
            colours = flow_to_color_torch(torch.stack([gt, pred]), max_flow=max_flow)  # [2,H,W,3] uint8
            w.add_image("val/img1", img1, step, dataformats="CHW")
            w.add_image("val/flow_gt", colours[0], step, dataformats="HWC")
            w.add_image("val/flow_pred", colours[1], step, dataformats="HWC")
        w.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
