"""Accuracy and speed of flow estimators on a dataset with ground truth.

    python -m flownet_ros.evaluate --checkpoint models/flownetc_cpu.pt --dataset procedural \\
        --count 200 --seed 20261124 --size 384 512 --baseline zero --baseline dis --json out.json

Methods: every ``--checkpoint`` (any format :func:`flownet_ros.models.load_checkpoint` reads; ``''`` =
the shipped default model) and the baselines ``zero`` (zero flow) and ``dis`` (OpenCV DIS, preset
``--dis-preset``). Metrics per method:

* ``epe_all``: end-point error (px) over all pixels, averaged over pairs;
* ``epe_valid``: EPE over the valid pixels of each pair (non-occluded / annotated), averaged over pairs;
* ``fl_all``: KITTI outlier rate (EPE > 3 px and > 5 % of |gt|) over all valid pixels of the set (%);
* ``ms_per_pair``: wall time of one ``estimate`` call (pre/post-processing included), mean over the
  pairs after the first (warm-up).

Datasets (``--dataset``): ``procedural`` (``--count``, ``--seed``, ``--size``); ``chairs --root DIR``
(validation split unless ``--arg split=train|all``); ``sintel --root DIR`` (``--arg dstype=final``);
``kitti --root DIR`` (``--arg version=2012``, ``--arg occ=false``); ``list --root FILE`` (lines
``img1 img2 flow``). ``--arg key=value`` goes to the data module's reader. Prints a Markdown table;
``--json`` writes all numbers plus the exact setup.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import yaml

from flownet_ros.flow.metrics import epe_map, outlier_counts


class ZeroFlow:
    """Baseline: zero motion everywhere."""

    description = "zero flow"

    def estimate(self, img1: np.ndarray, img2: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        return np.zeros(img1.shape[:2] + (2,), np.float32)


@dataclass
class Accumulator:
    """Running sums for one method."""

    name: str
    description: str
    epe_all: List[float] = field(default_factory=list)
    epe_valid: List[float] = field(default_factory=list)
    outliers: int = 0
    valid_px: int = 0
    times: List[float] = field(default_factory=list)

    def add(self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, seconds: float) -> None:
        err = epe_map(pred, gt)
        self.epe_all.append(float(err.mean(dtype=np.float64)))
        if valid.any():
            self.epe_valid.append(float(err[valid].mean(dtype=np.float64)))
        outliers, valid_px = outlier_counts(pred, gt, valid)
        self.outliers += outliers
        self.valid_px += valid_px
        self.times.append(seconds)

    def result(self) -> Dict[str, Any]:
        timed = self.times[1:] if len(self.times) > 1 else self.times
        return {
            "method": self.name,
            "description": self.description,
            "pairs": len(self.epe_all),
            "epe_all": float(np.mean(self.epe_all)) if self.epe_all else float("nan"),
            "epe_valid": float(np.mean(self.epe_valid)) if self.epe_valid else float("nan"),
            "fl_all_percent": 100.0 * self.outliers / self.valid_px if self.valid_px else float("nan"),
            "ms_per_pair": 1000.0 * float(np.mean(timed)) if timed else float("nan"),
        }


def dataset_section(args: argparse.Namespace) -> Dict[str, Any]:
    """CLI options -> a dataset config section for :func:`flownet_ros.train.datasets.build_dataset`."""
    section: Dict[str, Any] = {"type": args.dataset}
    if args.dataset == "procedural":
        section.update(size=list(args.size), length=args.count, seed=args.seed)
    elif args.dataset == "list":
        section["list_file"] = args.root
    else:
        section["root"] = args.root
        if args.dataset == "chairs":
            section["split"] = "val"  # the official 640 validation pairs unless --arg split=...
    for item in args.arg:
        if "=" not in item:
            raise SystemExit(f"error: --arg {item!r} must be key=value")
        k, v = item.split("=", 1)
        section[k] = yaml.safe_load(v)
    return section


def build_methods(args: argparse.Namespace) -> List[tuple]:
    """[(name, estimator)] for every --checkpoint and --baseline."""
    from flownet_ros.inference import FlowEstimator

    methods = []
    for ckpt in args.checkpoint:
        est = FlowEstimator.from_checkpoint(ckpt or None, device=args.device, precision=args.precision,
                                            inference_size=args.inference_size)
        methods.append((Path(est.checkpoint).name if est.checkpoint else "flownet", est))
    for base in args.baseline:
        if base == "zero":
            methods.append(("zero", ZeroFlow()))
        elif base == "dis":
            from flownet_ros.inference.dis import DISEstimator
            methods.append((f"dis-{args.dis_preset}", DISEstimator(args.dis_preset)))
    if not methods:
        raise SystemExit("error: nothing to evaluate: give --checkpoint and/or --baseline")
    return methods


def evaluate(methods: Sequence[tuple], dataset, max_pairs: Optional[int] = None, progress: bool = True
             ) -> List[Dict[str, Any]]:
    """Run every method on every pair of ``dataset``; returns one result dict per method."""
    accs = [Accumulator(name, getattr(m, "description", name)) for name, m in methods]
    n = len(dataset) if max_pairs is None else min(len(dataset), max_pairs)
    indices = range(n)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, unit="pair", desc="evaluate", dynamic_ncols=True)
    for i in indices:
        s = dataset[i]
        gt, valid = s["flow"], s["valid"].astype(bool)
        for acc, (name, m) in zip(accs, methods):
            dev = getattr(m, "device", None)
            t0 = time.perf_counter()
            pred = m.estimate(s["img1"], s["img2"], "rgb")
            if isinstance(dev, torch.device) and dev.type == "cuda":
                torch.cuda.synchronize(dev)
            acc.add(pred, gt, valid, time.perf_counter() - t0)
    return [a.result() for a in accs]


def format_table(results: Sequence[Dict[str, Any]]) -> str:
    lines = ["| method | pairs | EPE all (px) | EPE valid (px) | Fl-all (%) | ms / pair |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['pairs']} | {r['epe_all']:.3f} | {r['epe_valid']:.3f} | "
                     f"{r['fl_all_percent']:.2f} | {r['ms_per_pair']:.1f} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                   help="model to evaluate (repeatable; '' = shipped default model)")
    p.add_argument("--baseline", action="append", default=[], choices=("zero", "dis"),
                   help="also evaluate a baseline (repeatable)")
    p.add_argument("--dis-preset", default="medium", choices=("ultrafast", "fast", "medium"))
    p.add_argument("--dataset", required=True, choices=("procedural", "chairs", "sintel", "kitti", "list"))
    p.add_argument("--root", default="", help="dataset folder (chairs / sintel / kitti) or the list file (list)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra reader argument (YAML value), e.g. --arg split=val")
    p.add_argument("--count", type=int, default=200, help="procedural: number of pairs")
    p.add_argument("--seed", type=int, default=20261124, help="procedural: seed (training uses 0)")
    p.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"),
                   help="procedural: image size")
    p.add_argument("--max-pairs", type=int, default=None, help="evaluate only the first N pairs")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--inference-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="network input size (default: input rounded to multiples of 64)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = default: all cores)")
    p.add_argument("--json", default="", help="write results + setup to this JSON file")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from flownet_ros.inference import set_cpu_threads

    set_cpu_threads(args.threads)
    if args.dataset != "procedural" and not args.root:
        print(f"error: --dataset {args.dataset} needs --root (the list file for 'list')", file=sys.stderr)
        return 2
    from flownet_ros.train.datasets import build_dataset

    section = dataset_section(args)
    dataset = build_dataset(section)
    methods = build_methods(args)
    results = evaluate(methods, dataset, args.max_pairs, progress=not args.no_progress)
    print(format_table(results))
    if args.json:
        setup = {
            "command": "python -m flownet_ros.evaluate " + " ".join(sys.argv[1:] if argv is None else argv),
            "dataset": section,
            "device": args.device,
            "precision": args.precision,
            "inference_size": args.inference_size,
            "torch_threads": torch.get_num_threads(),
            "host": platform.platform(),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"setup": setup, "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
