"""Evaluate optical flow on a rosbag2 bag: latency, rate, drops, photometric error, EPE / Fl-all.

``python -m flownet_ros.evaluation.report INPUT_BAG --outputs OUTPUT_BAG`` pairs the node's flow
messages (recorded by ``replay`` or by ``ros2 bag record`` on a robot) with the input frames by
header stamp (:mod:`flownet_ros.evaluation.bagjoin`); ``--offline`` runs an estimator directly on the
bag's frames instead (no ROS transport). ``--baseline`` adds other methods (DIS, Farneback) on the same
frame pairs; zero flow is always scored. Writes ``report.md``, ``report.json`` and PNG plots into
``--out``. Latency = output bag time - image stamp (the bag time of an output is its receive time);
offline, it is the compute time of the pair.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from flownet_ros.cli import tool, user_path
from flownet_ros.evaluation import render
from flownet_ros.evaluation.bagio import RATE_KEY, WALL_SPAN_KEY, BagError
from flownet_ros.evaluation.bagjoin import BagSources
from flownet_ros.evaluation.scoring import Series, score_pair, summarize
from flownet_ros.flow.consistency import CONFIDENCE_TAU, PHOTO_TAU, consistency_maps, with_photometric
from flownet_ros.flow.moving import moving_mask
from flownet_ros.inference.factory import (
    EstimatorSpec,
    add_baseline_argument,
    add_estimator_arguments,
    baselines,
    build_estimator,
    specs_from_args,
)

STRIP_FRAMES = 6
#: decoded frames kept for pairing node outputs with an older frame than the previous one
FRAME_CACHE = 64
#: the files a report writes into its folder (older ones are removed first, so no plot of an earlier run stays)
REPORT_FILES = ("report.md", "report.json", "latency.png", "accuracy.png", "strip.png")
SUMMARY_COLUMNS = ("outputs", "frames_dropped", "latency_ms_median", "latency_ms_p95", "latency_ms_max",
                   "output_rate_hz", "photometric_error", "epe", "fl_all")


@dataclass
class ReportOptions:
    """The bags, topics and methods of one report (``output_bag`` None: offline, the estimator runs here)."""

    input_bag: Path
    out_dir: Path
    output_bag: Optional[Path] = None  # None = offline
    topic: Optional[str] = None
    gt_topic: Optional[str] = None
    flow_topic: Optional[str] = None  # default <namespace>/<node_name>/flow, else the only 32FC2 topic
    node_name: str = "flownet"
    namespace: str = ""
    estimator: EstimatorSpec = EstimatorSpec()  # offline: what runs on the frames ('' checkpoint = shipped)
    baselines: Tuple[str, ...] = ()  # labels of flownet_ros.inference.factory.baselines()
    progress: bool = True
    strip_frames: int = STRIP_FRAMES
    consistency: bool = True  # confidence and moving mask of the main flow (a backward flow per pair)
    rate: Optional[float] = None  # replay rate, for the record only
    force: bool = False  # report an output bag even when its flow stamps are not the input bag's frames
    max_pixels: Optional[int] = None  # the node's max_pixels (None: its default); larger frames are skipped


def _timed(estimator, img1: np.ndarray, img2: np.ndarray) -> Tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    flow = estimator.estimate(img1, img2)
    return flow, (time.perf_counter() - t0) * 1e3


class _Run:
    """Per-frame state of one report: the series of every method, the frame cache, records, strip."""

    def __init__(self, opts: ReportOptions, src: BagSources):
        self.opts, self.src, self.offline = opts, src, opts.output_bag is None
        self.estimator = build_estimator(opts.estimator) if self.offline else None
        self.baselines = [(name, build_estimator(baselines()[name])) for name in opts.baselines if name != "zero"]
        self.main = Series(f"{opts.estimator.name} offline" if self.offline else f"node {src.flow_topic}")
        self.others = [Series(f"{name} offline") for name, _ in self.baselines]
        self.zero = Series("zero flow")
        n = src.n_frames
        self.strip_at = set(np.linspace(1, max(1, n - 1), min(opts.strip_frames, max(0, n - 1))).round().astype(int))
        self.strip: List[Dict[str, Any]] = []
        self.stamps: List[int] = []
        self.per_frame: List[Dict[str, Any]] = []
        self.cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self.spanning = 0
        self.path: Optional[str] = None
        self._backward = None  # estimator of the backward flow (the offline one, else built on first use)

    def _main_flow(self, prev_stamp: int, stamp: int, img: np.ndarray) -> Tuple[Optional[np.ndarray], int]:
        """The method under test's flow for the pair ending at ``stamp`` (None: no output) and its older stamp."""
        if self.offline:
            flow, ms = _timed(self.estimator, self.cache[prev_stamp], img)
            self.main.add(latency_ms=ms)
            self.path = self.estimator.last_flow_info().get("path")  # adaptive backend: which path ran
            return flow, prev_stamp
        got = self.src.node_flow(stamp, img.shape[:2])
        if got is None:
            self.main.add()
            return None, prev_stamp
        flow, t_ns = got
        self.main.add(latency_ms=(t_ns - stamp) / 1e6, recv_ns=float(t_ns))
        older = self.src.pair_of.get(stamp, prev_stamp)
        self.spanning += older != prev_stamp
        return flow, older

    def frame(self, k: int, stamp: int, img: np.ndarray) -> None:
        self.stamps.append(stamp)
        self.cache[stamp] = img
        if len(self.cache) > FRAME_CACHE:
            self.cache.popitem(last=False)
        if k == 0:
            return
        prev_stamp = self.stamps[-2]
        gt, valid = self.src.ground_truth(stamp)
        flow, older = self._main_flow(prev_stamp, stamp, img)
        # every method is scored on the pair the node used; ground truth only fits consecutive frames
        first = self.cache.get(older)
        gt_pair = gt if older == prev_stamp else None
        if first is not None:
            if flow is not None:
                self.main.scores[-1] = score_pair(flow, gt_pair, valid, first, img)
            self.zero.add(score_pair(np.zeros(img.shape[:2] + (2,), np.float32), gt_pair, valid, first, img))
        else:  # the node paired with a frame older than the cache holds: not scored
            self.zero.add()
        other_flows = []
        for (name, est), series in zip(self.baselines, self.others):
            if first is None:
                series.add()
                other_flows.append(None)
                continue
            bflow, ms = _timed(est, first, img)
            series.add(score_pair(bflow, gt_pair, valid, first, img), latency_ms=ms)
            other_flows.append(bflow)
        cons = self._consistency(first, img, flow) if self.opts.consistency else {}
        self._record(k, stamp, older, img, flow, gt, other_flows, cons)

    def _consistency(self, first: Optional[np.ndarray], img: np.ndarray, flow: Optional[np.ndarray]
                     ) -> Dict[str, Any]:
        """~/confidence and ~/moving of the main flow as the node computes them (defaults), from a backward
        flow by the report's estimator (--estimator options; the node's own is not recorded)."""
        if first is None or flow is None:
            return {}
        if self._backward is None:
            self._backward = self.estimator or build_estimator(self.opts.estimator)
        fb, occ, res = consistency_maps(flow, self._backward.estimate(img, first), first, img)
        moving, model = moving_mask(flow, confidence=with_photometric(fb, res, PHOTO_TAU))
        tinted = img.copy()
        tinted[moving > 0] = (0.5 * tinted[moving > 0] + (127, 0, 0)).astype(np.uint8)
        return {"confidence": with_photometric(fb, res, CONFIDENCE_TAU), "moving": tinted,
                "moving_fraction": float((moving > 0).mean()), "occluded_fraction": float((occ > 0).mean()),
                "camera_model": model.kind}

    def _record(self, k, stamp, older, img, flow, gt, other_flows, cons) -> None:
        rec = {"index": k, "stamp_ns": stamp, "older_stamp_ns": older}
        if self.path:
            rec["path"] = self.path
        rec.update({key: s.last() for key, s in self.columns()})
        rec.update({key: cons[key] for key in ("moving_fraction", "occluded_fraction", "camera_model") if key in cons})
        self.per_frame.append(rec)
        if k in self.strip_at:
            self.strip.append({"index": k, "img": img, "flow": flow, "gt": gt, "confidence": cons.get("confidence"),
                               "moving": cons.get("moving"), "moving_fraction": cons.get("moving_fraction"),
                               **{f"other{i}": f for i, f in enumerate(other_flows)}})

    def columns(self) -> List[Tuple[str, Series]]:
        return [("main", self.main)] + [(f"other{i}", s) for i, s in enumerate(self.others)] + [("zero", self.zero)]


