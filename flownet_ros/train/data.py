"""Deterministic, resumable, rank-sharded training batches on the training device.

Sample ``g`` of the run (g = 0, 1, 2, ... over the whole run, across all ranks) is dataset item
``perm_e[g % N]`` of the epoch ``e = g // N`` permutation (seeded by (seed, e)), augmented with
NumPy generators seeded by (seed, g). Iteration ``i`` uses samples ``i*B .. i*B + B-1`` (B = global
batch); rank r of W takes its contiguous B/W slice. So the data depend only on (seed, iteration),
not on the number of processes, and resuming at iteration i needs nothing but i.

Two sources, one batch format (:class:`BatchSource`): the photo generator renders its pairs directly
on the device (:class:`flownet_ros.data.generator.GeneratedFlowDataset`); datasets of files are read
and geometrically augmented by DataLoader workers. Then, for both, the paper's photometric
augmentation runs batched on the device.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from flownet_ros.data.augment import Augmentor
from flownet_ros.data.generator import GeneratedFlowDataset
from flownet_ros.data.photometric import PaperAugmentConfig, paper_augment

PHOTOMETRIC_KEYS = {f.name for f in fields(PaperAugmentConfig)}


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
        return [(int(self.perm(g // self.n)[g % self.n]), g) for g in range(first, first + self.local)]

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
        return {**sample, "id": int(g)}


def collate(samples: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
    """List of sample dicts -> img1/img2 uint8 [B,3,H,W], flow float32 [B,2,H,W], valid bool [B,H,W]
    (and ``id`` [B], the sample ids, when the samples carry them)."""
    def stack(key):
        return torch.from_numpy(np.ascontiguousarray(np.stack([s[key] for s in samples])))
    out = {"img1": stack("img1").permute(0, 3, 1, 2), "img2": stack("img2").permute(0, 3, 1, 2),
           "flow": stack("flow").float().permute(0, 3, 1, 2), "valid": stack("valid").bool()}
    if all("id" in s for s in samples):
        out["id"] = torch.tensor([s["id"] for s in samples])
    return out


def split_augmentation(section: Optional[Mapping[str, Any]]
                       ) -> Tuple[Optional[Augmentor], Optional[PaperAugmentConfig]]:
    """``data.augment`` -> (geometric Augmentor or None, photometric config or None).

    Photometric keys (contrast, colour, gamma, brightness, noise, rel_colour, rel_brightness) and
    ``photometric: false`` go to the device-side paper augmentation; the rest to :class:`Augmentor`.
    An empty section or null = no augmentation at all.
    """
    if not section:
        return None, None
    section = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
    photo = {k: v for k, v in section.items() if k in PHOTOMETRIC_KEYS}
    geo = {k: v for k, v in section.items() if k not in PHOTOMETRIC_KEYS and k != "photometric"}
    paper = PaperAugmentConfig(**photo) if section.get("photometric", True) else None
    return (Augmentor(**geo) if geo else None), paper


def describe_dataset(section: Mapping[str, Any]) -> str:
    """One-line description of a dataset / augmentation section for checkpoint metadata,
    e.g. ``generated(size=[384, 512], seed=0)``."""
    if not section:
        return "none"
    args = ", ".join(f"{k}={v}" for k, v in section.items() if k != "type")
    if "type" not in section:  # an augmentation section
        return f"augment({args}; paper defaults for the rest)"
    return f"{section['type']}({args})"


class BatchSource:
    """Training batches on ``device`` for iterations [start, stop): img1/img2 float 0..255 [B,3,H,W],
    flow [B,2,H,W] px, valid [B,H,W] bool (module docstring)."""

    def __init__(self, dataset: Dataset, augment: Optional[Mapping[str, Any]], seed: int, global_batch: int,
                 device: torch.device, rank: int = 0, world_size: int = 1, start: int = 0,
                 stop: Optional[int] = None, num_workers: int = 0):
        self.geometric, self.photometric = split_augmentation(augment)
        self.sampler = IterationSampler(len(dataset), global_batch, seed, rank, world_size, start, stop)
        self.dataset, self.seed, self.device = dataset, int(seed), device
        self.generated = isinstance(dataset, GeneratedFlowDataset)
        if self.generated and self.geometric is not None:
            raise ValueError("data.augment: the photo generator renders its own geometry at data.train.size; "
                             "geometric augmentation (crop, translate, rotate, scale, rel_*) is for datasets of files")
        self.loader = None if self.generated else DataLoader(
            AugmentedDataset(dataset, self.geometric, seed), batch_sampler=self.sampler, num_workers=num_workers,
            collate_fn=collate, pin_memory=device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if num_workers else None)

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        batches = iter(self.sampler) if self.generated else iter(self.loader)
        for item in batches:
            if self.generated:
                ids = [g for _, g in item]
                batch = self.dataset.generator(self.device).batch(self.dataset.seed, [i for i, _ in item])
            else:
                ids = item.pop("id").tolist()
                batch = {k: v.to(self.device, non_blocking=True) for k, v in item.items()}
                batch["img1"], batch["img2"] = batch["img1"].float(), batch["img2"].float()
            yield self._photometric(batch, ids)

    def _photometric(self, batch: Dict[str, torch.Tensor], ids: List[int]) -> Dict[str, torch.Tensor]:
        if self.photometric is None:
            return batch
        rngs = [np.random.default_rng([self.seed, int(g), 1]) for g in ids]
        a, b = paper_augment(batch["img1"] / 255.0, batch["img2"] / 255.0, rngs, self.photometric)
        return {**batch, "img1": torch.round(a * 255.0), "img2": torch.round(b * 255.0)}
