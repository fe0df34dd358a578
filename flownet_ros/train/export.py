"""Export a training checkpoint as a shippable model (weights + ModelSpec + training metadata only).

``python -m flownet_ros.train.export runs/train_cpu/checkpoint.pt models/flownetc_cpu.pt --half``
drops the optimizer / RNG state and (with ``--half``) stores fp16 weights; the result loads with
:func:`flownet_ros.models.load_checkpoint`. Several inputs of one architecture (``export A.pt B.pt OUT``)
are averaged weight by weight (a uniform "model soup", Wortsman et al. 2022): models fine-tuned from
one another lie in one basin, and their average can keep what each is good at.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import torch

from flownet_ros.cli import tool
from flownet_ros.models.checkpoint import ModelSpec, load_state_strict, save_checkpoint

PathLike = Union[str, Path]


def read_own(src: Path) -> Tuple[ModelSpec, Dict[str, torch.Tensor]]:
    """(spec, state_dict) of a flownet_ros file (trainer checkpoint or exported model)."""
    obj = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != "flownet_ros":
        raise ValueError(f"{src}: not a flownet_ros checkpoint")
    return ModelSpec.from_dict(obj["spec"]), obj["state_dict"]


def _architecture(spec: ModelSpec) -> dict:
    return {k: v for k, v in spec.to_dict().items() if k not in ("training", "source")}


def average_states(states: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Uniform average of floating-point tensors (float32); other tensors are taken from the last state."""
    return {k: torch.stack([s[k].float() for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[-1].items()}


def export(src: Union[PathLike, Sequence[PathLike]], dst, half: bool = True, notes=None) -> Path:
    """Write ``dst`` from one flownet_ros checkpoint, or from the weight average of several of one
    architecture (spec and training metadata of the last, the sources listed); ``notes`` (dict) is merged
    into spec.training."""
    sources = [Path(src)] if isinstance(src, (str, Path)) else [Path(s) for s in src]
    specs, states = zip(*(read_own(s) for s in sources))
    spec = specs[-1]
    for path, other in zip(sources, specs):
        if _architecture(other) != _architecture(spec):
            raise ValueError(f"{path}: model {_architecture(other)} differs from {sources[-1]}: "
                             f"{_architecture(spec)}; only models of one architecture can be averaged")
    training = dict(spec.training)
    training.update(notes or {})
    if len(sources) > 1:
        training["averaged_from"] = [{"file": str(p), "training": s.training} for p, s in zip(sources, specs)]
    training["exported_from"] = " + ".join(map(str, sources))
    training["stored_dtype"] = "float16" if half else "float32"
    spec = replace(spec, training=training)
    model = spec.build()
    load_state_strict(sources[-1], model, average_states(states) if len(states) > 1 else states[0])
    return save_checkpoint(dst, model, spec, half=half)


@tool("python -m flownet_ros.train.export")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.train.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="+", help="trainer checkpoint (e.g. runs/train_cpu/checkpoint.pt); "
                                                  "several: their weights are averaged")
    p.add_argument("output", help="model file to write (e.g. models/flownetc_cpu.pt)")
    p.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")
    p.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                   help="extra training metadata (e.g. --note hardware='...')")
    args = p.parse_args(argv)
    notes = {}
    for item in args.note:
        if "=" not in item:
            p.error(f"--note {item!r} must be KEY=VALUE")
        k, v = item.split("=", 1)
        notes[k] = v
    out = export(args.checkpoint, args.output, half=args.half, notes=notes)
    spec = torch.load(out, map_location="cpu", weights_only=True)["spec"]
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    print(json.dumps(spec["training"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
