r"""How good are the node's confidence, occlusion and moving-object outputs (docs/evaluation.md).

    python -m flownet_ros.evaluation.confidence --part real --threads 1
    python -m flownet_ros.evaluation.confidence --part generated --count 40 --threads 1

Methods (``--method``): ``node`` (the node's defaults: backend adaptive), ``flownet`` (the shipped model
refined by DIS-medium) and ``dis`` (backend dis, DIS-medium); each pair runs both ways (forward and
backward flow).

``--part real`` (the real-image set; nothing in it moves by itself: stereo pairs of static scenes,
a planar scene, photographs under camera homographies): AUSE of the confidence rankings (forward-backward
confidence ``fb``, ``fb`` times a photometric term ``fb*photo``, and the trivial baselines flow magnitude
and photometric residual) against the end-point error on valid pixels, the sparsification curves, the
fraction of pixels marked occluded and moving (all false positives), and the cost per frame.

``--part generated`` (the training generator with independently moving objects, seed not used in
training): precision/recall of the occlusion mask against the generator's exact one (not valid = occluded
or leaving the image) for several (a, c), and IoU of the moving mask with the moving objects larger than 2 %
of the image (pixels whose true flow the background's motion explains within the threshold are left out).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from typing import Dict, List

import cv2
import numpy as np

from flownet_ros.evaluation import render
from flownet_ros.evaluation.scoring import SPARSIFICATION_FRACTIONS, ause, sparsification_curve
from flownet_ros.flow.consistency import (
    PHOTO_TAU,
    confidence,
    consistency_maps,
    fb_confidence,
    fb_mismatch,
    with_photometric,
)
from flownet_ros.flow.metrics import epe_map
from flownet_ros.flow.moving import MIN_BLOB, MIN_CONFIDENCE, THRESHOLD_PX, moving_mask
from flownet_ros.flow.warping import photometric_residual
from flownet_ros.inference.factory import EstimatorSpec

METHODS = {"node": EstimatorSpec(), "flownet": EstimatorSpec(backend="flownet", refine="dis"),
           "dis": EstimatorSpec(backend="dis")}
OCCLUSION_GRID = ((0.01, 0.5), (0.02, 1.0), (0.05, 2.0), (0.1, 2.0), (0.2, 2.0))  # (a, c px^2)
MIN_OBJECT = 0.02  # fraction of the image: moving objects scored for IoU
GT_MOVING_PX = 1.0  # a generated object pixel moves by itself where the background's motion misses it by more
#: (threshold px, min_confidence or None = the forward flow alone) of the moving masks scored
MOVING_GRID = ((1.0, None), (2.0, None), (1.0, 0.5), (1.0, 0.7), (2.0, 0.7))


def moving_settings(args) -> List[tuple]:
    """The grid, plus the chosen setting (--threshold, --min-confidence) where it is not in it."""
    chosen = (args.threshold, args.min_confidence)
    return list(MOVING_GRID) + ([chosen] if chosen not in MOVING_GRID else [])


def masks(fw, conf, args) -> Dict[tuple, np.ndarray]:
    """Moving masks [H,W] bool of every setting of :func:`moving_settings`."""
    return {(t, c): moving_mask(fw, t, args.min_blob, confidence=None if c is None else conf,
                                min_confidence=c or 0.0)[0] > 0 for t, c in moving_settings(args)}


def rankings(img1, img2, fw, bw, tau: float) -> Dict[str, np.ndarray]:
    """Per-pixel confidences (higher = trusted) of the forward flow: ours and the trivial baselines."""
    res = photometric_residual(img1, img2, fw)
    return {"fb": fb_confidence(fw, bw), "fb*photo": confidence(fw, bw, img1, img2, tau=tau),
            "magnitude": -np.linalg.norm(fw, axis=2), "photometric": -res}


def both_ways(est, img1, img2):
    t0 = time.perf_counter()
    fw = est.estimate(img1, img2, "rgb")
    t1 = time.perf_counter()
    bw = est.estimate(img2, img1, "rgb")
    return fw, bw, 1e3 * (time.perf_counter() - t1), 1e3 * (t1 - t0)


def real_part(args, estimators) -> Dict[str, object]:
    from flownet_ros.data import build_dataset

    ds = build_dataset({"type": "real"})
    n = min(len(ds), args.max_pairs or len(ds))
    rows = {m: defaultdict(list) for m in estimators}
    chosen = (args.threshold, args.min_confidence)
    for i in range(n):
        s = ds[i]
        for m, est in estimators.items():
            fw, bw, ms_bw, ms_fw = both_ways(est, s["img1"], s["img2"])
            r = rows[m]
            err = epe_map(fw, s["flow"])[s["valid"]]
            for name, conf in rankings(s["img1"], s["img2"], fw, bw, args.tau).items():
                r["ause " + name].append(ause(err, conf[s["valid"]]))
                r["curve " + name].append(sparsification_curve(err, conf[s["valid"]]).tolist())
            r["curve oracle"].append(sparsification_curve(err, -err).tolist())
            r["epe"].append(float(err.mean()))
            t0 = time.perf_counter()
            fb, occ, residual = consistency_maps(fw, bw, s["img1"], s["img2"])  # as the node computes them
            conf = with_photometric(fb, residual, args.tau)  # the moving mask's trust
            t1 = time.perf_counter()
            mov, model = moving_mask(fw, args.threshold, args.min_blob, confidence=conf,
                                     min_confidence=args.min_confidence)
            t2 = time.perf_counter()
            for key, mask in masks(fw, conf, args).items():
                r[f"moving {key}"].append(float(mask.mean()))
            r["ms confidence"].append(1e3 * (t1 - t0))
            r["ms moving"].append(1e3 * (t2 - t1))
            r["ms backward"].append(ms_bw)
            r["ms forward"].append(ms_fw)
            r["occluded"].append(float((occ > 0).mean()))
            r["model"].append(model.kind)
            r["inliers"].append(model.inlier_fraction)
            r["group"].append(s["group"])
            r["name"].append(s["name"])
        print(f"{i + 1}/{n} {s['name']}: " + ", ".join(
            f"{m} moving {100 * rows[m][f'moving {chosen}'][-1]:.2f} % ({rows[m]['model'][-1]})" for m in estimators),
            file=sys.stderr, flush=True)
    return rows


def print_real(rows) -> None:
    names = ("fb", "fb*photo", "magnitude", "photometric")
    print("\nAUSE (px, mean over pairs; lower is better) and EPE\n")
    print("| method | pairs | EPE | " + " | ".join(names) + " |\n|---|---|---|" + "---|" * len(names))
    for m, r in rows.items():
        print(f"| {m} | {len(r['epe'])} | {np.mean(r['epe']):.2f} | "
              + " | ".join(f"{np.mean(r['ause ' + k]):.3f}" for k in names) + " |")
    print("\nSparsification: mean EPE (px) of the pixels kept after removing the least confident fraction\n")
    at = (0.0, 0.1, 0.2, 0.5, 0.8)
    idx = [SPARSIFICATION_FRACTIONS.index(f) for f in at]
    print("| method | ranking | " + " | ".join(f"{int(100 * f)} %" for f in at) + " |\n|---|---|" + "---|" * len(at))
    for m, r in rows.items():
        for k in ("oracle",) + names:
            c = np.mean(r["curve " + k], axis=0)
            print(f"| {m} | {k} | " + " | ".join(f"{c[j]:.2f}" for j in idx) + " |")
    print("\nMarked occluded (% of pixels, mean) and the camera models chosen, per group\n")
    print("| method | group | pairs | occluded | models (moving setting chosen) |\n|---|---|---|---|---|")
    for m, r in rows.items():
        groups = np.array(r["group"])
        for g in dict.fromkeys(r["group"]):
            sel = groups == g
            kinds = np.array(r["model"])[sel]
            models = ", ".join(f"{k} {int((kinds == k).sum())}" for k in dict.fromkeys(kinds.tolist()))
            print(f"| {m} | {g} | {sel.sum()} | {100 * np.mean(np.array(r['occluded'])[sel]):.1f} | {models} |")
    settings = [k[len("moving "):] for k in next(iter(rows.values())) if k.startswith("moving (")]
    print("\nMarked moving (all false positives: nothing moves), % of pixels: each stereo pair, the mean and max "
          "of the other groups, pairs >= 2 %\n")
    stereo = [n for n, g in zip(next(iter(rows.values()))["name"], next(iter(rows.values()))["group"])
              if g == "stereo"]
    groups = [g for g in dict.fromkeys(next(iter(rows.values()))["group"]) if g != "stereo"]
    print("| method | threshold px, min confidence | " + " | ".join(n.split(" (")[0] for n in stereo) + " | "
          + " | ".join(f"{g} mean / max" for g in groups) + " | pairs >= 2 % |")
    print("|---|---|" + "---|" * (len(stereo) + len(groups) + 1))
    for m, r in rows.items():
        grp = np.array(r["group"])
        for key in settings:
            mv = 100 * np.array(r["moving " + key])
            cells = [f"{v:.2f}" for v in mv[grp == "stereo"]]
            cells += [f"{mv[grp == g].mean():.2f} / {mv[grp == g].max():.2f}" for g in groups]
            print(f"| {m} | {key} | " + " | ".join(cells) + f" | {(mv >= 2).sum()} of {len(mv)} |")
    print("\nCost per frame (ms, median; the backward flow is the extra estimator call)\n")
    print("| method | forward flow | backward flow | confidence + occlusion | moving mask |\n|---|---|---|---|---|")
    for m, r in rows.items():
        print(f"| {m} | {np.median(r['ms forward']):.1f} | {np.median(r['ms backward']):.1f} | "
              f"{np.median(r['ms confidence']):.1f} | {np.median(r['ms moving']):.1f} |")


def moving_truth(batch, k: int, threshold: float) -> tuple:
    """(moving, scored) [H,W] bool of generated pair k: pixels of independently moving objects larger than
    MIN_OBJECT of the image whose true flow the background's homography misses by more than ``threshold`` px;
    scored = everything except the other pixels of moving objects."""
    layer = batch["layer"][k].numpy()
    flow = batch["flow"][k].permute(1, 2, 0).numpy().astype(np.float64)
    h, w = layer.shape
    ys, xs = np.mgrid[0:h, 0:w]
    pix = np.stack([xs, ys], -1).astype(np.float64)
    bg = layer == 0
    hom, _ = cv2.findHomography(pix[bg][::7], (pix + flow)[bg][::7], 0)  # exact points: least squares
    q = np.concatenate([pix, np.ones((h, w, 1))], -1) @ hom.T
    off = np.linalg.norm(q[..., :2] / q[..., 2:] - pix - flow, axis=-1)
    indep = batch["independent"][k].numpy()[layer]
    big = np.isin(layer, [li for li in np.unique(layer) if (layer == li).mean() > MIN_OBJECT])
    moving = indep & big & (off > threshold)
    return moving, ~indep | moving


def generated_part(args, estimators) -> Dict[str, object]:
    from flownet_ros.data.generator import SceneConfig, SceneGenerator, load_photos

    gen = SceneGenerator(load_photos(args.photos), tuple(args.size), SceneConfig(min_objects=1))
    rows = {m: defaultdict(list) for m in estimators}
    for i in range(args.count):
        b = gen.batch(args.seed, [i], layers=True)
        img1, img2 = (b[key][0].permute(1, 2, 0).numpy().astype(np.uint8) for key in ("img1", "img2"))
        occluded = ~b["valid"][0].numpy()
        moving_gt, scored = moving_truth(b, 0, GT_MOVING_PX)
        for m, est in estimators.items():
            fw, bw, _, _ = both_ways(est, img1, img2)
            r = rows[m]
            for a, c in OCCLUSION_GRID:
                d2, tol, inside = fb_mismatch(fw, bw, a, c)
                pred = (d2 > tol) | ~inside
                r[f"tp {a} {c}"].append(int((pred & occluded).sum()))
                r[f"fp {a} {c}"].append(int((pred & ~occluded).sum()))
                r[f"fn {a} {c}"].append(int((~pred & occluded).sum()))
            valid = ~occluded
            err = epe_map(fw, b["flow"][0].permute(1, 2, 0).numpy())[valid]
            for name, conf in rankings(img1, img2, fw, bw, args.tau).items():
                r["ause " + name].append(ause(err, conf[valid]))
            conf = confidence(fw, bw, img1, img2, tau=args.tau)
            for key, mov in masks(fw, conf, args).items():
                if moving_gt.any():
                    r[f"inter {key}"].append(int((mov & moving_gt & scored).sum()))
                    r[f"union {key}"].append(int(((mov | moving_gt) & scored).sum()))
                else:
                    r[f"fp {key}"].append(float((mov & scored).mean()))
        print(f"{i + 1}/{args.count}: moving {100 * moving_gt.mean():.1f} % of the image", file=sys.stderr, flush=True)
    return rows


def print_generated(rows) -> None:
    print("\nOcclusion (generator's exact mask: occluded or leaving the image), pooled over pixels\n")
    print("| method | a | c (px^2) | precision | recall | F1 |\n|---|---|---|---|---|---|")
    for m, r in rows.items():
        for a, c in OCCLUSION_GRID:
            tp, fp, fn = (sum(r[f"{k} {a} {c}"]) for k in ("tp", "fp", "fn"))
            p, rc = tp / max(1, tp + fp), tp / max(1, tp + fn)
            print(f"| {m} | {a} | {c} | {p:.3f} | {rc:.3f} | {2 * p * rc / max(1e-9, p + rc):.3f} |")
    names = ("fb", "fb*photo", "magnitude", "photometric")
    print("\nAUSE (px) on generated pairs\n\n| method | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for m, r in rows.items():
        print(f"| {m} | " + " | ".join(f"{np.mean(r['ause ' + k]):.3f}" for k in names) + " |")
    print("\nMoving objects > 2 % of the image: IoU of the moving mask\n")
    print("| method | threshold px, min confidence | pairs with moving objects | IoU mean | IoU median | "
          "IoU pooled | pairs IoU >= 0.7 | pairs without: % marked |\n|---|---|---|---|---|---|---|---|")
    for m, r in rows.items():
        for key in [k[len("inter "):] for k in r if k.startswith("inter ")]:
            inter, union = np.array(r["inter " + key]), np.array(r["union " + key])
            iou = inter / np.maximum(1, union)
            fp = r.get("fp " + key, [])
            print(f"| {m} | {key} | {len(iou)} | {iou.mean():.3f} | {np.median(iou):.3f} | "
                  f"{inter.sum() / max(1, union.sum()):.3f} | {(iou >= 0.7).sum()} | "
                  f"{100 * np.mean(fp) if fp else float('nan'):.2f} ({len(fp)} pairs) |")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.confidence", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", required=True, choices=("real", "generated"))
    p.add_argument("--method", nargs="+", default=list(METHODS), choices=tuple(METHODS))
    p.add_argument("--max-pairs", type=int, default=0, help="real: only the first N pairs (0 = all)")
    p.add_argument("--count", type=int, default=40, help="generated: number of pairs")
    p.add_argument("--seed", type=int, default=20261208, help="generated: seed (training uses 0)")
    p.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"))
    p.add_argument("--photos", default="train", choices=("train", "skimage"))
    p.add_argument("--threshold", type=float, default=THRESHOLD_PX, help="moving: residual threshold, px")
    p.add_argument("--min-blob", type=float, default=MIN_BLOB, help="moving: fraction of the image")
    p.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE, help="moving: trusted pixels only")
    p.add_argument("--tau", type=float, default=PHOTO_TAU, help="grey levels of the photometric term")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = all cores)")
    p.add_argument("--json", default="")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from flownet_ros.inference.factory import build_estimator
    from flownet_ros.inference.runtime import set_cpu_threads

    args = parse_args(argv)
    set_cpu_threads(args.threads)
    estimators = {m: build_estimator(METHODS[m]) for m in args.method}
    rows = real_part(args, estimators) if args.part == "real" else generated_part(args, estimators)
    (print_real if args.part == "real" else print_generated)(rows)
    if args.json:
        render.write_json(args.json, {"command": "python -m flownet_ros.evaluation.confidence "
                                      + " ".join(sys.argv[1:] if argv is None else argv),
                                      "rows": {m: dict(r) for m, r in rows.items()}}, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
