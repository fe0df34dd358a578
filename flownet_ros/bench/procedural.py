"""Procedural pair generator (+ augmentation): pairs/s on one core, flow statistics, photometric check.

    python -m flownet_ros.bench procedural [--size 384 512] [--pairs 100] [--threads 1] [--crop 320 448]

Times ``ProceduralFlowDataset[i]`` (best and median wall time of ``--repeats`` passes over ``--pairs``
pairs, and process CPU time, which other load on a shared machine inflates much less)
and, separately, ``Augmentor(crop)`` on those pairs; then reports |flow| percentiles, the valid
fraction and the photometric error of image 2 warped back by the ground truth (vs zero flow).
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from flownet_ros.bench._common import machine_description
from flownet_ros.data.augment import Augmentor
from flownet_ros.data.procedural import ProceduralFlowDataset
from flownet_ros.flow.warping import photometric_error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"))
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one core)")
    p.add_argument("--crop", type=int, nargs=2, default=(320, 448), metavar=("H", "W"),
                   help="crop of the augmentation timed after generation")
    p.add_argument("--json", help="also write the result to this JSON file")


def _passes(fn, n: int, repeats: int):
    """(wall seconds, process CPU seconds) per pass; CPU time is robust to other load on the machine."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def measure(size=(384, 512), pairs: int = 100, seed: int = 0, threads: int = 1, repeats: int = 3,
            crop=(320, 448)) -> dict:
    cv2.setNumThreads(int(threads))
    ds = ProceduralFlowDataset(size=tuple(size), length=pairs, seed=seed)
    ds[0]  # warm-up
    gen, gen_cpu = _passes(lambda i: ds[i], pairs, repeats)
    samples = [ds[i] for i in range(min(pairs, 50))]
    aug = Augmentor(crop=tuple(crop))
    aug_t, aug_cpu = _passes(lambda i: aug(samples[i % len(samples)], np.random.default_rng(i)), pairs, repeats)
    mags = np.concatenate([np.linalg.norm(s["flow"], axis=2).ravel() for s in samples])
    return {
        "size": list(size), "pairs": pairs, "threads": threads, "repeats": repeats, "crop": list(crop),
        "pairs_per_s_best": pairs / min(gen), "pairs_per_s_median": pairs / float(np.median(gen)),
        "ms_per_pair_best": 1000.0 * min(gen) / pairs,
        "pairs_per_cpu_s": pairs / min(gen_cpu),
        "augment_ms_best": 1000.0 * min(aug_t) / pairs,
        "augment_cpu_ms": 1000.0 * min(aug_cpu) / pairs,
        "flow_px_percentiles": {str(p): float(np.percentile(mags, p)) for p in (50, 90, 99, 100)},
        "flow_px_mean": float(mags.mean()),
        "valid_fraction_mean": float(np.mean([s["valid"].mean() for s in samples])),
        "photometric_error_valid_mean": float(np.mean(
            [photometric_error(s["img1"], s["img2"], s["flow"], s["valid"]) for s in samples])),
        "photometric_error_zero_flow_mean": float(np.mean(
            [photometric_error(s["img1"], s["img2"], np.zeros_like(s["flow"])) for s in samples])),
        "machine": machine_description() + f", OpenCV {cv2.__version__} ({threads} thread(s))",
    }


def run(args) -> int:
    res = measure(args.size, args.pairs, args.seed, args.threads, args.repeats, args.crop)
    p = res["flow_px_percentiles"]
    print(res["machine"])
    print(f"procedural {res['size'][0]}x{res['size'][1]}: {res['pairs_per_s_best']:.1f} pairs/s best, "
          f"{res['pairs_per_s_median']:.1f} median ({res['ms_per_pair_best']:.1f} ms/pair wall), "
          f"{res['pairs_per_cpu_s']:.1f} pairs per CPU-second; augmentation to {res['crop'][0]}x{res['crop'][1]}: "
          f"{res['augment_ms_best']:.1f} ms/pair wall, {res['augment_cpu_ms']:.1f} ms CPU")
    print(f"|flow| px: median {p['50']:.1f}, p90 {p['90']:.1f}, p99 {p['99']:.1f}, max {p['100']:.1f}, "
          f"mean {res['flow_px_mean']:.1f}; valid {100 * res['valid_fraction_mean']:.1f} %")
    print(f"photometric error on valid px {res['photometric_error_valid_mean']:.2f} /255 "
          f"(zero flow: {res['photometric_error_zero_flow_mean']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m flownet_ros.bench.procedural")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
