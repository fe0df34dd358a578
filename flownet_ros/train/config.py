"""Training configuration: YAML file -> nested dict with defaults, ``--set a.b=value`` overrides, checks.

Every key the trainer reads has a default in :data:`DEFAULTS`; an unknown key in a file is an error
(a typo must not silently train with the default). Dataset and augmentation sections are passed to
the data module as keyword arguments and are checked there.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping

import yaml

from flownet_ros.inference.runtime import PRECISIONS

#: Sections whose contents are free-form keyword arguments for the data module.
FREE_FORM = {("data", "train"), ("data", "val"), ("data", "augment")}

DEFAULTS: Dict[str, Any] = {
    "model": {
        "arch": "flownetc",          # flownetc | flownets
        "width": 1.0,                # channel multiplier (1.0 = paper)
        "batch_norm": False,
        "bias_layout": "flownet2",
        "div_flow": 20.0,
        "normalization": "sample_mean",  # how images are normalised (see ModelSpec)
        "init": "",                  # optional checkpoint to start from (any supported format)
        "init_scheme": "kaiming",    # from scratch: kaiming (FlowNetPytorch: He-normal, zero bias) | pytorch
    },
    "data": {
        "train": {"type": "generated", "size": [320, 448], "length": 1000000, "seed": 0},
        "val": {"type": "generated", "size": [320, 448], "length": 32, "seed": 100000},
        # paper augmentation: photometric keys (flownet_ros.data.photometric.PaperAugmentConfig) run on the
        # device for every dataset; geometric ones (flownet_ros.data.augment.Augmentor, e.g. crop) are for
        # datasets of files only; {} or null = none
        "augment": {"photometric": True},
        "batch_size": 8,             # global batch (all processes together)
        "num_workers": 0,            # DataLoader worker processes per rank
    },
    "loss": {
        "weights": [0.005, 0.01, 0.02, 0.08, 0.32],  # flow2, flow3, flow4, flow5, flow6
    },
    "optim": {
        "lr": 1.0e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 4.0e-4,      # L2 on conv/deconv weights (not biases), as FlowNetPytorch
        "grad_clip": 100.0,          # max global grad norm; 0 = off
    },
    "schedule": {
        "warmup_start_lr": 1.0e-6,   # FlowNetC warm-up 1e-6 -> lr ...
        "warmup_iters": 10000,       # ... over the first N iterations (linear); 0 = none
        "halve_after": 300000,       # then constant until M, ...
        "halve_every": 100000,       # ... halving at M, M+K, M+2K, ...
    },
    "train": {
        "iterations": 600000,
        "seed": 0,
        "amp": "fp32",               # fp32 | bf16 | fp16 autocast (CUDA only; fp32 on CPU with a warning)
        "channels_last": False,      # NHWC activations (faster convolutions on recent GPUs)
        "threads": 0,                # CPU threads of torch and OpenCV per process; 0 = leave the defaults
        "out_dir": "runs/train",
        "checkpoint_every": 1000,    # iterations between atomic checkpoint.pt writes
        "snapshot_every": 0,         # also keep checkpoint_<iter>.pt every N iterations; 0 = off
        "log_every": 20,             # scalars to TensorBoard / log line
        "val_every": 1000,           # validation EPE + flow images; 0 = off
        "device": "auto",            # auto | cpu | cuda
    },
}


class ConfigError(ValueError):
    """A training config file or override is invalid."""


def _merge(base: Dict[str, Any], new: Mapping[str, Any], where: tuple, source: str,
           override: bool = False) -> None:
    """Merge ``new`` into ``base``. A file replaces a free-form section (data.train / val / augment)
    as a whole; an override (``--set data.train.size=[256, 320]``) changes single keys in it,
    ``--set data.augment=null`` empties it."""
    for key, value in new.items():
        path = where + (key,)
        if path in FREE_FORM:
            if value is None or value == {}:
                base[key] = {}
            elif not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {'.'.join(path)} must be a mapping, got {value!r}")
            elif override:
                base[key] = {**(base.get(key) or {}), **copy.deepcopy(dict(value))}
            else:
                base[key] = copy.deepcopy(dict(value))
            continue
        if key not in base:
            raise ConfigError(f"{source}: unknown key {'.'.join(path)!r} (known: {sorted(base)})")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {'.'.join(path)} must be a mapping, got {value!r}")
            _merge(base[key], value, path, source, override)
        else:
            base[key] = value


def parse_override(text: str) -> Dict[str, Any]:
    """``a.b.c=value`` (value parsed as YAML) -> nested dict."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    out: Dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(path=None, overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """Defaults <- YAML file <- overrides, then :func:`check_config`."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config {path}: file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path}: not valid YAML ({exc})") from exc
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"config {path}: top level must be a mapping")
        _merge(cfg, data or {}, (), str(path))
    for text in overrides:
        _merge(cfg, parse_override(text), (), f"override {text!r}", override=True)
    check_config(cfg)
    return cfg


