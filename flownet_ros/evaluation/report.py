"""Evaluate optical flow on a rosbag2 bag: latency, rate, drops, photometric error, EPE / Fl-all.

``python -m flownet_ros.evaluation.report INPUT_BAG --outputs OUTPUT_BAG`` pairs the node's flow
messages (recorded by ``replay`` or by ``ros2 bag record`` on a robot) with the input frames by
header stamp; ``--offline`` runs the estimator directly on the bag's frames instead (no ROS
transport). ``--baseline dis`` adds OpenCV DIS on the same frame pairs. Writes ``report.md``,
``report.json`` and PNG plots into ``--out``.

Conventions: a flow message stamped like input frame k is the flow from the previous input frame
to frame k (u right, v down, pixels). A ground-truth topic (32FC2) stamped like frame k holds the
same flow; NaN marks pixels without ground truth. Latency = output bag time - image stamp (the
bag time of an output is its receive time); offline, it is the compute time of the pair.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from flownet_ros.evaluation.bagio import (BagError, BagReader, StampIndex, select_flow_topic,
                                          select_image_topic, stamp_to_ns)
from flownet_ros.evaluation.replay import RATE_KEY, WALL_SPAN_KEY
from flownet_ros.flow.colour import flow_to_color
from flownet_ros.flow.metrics import epe, outlier_counts
from flownet_ros.flow.warping import photometric_error

STRIP_FRAMES = 6


@dataclass
class ReportOptions:
    input_bag: Path
    out_dir: Path
    output_bag: Optional[Path] = None  # None = offline
    topic: Optional[str] = None
    gt_topic: Optional[str] = None
    flow_topic: Optional[str] = None  # default <namespace>/<node_name>/flow, else the only 32FC2 topic
    node_name: str = "flownet"
    namespace: str = ""
    checkpoint: Optional[str] = None  # offline: '' / None = shipped model
    device: str = "auto"
    inference_size: Optional[Tuple[int, int]] = None
    baseline: Optional[str] = None  # 'dis'
    progress: bool = True
    strip_frames: int = STRIP_FRAMES
    rate: Optional[float] = None  # replay rate, for the record only


@dataclass
class Series:
    """Per-pair values of one method; NaN where the value does not exist (no output, no GT)."""

    name: str
    latency_ms: List[float] = field(default_factory=list)
    photometric: List[float] = field(default_factory=list)
    epe: List[float] = field(default_factory=list)
    outliers: List[float] = field(default_factory=list)   # KITTI outlier pixels of the pair
    valid_px: List[float] = field(default_factory=list)   # valid ground-truth pixels of the pair
    recv_ns: List[float] = field(default_factory=list)

    def add(self, latency_ms=math.nan, photometric=math.nan, epe_=math.nan, recv_ns=math.nan):
        self.latency_ms.append(latency_ms)
        self.photometric.append(photometric)
        self.epe.append(epe_)
        self.outliers.append(math.nan)
        self.valid_px.append(math.nan)
        self.recv_ns.append(recv_ns)

    def fl_all_at(self, i: int) -> float:
        """Fl-all (0..1) of pair ``i``; NaN without ground truth or valid pixels."""
        valid_px = self.valid_px[i]
        return self.outliers[i] / valid_px if valid_px > 0 else math.nan  # NaN > 0 is False

    @property
    def fl_all(self) -> List[float]:
        """Per-pair Fl-all (0..1); the set's Fl-all pools pixels instead (:func:`summarize`)."""
        return [self.fl_all_at(i) for i in range(len(self.outliers))]


def _stat(values: Sequence[float], fn) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(fn(v)) if v.size else math.nan


