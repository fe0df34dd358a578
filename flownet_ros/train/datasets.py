"""Config sections -> datasets and augmentors of :mod:`flownet_ros.data`.

A dataset section is ``{type: <name>, **kwargs}`` as :func:`flownet_ros.data.build_dataset` takes it
(``procedural``, ``chairs``, ``sintel``, ``kitti``, ``list``), plus ``type: python`` with
``target: "package.module:ClassName"`` for your own dataset class (remaining keys = its kwargs).

Every dataset item is ``{'img1','img2': uint8 [H,W,3] RGB, 'flow': float32 [H,W,2] px, 'valid': bool [H,W]}``.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Mapping, Optional


def import_target(target: str):
    """``package.module:Name`` -> the object."""
    if ":" not in str(target):
        raise ValueError(f"dataset target {target!r} must look like 'package.module:ClassName'")
    module, name = str(target).split(":", 1)
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
    if section.get("type") == "python":
        if "target" not in section:
            raise ValueError("dataset type 'python' needs target: 'package.module:ClassName'")
        return import_target(section["target"])(**_kwargs(section))
    from flownet_ros.data import build_dataset as build_data_module_dataset

    return build_data_module_dataset({"type": section.get("type"), **_kwargs(section)})


def build_augmentor(section: Optional[Mapping[str, Any]]):
    """Augmentor kwargs (``crop`` etc.) -> callable ``aug(sample, rng) -> sample``; empty/None -> None."""
    if not section:
        return None
    from flownet_ros.data import Augmentor

    return Augmentor(**_kwargs(section))


def describe_dataset(section: Mapping[str, Any]) -> str:
    """One-line description of a dataset / augmentation section for checkpoint metadata,
    e.g. ``procedural(size=[384, 512], seed=0)``."""
    if not section:
        return "none"
    args = ", ".join(f"{k}={v}" for k, v in section.items() if k != "type")
    if "type" not in section:  # an augmentation section
        return f"Augmentor({args}; paper defaults for the rest)"
    return f"{section['type']}({args})"