def throughput(series: Series, pairs: int, offline: bool, wall_span_s: Optional[float], timed: bool = True
               ) -> Dict[str, float]:
    """Outputs, frames dropped and output rate of one method over ``pairs`` input frame pairs.

    Outputs: pairs with a timing (``timed``), else with a score. Output rate: offline = outputs / total
    compute time; ROS = outputs per second of receive time, from ``wall_span_s`` (wall-clock first -> last
    flow, written by the replay) when known, else from the output bag times (real receive times live).
    """
    lat = np.asarray(series.latency_ms, dtype=np.float64)
    got = int(np.isfinite(lat).sum()) if timed else sum(s is not None for s in series.scores)
    recv = np.asarray(series.recv_ns, dtype=np.float64)
    recv = np.sort(recv[np.isfinite(recv)])
    if not timed:
        rate = math.nan
    elif offline:
        total_s = float(lat[np.isfinite(lat)].sum()) / 1e3
        rate = got / total_s if got and total_s > 0 else math.nan
    else:
        span = wall_span_s if wall_span_s else ((recv[-1] - recv[0]) / 1e9 if recv.size > 1 else 0.0)
        rate = (recv.size - 1) / span if span > 0 else math.nan
    return {"pairs": pairs, "outputs": got, "frames_dropped": pairs - got, "output_rate_hz": rate}


