"""Markdown tables, JSON and plots of evaluation summaries (:mod:`flownet_ros.evaluation.scoring`).

One table form everywhere: a row per method, a column per metric (:data:`COLUMNS`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from flownet_ros.evaluation.scoring import BIN_LABELS, Series

#: column key -> (header, format); ``epe:<bin>`` are the magnitude bins.
COLUMNS: Dict[str, Tuple[str, str]] = {
    "pairs": ("pairs", "{:.0f}"), "pairs_scored": ("pairs", "{:.0f}"), "outputs": ("outputs", "{:.0f}"),
    "frames_dropped": ("dropped", "{:.0f}"),
    "epe": ("EPE (px)", "{:.3f}"), "epe_all": ("EPE all px (px)", "{:.3f}"), "fl_all": ("Fl-all (%)", "{:.2%}"),
    **{f"epe:{b}": (f"EPE {b} px", "{:.2f}") for b in BIN_LABELS},
    "photometric_error": ("photometric error", "{:.2f}"),
    "latency_ms_median": ("ms median", "{:.1f}"), "latency_ms_mean": ("ms mean", "{:.1f}"),
    "latency_ms_p95": ("ms p95", "{:.1f}"),
    "latency_ms_max": ("ms max", "{:.1f}"), "output_rate_hz": ("rate (Hz)", "{:.2f}"),
}
ACCURACY_COLUMNS = (("pairs_scored", "epe", "fl_all") + tuple(f"epe:{b}" for b in BIN_LABELS)
                    + ("latency_ms_median", "latency_ms_mean"))


def value(summary: Dict[str, Any], key: str) -> Any:
    if key.startswith("epe:"):
        return summary.get("epe_bins", {}).get(key[4:])
    return summary.get(key)


def fmt(v: Any, pattern: str) -> str:
    """``v`` by ``pattern``; "-" for a missing value (None, NaN), "inf" for an infinite error (NaN flow)."""
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return pattern.format(v).rstrip("%") if pattern.endswith("%}") else pattern.format(v)


def table(summaries: Sequence[Dict[str, Any]], columns: Sequence[str] = ACCURACY_COLUMNS) -> str:
    """Markdown table: one row per summary (``method`` first), one column per key of :data:`COLUMNS`."""
    lines = ["| method | " + " | ".join(COLUMNS[c][0] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for s in summaries:
        lines.append(f"| {s['method']} | " + " | ".join(fmt(value(s, c), COLUMNS[c][1]) for c in columns) + " |")
    return "\n".join(lines)


def jsonable(x: Any) -> Any:
    """Strict-JSON copy: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lines(ax, t: np.ndarray, series: Sequence[Series], get: Callable[[Series], np.ndarray], ylabel: str,
           title: str) -> None:
    for s in series:
        ax.plot(t, get(s), ".-", ms=3, lw=0.8, label=s.name)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def latency_plot(path: Path, t: np.ndarray, main: Series, others: Sequence[Series] = ()) -> bool:
    """Latency over time and its histogram; False (nothing written) without any latency."""
    lat = np.asarray(main.latency_ms, dtype=np.float64)
    ok = np.isfinite(lat)
    if not ok.any():
        return False
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    a.plot(t[ok], lat[ok], ".-", ms=3, lw=0.8, label=main.name)
    for s in others:
        a.plot(t, s.latency_ms, ".-", ms=3, lw=0.8, label=f"{s.name} (compute)")
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def accuracy_plot(path: Path, t: np.ndarray, series: Sequence[Series]) -> None:
    """EPE (when any method has ground-truth scores) and photometric error over time."""
    has_gt = any(np.isfinite(s.values("epe")).any() for s in series)
    plt = _pyplot()
    fig, axes = plt.subplots(2 if has_gt else 1, 1, figsize=(11, 6 if has_gt else 3.4), squeeze=False)
    if has_gt:
        _lines(axes[0, 0], t, series, lambda s: s.values("epe"), "EPE (px)", "end-point error vs ground truth")
    ax = axes[-1, 0]
    _lines(ax, t, series, lambda s: s.values("photometric"), "photometric error",
           "photometric error of the warped newer frame")
    ax.set_xlabel("frame stamp - first stamp (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def strip_plot(path: Path, strip: List[Dict[str, Any]], rows: Sequence[Tuple[str, str]]) -> None:
    """Grid of frames (row ``img``), colour-coded flows (HxWx2 entries), RGB images (HxWx3 uint8) and maps in
    [0, 1] (HxW, grey); rows are (label, key) of each entry, one column per entry of ``strip``; flows of a
    column share one colour scale."""
    from flownet_ros.flow.colour import flow_to_color

    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), len(strip), figsize=(2.4 * len(strip), 1.9 * len(rows)), squeeze=False)
    for j, s in enumerate(strip):
        fields = [s[key] for _, key in rows if s.get(key) is not None and np.ndim(s[key]) == 3
                  and np.shape(s[key])[2] == 2]
        mags = [float(np.nanmax(np.hypot(f[..., 0], f[..., 1]))) for f in fields]
        max_flow = max([m for m in mags if np.isfinite(m)] + [1e-3])
        for i, (label, key) in enumerate(rows):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = s.get(key)
            if img is None:
                ax.text(0.5, 0.5, "no output", ha="center", va="center", transform=ax.transAxes)
            elif img.ndim == 2:
                ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(flow_to_color(img, max_flow=max_flow) if img.shape[2] == 2 else img)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                moving = s.get("moving_fraction")
                ax.set_title(f"frame {s['index']}" + (f", moving {100 * moving:.1f} %" if moving is not None else ""),
                             fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_json(path: Path, data: Dict[str, Any], indent: Optional[int] = 1) -> None:
    import json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(jsonable(data), indent=indent))
