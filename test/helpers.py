"""Helpers shared by the test modules (no ROS): the repository root, test images and tensors, a camera model
without photometric effects, a tiny training configuration. Test modules import this module, never each other."""

from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from flownet_ros.data.photometric import CameraConfig

REPO = Path(__file__).resolve().parents[1]

NO_CAMERA = CameraConfig(gain_std=0.0, offset_std=0.0, gamma=(1.0, 1.0), blur_prob=0.0, noise=(0.0, 0.0),
                         jpeg_prob=0.0)


def textured(seed=0, h=64, w=96):
    """HxWx3 uint8 RGB noise blurred into texture that flow methods can follow."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)


def rand_pair(shape, dtype=torch.float64, seed=0, requires_grad=False, device="cpu"):
    """Two random feature maps of ``shape`` (drawn in float64 on the CPU, then cast and moved)."""
    g = torch.Generator().manual_seed(seed)
    f1, f2 = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2))
    return tuple(f.to(device, dtype).requires_grad_(requires_grad) for f in (f1, f2))


def tiny_config(tmp_path, name="run", **train):
    """64x64 generated pairs (scikit-image's photos), FlowNetC width 0.125: a few iterations take seconds."""
    cfg = {
        "model": {"arch": "flownetc", "width": 0.125},
        "data": {"train": {"type": "generated", "size": [64, 64], "length": 4, "seed": 0, "photos": "skimage",
                           "motion_px": [8.0, 60.0]},  # 1-7.5 px at 64x64
                 "val": {"type": "generated", "size": [64, 64], "length": 2, "seed": 99, "photos": "skimage"},
                 "augment": None, "batch_size": 4, "num_workers": 0},
        "optim": {"lr": 3.0e-3},
        "schedule": {"warmup_start_lr": 1.0e-4, "warmup_iters": 2},
        "train": {"iterations": 20, "seed": 0, "threads": 1, "out_dir": str(tmp_path / name),
                  "checkpoint_every": 2, "log_every": 5, "val_every": 10, "device": "cpu"},
    }
    cfg["train"].update(train)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
