"""Helpers shared by the benchmarks: timing, machine description, Markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, List, Sequence

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = ("wall", "process")


def time_ms(fn: Callable[[], object], device: torch.device | str, warmup: int = 1, repeat: int = 5,
            clock: str = "wall") -> List[float]:
    """Time of ``fn()`` in milliseconds for ``repeat`` runs after ``warmup`` runs (GPU synchronised).

    clock 'wall': elapsed time. 'process': CPU time of this process summed over its threads, which does
    not count time-slices given to other processes (useful on a shared machine with one thread).
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeat):
        t0 = now()
        fn()
        synchronize(device)
        times.append((now() - t0) * 1e3)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line: CPU, cores, torch threads, torch version, GPU."""
    parts = [f"CPU {cpu_name()} ({os.cpu_count()} logical cores, torch threads {torch.get_num_threads()})",
             f"torch {torch.__version__}", f"Python {platform.python_version()}"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})")
    else:
        parts.append("no GPU")
    try:
        load = os.getloadavg()
        parts.append(f"load avg {load[0]:.1f}")
    except OSError:
        pass
    return ", ".join(parts)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """GitHub-flavoured Markdown table (right-aligned numbers)."""
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 1e-2 and v != 0 else (
            f"{v:.2f}" if isinstance(v, float) else str(v))
    body = [[cell(v) for v in r] for r in rows]
    align = ["---:" if rows and isinstance(rows[0][i], (int, float)) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)
