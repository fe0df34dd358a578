"""Config sections -> datasets and augmentors of :mod:`flownet_ros.data`.

A dataset section is ``{type: <name>, **kwargs}``; the kwargs go to the data module's class:

===========  ==============================================================
procedural   ``flownet_ros.data.procedural.ProceduralFlowDataset``
chairs       Flying Chairs reader (``root``, ``split``)
sintel       MPI Sintel reader (``root``, ``pass_``/``dstype``)
kitti        KITTI 2012/2015 reader (``root``, ...)
list         generic (img1, img2, flow) list-file reader
python       any class: ``target: "package.module:ClassName"`` (your own dataset)
===========  ==============================================================

Every dataset item is ``{'img1','img2': uint8 [H,W,3] RGB, 'flow': float32 [H,W,2] px, 'valid': bool [H,W]}``.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Mapping, Optional

#: dataset type -> "module:Class" in the data module
DATASET_CLASSES = {
    "procedural": "flownet_ros.data.procedural:ProceduralFlowDataset",
    "chairs": "flownet_ros.data.readers:FlyingChairs",
    "sintel": "flownet_ros.data.readers:MpiSintel",
    "kitti": "flownet_ros.data.readers:Kitti",
    "list": "flownet_ros.data.readers:FlowList",
}
AUGMENTOR_CLASS = "flownet_ros.data.augment:Augmentor"


def import_target(target: str):
    """``package.module:Name`` -> the object."""
    if ":" not in target:
        raise ValueError(f"dataset target {target!r} must look like 'package.module:ClassName'")
    module, name = target.split(":", 1)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {target!r}: {exc}") from exc


def _kwargs(section: Mapping[str, Any]) -> Dict[str, Any]:
    kw = {k: v for k, v in section.items() if k not in ("type", "target")}
    for key in ("size", "crop"):
        if isinstance(kw.get(key), list):
            kw[key] = tuple(kw[key])
    return kw


def build_dataset(section: Mapping[str, Any]):
    """``{type: ..., **kwargs}`` -> torch Dataset of flow samples."""
    kind = section.get("type")
    if kind == "python":
        if "target" not in section:
            raise ValueError("dataset type 'python' needs target: 'package.module:ClassName'")
        cls = import_target(section["target"])
    elif kind in DATASET_CLASSES:
        cls = import_target(DATASET_CLASSES[kind])
    else:
        raise ValueError(f"unknown dataset type {kind!r} (known: {sorted(DATASET_CLASSES) + ['python']})")
    return cls(**_kwargs(section))


def build_augmentor(section: Optional[Mapping[str, Any]]):
    """Augmentor kwargs (``crop`` etc.) -> callable ``aug(sample, rng) -> sample``; empty/None -> None."""
    if not section:
        return None
    return import_target(AUGMENTOR_CLASS)(**_kwargs(section))


def describe_dataset(section: Mapping[str, Any]) -> str:
    """One-line description for checkpoint metadata, e.g. ``procedural(size=[384, 512], seed=0)``."""
    if not section:
        return "none"
    kind = section.get("type", "augment")
    args = ", ".join(f"{k}={v}" for k, v in section.items() if k != "type")
    return f"{kind}({args})"