def summaries(run: _Run, custom: Dict[str, str]) -> List[Dict[str, Any]]:
    """One summary per method; accuracy over the pairs the node produced a flow for (all pairs offline),
    the same pairs for every method."""
    pairs = max(0, len(run.stamps) - 1)
    wall_span = float(custom[WALL_SPAN_KEY]) if WALL_SPAN_KEY in custom else None
    scored = None if run.offline else np.isfinite(np.asarray(run.main.recv_ns, dtype=np.float64))
    out = [{**summarize(run.main, scored), **throughput(run.main, pairs, run.offline, wall_span)}]
    out += [{**summarize(s, scored), **throughput(s, pairs, True, None)} for s in run.others]
    zero = {**summarize(run.zero, scored), **throughput(run.zero, pairs, True, None, timed=False)}
    zero.update(latency_ms_median=math.nan, latency_ms_p95=math.nan, latency_ms_max=math.nan)
    return out + [zero]


def evaluate(opts: ReportOptions) -> Dict[str, Any]:
    """Per-frame metrics and summary; writes report.md, report.json and plots to ``opts.out_dir``.

    ROS mode: the node's flow for frame k is scored on the pair it reports on ``~/flow_pair``
    (older = previous input frame if the topic is absent); EPE / Fl-all only when that pair is two
    consecutive frames, the pair the ground truth describes. Baselines and zero flow: the same pairs.
    """
    src = BagSources(opts.input_bag, opts.output_bag, opts.topic, opts.gt_topic, opts.flow_topic, opts.node_name,
                     opts.namespace, opts.max_pixels)
    try:
        if src.n_frames < 2:
            raise BagError(f"bag {opts.input_bag}: topic {src.topic} has {src.n_frames} frame(s); a report needs "
                           "at least 2 (one frame pair)")
        if not opts.force:
            src.check_same_recording()
        run = _Run(opts, src)
        from tqdm import tqdm

        for k, (stamp, img) in enumerate(tqdm(src.frames(), total=src.n_frames, desc="evaluate", unit="frame",
                                              disable=not opts.progress, leave=False)):
            run.frame(k, stamp, img)
        node_info = src.node_diagnostics(opts.node_name)
        custom = src.output.custom_data if src.output is not None else {}
        unmatched = src.unmatched_outputs(run.stamps)
    finally:
        src.close()
    if len(run.stamps) < 2:
        raise BagError(f"bag {opts.input_bag}: only {len(run.stamps)} of the {src.n_frames} frames of {src.topic} "
                       f"can be decoded (first refused: record {src.undecodable[0][0]}: {src.undecodable[0][1]})")
    report = _report(opts, src, run, custom, node_info, unmatched)
    _write(report, run, Path(opts.out_dir))
    return report


