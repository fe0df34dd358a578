"""Export a training checkpoint as a shippable model (weights + ModelSpec + training metadata only).

``python -m flownet_ros.train.export runs/train_cpu/checkpoint.pt models/flownetc_cpu.pt --half``
drops the optimizer / RNG state and (with ``--half``) stores fp16 weights; the result loads with
:func:`flownet_ros.models.load_checkpoint`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from flownet_ros.models.checkpoint import ModelSpec, load_state_strict, save_checkpoint


def export(src, dst, half: bool = True, notes=None) -> Path:
    """Write ``dst`` from trainer checkpoint ``src``; ``notes`` (dict) is merged into spec.training."""
    src = Path(src)
    obj = torch.load(src, map_location="cpu", weights_only=True)
    if obj.get("format") != "flownet_ros":
        raise ValueError(f"{src}: not a flownet_ros checkpoint")
    spec = ModelSpec.from_dict(obj["spec"])
    training = dict(spec.training)
    training.update(notes or {})
    training["exported_from"] = str(src)
    training["stored_dtype"] = "float16" if half else "float32"
    spec = replace(spec, training=training)
    model = spec.build()
    load_state_strict(src, model, obj["state_dict"])
    return save_checkpoint(dst, model, spec, half=half)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.train.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="trainer checkpoint (e.g. runs/train_cpu/checkpoint.pt)")
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