def summarize(series: Series, pairs: int, offline: bool, wall_span_s: Optional[float] = None,
              scored: Optional[np.ndarray] = None, timed: bool = True) -> Dict[str, Any]:
    """Summary numbers of one method over ``pairs`` input frame pairs.

    Outputs: pairs with a timing (``timed``), else with a photometric error. Accuracy means run over
    the pairs in the bool mask ``scored`` (default all), so methods are compared on the same pairs.
    Output rate: offline = outputs / total compute time; ROS = outputs per second of receive time,
    from ``wall_span_s`` (wall-clock first -> last flow, written by the replay) when known, else
    from the output bag times (real receive times in a live recording).
    """
    def values(name: str) -> np.ndarray:
        v = np.asarray(getattr(series, name), dtype=np.float64)
        return v[scored] if scored is not None else v

    got = int(np.isfinite(np.asarray(series.latency_ms if timed else series.photometric, dtype=np.float64)).sum())
    recv = np.asarray(series.recv_ns, dtype=np.float64)
    recv = np.sort(recv[np.isfinite(recv)])
    if not timed:
        rate = math.nan
    elif offline:
        total_s = _stat(series.latency_ms, np.sum) / 1e3
        rate = got / total_s if got and total_s > 0 else math.nan
    else:
        span = wall_span_s if wall_span_s else ((recv[-1] - recv[0]) / 1e9 if recv.size > 1 else 0.0)
        rate = (recv.size - 1) / span if span > 0 else math.nan
    return {
        "method": series.name,
        "pairs": pairs,
        "outputs": got,
        "frames_dropped": pairs - got,
        "latency_ms_median": _stat(series.latency_ms, np.median),
        "latency_ms_p95": _stat(series.latency_ms, lambda v: np.percentile(v, 95)),
        "latency_ms_max": _stat(series.latency_ms, np.max),
        "output_rate_hz": rate,
        "photometric_error": _stat(values("photometric"), np.mean),
        "epe": _stat(values("epe"), np.mean),
        "fl_all": _pooled_rate(values("outliers"), values("valid_px")),
    }


def _pooled_rate(outliers: np.ndarray, valid_px: np.ndarray) -> float:
    """Fl-all of a set: outlier pixels / valid pixels over the pairs that have both (as evaluate.py)."""
    ok = np.isfinite(outliers) & np.isfinite(valid_px)
    total = valid_px[ok].sum()
    return float(outliers[ok].sum() / total) if total > 0 else math.nan


def decode_image(msg: Any) -> np.ndarray:
    """sensor_msgs Image or CompressedImage (rosbags) -> HxWx3 uint8 RGB via the node's conversions."""
    from flownet_ros.ros.conversions import compressed_msg_to_rgb, image_msg_to_rgb

    img = compressed_msg_to_rgb(msg) if hasattr(msg, "format") else image_msg_to_rgb(msg)
    return img if img.flags.writeable else img.copy()  # rgb8 can be a view of the read-only bag buffer


def decode_flow(msg: Any) -> np.ndarray:
    from flownet_ros.ros.conversions import image_msg_to_flow

    return image_msg_to_flow(msg)


def _make_estimator(opts: ReportOptions):
    from flownet_ros.inference import FlowEstimator

    return FlowEstimator.from_checkpoint(opts.checkpoint or None, device=opts.device,
                                         inference_size=opts.inference_size)


def _make_baseline(name: str):
    if name == "dis":
        from flownet_ros.inference.dis import DISEstimator

        return DISEstimator()
    raise ValueError(f"unknown baseline {name!r} (choose: dis)")


def _timed(estimator, img1: np.ndarray, img2: np.ndarray) -> Tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    flow = estimator.estimate(img1, img2)
    return flow, (time.perf_counter() - t0) * 1e3


def _diagnostics(bag: BagReader, node_name: str) -> Dict[str, str]:
    """key/values of the node's last /diagnostics status (status name contains the node name)."""
    if "/diagnostics" not in bag.topics:
        return {}
    last: Dict[str, str] = {}
    for m in bag.messages(["/diagnostics"]):
        for status in m.msg.status:
            if node_name in status.name:
                last = {"name": status.name, "message": status.message,
                        **{kv.key: kv.value for kv in status.values}}
    return last


