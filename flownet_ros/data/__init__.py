"""Datasets of optical flow pairs.

Every dataset is a ``torch.utils.data.Dataset`` whose item is a dict
``{'img1': uint8 [H,W,3] RGB, 'img2': same, 'flow': float32 [H,W,2] pixels (img1 -> img2),
'valid': bool [H,W]}``. :func:`build_dataset` builds one from a config mapping such as
``{'type': 'chairs', 'root': '/data/FlyingChairs_release', 'split': 'val'}``: the one place that does
it, for training configs and for evaluation.
"""

import importlib
from typing import Any, Mapping

from torch.utils.data import Dataset

# Submodules load on first use (PEP 562), so `python -m flownet_ros.data.photos` does not find its own module
# already imported by this package (runpy's RuntimeWarning) and `import flownet_ros.data` stays cheap.
_EXPORTS = {"Augmentor": "augment", "FlowListDataset": "datasets", "FlowPairDataset": "datasets",
            "FlyingChairs": "datasets", "KITTI": "datasets", "Sintel": "datasets", "read_image": "datasets",
            "GeneratedFlowDataset": "generator", "SceneConfig": "generator", "export_chairs": "generator",
            "RealImagePairs": "realimages"}

#: ``type`` names accepted by :func:`build_dataset` and the classes they build (kwargs = the rest).
DATASET_TYPES = {
    "generated": "flownet_ros.data.generator:GeneratedFlowDataset",
    "chairs": "flownet_ros.data.datasets:FlyingChairs",
    "sintel": "flownet_ros.data.datasets:Sintel",
    "kitti": "flownet_ros.data.datasets:KITTI",
    "list": "flownet_ros.data.datasets:FlowListDataset",
    "real": "flownet_ros.data.realimages:RealImagePairs",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def import_target(target: str):
    """``package.module:Name`` -> the object (``type: python`` datasets: your own class)."""
    if ":" not in str(target):
        raise ValueError(f"dataset target {target!r} must look like 'package.module:ClassName'")
    module, name = str(target).split(":", 1)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {target!r}: {exc}") from exc


def build_dataset(spec: Mapping[str, Any]) -> Dataset:
    """``{'type': name, **kwargs}`` -> dataset (``type: python`` with ``target: 'pkg.module:Class'`` for
    your own class). Lists become tuples (YAML has no tuples). Unknown types or keyword arguments raise
    errors that name the dataset type and the accepted values."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    kwargs = {k: tuple(v) if isinstance(v, list) and k in ("size", "crop") else v for k, v in spec.items()
              if k != "target"}
    if kind == "python":
        if "target" not in spec:
            raise ValueError("dataset type 'python' needs target: 'package.module:ClassName'")
        return import_target(spec["target"])(**kwargs)
    if kind not in DATASET_TYPES:
        raise ValueError(f"dataset type must be one of {sorted(DATASET_TYPES) + ['python']}, got {kind!r}")
    cls = import_target(DATASET_TYPES[kind])
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise TypeError(f"dataset type {kind!r} ({cls.__name__}): {err}") from err


__all__ = ["Augmentor", "DATASET_TYPES", "FlowListDataset", "FlowPairDataset", "FlyingChairs", "GeneratedFlowDataset",
           "KITTI", "RealImagePairs", "SceneConfig", "Sintel", "build_dataset", "export_chairs", "import_target",
           "read_image"]
