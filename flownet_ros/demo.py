"""``make demo``: replay a bag through the real node over real ROS 2, record, and write the report.

Without ``--bag`` it uses the embedded default: the sample bag (3 s, 30 Hz, 640x480 of real photos in
motion, with ground-truth flow), written to data/sample_bag on first use. The node runs with its
default parameters (the shipped model, refined; docs/node.md) and OpenCV DIS runs on the same frames as
a baseline. Prints the summary table and the report path.

    python -m flownet_ros.demo [--bag BAG] [--topic TOPIC] [--rate 0] [-p name:=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import Dict, Optional, Sequence

from flownet_ros.cli import tool, user_path
from flownet_ros.evaluation.replay import (
    ReplayOptions,
    disk_usage,
    megabytes,
    parse_params,
    record_option,
    replay_and_report,
)
from flownet_ros.evaluation.sample_bag import DEFAULT_PATH, write_sample_bag
from flownet_ros.paths import workspace

#: Methods run on the same frame pairs as the node, for comparison.
DEMO_BASELINES = ("dis-medium",)


def demo_params(params: Sequence[str], device: str) -> Dict[str, str]:
    """Node parameters of the demo: the device, then the user's ``name:=value`` items."""
    out = {"device": device}
    out.update(parse_params(params))
    return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@tool("python -m flownet_ros.demo")
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.demo", description=__doc__.split("\n")[0])
    p.add_argument("--bag", type=user_path, help="rosbag2 to replay (default: the synthetic sample bag)")
    p.add_argument("--topic", help="camera topic in the bag (default: the only one)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="0 = as fast as the node keeps up, every frame pair scored (default); "
                        "1 = recorded timing (frames are dropped when the node is slower than the camera)")
    p.add_argument("--device", default="auto", help="node device: auto, cpu, cuda")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, e.g. -p inference_width:=640 -p inference_height:=448")
    p.add_argument("--out-dir", type=user_path, help="default out/demo/<bag>_<time>")
    p.add_argument("--current-domain", dest="private_domain", action="store_false",
                   help="publish into the current ROS_DOMAIN_ID (to watch in RViz); default: a private domain, "
                        "localhost only")
    p.add_argument("--record-color", action="store_true", help="also record ~/flow_color")
    p.add_argument("--record-all", action="store_true", help="record every output of the node")
    args = p.parse_args(argv)
    wording = make_wording if os.environ.get("MAKELEVEL") else str

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
    try:
        params = demo_params(args.param, args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    opts = ReplayOptions(bag=bag, topic=args.topic, rate=args.rate, params=params, out_dir=out_dir,
                         record=record_option(args.record_color, args.record_all), private_domain=args.private_domain)
    code = replay_and_report(opts, baselines=DEMO_BASELINES, wording=wording)
    if out_dir.exists():
        parts = ", ".join(f"{p.name}/ {megabytes(disk_usage(p))}" for p in sorted(out_dir.iterdir()) if p.is_dir())
        print(f"outputs: {out_dir} ({megabytes(disk_usage(out_dir))}: {parts}); delete the folder when done")
    return code


def make_wording(text: str) -> str:
    """Error messages for ``make demo`` users, who set make variables instead of options."""
    for option, variable in (("--topic", "TOPIC="), ("--bag", "BAG="), ("--rate", "RATE=")):
        text = text.replace(option, f"{variable}<{option[2:]}>")
    return text


if __name__ == "__main__":
    sys.exit(main())
