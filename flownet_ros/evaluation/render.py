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


def _is_flow(a: Any) -> bool:
    return a is not None and np.ndim(a) == 3 and np.shape(a)[2] == 2


def strip_scale(strip: List[Dict[str, Any]], keys: Sequence[str]) -> float:
    """The one colour scale of a strip: the largest finite |flow| (px) of every flow (HxWx2 entry) ``keys``
    shows in it."""
    mags = [float(np.nanmax(np.hypot(f[..., 0], f[..., 1]))) for s in strip for k in keys
            if _is_flow(f := s.get(k)) and np.isfinite(f).any()]
    return max([m for m in mags if math.isfinite(m)] + [1e-3])


def colour_wheel(max_flow: float, size: int = 101) -> np.ndarray:
    """[size, size, 3] uint8 legend of :func:`flow_to_color` at ``max_flow``: the flow (x, y) at each point
    of a disc of radius ``max_flow`` (x right, y down), white outside."""
    from flownet_ros.flow.colour import flow_to_color

    r = np.linspace(-max_flow, max_flow, size, dtype=np.float32)
    field = np.dstack(np.meshgrid(r, r))
    img = flow_to_color(field, max_flow=max_flow)
    img[np.hypot(field[..., 0], field[..., 1]) > max_flow] = 255
    return img


def strip_plot(path: Path, strip: List[Dict[str, Any]], rows: Sequence[Tuple[str, str]]) -> float:
    """Grid of frames (row ``img``), colour-coded flows (HxWx2 entries), RGB images (HxWx3 uint8) and maps in
    [0, 1] (HxW, grey); rows are (label, key) of each entry, one column per entry of ``strip``; every flow on
    one colour scale (:func:`strip_scale`), with a colour wheel that shows the scale; returns it (px)."""
    from flownet_ros.flow.colour import flow_to_color

    max_flow = strip_scale(strip, [key for _, key in rows if key != "img"])
    plt = _pyplot()
    cols = len(strip) + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 1.9 * len(rows)), squeeze=False)
    for j, s in enumerate(strip):
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
                ax.imshow(flow_to_color(img, max_flow=max_flow) if _is_flow(img) else img)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                moving = s.get("moving_fraction")
                ax.set_title(f"frame {s['index']}" + (f", moving {100 * moving:.1f} %" if moving is not None else ""),
                             fontsize=8)
    for ax in axes[:, -1]:
        ax.axis("off")
    legend = axes[min(1, len(rows) - 1), -1]
    legend.imshow(colour_wheel(max_flow), extent=(-max_flow, max_flow, max_flow, -max_flow))
    legend.set_title(f"colour scale: |flow| {max_flow:.2f} px\nsaturated (max of this strip)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return max_flow


def write_json(path: Path, data: Dict[str, Any], indent: Optional[int] = 1) -> None:
    import json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(jsonable(data), indent=indent))
