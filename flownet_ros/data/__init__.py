"""Datasets of optical flow pairs.

Every dataset is a ``torch.utils.data.Dataset`` whose item is a dict
``{'img1': uint8 [H,W,3] RGB, 'img2': same, 'flow': float32 [H,W,2] pixels (img1 -> img2),
'valid': bool [H,W]}``. :func:`build_dataset` builds one from a config mapping such as
``{'type': 'chairs', 'root': '/data/FlyingChairs_release', 'split': 'val'}``.
"""

from typing import Any, Mapping

from torch.utils.data import Dataset

from flownet_ros.data.augment import Augmentor
from flownet_ros.data.datasets import KITTI, FlowListDataset, FlowPairDataset, FlyingChairs, Sintel, read_image
from flownet_ros.data.procedural import ProceduralConfig, ProceduralFlowDataset, export_chairs, render_pair

#: ``type`` names accepted by :func:`build_dataset` and the classes they build (kwargs = the rest).
DATASET_TYPES = {
    "procedural": ProceduralFlowDataset,
    "chairs": FlyingChairs,
    "sintel": Sintel,
    "kitti": KITTI,
    "list": FlowListDataset,
}


def build_dataset(spec: Mapping[str, Any]) -> Dataset:
    """``{'type': name, **kwargs}`` -> dataset; unknown types or keyword arguments raise errors
    that name the dataset type and the accepted values."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in DATASET_TYPES:
        raise ValueError(f"dataset type must be one of {sorted(DATASET_TYPES)}, got {kind!r}")
    cls = DATASET_TYPES[kind]
    try:
        return cls(**spec)
    except TypeError as err:
        raise TypeError(f"dataset type {kind!r} ({cls.__name__}): {err}") from err


__all__ = ["Augmentor", "DATASET_TYPES", "FlowListDataset", "FlowPairDataset", "FlyingChairs", "KITTI",
           "ProceduralConfig", "ProceduralFlowDataset", "Sintel", "build_dataset", "export_chairs",
           "read_image", "render_pair"]