class _Sources:
    """Open bags, chosen topics and stamp-joined streams of one evaluation (close() when done)."""

    def __init__(self, opts: ReportOptions):
        self.readers: List[BagReader] = []
        try:
            self._setup(opts)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path) -> BagReader:
        bag = BagReader(path)
        bag.open()
        self.readers.append(bag)
        return bag

    def _setup(self, opts: ReportOptions) -> None:
        self.input = self._open(opts.input_bag)
        self.topic, self.msgtype = select_image_topic(self.input, opts.topic)
        self.n_frames = self.input.message_count(self.topic)
        self.output = self._open(opts.output_bag) if opts.output_bag is not None else None
        self.flow_topic = None
        self.pair_of: Dict[int, int] = {}  # newer stamp -> older stamp, from the node's ~/flow_pair
        if self.output is not None:
            ns = "/" + opts.namespace.strip("/") if opts.namespace.strip("/") else ""
            self.flow_topic = opts.flow_topic or f"{ns}/{opts.node_name}/flow"
            if self.flow_topic not in self.output.topics:
                if opts.flow_topic:
                    select_flow_topic(self.output, self.flow_topic)  # raises, naming the bag and its topics
                self.flow_topic = select_flow_topic(self.output, None, exclude=[opts.gt_topic or ""])
                if self.flow_topic is None:
                    raise BagError(f"bag {self.output.path} has no flow output (32FC2) topic; topics: "
                                   + ", ".join(sorted(self.output.topics)))
            pair_topic = self.flow_topic.rsplit("/", 1)[0] + "/flow_pair"
            if self.output.topics.get(pair_topic) == "sensor_msgs/msg/TimeReference":
                self.pair_of = {m.stamp_ns: stamp_to_ns(m.msg.time_ref) for m in self.output.messages([pair_topic])}
        same_bag = self.output is not None and self.output.path.resolve() == self.input.path.resolve()
        self.gt_topic = select_flow_topic(self.input, opts.gt_topic, exclude=[self.flow_topic] if same_bag else [])
        self.flows = StampIndex(self.output, self.flow_topic) if self.output is not None else None
        self.gts = StampIndex(self.input, self.gt_topic) if self.gt_topic else None

    def frames(self) -> Iterator[Tuple[int, np.ndarray]]:
        """(stamp ns, HxWx3 uint8 RGB) of the camera topic in bag order."""
        for k, m in enumerate(self.input.messages([self.topic])):
            try:
                yield m.stamp_ns, decode_image(m.msg)
            except ValueError as err:
                raise BagError(f"bag {self.input.path}: frame {k} of {self.topic}: {err}") from err

    def ground_truth(self, stamp: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """(flow [H,W,2] with NaN set to 0, valid [H,W]) for the pair ending at ``stamp``, or (None, None)."""
        got = self.gts.get(stamp) if self.gts is not None else None
        if got is None:
            return None, None
        gt = decode_flow(got.msg)
        valid = np.isfinite(gt).all(axis=-1)
        return np.where(valid[..., None], gt, 0).astype(np.float32), valid

    def close(self) -> None:
        for r in self.readers:
            r.close()
        self.readers = []


#: decoded frames kept for pairing node outputs with an older frame than the previous one
FRAME_CACHE = 64


def evaluate(opts: ReportOptions) -> Dict[str, Any]:
    """Per-frame metrics and summary; writes report.md, report.json and plots to ``opts.out_dir``.

    ROS mode: the node's flow for frame k is scored on the pair it reports on ``~/flow_pair``
    (older = previous input frame if the topic is absent); EPE / Fl-all only when that pair is two
    consecutive frames, the pair the ground truth describes. Baseline and zero flow: consecutive pairs.
    """
    offline = opts.output_bag is None
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = _Sources(opts)
    try:
        estimator = _make_estimator(opts) if offline else None
        baseline = _make_baseline(opts.baseline) if opts.baseline else None
        main = Series("FlowNet offline" if offline else f"node {src.flow_topic}")
        base = Series(f"{opts.baseline} offline") if baseline else None
        zero = Series("zero flow")
        n = src.n_frames
        strip_at = set(np.linspace(1, max(1, n - 1), min(opts.strip_frames, max(0, n - 1))).round().astype(int))
        strip: List[Dict[str, Any]] = []
        stamps: List[int] = []
        per_frame: List[Dict[str, Any]] = []
        cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        spanning = 0
        from tqdm import tqdm

        for k, (stamp, img) in enumerate(tqdm(src.frames(), total=n, desc="evaluate", unit="frame",
                                              disable=not opts.progress, leave=False)):
            stamps.append(stamp)
            cache[stamp] = img
            if len(cache) > FRAME_CACHE:
                cache.popitem(last=False)
            if k == 0:
                continue
            prev_stamp = stamps[-2]
            prev = cache[prev_stamp]
            gt, valid = src.ground_truth(stamp)
            rec: Dict[str, Any] = {"index": k, "stamp_ns": stamp}
            older, flow = prev_stamp, None
            if offline:
                flow, ms = _timed(estimator, prev, img)
                main.add(latency_ms=ms)
            else:
                main.add()
                out = src.flows.get(stamp)
                if out is not None:
                    flow = decode_flow(out.msg)
                    if flow.shape[:2] != img.shape[:2]:
                        raise BagError(f"bag {src.output.path}: flow for frame {k} is {flow.shape[1]}x"
                                       f"{flow.shape[0]} but the image is {img.shape[1]}x{img.shape[0]}")
                    main.latency_ms[-1] = (out.time_ns - stamp) / 1e6
                    main.recv_ns[-1] = float(out.time_ns)
                    older = src.pair_of.get(stamp, prev_stamp)
                    spanning += older != prev_stamp
            rec["older_stamp_ns"] = older
            # every method is scored on the pair the node used; ground truth only fits consecutive frames
            first = cache.get(older)
            if first is not None:
                gt_pair = gt if older == prev_stamp else None
                if flow is not None:
                    _score(main, first, img, flow, gt_pair, valid)
                zero.add()
                _score(zero, first, img, None, gt_pair, valid)
            else:  # the node paired with a frame older than the cache holds: not scored
                zero.add()
            bflow = None
            if baseline is not None:
                if first is not None:
                    bflow, bms = _timed(baseline, first, img)
                    base.add(latency_ms=bms)
                    _score(base, first, img, bflow, gt_pair, valid)
                else:
                    base.add()
            for key, s in [("main", main), ("zero", zero)] + ([("baseline", base)] if base else []):
                rec[key] = {"latency_ms": s.latency_ms[-1], "photometric": s.photometric[-1],
                            "epe": s.epe[-1], "fl_all": s.fl_all_at(-1)}
            per_frame.append(rec)
            if k in strip_at:
                strip.append({"index": k, "img": img, "flow": flow, "gt": gt, "baseline": bflow})
        unmatched = sorted(set(src.flows.times) - set(stamps[1:])) if src.flows is not None else []
        node_info = _diagnostics(src.output, opts.node_name) if src.output is not None else {}
        custom = src.output.custom_data if src.output is not None else {}
    finally:
        src.close()

    pairs = max(0, len(stamps) - 1)
    span = (max(stamps) - min(stamps)) / 1e9 if len(stamps) > 1 else 0.0
    wall_span = float(custom[WALL_SPAN_KEY]) if WALL_SPAN_KEY in custom else None
    replay_rate = opts.rate if opts.rate is not None else (
        float(custom[RATE_KEY]) if RATE_KEY in custom else None)
    # accuracy rows: over the pairs the node produced a flow for (all pairs offline), same pairs for all
    scored = None if offline else np.isfinite(np.asarray(main.recv_ns, dtype=np.float64))
    summaries = [summarize(main, pairs, offline, wall_span, scored)]
    if base is not None:
        summaries.append(summarize(base, pairs, True, scored=scored))
    summaries.append(summarize(zero, pairs, True, scored=scored, timed=False))
    report = {
        "input_bag": str(opts.input_bag), "output_bag": str(opts.output_bag) if opts.output_bag else None,
        "mode": "offline" if offline else "ros", "image_topic": src.topic, "image_type": src.msgtype,
        "flow_topic": src.flow_topic, "gt_topic": src.gt_topic, "frames": len(stamps), "pairs": pairs,
        "input_rate_hz": (len(stamps) - 1) / span if span > 0 else math.nan, "replay_rate": replay_rate,
        "outputs_without_input": len([s for s in unmatched if s != (stamps[0] if stamps else None)]),
        "pairs_spanning_dropped_frames": spanning,
        "estimator": estimator.description if estimator is not None else None,
        "baseline": baseline.description if baseline is not None else None,
        "node_diagnostics": node_info,
        "summary": summaries,
        "per_frame": per_frame,
        "times_s": [(s - stamps[0]) / 1e9 for s in stamps[1:]],
    }
    report["plots"] = write_plots(report, main, base, zero, strip, out_dir)
    (out_dir / "report.json").write_text(json.dumps(_jsonable(report), indent=1))
    (out_dir / "report.md").write_text(markdown(report))
    return report


def _score(series: Series, img1, img2, flow, gt, valid) -> None:
    """Fill the last entry of ``series`` with photometric error and, with ground truth, EPE / Fl-all.

    ``flow`` None = zero flow: the warp is the identity, so the error is simply mean |img1 - img2|.
    """
    if flow is None:
        series.photometric[-1] = float(np.abs(img1.astype(np.float32) - img2).mean(dtype=np.float64))
        flow = np.zeros(img1.shape[:2] + (2,), np.float32)
    else:
        series.photometric[-1] = photometric_error(img1, img2, flow)
    if gt is not None:
        series.epe[-1] = epe(flow, gt, valid)
        outliers, valid_px = outlier_counts(flow, gt, valid)
        series.outliers[-1], series.valid_px[-1] = outliers, valid_px


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


ROWS = [("pairs", "frame pairs", "{:.0f}"), ("outputs", "outputs", "{:.0f}"),
        ("frames_dropped", "frames dropped", "{:.0f}"),
        ("latency_ms_median", "latency median (ms)", "{:.1f}"), ("latency_ms_p95", "latency p95 (ms)", "{:.1f}"),
        ("latency_ms_max", "latency max (ms)", "{:.1f}"), ("output_rate_hz", "output rate (Hz)", "{:.2f}"),
        ("photometric_error", "photometric error (0..255)", "{:.2f}"), ("epe", "EPE (px)", "{:.3f}"),
        ("fl_all", "Fl-all (%)", "{:.2%}")]


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value).rstrip("%") if fmt.endswith("%}") else fmt.format(value)


