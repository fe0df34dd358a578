"""Benchmark of the procedural pair generator: pairs/s on one core, flow statistics, photometric check.

    python -m flownet_ros.bench procedural [--size 384 512] [--pairs 100] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import List, Optional

import cv2
import numpy as np

from flownet_ros.data.procedural import ProceduralFlowDataset
from flownet_ros.flow.warping import photometric_error


def run(size=(384, 512), pairs: int = 100, seed: int = 0, threads: int = 1, repeats: int = 3) -> dict:
    """Generate ``pairs`` pairs ``repeats`` times; return timing (best and median pass) and statistics."""
    cv2.setNumThreads(int(threads))
    ds = ProceduralFlowDataset(size=tuple(size), length=pairs, seed=seed)
    ds[0]  # warm-up (imports, allocator)
    passes = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(pairs):
            ds[i]
        passes.append(time.perf_counter() - t0)
    mags, valid_frac, photo, zero_photo = [], [], [], []
    for i in range(min(pairs, 50)):
        s = ds[i]
        mags.append(np.linalg.norm(s["flow"], axis=2).ravel())
        valid_frac.append(float(s["valid"].mean()))
        photo.append(photometric_error(s["img1"], s["img2"], s["flow"], s["valid"]))
        zero_photo.append(photometric_error(s["img1"], s["img2"], np.zeros_like(s["flow"])))
    m = np.concatenate(mags)
    return {
        "size": list(size), "pairs": pairs, "threads": threads, "repeats": repeats,
        "pairs_per_s_best": pairs / min(passes), "pairs_per_s_median": pairs / float(np.median(passes)),
        "ms_per_pair_best": 1000.0 * min(passes) / pairs,
        "flow_px_percentiles": {p: float(np.percentile(m, p)) for p in (50, 90, 99, 100)},
        "flow_px_mean": float(m.mean()),
        "valid_fraction_mean": float(np.mean(valid_frac)),
        "photometric_error_valid_mean": float(np.mean(photo)),
        "photometric_error_zero_flow_mean": float(np.mean(zero_photo)),
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
                   f"opencv {cv2.__version__}",
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flownet_ros.bench procedural", description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"))
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one core)")
    ap.add_argument("--json", help="also write the result to this JSON file")
    args = ap.parse_args(argv)
    res = run(args.size, args.pairs, args.seed, args.threads, args.repeats)
    p = res["flow_px_percentiles"]
    print(f"procedural {res['size'][0]}x{res['size'][1]}, {res['threads']} thread(s): "
          f"{res['pairs_per_s_best']:.1f} pairs/s best, {res['pairs_per_s_median']:.1f} median "
          f"({res['ms_per_pair_best']:.1f} ms/pair)")
    print(f"|flow| px: median {p[50]:.1f}, p90 {p[90]:.1f}, p99 {p[99]:.1f}, max {p[100]:.1f}, "
          f"mean {res['flow_px_mean']:.1f}; valid {100 * res['valid_fraction_mean']:.1f} %")
    print(f"photometric error on valid px {res['photometric_error_valid_mean']:.2f} /255 "
          f"(zero flow: {res['photometric_error_zero_flow_mean']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
