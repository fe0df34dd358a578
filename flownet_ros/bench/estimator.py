"""End-to-end flow estimation per image pair: FlowEstimator (shipped / full-width FlowNetC) next to OpenCV DIS.

Times ``estimate(img1, img2)`` (uint8 in, HxWx2 float32 pixels out: preprocessing, network, resize back)
on a 640x480 procedural pair, median of ``--repeat`` runs, for each inference size given.
"""

from __future__ import annotations

import argparse


from flownet_ros.bench._common import machine_description, median, time_ms
from flownet_ros.inference import FlowEstimator
from flownet_ros.models import ModelSpec
from flownet_ros.models.checkpoint import CheckpointError


def _size(text: str):
    h, w = text.lower().split("x")
    return int(h), int(w)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--inference-sizes", type=_size, nargs="+", default=[(512, 640), (384, 512), (256, 320)],
                   help="network sizes HxW to time (multiples of 64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = default: all cores)")
    p.add_argument("--full-width", action="store_true",
                   help="also time the paper-width FlowNetC (random weights; speed only)")


def _estimators(args):
    try:
        shipped = FlowEstimator.from_checkpoint(None, device=args.device, precision=args.precision)
        yield "shipped " + shipped.description.split(" from ")[0], shipped
    except CheckpointError as exc:
        print(f"(no shipped model: {exc})")
    if args.full_width:
        spec = ModelSpec(width=1.0)
        yield "flownetc width 1 (paper)", FlowEstimator(spec.build(), spec, device=args.device,
                                                        precision=args.precision)


def run(args) -> int:
    from flownet_ros.data.procedural import render_pair
    from flownet_ros.inference import set_cpu_threads
    from flownet_ros.inference.dis import DISEstimator

    set_cpu_threads(args.threads)
    pair = render_pair(0, (args.height, args.width))
    img1, img2 = pair["img1"], pair["img2"]
    rows = []
    dis = DISEstimator(preset="medium")
    dis_ms = median(time_ms(lambda: dis.estimate(img1, img2), "cpu", warmup=1, repeat=args.repeat))
    rows.append(("OpenCV DIS medium (reference)", "native", dis_ms))
    for name, est in _estimators(args):
        for size in args.inference_sizes:
            est.inference_size = size
            ms = median(time_ms(lambda: est.estimate(img1, img2), est.device, warmup=1, repeat=args.repeat))
            rows.append((f"{name} [{est.device.type}, {est.precision}]", f"{size[0]}x{size[1]}", ms))
    print(f"\nEstimator, {args.width}x{args.height} input, median of {args.repeat}; {machine_description()}\n")
    print("| estimator | network size | median ms/pair | pairs/s | time / DIS |")
    print("|---|---|---|---|---|")
    for name, size, ms in rows:
        print(f"| {name} | {size} | {ms:.1f} | {1000.0 / ms:.2f} | {ms / dis_ms:.2f}x |")
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