def summary_table(report: Dict[str, Any]) -> str:
    """Markdown table: one column per method."""
    cols = report["summary"]
    lines = ["| metric | " + " | ".join(c["method"] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for key, label, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(c.get(key), fmt) for c in cols) + " |")
    return "\n".join(lines)


def markdown(report: Dict[str, Any]) -> str:
    mode = ("offline (estimator run directly on the bag frames, no ROS transport; latency = compute time)"
            if report["mode"] == "offline" else
            "ROS (node outputs recorded from real DDS; latency = output receive time - image stamp)")
    lines = [f"# Optical flow report: {Path(report['input_bag']).name}", "",
             f"- input bag: `{report['input_bag']}`, topic `{report['image_topic']}` ({report['image_type']}), "
             f"{report['frames']} frames at {_fmt(report['input_rate_hz'], '{:.1f}')} Hz",
             f"- mode: {mode}"]
    if report["output_bag"]:
        lines.append(f"- output bag: `{report['output_bag']}`, flow topic `{report['flow_topic']}`"
                     + (f", replay rate {report['replay_rate']:g}" if report.get("replay_rate") is not None else ""))
    lines.append(f"- ground truth: `{report['gt_topic']}`" if report["gt_topic"] else
                 "- ground truth: none in the bag (EPE / Fl-all not available)")
    if report.get("estimator"):
        lines.append(f"- estimator: {report['estimator']}")
    if report.get("baseline"):
        lines.append(f"- baseline: {report['baseline']}")
    diag = report.get("node_diagnostics") or {}
    if diag:  # the node's own latency uses its clock: wall time unless it ran with use_sim_time + /clock
        lines.append("- node diagnostics (last; all values in report.json): "
                     + ", ".join(f"{k}={v}" for k, v in diag.items() if "latency" not in k))
    if report.get("pairs_spanning_dropped_frames"):
        lines.append(f"- {report['pairs_spanning_dropped_frames']} node output(s) paired frames further apart than "
                     "consecutive (frames dropped in between); EPE is not scored for those")
    if report.get("outputs_without_input"):
        lines.append(f"- {report['outputs_without_input']} flow output(s) had no matching input frame stamp")
    lines += ["", "## Summary", "", summary_table(report), "",
              "Photometric error: mean |older frame - newer frame warped back by the flow| (0..255) over "
              "pixels that stay in the image; zero flow = the same without motion compensation. "
              + ("Accuracy rows average over the pairs the node produced a flow for; every column is scored "
                 "on the pair the node used." if report["mode"] == "ros" else "")
              + (" Baseline latency = its compute time per pair (no transport)." if report.get("baseline") else ""),
              ""]
    plots = report.get("plots", {})
    for key, title in (("latency", "Latency"), ("accuracy", "Accuracy over time"), ("strip", "Frames")):
        if key in plots:
            lines += [f"## {title}", "", f"![{title}]({plots[key]})", ""]
    return "\n".join(lines)


