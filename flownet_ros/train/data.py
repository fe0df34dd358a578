"""Deterministic, resumable, rank-sharded data pipeline for training.

Sample ``g`` of the run (g = 0, 1, 2, ... over the whole run, across all ranks) is dataset item
``perm_e[g % N]`` of the epoch ``e = g // N`` permutation (seeded by (seed, e)), augmented with a
NumPy generator seeded by (seed, g). Iteration ``i`` uses samples ``i*B .. i*B + B-1`` (B = global
batch); rank r of W takes its contiguous B/W slice. So the data depend only on (seed, iteration),
not on the number of processes, and resuming at iteration i needs nothing but i.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class IterationSampler(Sampler):
    """Batch sampler yielding, per iteration, this rank's list of (dataset index, sample id g)."""

    def __init__(self, dataset_len: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_iteration: int = 0, iterations: Optional[int] = None):
        if dataset_len < 1:
            raise ValueError("training dataset is empty")
        if global_batch % world_size:
            raise ValueError(f"data.batch_size {global_batch} is not divisible by the {world_size} processes")
        self.n, self.batch, self.seed = int(dataset_len), int(global_batch), int(seed)
        self.rank, self.world = int(rank), int(world_size)
        self.local = self.batch // self.world
        self.start, self.stop = int(start_iteration), iterations
        self._perm_epoch, self._perm = -1, None

    def perm(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch_for(self, iteration: int) -> List[Tuple[int, int]]:
        first = iteration * self.batch + self.rank * self.local
        out = []
        for g in range(first, first + self.local):
            out.append((int(self.perm(g // self.n)[g % self.n]), g))
        return out

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        it = self.start
        while self.stop is None or it < self.stop:
            yield self.batch_for(it)
            it += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("unbounded IterationSampler has no length")
        return max(0, self.stop - self.start)


class AugmentedDataset(Dataset):
    """Wraps a flow dataset; item (index, g) = augmentor(dataset[index], rng seeded by (seed, g))."""

    def __init__(self, dataset: Dataset, augmentor=None, seed: int = 0):
        self.dataset, self.augmentor, self.seed = dataset, augmentor, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, g = key if isinstance(key, tuple) else (key, key)
        sample = self.dataset[index]
        if self.augmentor is not None:
            sample = self.augmentor(sample, np.random.default_rng([self.seed, int(g)]))
        return sample


def collate(samples: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
    """List of sample dicts -> img1/img2 uint8 [B,3,H,W], flow float32 [B,2,H,W], valid bool [B,H,W]."""
    def stack(key):
        return torch.from_numpy(np.ascontiguousarray(np.stack([s[key] for s in samples])))
    return {"img1": stack("img1").permute(0, 3, 1, 2), "img2": stack("img2").permute(0, 3, 1, 2),
            "flow": stack("flow").float().permute(0, 3, 1, 2), "valid": stack("valid").bool()}
