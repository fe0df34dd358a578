"""Runtime settings: device and precision (one definition for inference and training), and the
process-wide CPU settings (thread pools, heap allocator).

The process-wide ones change the whole process, so only entry points call them (the ROS node, the
evaluation CLI, the trainer, benchmarks), never library code.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys

import torch

log = logging.getLogger("flownet_ros")

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


#: Precision names -> autocast dtype (fp32 = no autocast). fp16/bf16 need CUDA.
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` = CUDA if available else CPU; ``cuda`` without CUDA raises ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def effective_precision(precision: str, device: torch.device) -> str:
    """``precision`` if this device runs it, else fp32 (with a warning): reduced precision is CUDA-only."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "fp32" and device.type != "cuda":
        log.warning("precision %s needs CUDA; running fp32 on %s", precision, device)
        return "fp32"
    return precision


def autocast(precision: str):
    """Context manager: CUDA autocast to fp16/bf16, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=PRECISIONS[precision])


def set_cpu_threads(threads: int) -> int:
    """Limit CPU parallelism of this process to ``threads`` (torch intra-op threads and OpenCV's pool:
    DIS, resizing, colour coding, colour conversion); 0 leaves the libraries' defaults (all cores).
    On a robot this keeps cores free for other nodes, and it avoids OpenMP's collapse when another
    process holds a core (see docs/node.md). Returns torch's thread count in effect."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads > 0:
        import cv2

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    return torch.get_num_threads()


def _glibc():
    """The C library if it is glibc's (has mallopt), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # not musl


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``, every arena).

    With :func:`keep_frame_buffers_in_heap`, frame-sized buffers stay in the heap for reuse; when the
    frame size changes, the old size's buffers become free chunks the next sizes do not fit, and a node
    fed a new size every pair grew from 490 to 720 MB and kept it back at VGA (issue 24). Call it after
    a size change: a few ms (4-20 ms measured on a loaded 2-core machine). True if glibc did it.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim(0)
    return True


def keep_frame_buffers_in_heap() -> bool:
    """Stop glibc from giving every large per-frame buffer its own mmap (and munmap on free).

    By default glibc serves allocations above a dynamic threshold (128 KiB, raised as blocks are
    freed) with fresh mmaps, so each VGA temporary of numpy, OpenCV or torch costs page faults on
    every frame. Which side of the threshold a buffer falls on depends on the process's history
    (importing torch._dynamo moves it), and in the node it made colour coding about 3x slower
    (docs/benchmarks.md). Fixing the thresholds at 32 MiB / 64 MiB keeps such buffers in the heap
    for reuse; memory is bounded by the per-frame working set. True if applied (glibc only).
    """
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    log.debug("glibc malloc thresholds %s", "set" if ok else "not set")
    return ok