def print_summary(report: Dict[str, Any], file=None) -> None:
    print(summary_table(report), file=file or sys.stdout)


def write_plots(report: Dict[str, Any], main: Series, base: Optional[Series], zero: Series,
                strip: List[Dict[str, Any]], out_dir: Path) -> Dict[str, str]:
    """latency.png, accuracy.png, strip.png (matplotlib Agg); returns {name: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(report["times_s"], dtype=np.float64)
    plots: Dict[str, str] = {}
    lat = np.asarray(main.latency_ms, dtype=np.float64)
    if np.isfinite(lat).any():
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
        ok = np.isfinite(lat)
        a.plot(t[ok], lat[ok], ".-", ms=3, lw=0.8, label=main.name)
        if base is not None:
            a.plot(t, base.latency_ms, ".-", ms=3, lw=0.8, label=f"{base.name} (compute)")
        a.set_xlabel("frame stamp - first stamp (s)")
        a.set_ylabel("latency (ms)")
        a.set_title("latency over time")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        b.hist(lat[ok], bins=min(40, max(5, int(ok.sum() // 3))))
        b.set_xlabel("latency (ms)")
        b.set_ylabel("frames")
        b.set_title("latency histogram")
        fig.tight_layout()
        fig.savefig(out_dir / "latency.png", dpi=100)
        plt.close(fig)
        plots["latency"] = "latency.png"
    has_gt = np.isfinite(np.asarray(main.epe + (base.epe if base else []) + zero.epe, dtype=np.float64)).any()
    fig, axes = plt.subplots(2 if has_gt else 1, 1, figsize=(11, 6 if has_gt else 3.4), squeeze=False)
    row = 0
    if has_gt:
        ax = axes[0, 0]
        for s in [main] + ([base] if base else []) + [zero]:
            ax.plot(t, s.epe, ".-", ms=3, lw=0.8, label=s.name)
        ax.set_ylabel("EPE (px)")
        ax.set_title("end-point error vs ground truth")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        row = 1
    ax = axes[row, 0]
    for s in [main] + ([base] if base else []) + [zero]:
        ax.plot(t, s.photometric, ".-", ms=3, lw=0.8, label=s.name)
    ax.set_xlabel("frame stamp - first stamp (s)")
    ax.set_ylabel("photometric error")
    ax.set_title("photometric error of the warped newer frame")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=100)
    plt.close(fig)
    plots["accuracy"] = "accuracy.png"
    if strip:
        rows = [("frame", "img")] + [(main.name, "flow")]
        if any(s["gt"] is not None for s in strip):
            rows.append(("ground truth", "gt"))
        if any(s["baseline"] is not None for s in strip):
            rows.append((base.name if base else "baseline", "baseline"))
        fig, axes = plt.subplots(len(rows), len(strip), figsize=(2.4 * len(strip), 1.9 * len(rows)), squeeze=False)
        for j, s in enumerate(strip):
            fields = [s[key] for _, key in rows[1:] if s[key] is not None]
            mags = [float(np.hypot(f[..., 0], f[..., 1]).max()) for f in fields]
            max_flow = max([m for m in mags if np.isfinite(m)] + [1e-3])
            for i, (label, key) in enumerate(rows):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                value = s[key]
                if value is None:
                    ax.text(0.5, 0.5, "no output", ha="center", va="center", transform=ax.transAxes)
                else:
                    ax.imshow(value if key == "img" else flow_to_color(value, max_flow=max_flow))
                if j == 0:
                    ax.set_ylabel(label, fontsize=8)
                if i == 0:
                    ax.set_title(f"frame {s['index']}", fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "strip.png", dpi=90)
        plt.close(fig)
        plots["strip"] = "strip.png"
    return plots


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.report",
                                description=__doc__.split("\n")[0])
    p.add_argument("input_bag", type=Path, help="the replayed (input) bag with the camera topic")
    p.add_argument("--outputs", type=Path, help="bag with the node's outputs (replay or ros2 bag record)")
    p.add_argument("--offline", action="store_true", help="run the estimator on the frames, no ROS")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--topic", help="camera topic (default: the only one)")
    p.add_argument("--gt-topic", help="ground-truth flow topic, 32FC2 (default: the only 32FC2 topic, if any)")
    p.add_argument("--flow-topic", help="flow topic in the output bag (default <ns>/<node>/flow)")
    p.add_argument("--node-name", default="flownet")
    p.add_argument("--namespace", default="")
    p.add_argument("--checkpoint", help="offline: checkpoint (default: the shipped model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--inference-size", type=int, nargs=2, metavar=("H", "W"),
                   help="offline: network input size (multiples of 64)")
    p.add_argument("--baseline", choices=("dis",), help="also run this baseline on the same pairs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.offline == (args.outputs is not None):
        print("error: give exactly one of --outputs BAG or --offline", file=sys.stderr)
        return 2
    opts = ReportOptions(input_bag=args.input_bag, out_dir=args.out, output_bag=args.outputs, topic=args.topic,
                         gt_topic=args.gt_topic, flow_topic=args.flow_topic, node_name=args.node_name,
                         namespace=args.namespace, checkpoint=args.checkpoint, device=args.device,
                         inference_size=tuple(args.inference_size) if args.inference_size else None,
                         baseline=args.baseline, progress=not args.quiet)
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
