"""One way to build any estimator: the node, evaluation, bag reports and benchmarks all describe what
they want with an :class:`EstimatorSpec` and call :func:`build_estimator`. The spec's defaults are the
node's defaults (its parameter table reads them from here), and :func:`add_estimator_arguments` /
:func:`specs_from_args` give every command-line tool the same options with the same defaults."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from flownet_ros.inference.adaptive import NETWORK_THRESHOLD
from flownet_ros.inference.backends import BACKENDS, Backend, get_backend
from flownet_ros.inference.base import Estimator
from flownet_ros.inference.classic import DIS_PRESETS
from flownet_ros.inference.refine import REFINEMENTS
from flownet_ros.inference.runtime import PRECISIONS


@dataclass(frozen=True)
class EstimatorSpec:
    """What to run (the defaults are what the node runs).

    backend: a name of :data:`~flownet_ros.inference.backends.BACKENDS`.
    checkpoint: FlowNet file ('' = the shipped model). device / precision / inference_size ((H, W) multiples
    of 64, None = automatic): network backends only.
    refine: what refines the network's flow (``none``, ``variational``, ``dis``; default ``dis``); refinable
    backends only.
    bidirectional: run the network both ways and average (one batch of two pairs, ~1.5x the network time).
    dis_preset: of the DIS backend and of the DIS refinement.
    network_threshold: adaptive backend: DIS failure score above which the network runs (0 = every pair).
    """

    backend: str = "adaptive"
    checkpoint: str = ""
    device: str = "auto"
    precision: str = "fp32"
    inference_size: Optional[Tuple[int, int]] = None
    refine: Optional[str] = None  # None = the backend's default: 'dis' where refinable, else 'none'
    dis_preset: str = "medium"
    bidirectional: bool = False
    network_threshold: float = NETWORK_THRESHOLD

    def __post_init__(self):
        b = get_backend(self.backend)
        if self.refine is None:
            object.__setattr__(self, "refine", "dis" if b.refinable else "none")
        for name, value, allowed in (("refine", self.refine, REFINEMENTS), ("dis_preset", self.dis_preset,
                                     tuple(DIS_PRESETS)), ("precision", self.precision, tuple(PRECISIONS))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.refine != "none" and not b.refinable:
            raise ValueError(f"refine={self.refine} refines a network's flow; backend {self.backend} has none")
        if self.bidirectional and not b.bidirectional:
            raise ValueError(f"bidirectional runs a network both ways; backend {self.backend} cannot")
        if self.inference_size is not None:
            object.__setattr__(self, "inference_size", tuple(int(s) for s in self.inference_size))

    @classmethod
    def applicable(cls, **settings) -> "EstimatorSpec":
        """A spec from settings of which only those the backend uses are kept (the node's parameters hold a
        refinement and a direction for every backend): refine -> 'none' and bidirectional -> False where the
        backend has no such thing."""
        b = get_backend(settings.get("backend", cls.backend))
        if not b.refinable:
            settings["refine"] = "none"
        if not b.bidirectional:
            settings["bidirectional"] = False
        return cls(**settings)

    @property
    def backend_info(self) -> Backend:
        return BACKENDS[self.backend]

    @property
    def name(self) -> str:
        """Short label for tables: ``flownet+dis-medium``, ``flownet-bi``, ``dis-fast``, ``zero``, ...; a network
        run at a fixed size says it (``flownet@384x512+dis-medium``)."""
        b = self.backend_info
        if b.presets:
            return f"{b.name}-{self.dis_preset}"
        if not b.network:
            return b.name
        model = Path(self.checkpoint).name if self.checkpoint else "flownet"
        base = b.label + model + ("-bi" if self.bidirectional else "")
        if b.gated and self.network_threshold != NETWORK_THRESHOLD:
            base += f">{self.network_threshold:g}"
        if self.inference_size:
            base += "@{}x{}".format(*self.inference_size)
        if self.refine == "dis":
            return f"{base}+dis-{self.dis_preset}"
        return base if self.refine == "none" else f"{base}+{self.refine}"


def build_estimator(spec: EstimatorSpec) -> Estimator:
    """Build what ``spec`` describes (CheckpointError for a bad checkpoint, ValueError for bad settings)."""
    return spec.backend_info.build(spec)


def baselines() -> Dict[str, EstimatorSpec]:
    """Label -> spec of every method without a network (``zero``, ``farneback``, ``dis-<preset>``, ...)."""
    out = {}
    for b in BACKENDS.values():
        if not b.network:
            for preset in b.presets or (EstimatorSpec.dis_preset,):
                spec = EstimatorSpec.applicable(backend=b.name, dis_preset=preset)
                out[spec.name] = spec
    return out


def add_baseline_argument(p: argparse.ArgumentParser) -> None:
    """``--baseline NAME ...``: methods without a network, run on the same pairs (labels of :func:`baselines`)."""
    p.add_argument("--baseline", nargs="+", default=[], choices=tuple(baselines()),
                   help="also run these methods without a network on the same pairs")


# ---- command-line options of every tool that runs an estimator ------------------------------------

def _size(text: str) -> Optional[Tuple[int, int]]:
    """'HxW' -> (H, W); 'auto' -> None."""
    if text == "auto":
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 384x512) or auto, got {text!r}") from None
    return h, w


def add_estimator_arguments(p: argparse.ArgumentParser, many: bool = False) -> None:
    """The estimator options, defaults from :class:`EstimatorSpec` (= the node's). ``many``: every option
    takes several values (an evaluation runs every combination, see :func:`specs_from_args`)."""
    d = EstimatorSpec()
    g = p.add_argument_group("estimator (defaults: what the node runs)")
    multi = {"nargs": "+"} if many else {}
    if many:
        networks = tuple(n for n, b in BACKENDS.items() if b.network)
        g.add_argument("--backend", nargs="+", default=[d.backend], choices=networks,
                       help=f"network backends to run (methods without a network: --baseline; default {d.backend})")
        g.add_argument("--checkpoint", action="append", default=None, metavar="PATH",
                       help="network checkpoint, repeatable ('' = the shipped model; default: '' unless only "
                            "--baseline methods are given)")
        g.add_argument("--directions", nargs="+", default=["forward"], choices=("forward", "both"),
                       help="run the network one way and/or both ways (bidirectional, label -bi)")
    else:
        g.add_argument("--backend", default=d.backend, choices=tuple(BACKENDS), help="flow method")
        g.add_argument("--checkpoint", default=d.checkpoint, metavar="PATH", help="'' = the shipped model")
        g.add_argument("--bidirectional", action="store_true", help="run the network both ways, averaged")
    g.add_argument("--refine", default=[d.refine] if many else d.refine, choices=REFINEMENTS, **multi,
                   help=f"refinement of the network's flow (default {d.refine})")
    g.add_argument("--dis-preset", default=[d.dis_preset] if many else d.dis_preset, choices=tuple(DIS_PRESETS),
                   **multi, help=f"preset of DIS (backend and refinement; default {d.dis_preset})")
    g.add_argument("--inference-size", type=_size, default=[d.inference_size] if many else d.inference_size,
                   metavar="HxW|auto", **multi, help="network input size, multiples of 64 (default auto)")
    g.add_argument("--network-threshold", type=float, default=[d.network_threshold] if many else d.network_threshold,
                   **multi, help=f"adaptive backend: DIS failure score above which the network runs (default "
                   f"{d.network_threshold:g}; 0 = every pair)")
    g.add_argument("--device", default=d.device, help="auto | cpu | cuda[:N]")
    g.add_argument("--precision", default=d.precision, choices=tuple(PRECISIONS), help="on CUDA")


def specs_from_args(args: argparse.Namespace) -> List[EstimatorSpec]:
    """The spec(s) the options of :func:`add_estimator_arguments` describe: one, or (``many``) every backend x
    checkpoint x direction x refinement x preset x size x threshold (presets multiply only the DIS refinement,
    thresholds only backends that have one)."""
    if not isinstance(args.refine, list):
        return [EstimatorSpec.applicable(backend=args.backend, checkpoint=args.checkpoint, device=args.device,
                                         precision=args.precision, inference_size=args.inference_size,
                                         refine=args.refine, dis_preset=args.dis_preset,
                                         bidirectional=args.bidirectional, network_threshold=args.network_threshold)]
    specs = []
    for backend, ckpt, direction, refine, size in itertools.product(args.backend, args.checkpoint or [],
                                                                    args.directions, args.refine, args.inference_size):
        thresholds = args.network_threshold if BACKENDS[backend].gated else args.network_threshold[:1]
        for preset, threshold in itertools.product(args.dis_preset if refine == "dis" else args.dis_preset[:1],
                                                   thresholds):
            specs.append(EstimatorSpec(backend=backend, checkpoint=ckpt, device=args.device, precision=args.precision,
                                       inference_size=size, refine=refine, dis_preset=preset,
                                       bidirectional=direction == "both", network_threshold=threshold))
    return specs