def _report(opts: ReportOptions, src: BagSources, run: _Run, custom: Dict[str, str], node_info: Dict[str, str],
            unmatched: int) -> Dict[str, Any]:
    stamps = run.stamps
    span = (max(stamps) - min(stamps)) / 1e9 if len(stamps) > 1 else 0.0
    replay_rate = opts.rate if opts.rate is not None else (float(custom[RATE_KEY]) if RATE_KEY in custom else None)
    return {
        "input_bag": str(opts.input_bag), "output_bag": str(opts.output_bag) if opts.output_bag else None,
        "mode": "offline" if run.offline else "ros", "image_topic": src.topic, "image_type": src.msgtype,
        "flow_topic": src.flow_topic, "gt_topic": src.gt_topic, "frames": len(stamps),
        "pairs": max(0, len(stamps) - 1), "input_rate_hz": (len(stamps) - 1) / span if span > 0 else math.nan,
        "replay_rate": replay_rate, "outputs_without_input": unmatched,
        "pairs_spanning_dropped_frames": run.spanning, "records_skipped": [
            {"index": i, "reason": why} for i, why in src.undecodable],
        "estimator": run.estimator.description if run.estimator is not None else None,
        "baselines": [est.description for _, est in run.baselines],
        "node_diagnostics": node_info, "summary": summaries(run, custom), "per_frame": run.per_frame,
        "times_s": [(s - stamps[0]) / 1e9 for s in stamps[1:]],
    }


