"""Learning-rate schedule of FlowNet (Dosovitskiy et al. 2015; the FlowNet2 paper's S_long shape).

FlowNetC: linear warm-up from ``warmup_start_lr`` to ``lr`` over the first ``warmup_iters``
iterations (it diverges at 1e-4 from scratch), then constant, halved at ``halve_after`` and every
``halve_every`` iterations after that (paper: 1e-4, halved every 100k after 300k).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperSchedule:
    """Learning rate at an iteration: linear warm-up, constant, then halved at regular intervals."""

    lr: float = 1e-4
    warmup_start_lr: float = 1e-6
    warmup_iters: int = 10000
    halve_after: int = 300000
    halve_every: int = 100000

    def lr_at(self, iteration: int) -> float:
        """Learning rate used for the update of (0-based) ``iteration``."""
        if iteration < self.warmup_iters:
            t = iteration / self.warmup_iters
            return self.warmup_start_lr + t * (self.lr - self.warmup_start_lr)
        if iteration < self.halve_after:
            return self.lr
        halvings = 1 + (iteration - self.halve_after) // self.halve_every
        return self.lr * 0.5 ** halvings

    def factor(self, iteration: int) -> float:
        """lr_at / lr: the multiplier for ``torch.optim.lr_scheduler.LambdaLR``."""
        return self.lr_at(iteration) / self.lr
