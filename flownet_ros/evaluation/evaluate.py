r"""Accuracy and speed of flow estimators on image pairs with ground truth.

    python -m flownet_ros.evaluation.evaluate --dataset real --checkpoint '' --refine none variational dis \\
        --baseline zero farneback dis-ultrafast dis-fast dis-medium --json out.json

Methods: every ``--checkpoint`` (any format :func:`flownet_ros.models.load_checkpoint` reads; ``''`` =
the shipped model), each run one way and/or both ways (``--directions forward both``: ``both`` =
bidirectional, labelled ``-bi``), each with every ``--refine`` (``none``, ``variational``, ``dis`` with
``--dis-preset``), and the ``--baseline`` methods. All of them run on the same pairs in one run.
Metrics (:mod:`flownet_ros.evaluation.scoring`): EPE over valid pixels (mean over pairs), Fl-all
(pooled), EPE per ground-truth magnitude bin, and the median time of one ``estimate`` call.

Datasets (``--dataset``): ``real`` (the real-image set of :mod:`flownet_ros.data.realimages`: real
stereo pairs, Oxford Graffiti, held-out photographs under known camera motion; ``--arg
groups=[stereo]`` to select; tables per group and over all pairs); ``generated`` (pairs of the
training generator, ``--count``, ``--seed``, ``--size``, ``--arg photos=skimage`` without downloads);
``chairs``/``sintel``/``kitti`` ``--root DIR``; ``list --root FILE`` (lines ``img1 img2 flow``).
``--arg key=value`` goes to the dataset (YAML value). Prints Markdown tables; ``--json`` writes every
number, per-pair results and the exact setup.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import yaml

from flownet_ros.cli import tool
from flownet_ros.evaluation import render
from flownet_ros.evaluation.scoring import Series, score_pair, summarize
from flownet_ros.inference.factory import (
    EstimatorSpec,
    add_baseline_argument,
    add_estimator_arguments,
    baselines,
    build_estimator,
    specs_from_args,
)

DATASETS = ("real", "generated", "chairs", "sintel", "kitti", "list")


def dataset_section(args: argparse.Namespace) -> Dict[str, Any]:
    """CLI options -> a dataset section for :func:`flownet_ros.data.build_dataset`."""
    section: Dict[str, Any] = {"type": args.dataset}
    if args.dataset == "generated":
        section.update(size=list(args.size), length=args.count, seed=args.seed)
    elif args.dataset == "list":
        section["list_file"] = args.root
    elif args.dataset != "real":
        section["root"] = args.root
        if args.dataset == "chairs":
            section["split"] = "val"  # the official 640 validation pairs unless --arg split=...
    for item in args.arg:
        if "=" not in item:
            raise SystemExit(f"error: --arg {item!r} must be key=value")
        k, v = item.split("=", 1)
        section[k] = yaml.safe_load(v)
    return section


def method_specs(args: argparse.Namespace) -> List[EstimatorSpec]:
    """Every --checkpoint x --directions x --refine (x --dis-preset, x --inference-size), then every --baseline;
    without --checkpoint and --baseline: what the node runs."""
    if args.checkpoint is None:
        args.checkpoint = [] if args.baseline else [EstimatorSpec.checkpoint]
    return specs_from_args(args) + [baselines()[b] for b in args.baseline]


def method_labels(specs: Sequence[EstimatorSpec]) -> List[str]:
    """Table labels: each spec's name, with the checkpoint path as given instead of its file name where two
    checkpoints share a file name (``a/final.pt``, ``b/final.pt+dis-medium``); the same method twice is an error."""
    paths = {s.checkpoint for s in specs if s.backend_info.network and s.checkpoint}
    shared = {Path(p).name for p in paths if sum(Path(q).name == Path(p).name for q in paths) > 1}
    labels = [s.name.replace(Path(s.checkpoint).name, s.checkpoint, 1) if Path(s.checkpoint).name in shared
              and s.checkpoint else s.name for s in specs]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise SystemExit(f"error: the same method twice: {', '.join(twice)}")
    return labels


def run(estimators: Sequence, names: Sequence[str], dataset, max_pairs: Optional[int] = None,
        progress: bool = True) -> Dict[str, Any]:
    """Every estimator on every pair -> {'series': [Series], 'pairs': [{name, group}]}."""
    series = [Series(n, e.description) for n, e in zip(names, estimators)]
    pairs: List[Dict[str, Any]] = []
    n = len(dataset) if max_pairs is None else min(len(dataset), max_pairs)
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, unit="pair", desc="evaluate", dynamic_ncols=True)
    for i in indices:
        s = dataset[i]
        pairs.append({"index": i, "name": s.get("name", str(i)), "group": s.get("group", "")})
        for est, ser in zip(estimators, series):
            t0 = time.perf_counter()
            flow = est.estimate(s["img1"], s["img2"], "rgb")  # numpy out: any GPU work has finished
            ms = 1e3 * (time.perf_counter() - t0)
            ser.add(score_pair(flow, s["flow"], s["valid"].astype(bool), s["img1"], s["img2"]), latency_ms=ms)
    return {"series": series, "pairs": pairs}


def summaries(result: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    """{'all': [...], <group>: [...]} summaries (groups only when the dataset has several)."""
    groups = np.array([p["group"] for p in result["pairs"]])
    out = {"all": [summarize(s) for s in result["series"]]}
    names = [g for g in dict.fromkeys(groups.tolist()) if g]
    if len(names) > 1:
        for g in names:
            out[g] = [summarize(s, groups == g) for s in result["series"]]
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_estimator_arguments(p, many=True)
    add_baseline_argument(p)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", default="", help="dataset folder (chairs / sintel / kitti) or the list file (list)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra dataset argument (YAML value), e.g. --arg split=val")
    p.add_argument("--count", type=int, default=200, help="generated: number of pairs")
    p.add_argument("--seed", type=int, default=20261124, help="generated: seed (training uses 0)")
    p.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"), help="generated: image size")
    p.add_argument("--max-pairs", type=int, default=None, help="evaluate only the first N pairs")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = all cores)")
    p.add_argument("--json", default="", help="write results, per-pair scores and the setup to this JSON file")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


@tool("python -m flownet_ros.evaluation.evaluate")
def main(argv=None) -> int:
    args = parse_args(argv)
    from flownet_ros.data import build_dataset
    from flownet_ros.inference.runtime import set_cpu_threads

    threads = set_cpu_threads(args.threads)
    if args.dataset not in ("generated", "real") and not args.root:
        print(f"error: --dataset {args.dataset} needs --root (the list file for 'list')", file=sys.stderr)
        return 2
    section = dataset_section(args)
    dataset = build_dataset(section)
    specs = method_specs(args)
    result = run([build_estimator(s) for s in specs], method_labels(specs), dataset, args.max_pairs,
                 progress=not args.no_progress)
    tables = summaries(result)
    for group, rows in tables.items():
        print(f"\n{group} ({rows[0]['pairs_scored']} pairs)\n\n{render.table(rows)}")
    if args.json:
        setup = {"command": "python -m flownet_ros.evaluation.evaluate "
                            + " ".join(sys.argv[1:] if argv is None else argv),
                 "dataset": section, "methods": [vars(s) for s in specs], "cpu_threads": threads,
                 "host": platform.platform()}
        per_pair = [{**p, **{s.name: s.scores[k].epe for s in result["series"]}}
                    for k, p in enumerate(result["pairs"])]
        render.write_json(args.json, {"setup": setup, "results": tables["all"], "groups": tables,
                                      "pairs": per_pair}, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