def _write(report: Dict[str, Any], run: _Run, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a report that fails leaves no folder behind
    for name in REPORT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    t = np.asarray(report["times_s"], dtype=np.float64)
    plots: Dict[str, str] = {}
    if render.latency_plot(out_dir / "latency.png", t, run.main, run.others):
        plots["latency"] = "latency.png"
    render.accuracy_plot(out_dir / "accuracy.png", t, [s for _, s in run.columns()])
    plots["accuracy"] = "accuracy.png"
    if run.strip:
        rows = [("frame", "img"), (run.main.name, "flow")]
        if any(s["gt"] is not None for s in run.strip):
            rows.append(("ground truth", "gt"))
        rows += [(s.name, f"other{i}") for i, s in enumerate(run.others)]
        if any(s["confidence"] is not None for s in run.strip):
            rows += [("confidence (black 0, white 1)", "confidence"), ("moving (red)", "moving")]
        report["strip_scale_px"] = render.strip_plot(out_dir / "strip.png", run.strip, rows)
        plots["strip"] = "strip.png"
    report["plots"] = plots
    render.write_json(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(markdown(report))


def markdown(report: Dict[str, Any]) -> str:
    mode = ("offline (estimator run directly on the bag frames, no ROS transport; latency = compute time)"
            if report["mode"] == "offline" else
            "ROS (node outputs recorded from real DDS; latency = output receive time - image stamp)")
    lines = [f"# Optical flow report: {Path(report['input_bag']).name}", "",
             f"- input bag: `{report['input_bag']}`, topic `{report['image_topic']}` ({report['image_type']}), "
             f"{report['frames']} frames at {render.fmt(report['input_rate_hz'], '{:.1f}')} Hz", f"- mode: {mode}"]
    if report["output_bag"]:
        lines.append(f"- output bag: `{report['output_bag']}`, flow topic `{report['flow_topic']}`"
                     + (f", replay rate {report['replay_rate']:g}" if report.get("replay_rate") is not None else ""))
    lines.append(f"- ground truth: `{report['gt_topic']}`" if report["gt_topic"] else
                 "- ground truth: none in the bag (EPE / Fl-all not available)")
    lines += [f"- estimator: {report['estimator']}"] if report.get("estimator") else []
    lines += [f"- baseline: {b}" for b in report.get("baselines", [])]
    diag = report.get("node_diagnostics") or {}
    if diag:  # the node's own latency uses its clock: wall time unless it ran with use_sim_time + /clock
        after = float(diag.get("after_last_flow_s", "nan"))
        when = ("the last sample, after the last flow output: its counters cover every output"
                if after >= 0 else f"the last sample, {-after:.2f} s before the last flow output: its counters "
                "miss the outputs after it" if after < 0 else "the last sample")
        shown = {k: v for k, v in diag.items() if "latency" not in k and k != "after_last_flow_s"}
        lines.append(f"- node diagnostics ({when}; all values in report.json): "
                     + ", ".join(f"{k}={v}" for k, v in shown.items()))
    lines += _notes(report)
    lines += _moving_lines(report)
    lines += ["", "## Summary", "", render.table(report["summary"], SUMMARY_COLUMNS), "",
              "Photometric error: mean |older frame - newer frame warped back by the flow| (0..255) over "
              "pixels that stay in the image; zero flow = the same without motion compensation. "
              + ("Accuracy columns average over the pairs the node produced a flow for; every row is scored "
                 "on the pair the node used." if report["mode"] == "ros" else "")
              + (" Baseline latency = its compute time per pair (no transport)." if report.get("baselines") else ""),
              ""]
    for key, title in (("latency", "Latency"), ("accuracy", "Accuracy over time"), ("strip", "Frames")):
        if key in report.get("plots", {}):
            lines += [f"## {title}", "", f"![{title}]({report['plots'][key]})", ""]
    if "strip_scale_px" in report:
        lines += [f"Flow colours (hue = direction, saturation = magnitude; the wheel at the right) share one "
                  f"scale: full saturation = {report['strip_scale_px']:.2f} px, the largest |flow| in the strip.", ""]
    return "\n".join(lines)


def _moving_lines(report: Dict[str, Any]) -> List[str]:
    """The per-frame fraction of pixels marked moving (~/moving's rule), when computed."""
    frames = [(r["index"], r["moving_fraction"]) for r in report["per_frame"] if "moving_fraction" in r]
    if not frames:
        return []
    frac = np.array([f for _, f in frames])
    worst = frames[int(np.argmax(frac))]
    per = ", ".join(f"{k}: {100 * f:.1f}" for k, f in frames[:60]) + (" ..." if len(frames) > 60 else "")
    return [f"- moving objects (~/moving's rule on the main flow; a static scene should give 0): "
            f"{100 * frac.mean():.2f} % of the pixels per frame on average, at most {100 * worst[1]:.2f} % "
            f"(frame {worst[0]}); per frame (%): {per}"]


def _notes(report: Dict[str, Any]) -> List[str]:
    notes = []
    if report.get("pairs_spanning_dropped_frames"):
        notes.append(f"- {report['pairs_spanning_dropped_frames']} node output(s) paired frames further apart than "
                     "consecutive (frames dropped in between); EPE is not scored for those")
    if report.get("outputs_without_input"):
        notes.append(f"- {report['outputs_without_input']} flow output(s) had no matching input frame stamp")
    paths = [f["path"] for f in report.get("per_frame", []) if f.get("path")]
    if paths:
        counts = ", ".join(f"{p} {paths.count(p)}" for p in sorted(set(paths)))
        notes.append(f"- path per pair (adaptive backend; per frame in report.json): {counts} of {len(paths)}")
    skipped = report.get("records_skipped") or []
    if skipped:
        notes.append(f"- {len(skipped)} camera record(s) skipped: the node refuses them (first: record "
                     f"{skipped[0]['index']}: {skipped[0]['reason']})")
    return notes


def print_summary(report: Dict[str, Any], file=None) -> None:
    print(render.table(report["summary"], SUMMARY_COLUMNS), file=file or sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.report", description=__doc__.split("\n")[0])
    p.add_argument("input_bag", type=user_path, help="the replayed (input) bag with the camera topic")
    p.add_argument("--outputs", type=user_path, help="bag with the node's outputs (replay or ros2 bag record)")
    p.add_argument("--offline", action="store_true", help="run the estimator on the frames, no ROS")
    p.add_argument("--out", type=user_path, required=True, help="report directory")
    p.add_argument("--topic", help="camera topic (default: the only one)")
    p.add_argument("--gt-topic", help="ground-truth flow topic, 32FC2 (default: the only 32FC2 topic, if any)")
    p.add_argument("--flow-topic", help="flow topic in the output bag (default <ns>/<node>/flow)")
    p.add_argument("--node-name", default="flownet")
    p.add_argument("--namespace", default="")
    add_estimator_arguments(p)  # --offline: what runs on the frames (default: what the node runs)
    add_baseline_argument(p)
    p.add_argument("--no-consistency", action="store_true",
                   help="skip the confidence and moving-object rows (each pair's backward flow)")
    p.add_argument("--max-pixels", type=int, help="the node's max_pixels: larger frames are skipped, as the node "
                   "refuses them (default: the node's default)")
    p.add_argument("--force", action="store_true",
                   help="report --outputs even when its flow stamps are not frames of the input bag")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@tool("python -m flownet_ros.evaluation.report")
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.offline == (args.outputs is not None):
        print("error: give exactly one of --outputs BAG or --offline", file=sys.stderr)
        return 2
    spec, = specs_from_args(args)
    opts = ReportOptions(input_bag=args.input_bag, out_dir=args.out, output_bag=args.outputs, topic=args.topic,
                         gt_topic=args.gt_topic, flow_topic=args.flow_topic, node_name=args.node_name,
                         namespace=args.namespace, estimator=spec, baselines=tuple(args.baseline),
                         progress=not args.quiet, consistency=not args.no_consistency, force=args.force,
                         max_pixels=args.max_pixels)
    try:
        report = evaluate(opts)
    except BagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_summary(report)
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
