"""Checkpoint loading and saving.

Loads, without a conversion step, the public files users already have:

* flownet2-pytorch ``FlowNet2-C_checkpoint.pth.tar`` / ``FlowNet2-S_checkpoint.pth.tar``
  (``{'epoch', 'state_dict', 'best_EPE'}``, biases everywhere, keys possibly prefixed
  ``flownetc.`` / ``module.``);
* FlowNetPytorch ``flownetc_EPE1.766.pth.tar`` / ``flownets_EPE1.951.pth.tar``
  (``{'epoch', 'arch', 'state_dict', 'best_EPE', 'div_flow'}``, no deconv/predict biases);
* this project's own format (``format: 'flownet_ros'``): weights plus a :class:`ModelSpec`.

Everything is read with ``torch.load(..., weights_only=True)``; nothing is half-loaded: any
missing, unexpected or mis-shaped key raises :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from flownet_ros.models.flownet import FlowNetBase, Widths, build_model
from flownet_ros.paths import data_dirs

OWN_FORMAT = "flownet_ros"
OWN_VERSION = 1
#: Input normalisation schemes (flownet2-pytorch: per-sample mean; FlowNetPytorch: a fixed mean).
NORMALIZATIONS = ("sample_mean", "fixed_mean")
FLOWNETPYTORCH_MEAN = (0.411, 0.432, 0.45)  # RGB, FlowNetPytorch training script of flownetc_EPE1.766
KNOWN_PREFIXES = ("module.", "flownetc.", "flownets.", "model.")
TMP_SUFFIX = ".tmp"  # save_checkpoint writes <name>.<random>.tmp, then renames it


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it correctly.

    normalization: ``sample_mean`` = RGB 0..255 minus the per-sample per-channel mean over both
    frames, divided by 255 (flownet2-pytorch); ``fixed_mean`` = x/255 - ``mean`` (FlowNetPytorch).
    color_order: channel order the network expects (``rgb`` or ``bgr``).
    """

    arch: str = "flownetc"
    width: float = 1.0
    batch_norm: bool = False
    bias_layout: str = "flownet2"
    div_flow: float = 20.0
    normalization: str = "sample_mean"
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    color_order: str = "rgb"
    source: str = OWN_FORMAT
    training: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.color_order not in ("rgb", "bgr"):
            raise ValueError(f"color_order must be 'rgb' or 'bgr', got {self.color_order!r}")

    def build(self) -> FlowNetBase:
        return build_model(self.arch, self.width, self.batch_norm, self.bias_layout, self.div_flow)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "ModelSpec":
        known = {k: d[k] for k in ModelSpec.__dataclass_fields__ if k in d}
        if "mean" in known:
            known["mean"] = tuple(float(x) for x in known["mean"])
        return ModelSpec(**known)


