"""``make demo``: replay a bag through the real node over real ROS 2, record, and write the report.

Without ``--bag`` it uses the embedded default: the synthetic sample bag (3 s, 30 Hz, 640x480 with
ground-truth flow), written to data/sample_bag on first use. The node runs the shipped model
(models/flownetc_cpu.pt) on CPU at a 448x640 network input (the node's default would round 480 up
to 512); about 40 s for the whole job on 2 cores. 448x640 gives EPE 3.4 px on the sample bag vs
4.9 px at 256x320 for less than 2x the inference time. OpenCV DIS runs on the same frames as a baseline. Prints the summary table and
the report path.

    python -m flownet_ros.demo [--bag BAG] [--topic TOPIC] [--rate 0] [-p name:=value ...]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Sequence

from flownet_ros.evaluation import replay, workspace
from flownet_ros.evaluation.sample_bag import DEFAULT_PATH, write_sample_bag

#: Network input size for the demo on CPU (H, W; multiples of 64). See docs/evaluation.md for timings.
DEMO_INFERENCE_SIZE = (448, 640)


def demo_args(bag: Path, topic: Optional[str], rate: float, out_dir: Path, params: Sequence[str],
              device: str) -> List[str]:
    """Command line of ``flownet_ros.evaluation.replay`` for the demo."""
    args = [str(bag), "--rate", f"{rate:g}", "--out-dir", str(out_dir), "--baseline", "dis"]
    if topic:
        args += ["--topic", topic]
    given = {p.partition(":=")[0] for p in params}
    defaults = {"device": device}
    if device == "cpu" or (device == "auto" and not _cuda()):
        defaults.update(inference_height=DEMO_INFERENCE_SIZE[0], inference_width=DEMO_INFERENCE_SIZE[1])
    for key, value in defaults.items():
        if key not in given:
            args += ["-p", f"{key}:={value}"]
    for p in params:
        args += ["-p", p]
    return args


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.demo", description=__doc__.split("\n")[0])
    p.add_argument("--bag", type=Path, help="rosbag2 to replay (default: the synthetic sample bag)")
    p.add_argument("--topic", help="camera topic in the bag (default: the only one)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="0 = as fast as the node keeps up, every frame pair scored (default); "
                        "1 = recorded timing (frames are dropped when the node is slower than the camera)")
    p.add_argument("--device", default="auto", help="node device: auto, cpu, cuda")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, e.g. -p inference_width:=640 -p inference_height:=448")
    p.add_argument("--out-dir", type=Path, help="default out/demo/<bag>_<time>")
    args = p.parse_args(argv)

    bag = args.bag
    if bag is None:
        bag = DEFAULT_PATH
        if not bag.exists():
            print(f"writing the sample bag to {bag} (once) ...", flush=True)
            write_sample_bag(bag)
    elif not bag.exists():
        print(f"error: bag {bag} does not exist", file=sys.stderr)
        return 1
    given = {x.partition(":=")[0] for x in args.param}
    if "checkpoint" not in given:
        from flownet_ros.models.checkpoint import CheckpointError, default_checkpoint_path

        try:
            default_checkpoint_path(prefer_cuda=args.device != "cpu" and _cuda())
        except CheckpointError as err:
            print(f"error: {err} (or pass -p checkpoint:=<file>)", file=sys.stderr)
            return 1
    out_dir = args.out_dir or workspace() / "out" / "demo" / f"{bag.name}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    print(f"replaying {bag} through the flownet node (rate {args.rate:g}) -> {out_dir}", flush=True)
    return replay.main(demo_args(bag, args.topic, args.rate, out_dir, args.param, args.device))


if __name__ == "__main__":
    sys.exit(main())