def _coerce_scalars(cfg: Dict[str, Any], defaults: Mapping[str, Any] = DEFAULTS, where: tuple = ()) -> None:
    """Give every number and flag the type of its default (``lr: 1e-4``, which YAML reads as a string,
    becomes 1e-4); a value that is not one raises ConfigError naming the key."""
    for key, default in defaults.items():
        path = where + (key,)
        if path in FREE_FORM:
            continue
        if isinstance(default, dict):
            _coerce_scalars(cfg[key], default, path)
            continue
        value, kind = cfg[key], type(default)
        if kind not in (bool, int, float) or (type(value) is kind):
            continue
        ok = kind is not bool and not isinstance(value, bool) and isinstance(value, (int, float, str))
        try:
            converted = kind(value) if ok else None
            ok = ok and (kind is float or float(value) == converted)  # 2.5 is no iteration count
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            what = {bool: "true or false", int: "an integer", float: "a number"}[kind]
            raise ConfigError(f"{'.'.join(path)} must be {what}, got {value!r}")
        cfg[key] = converted


def check_config(cfg: Dict[str, Any]) -> None:
    """Raise ConfigError on values the trainer cannot use (naming the key)."""
    _coerce_scalars(cfg)

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    m, d, o, s, t = cfg["model"], cfg["data"], cfg["optim"], cfg["schedule"], cfg["train"]
    need(m["arch"] in ("flownetc", "flownets"), f"model.arch must be flownetc or flownets, got {m['arch']!r}")
    need(0 < float(m["width"]) <= 4, f"model.width must be in (0, 4], got {m['width']}")
    need(m["init_scheme"] in ("kaiming", "pytorch"), f"model.init_scheme must be kaiming or pytorch, "
                                                     f"got {m['init_scheme']!r}")
    need(int(d["batch_size"]) >= 1, f"data.batch_size must be >= 1, got {d['batch_size']}")
    need(int(d["num_workers"]) >= 0, "data.num_workers must be >= 0")
    need(isinstance(d["train"], Mapping) and "type" in d["train"], "data.train needs a 'type'")
    need(len(cfg["loss"]["weights"]) == 5, "loss.weights needs 5 values (flow2..flow6)")
    need(float(o["lr"]) > 0, "optim.lr must be > 0")
    need(len(o["betas"]) == 2, "optim.betas needs 2 values")
    need(float(o["grad_clip"]) >= 0, "optim.grad_clip must be >= 0")
    need(int(s["warmup_iters"]) >= 0 and int(s["halve_every"]) >= 1 and int(s["halve_after"]) >= 0,
         "schedule: warmup_iters >= 0, halve_after >= 0, halve_every >= 1")
    need(int(t["iterations"]) >= 1, "train.iterations must be >= 1")
    need(t["amp"] in PRECISIONS, f"train.amp must be one of {', '.join(PRECISIONS)}, got {t['amp']!r}")
    for key in ("checkpoint_every", "snapshot_every", "log_every", "val_every", "threads"):
        need(int(t[key]) >= 0, f"train.{key} must be >= 0")
    need(t["device"] in ("auto", "cpu", "cuda"), f"train.device must be auto, cpu or cuda, got {t['device']!r}")


def dump_config(cfg: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(cfg), sort_keys=False)
