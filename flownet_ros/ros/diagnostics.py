"""Counters, rates and latency of the node, and their diagnostic_msgs/DiagnosticStatus.

:class:`FlowStats` is thread-safe (the ROS callback and the worker both count). ``report()`` returns
totals plus the rates and latency statistics of the period since the previous report.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from typing import Dict, List, Optional

COUNTERS = ("received", "rejected", "refused_size", "dropped", "processed", "published", "resets", "errors", "idle",
            "color_skipped", "motion_skipped", "nonfinite", "refused_work", "decoder_messages", "backward_flows")
SLOW_DECODE_S = 1.0  # one frame's decoding above this is reported (a VGA JPEG takes milliseconds)


class FlowStats:
    """Totals: received (image messages), rejected (malformed or refused; refused_size: beyond the size
    limits), dropped (stale, replaced in the queue), processed (frames converted by the worker), published
    (flow pairs), resets (pairs refused), errors (exceptions in the worker), idle (frames skipped because
    nobody subscribes to any output), color_skipped / motion_skipped (colour coding / motion fit not
    computed because nobody subscribes to them), nonfinite (pairs whose flow had NaN/inf values: not
    published), refused_work (compressed images refused for their decoding work: JPEGs with too many
    scans), decoder_messages (lines libjpeg / libpng printed while decoding: captured, logged throttled),
    backward_flows (pairs whose backward flow was computed, for ~/confidence, ~/occlusion or ~/moving).
    ``decoding()`` / ``decoded()`` bracket the decoding of a frame: the longest decode of the
    period, or the one still running, is reported."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.totals: Dict[str, int] = {k: 0 for k in COUNTERS}
        self._last_totals = dict(self.totals)
        self._last_t = clock()
        self._latency: List[float] = []
        self._inference: List[float] = []
        self.max_frames_behind = 0
        self.inlier_fraction = math.nan
        self.idle_now = False
        self.paths: Dict[str, List[float]] = {}  # adaptive backend: path -> [pairs, total seconds]
        self.nonfinite_now = False  # the latest pair's flow was NaN/inf (until a flow is published)
        self._decode_t0: Optional[float] = None  # a decode in progress since
        self._decode_max = 0.0

    def idle(self, nobody_listens: bool) -> None:
        """Whether the frame the worker just took found nobody subscribed (then it is counted idle). The
        state lasts until the next frame, so a report over a period without new frames still says idle."""
        with self._lock:
            self.idle_now = nobody_listens
            self.totals["idle"] += int(nobody_listens)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.totals[name] += n
            self.nonfinite_now |= name == "nonfinite" and n > 0

    def decoding(self) -> None:
        """The worker starts decoding a frame."""
        with self._lock:
            self._decode_t0 = self._clock()

    def decoded(self) -> None:
        """The worker finished (or gave up) decoding the frame."""
        with self._lock:
            if self._decode_t0 is not None:
                self._decode_max = max(self._decode_max, self._clock() - self._decode_t0)
            self._decode_t0 = None

    def frames_behind(self, behind: int) -> None:
        """How many accepted frames were newer than the one the worker just took."""
        with self._lock:
            self.max_frames_behind = max(self.max_frames_behind, int(behind))

    def output(self, latency_s: float, inference_s: float, inlier_fraction: Optional[float] = None) -> None:
        with self._lock:
            self.totals["published"] += 1
            self.nonfinite_now = False
            self._latency.append(latency_s)
            self._inference.append(inference_s)
            if inlier_fraction is not None:
                self.inlier_fraction = inlier_fraction

    def flow_path(self, info: Dict) -> None:
        """Count the path the estimator took for a published flow (``Estimator.last_flow_info``; no-op
        for estimators with one path)."""
        if "path" in info:
            with self._lock:
                entry = self.paths.setdefault(str(info["path"]), [0, 0.0])
                entry[0] += 1
                entry[1] += float(info.get("seconds", 0.0))

    def report(self) -> Dict[str, float]:
        """Totals, and for the period since the last report: input/output rate (Hz), latency and
        inference time median/max (s, NaN without output), new rejects/errors/drops, the longest decode (s,
        one still running counted so far)."""
        with self._lock:
            now = self._clock()
            running = now - self._decode_t0 if self._decode_t0 is not None else 0.0
            period = max(now - self._last_t, 1e-9)
            delta = {k: self.totals[k] - self._last_totals[k] for k in COUNTERS}
            lat, inf = self._latency, self._inference
            out: Dict[str, float] = dict(self.totals)
            out.update({
                "period_s": period,
                "input_rate_hz": delta["received"] / period,
                "output_rate_hz": delta["published"] / period,
                "latency_median_s": statistics.median(lat) if lat else math.nan,
                "latency_max_s": max(lat) if lat else math.nan,
                "inference_median_s": statistics.median(inf) if inf else math.nan,
                "new_received": delta["received"], "new_rejected": delta["rejected"],
                "new_errors": delta["errors"], "new_dropped": delta["dropped"],
                "new_nonfinite": delta["nonfinite"],
                "new_published": delta["published"],
                "max_frames_behind": self.max_frames_behind,
                "motion_inlier_fraction": self.inlier_fraction,
                "idle_now": self.idle_now,
                "nonfinite_now": self.nonfinite_now,
                "decode_max_s": max(self._decode_max, running),
                "decoding_now": self._decode_t0 is not None,
            })
            for path, (n, seconds) in self.paths.items():  # totals since start
                out[f"path_{path}_pairs"] = n
                out[f"path_{path}_mean_ms"] = 1e3 * seconds / n
                out[f"path_{path}_fraction"] = n / max(1, self.totals["published"])
            self._decode_max = 0.0
            self._last_totals, self._last_t = dict(self.totals), now
            self._latency, self._inference = [], []
            return out


