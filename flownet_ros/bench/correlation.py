"""Correlation layer: forward and forward+backward median ms and GFLOP/s of every available backend.

FlowNetC setting (max displacement 20, stride2 2, 1x1 patch -> 441 channels) on f1, f2 = [B, 256, 48, 64].
Backends: flownet_ros compiled kernels (CPU; CUDA when built), the pure-PyTorch reference, and
spatial-correlation-sampler / localcorr when importable (their outputs are reshaped to [B, 441, H, W]
and divided by C, then checked against the reference before timing). "bwd" is fwd+bwd minus fwd.
With --flownetc: FlowNetC (width 1) eval forward at 384x512 on CPU with the compiled correlation vs the
reference, i.e. what the op is worth end to end.
Example: python -m flownet_ros.bench correlation --batch 1 8 --markdown
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from flownet_ros.bench._common import CLOCKS, machine_description, markdown_table, median, time_ms

Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Result:
    """One backend on one configuration: timings, throughput and its difference from the reference."""

    device: str
    dtype: str
    batch: int
    backend: str
    fwd_ms: float
    fwdbwd_ms: float
    fwd_gflops: float
    fwdbwd_gflops: float
    bwd_ms: float
    max_abs_diff: float
    fwd_speedup: Optional[float] = None   # vs the reference on the same device, dtype and batch
    bwd_speedup: Optional[float] = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, plus CUDA when available")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--max-displacement", type=int, default=20)
    p.add_argument("--stride2", type=int, default=2)
    p.add_argument("--dtypes", nargs="+", default=None,
                   help="default: float32 on CPU; float32 float16 bfloat16 on CUDA")
    p.add_argument("--backends", nargs="+", default=None, help="only these backend names")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 5 on CPU, 20 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs (default 1 on CPU, 5 on CUDA)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = default: all cores)")
    p.add_argument("--clock", choices=CLOCKS, default="wall",
                   help="wall time, or process CPU time (robust to other load when --threads 1)")
    p.add_argument("--flownetc", action="store_true",
                   help="instead: FlowNetC eval forward, compiled correlation vs reference")
    p.add_argument("--size", type=int, nargs=2, default=[384, 512], metavar=("H", "W"),
                   help="image size for --flownetc")


# ---- backends -------------------------------------------------------------------------------------

def _ours(md: int, s2: int) -> Fn:
    return lambda a, b: torch.ops.flownet_ros.correlation(a, b, md, s2, 1, 1)


def _reference(md: int, s2: int) -> Fn:
    from flownet_ros.ops import correlation_reference

    return lambda a, b: correlation_reference(a, b, md, s2, 1, 1)


def _spatial_correlation_sampler(md: int, s2: int) -> Fn:
    from spatial_correlation_sampler import spatial_correlation_sample

    p = 2 * (md // s2) + 1

    def fn(a, b):
        out = spatial_correlation_sample(a, b, kernel_size=1, patch_size=p, stride=1, padding=0,
                                         dilation_patch=s2)
        return out.reshape(a.shape[0], p * p, a.shape[2], a.shape[3]) / a.shape[1]
    return fn


def _localcorr(md: int, s2: int) -> Fn:
    from localcorr import get_localcorr_sampler

    p = 2 * (md // s2) + 1
    # localcorr 0.1.x: the Triton sampler (forward kernel in Triton, backward a PyTorch loop over shifts);
    # output [B, P, P, H, W], not divided by C, like spatial-correlation-sampler.
    sampler = get_localcorr_sampler(patch_size=p, dilation_patch=s2, corr_mode="localcorr_triton")

    def fn(a, b):
        return sampler(a, b).reshape(a.shape[0], p * p, a.shape[2], a.shape[3]) / a.shape[1]
    return fn


# The public implementations the issue compares against: name -> factory(max_displacement, stride2).
RIVALS: Dict[str, Callable[[int, int], Fn]] = {
    "spatial-correlation-sampler": _spatial_correlation_sampler,
    "localcorr": _localcorr,
}


def available_backends(device: str, md: int, s2: int) -> Tuple[Dict[str, Fn], Dict[str, str]]:
    """({name: fn}, {name: why unavailable}) for one device."""
    from flownet_ros.ops.correlation import compiled_available, correlation_status

    fns: Dict[str, Fn] = {}
    missing: Dict[str, str] = {}
    name = f"flownet_ros-{device}"
    if compiled_available(device):
        fns[name] = _ours(md, s2)
    else:
        missing[name] = correlation_status()
    fns["reference"] = _reference(md, s2)
    for label, factory in RIVALS.items():
        try:
            fns[label] = factory(md, s2)
        except Exception as exc:  # not installed, or an API we cannot drive
            missing[label] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return fns, missing


# ---- measurement ----------------------------------------------------------------------------------

def flops_forward(b: int, c: int, h: int, w: int, md: int, s2: int) -> float:
    d = 2 * (md // s2) + 1
    return 2.0 * b * c * h * w * d * d  # one multiply-add per channel, displacement and pixel


def measure(fn: Fn, f1: torch.Tensor, f2: torch.Tensor, warmup: int, repeat: int,
            clock: str = "wall") -> Tuple[float, float]:
    """(forward ms, forward+backward ms), medians."""
    def fwd():
        with torch.no_grad():
            fn(f1, f2)

    a = f1.detach().clone().requires_grad_(True)
    b = f2.detach().clone().requires_grad_(True)
    grad = torch.randn(fn(f1, f2).shape, device=f1.device, dtype=f1.dtype)

    def fwdbwd():
        a.grad = b.grad = None
        fn(a, b).backward(grad)

    return (median(time_ms(fwd, f1.device, warmup, repeat, clock)),
            median(time_ms(fwdbwd, f1.device, warmup, repeat, clock)))


# Max |output - float64 reference| accepted before a backend is timed. Outputs are means over C products of
# unit-normal features (|x| < 1); half precision inputs round to ~1e-3 (fp16) / ~8e-3 (bf16) relative.
AGREEMENT_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def run_config(device: str, dtype: torch.dtype, batch: int, args, fns: Dict[str, Fn]) -> List[Result]:
    c, h, w, md, s2 = args.channels, args.height, args.width, args.max_displacement, args.stride2
    gen = torch.Generator(device="cpu").manual_seed(batch)
    f1 = torch.randn(batch, c, h, w, generator=gen).to(device=device, dtype=dtype)
    f2 = torch.randn(batch, c, h, w, generator=gen).to(device=device, dtype=dtype)
    cuda = device == "cuda"
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    repeat = args.repeat if args.repeat is not None else (20 if cuda else 5)
    with torch.no_grad():
        ref_out = _reference(md, s2)(f1.double(), f2.double())
    flops = flops_forward(batch, c, h, w, md, s2)
    tol = AGREEMENT_TOLERANCE[dtype]
    results = []
    for name, fn in fns.items():
        try:
            with torch.no_grad():
                diff = (fn(f1, f2).double() - ref_out).abs().max().item()
            if not diff <= tol:  # also catches NaN
                print(f"  {name} on {device}/{dtype}: output differs from the reference by {diff:.2e} "
                      f"(> {tol:.0e}): not the same function, not timed")
                continue
            fwd_ms, fb_ms = measure(fn, f1, f2, warmup, repeat, args.clock if device == "cpu" else "wall")
        except Exception as exc:
            print(f"  {name} on {device}/{dtype}: failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        results.append(Result(device, str(dtype).replace("torch.", ""), batch, name, fwd_ms, fb_ms,
                              flops / fwd_ms / 1e6, 3 * flops / fb_ms / 1e6, max(fb_ms - fwd_ms, 1e-9), diff))
        print(f"  {device} {str(dtype).replace('torch.', '')} B={batch} {name}: fwd {fwd_ms:.2f} ms, "
              f"fwd+bwd {fb_ms:.2f} ms, max|diff| {diff:.2e}", flush=True)
    ref = next((r for r in results if r.backend == "reference"), None)
    if ref is not None:
        for r in results:
            r.fwd_speedup = ref.fwd_ms / r.fwd_ms
            r.bwd_speedup = ref.bwd_ms / r.bwd_ms
    return results


def table(results: List[Result]) -> str:
    headers = ["device", "dtype", "B", "backend", "fwd ms", "fwd GFLOP/s", "fwd+bwd ms", "fwd+bwd GFLOP/s",
               "bwd ms", "fwd x ref", "bwd x ref", "max abs diff"]
    rows = [[r.device, r.dtype, r.batch, r.backend, r.fwd_ms, r.fwd_gflops, r.fwdbwd_ms, r.fwdbwd_gflops,
             r.bwd_ms, r.fwd_speedup if r.fwd_speedup is not None else "-",
             r.bwd_speedup if r.bwd_speedup is not None else "-", f"{r.max_abs_diff:.1e}"] for r in results]
    return markdown_table(headers, rows)


def run_flownetc(args) -> int:
    """FlowNetC forward (eval, B=1) on CPU with each correlation backend; prints ms and the speed-up."""
    from flownet_ros.models import flownet
    from flownet_ros.ops import correlation, correlation_reference
    from flownet_ros.ops.correlation import compiled_available

    device = "cuda" if args.device == "cuda" else "cpu"
    h, w = args.size
    torch.manual_seed(0)
    model = flownet.FlowNetC(width=1.0).eval().to(device)
    img1 = torch.randn(1, 3, h, w, device=device)
    img2 = torch.randn(1, 3, h, w, device=device)
    warmup = args.warmup if args.warmup is not None else 1
    repeat = args.repeat if args.repeat is not None else 5
    variants = [("reference", correlation_reference)]
    if compiled_available(device):
        variants.insert(0, (f"flownet_ros-{device}", correlation))
    original = flownet.correlation
    times = {}
    try:
        for name, fn in variants:
            flownet.correlation = fn

            def fwd():
                with torch.no_grad():
                    model(img1, img2)
            times[name] = median(time_ms(fwd, device, warmup, repeat, args.clock if device == "cpu" else "wall"))
            print(f"FlowNetC {h}x{w} {device} forward with {name} correlation: {times[name]:.1f} ms", flush=True)
    finally:
        flownet.correlation = original
    if len(times) == 2:
        a, b = list(times.values())
        print(f"speed-up of the FlowNetC forward from the compiled correlation: {b / a:.2f}x")
    return 0


def run(args) -> int:
    from flownet_ros.inference import set_cpu_threads
    from flownet_ros.ops import correlation_status

    set_cpu_threads(args.threads)
    if args.flownetc:
        print(f"machine: {machine_description()}")
        return run_flownetc(args)

    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA requested but torch.cuda.is_available() is False")
        return 2
    print(f"machine: {machine_description()}")
    print(f"extension: {correlation_status()}")
    print(f"clock: {args.clock} (CPU rows), medians of {args.repeat or 'default'} runs")
    print(f"f1, f2 = [B, {args.channels}, {args.height}, {args.width}], max_displacement {args.max_displacement}, "
          f"stride2 {args.stride2}, 1x1 patch; forward "
          f"{flops_forward(1, args.channels, args.height, args.width, args.max_displacement, args.stride2) / 1e9:.3f} "
          f"GFLOP per batch item")
    results: List[Result] = []
    for device in devices:
        fns, missing = available_backends(device, args.max_displacement, args.stride2)
        if args.backends:
            fns = {k: v for k, v in fns.items() if k in args.backends}
        for name, why in missing.items():
            print(f"  {device}: {name} unavailable ({why})")
        dtypes = args.dtypes or (["float32", "float16", "bfloat16"] if device == "cuda" else ["float32"])
        for dt in dtypes:
            for batch in args.batch:
                results += run_config(device, getattr(torch, dt), batch, args, fns)
    print()
    print(table(results) if args.markdown else "\n".join(
        f"{r.device:4s} {r.dtype:8s} B={r.batch:<2d} {r.backend:28s} fwd {r.fwd_ms:9.2f} ms "
        f"{r.fwd_gflops:7.1f} GFLOP/s | "
        f"fwd+bwd {r.fwdbwd_ms:9.2f} ms {r.fwdbwd_gflops:7.1f} GFLOP/s | x ref fwd "
        f"{r.fwd_speedup or 0:5.1f} bwd {r.bwd_speedup or 0:5.1f}" for r in results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine_description(), "results": [asdict(r) for r in results]}, fh, indent=1)
    return 0