def read_checkpoint(path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear :class:`CheckpointError` naming the file and
    what it is when that fails: missing, empty, damaged archive, not a checkpoint, or a pickle whose
    objects only arbitrary code could rebuild (refused: such files are never loaded)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{what} {path}: file not found")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise CheckpointError(f"{what} {path}: the file is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files: classify by condition
        raise CheckpointError(f"{what} {path}: {_unreadable_because(head, exc)}") from None


def _unreadable_because(head: bytes, exc: Exception) -> str:
    """Why torch.load(weights_only=True) failed, from the file's first bytes and the exception type."""
    refused = isinstance(exc, pickle.UnpicklingError)
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip container
        if refused:
            named = re.search(r"GLOBAL ([\w.]+)", str(exc))  # detail only: the refusal is decided by the type
            what = f"the Python object {named.group(1)}" if named else "Python objects"
            return (f"its pickle refers to {what}, which only running code could rebuild, so it is refused "
                    f"(checkpoints are loaded with weights_only=True); save a plain dict of tensors instead")
        return "damaged or truncated PyTorch zip archive (an interrupted copy or download?)"
    if head[:1] == b"\x80" and refused:  # a pickle stream, as old torch.save and plain pickle write
        return ("a pickle that is not a dict of tensors, or whose objects only running code could rebuild; "
                "refused (checkpoints are loaded with weights_only=True)")
    return "not a PyTorch checkpoint (neither a zip archive written by torch.save nor a pickle)"


def _strip_prefix(path: Path, sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Select the FlowNet sub-dict: keys ending in ``conv1.0.weight`` tell the prefix."""
    prefixes = sorted({k[: -len("conv1.0.weight")] for k in sd if k.endswith("conv1.0.weight")})
    if not prefixes:
        raise CheckpointError(f"checkpoint {path}: no FlowNet weights found (no '*conv1.0.weight' key; "
                              f"first keys: {list(sd)[:5]})")
    if len(prefixes) > 1:
        preferred = [p for p in prefixes if p in ("",) + KNOWN_PREFIXES]
        if len(preferred) != 1:
            raise CheckpointError(f"checkpoint {path}: holds several FlowNets (prefixes {prefixes}); "
                                  f"extract one state_dict first")
        prefixes = preferred
    prefix = prefixes[0]
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def infer_spec(path: Path, sd: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> ModelSpec:
    """Architecture, width, BN, bias layout and normalisation of a public state_dict."""
    w1 = sd["conv1.0.weight"]
    if w1.ndim != 4 or w1.shape[1] not in (3, 6):
        raise CheckpointError(f"checkpoint {path}: conv1.0.weight has shape {tuple(w1.shape)}, "
                              f"expected [64, 3 or 6, 7, 7]")
    arch = "flownetc" if "conv_redir.0.weight" in sd else "flownets"
    if (arch == "flownetc") != (w1.shape[1] == 3):
        raise CheckpointError(f"checkpoint {path}: conv1 takes {w1.shape[1]} channels but conv_redir is "
                              f"{'present' if arch == 'flownetc' else 'absent'}")
    bias_layout = "flownet2" if "deconv5.0.bias" in sd else "flownetpytorch"
    from_flownetpytorch = "arch" in meta or bias_layout == "flownetpytorch"
    return ModelSpec(
        arch=arch,
        width=float(w1.shape[0]) / 64.0,
        batch_norm="conv1.1.running_mean" in sd,
        bias_layout=bias_layout,
        div_flow=float(meta.get("div_flow", 20.0)),
        normalization="fixed_mean" if from_flownetpytorch else "sample_mean",
        mean=FLOWNETPYTORCH_MEAN if from_flownetpytorch else (0.0, 0.0, 0.0),
        color_order="rgb",
        source="FlowNetPytorch" if from_flownetpytorch else "flownet2-pytorch",
        training={k: meta[k] for k in ("epoch", "best_EPE", "arch") if k in meta
                  and isinstance(meta[k], (int, float, str))},
    )


def load_state_strict(path: Path, model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Copy ``sd`` into ``model`` or raise naming every missing / unexpected / mis-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shaped = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        parts = []
        for name, items in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("mis-shaped keys", shaped)):
            if items:
                more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
                parts.append(f"{name}: {', '.join(items[:8])}{more}")
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(parts))
    with torch.no_grad():
        for k, v in own.items():
            if k in sd:
                v.copy_(sd[k].to(v.dtype))


def _check_width(path: Path, spec: ModelSpec, sd: Mapping[str, Any]) -> None:
    """Refuse a spec whose width does not match the weights' first layer before building the model (a
    wrong width in the metadata would otherwise allocate a model of up to 16x the parameters first)."""
    try:
        expected = Widths.of(float(spec.width)).c1
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad metadata (width {spec.width!r}: {exc})") from None
    w1 = sd.get("conv1.0.weight")
    if isinstance(w1, torch.Tensor) and w1.ndim >= 1 and w1.shape[0] != expected:
        raise CheckpointError(f"checkpoint {path}: bad metadata: width {spec.width} means {expected} channels in "
                              f"conv1, the weights have {w1.shape[0]}")


def load_checkpoint(path, spec_override: Optional[Mapping[str, Any]] = None) -> Tuple[FlowNetBase, ModelSpec]:
    """Load any supported checkpoint file -> (model in eval mode on CPU, its ModelSpec).

    ``spec_override`` replaces inferred fields (e.g. ``{'color_order': 'bgr'}`` for
    FlowNetPytorch's ``flownets_from_caffe``).
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(obj).__name__}")
    if obj.get("format") == OWN_FORMAT:
        version = obj.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise CheckpointError(f"checkpoint {path}: bad metadata (format version {version!r} is not an integer)")
        if version > OWN_VERSION:
            raise CheckpointError(f"checkpoint {path}: format version {version} is newer than "
                                  f"this flownet_ros ({OWN_VERSION})")
        try:
            spec = ModelSpec.from_dict(obj["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path}: bad metadata ({exc})") from exc
        sd = obj.get("state_dict")
    else:
        sd = obj.get("state_dict", obj)
        if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"checkpoint {path}: no state_dict of tensors found (keys: {list(obj)[:8]})")
        sd = _strip_prefix(path, sd)
        spec = infer_spec(path, sd, obj)
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' missing")
    if spec_override:
        spec = replace(spec, **dict(spec_override))
    _check_width(path, spec, sd)
    try:
        model = spec.build()
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    load_state_strict(path, model, sd)
    model.eval()
    return model, spec


def save_checkpoint(path, model: FlowNetBase, spec: ModelSpec, half: bool = False,
                    extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the own format atomically (temporary file + rename). ``half`` stores fp16 weights."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
          for k, v in model.state_dict().items()}
    obj = {"format": OWN_FORMAT, "version": OWN_VERSION, "spec": spec.to_dict(), "state_dict": sd}
    if extra:
        obj.update(extra)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the rename makes them the checkpoint
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # and the rename itself survives a power cut
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    """The process's file-creation mask (from /proc without changing it; else set and restored)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory, name: str) -> List[Path]:
    """Delete ``<name>.*.tmp`` left in ``directory`` by a writer that was killed mid-save; returns them.
    Call it before the one process that writes ``name`` there starts."""
    stale = sorted(Path(directory).glob(f"{name}.*{TMP_SUFFIX}"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


#: File names of the shipped default models in ``models/`` (the CUDA one is preferred on a GPU).
DEFAULT_MODEL_CPU = "flownetc_cpu.pt"
DEFAULT_MODEL_CUDA = "flownetc_cuda.pt"


def models_dirs():
    """Where shipped models live: $FLOWNET_ROS_MODELS, then models/ of the installed share/ dir or the source tree."""
    dirs = [Path(os.environ["FLOWNET_ROS_MODELS"])] if os.environ.get("FLOWNET_ROS_MODELS") else []
    return dirs + [d / "models" for d in data_dirs()]


def default_checkpoint_path(prefer_cuda: bool = False) -> Path:
    """The shipped model: the full-width CUDA-trained one if present and ``prefer_cuda``, else the CPU one."""
    names = [DEFAULT_MODEL_CUDA, DEFAULT_MODEL_CPU] if prefer_cuda else [DEFAULT_MODEL_CPU, DEFAULT_MODEL_CUDA]
    for name in names:
        for d in models_dirs():
            if (d / name).is_file():
                return d / name
    raise CheckpointError(f"no shipped model found (looked for {names} in {[str(d) for d in models_dirs()]}); "
                          f"pass a checkpoint path")