def status_level(r: Dict[str, float]) -> tuple:
    """(level, message) for a report: ERROR on non-finite flow (until a flow is published again) or worker
    errors, WARN on rejected input or input without output, else OK."""
    from diagnostic_msgs.msg import DiagnosticStatus

    if r["new_nonfinite"] or r["nonfinite_now"]:
        return DiagnosticStatus.ERROR, (f"flow with NaN/inf values, not published ({r['nonfinite']} pairs so "
                                        f"far, {r['new_nonfinite']} in the last {r['period_s']:.1f} s): network "
                                        "output, corrupt weights or fp16/bf16 overflow?")
    if r["new_errors"]:
        return DiagnosticStatus.ERROR, f"{r['new_errors']} processing errors in the last {r['period_s']:.1f} s"
    if r["decode_max_s"] > SLOW_DECODE_S:
        still = "still decoding one frame after" if r["decoding_now"] else "decoding one frame took"
        return DiagnosticStatus.WARN, (f"slow image decoding: {still} {r['decode_max_s']:.1f} s (compressed "
                                       "images too costly to decode: many scans or a large size)")
    if r["new_rejected"]:
        return DiagnosticStatus.WARN, f"{r['new_rejected']} malformed image messages rejected"
    if r["received"] and r["idle_now"]:
        return DiagnosticStatus.OK, "idle: nobody subscribes to the outputs"
    if r["new_received"] and not r["new_published"] and r["received"] > 2:
        return DiagnosticStatus.WARN, "images received but no flow published (pairs reset? see max_frame_gap)"
    if not r["received"]:
        return DiagnosticStatus.OK, "waiting for images"
    return DiagnosticStatus.OK, "ok"


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def make_status(report: Dict[str, float], name: str, hardware_id: str, info: Dict[str, str],
                starting: Optional[str] = None):
    """DiagnosticStatus with ``report`` (latencies in ms) and ``info`` (backend, device, model...);
    ``starting``: one-time start-up work in progress (WARN with that message; images are subscribed afterwards)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    level, message = (DiagnosticStatus.WARN, starting) if starting else status_level(report)
    values = {
        "input_rate_hz": report["input_rate_hz"],
        "output_rate_hz": report["output_rate_hz"],
        "latency_median_ms": report["latency_median_s"] * 1e3,
        "latency_max_ms": report["latency_max_s"] * 1e3,
        "inference_median_ms": report["inference_median_s"] * 1e3,
        "frames_received": report["received"],
        "frames_processed": report["processed"],
        "flow_published": report["published"],
        "frames_dropped": report["dropped"],
        "messages_rejected": report["rejected"],
        "pair_resets": report["resets"],
        "processing_errors": report["errors"],
        "flow_nonfinite": report["nonfinite"],
        "frames_refused_size": report["refused_size"],
        "frames_refused_work": report["refused_work"],
        "decoder_messages": report["decoder_messages"],
        "decode_max_ms": report["decode_max_s"] * 1e3,
        "frames_idle": report["idle"],
        "color_skipped": report["color_skipped"],
        "motion_skipped": report["motion_skipped"],
        "backward_flows": report["backward_flows"],
        "max_frames_behind": report["max_frames_behind"],
        "motion_inlier_fraction": report["motion_inlier_fraction"],
    }
    values.update({k: v for k, v in report.items() if k.startswith("path_")})
    values.update(info)
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])


def status_values(status) -> Dict[str, str]:
    """DiagnosticStatus -> {key: value} (for consumers and tests)."""
    return {kv.key: kv.value for kv in status.values}
