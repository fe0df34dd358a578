"""Flow per frame pair, part by part: network, refinement, the node's whole per-frame path, next to DIS.

    python -m flownet_ros.bench estimator [--inference-size auto 384x512] [--refine none variational dis]
        [--directions forward both]

On a 640x480 generated pair (real photos, ``--photos skimage`` needs no download), median of ``--repeat``:

* ``DIS <preset>``: OpenCV DIS alone (grey conversion + flow), the reference;
* ``network``: the FlowNet on two prepared frames (normalisation, resize, forward, one upsampling, the
  copy to the host) at each network size (``auto`` = the estimator's automatic size); ``bidirectional``
  (with ``--directions both``): the same run both ways in one batch and averaged, at the first size;
* ``refine <name>``: the refinement alone, on the network's flow;
* ``node path (<backend>, refine <name>)``: what the node does per frame in steady state: prepare the new
  frame, flow (+ refinement), colour coding and the motion fit (``FlowPipeline.process``), for every
  ``--backend`` (``flownet adaptive``; the adaptive row names the path its check chose for this pair).
"""

from __future__ import annotations

import argparse
import itertools
from typing import List, Tuple

from flownet_ros.bench._common import machine_description, median, time_ms
from flownet_ros.inference.classic import DIS_PRESETS
from flownet_ros.inference.factory import add_estimator_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    add_estimator_arguments(p, many=True)  # --inference-size: the sizes to time; --refine: the refinements
    p.add_argument("--dis-alone", nargs="+", default=list(DIS_PRESETS), choices=tuple(DIS_PRESETS),
                   help="DIS presets timed alone (the last one is the reference column)")
    p.add_argument("--photos", default="skimage", choices=("train", "skimage"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = default: all cores)")
    p.add_argument("--full-width", action="store_true",
                   help="also time the paper-width FlowNetC network (random weights; speed only)")


def _pair(args):
    from flownet_ros.data.generator import GeneratedFlowDataset

    s = GeneratedFlowDataset(size=(args.height, args.width), length=1, seed=12345, photos=args.photos)[0]
    return s["img1"], s["img2"]


def _network_rows(net, img1, img2, args, label: str, sizes=None) -> List[Tuple[str, str, float]]:
    rows = []
    a, b = net.prepare(img1), net.prepare(img2)
    for size in sizes or args.inference_size:
        net.configure(inference_size=size)
        ms = median(time_ms(lambda: net.flow(a, b), net.torch_device, warmup=1, repeat=args.repeat))
        net_h, net_w = net.network_size(args.height, args.width)
        rows.append((f"{label} [{net.torch_device.type}, {net.precision}]", f"{net_h}x{net_w}", ms))
    net.configure(inference_size=args.inference_size[0])
    return rows


def _refine_rows(net, img1, img2, args) -> List[Tuple[str, str, float]]:
    from flownet_ros.inference.classic import to_grey
    from flownet_ros.inference.refine import make_refiner

    flow = net.estimate(img1, img2)
    g1, g2 = to_grey(img1), to_grey(img2)
    rows = []
    for name in args.refine:
        if name == "none":
            continue
        refiner = make_refiner(name, args.dis_preset[0])
        rows.append((f"refine {name}" + (f" ({args.dis_preset[0]})" if name == "dis" else ""), "full",
                     median(time_ms(lambda: refiner.refine(g1, g2, flow), "cpu", warmup=1, repeat=args.repeat))))
    return rows


def _node_path_rows(img1, img2, args) -> List[Tuple[str, str, float]]:
    """FlowPipeline.process on alternating frames: one preparation, flow, refinement, colour and motion, for
    every --backend x --refine (the adaptive backend's row says which path this pair took)."""
    from flownet_ros.inference.factory import EstimatorSpec, build_estimator
    from flownet_ros.ros.pairing import Frame, FramePairer
    from flownet_ros.ros.pipeline import FlowPipeline

    rows = []
    for backend, name in itertools.product(args.backend, args.refine):
        est = build_estimator(EstimatorSpec(backend=backend, checkpoint=args.checkpoint[0], device=args.device,
                                            precision=args.precision, inference_size=args.inference_size[0],
                                            refine=name, dis_preset=args.dis_preset[0]))
        pipe = FlowPipeline(est, FramePairer(0.0))
        frames = itertools.count()

        def step():
            k = next(frames)
            pipe.process(Frame(img2 if k % 2 else img1, k * 33_333_333, None, "rgb8"))

        step()
        ms = median(time_ms(step, "cpu", warmup=2, repeat=args.repeat))
        path = est.last_flow_info().get("path")
        label = f"node path ({backend}, refine {name}{f': {path} path' if path else ''})"
        rows.append((label, "auto" if args.inference_size[0] is None else "x".join(map(str, args.inference_size[0])),
                     ms))
    return rows


def run(args) -> int:
    from flownet_ros.inference import FlowEstimator
    from flownet_ros.inference.classic import DISEstimator
    from flownet_ros.inference.runtime import set_cpu_threads
    from flownet_ros.models import ModelSpec

    set_cpu_threads(args.threads)
    img1, img2 = _pair(args)
    rows = []
    for preset in args.dis_alone:
        dis = DISEstimator(preset)
        rows.append((f"DIS {preset} (alone)", "full", median(time_ms(lambda: dis.estimate(img1, img2), "cpu",
                                                                       warmup=1, repeat=args.repeat))))
    ref_ms = rows[-1][2]
    args.checkpoint = args.checkpoint or [""]
    net = FlowEstimator.from_checkpoint(args.checkpoint[0] or None, device=args.device, precision=args.precision)
    label = "network " + net.description.split(" from ")[0]
    rows += _network_rows(net, img1, img2, args, label)
    if "both" in args.directions:
        net.configure(bidirectional=True)
        rows += _network_rows(net, img1, img2, args, label + " bidirectional", args.inference_size[:1])
        net.configure(bidirectional=False)
    rows += _refine_rows(net, img1, img2, args)
    rows += _node_path_rows(img1, img2, args)
    if args.full_width:
        spec = ModelSpec(width=1.0)
        full = FlowEstimator(spec.build(), spec, device=args.device, precision=args.precision)
        rows += _network_rows(full, img1, img2, args, "network flownetc width 1 (paper)")
    print(f"\nPer frame pair, {args.width}x{args.height} input, median of {args.repeat}; {machine_description()}\n")
    print(f"| step | network size | median ms | pairs/s | time / DIS {args.dis_alone[-1]} |")
    print("|---|---|---:|---:|---:|")
    for name, size, ms in rows:
        print(f"| {name} | {size} | {ms:.1f} | {1000.0 / ms:.2f} | {ms / ref_ms:.2f}x |")
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
