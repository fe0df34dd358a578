"""Per-frame flow utilities on the CPU: Middlebury colour coding and backward warping of a 640x480 frame.

The numpy/OpenCV functions the node and the bag report use (``flow_to_color``, ``warp_backward``) next to
their torch versions (``flow_to_color_torch``, ``warp_backward_torch`` with grid_sample) as the reference,
on the same random flow; median ms of ``--repeat`` runs. ``--allocator both`` (default) runs everything in
two fresh processes, glibc's default malloc thresholds and the node's
(:func:`flownet_ros.inference.keep_frame_buffers_in_heap`), and prints one table.
Example: python -m flownet_ros.bench flow_ops --threads 1 --clock process
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import torch

from flownet_ros.bench._common import CLOCKS, machine_description, markdown_table, median, time_ms

ALLOCATORS = ("default", "heap")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--threads", type=int, default=0, help="CPU threads of torch and OpenCV (0 = default)")
    p.add_argument("--clock", choices=CLOCKS, default="wall")
    p.add_argument("--allocator", choices=ALLOCATORS + ("both",), default="both",
                   help="glibc malloc thresholds: default, heap (as in the node), or both side by side")
    p.add_argument("--json-out", action="store_true", help=argparse.SUPPRESS)  # one process of 'both'


def measure(args) -> dict:
    """{implementation: median ms} in this process."""
    from flownet_ros.flow.colour import flow_to_color, flow_to_color_torch
    from flownet_ros.flow.warping import warp_backward, warp_backward_torch
    from flownet_ros.inference import keep_frame_buffers_in_heap, set_cpu_threads

    if args.allocator == "heap" and not keep_frame_buffers_in_heap():
        raise SystemExit("glibc malloc thresholds cannot be set on this system")
    set_cpu_threads(args.threads)
    rng = np.random.default_rng(0)
    h, w = args.height, args.width
    flow = rng.normal(0, 6, (h, w, 2)).astype(np.float32)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    flow_t = torch.from_numpy(flow).permute(2, 0, 1)[None].contiguous()
    img_t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    cases = {
        "flow_to_color (numpy + cv2.remap)": lambda: flow_to_color(flow),
        "flow_to_color_torch": lambda: flow_to_color_torch(flow_t).numpy(),
        "warp_backward (cv2.remap)": lambda: warp_backward(img, flow),
        "warp_backward_torch (grid_sample)": lambda: warp_backward_torch(img_t, flow_t).numpy(),
    }
    return {name: median(time_ms(fn, "cpu", 2, args.repeat, args.clock)) for name, fn in cases.items()}


def _child(args, allocator: str) -> dict:
    cmd = [sys.executable, "-m", "flownet_ros.bench", "flow_ops", "--allocator", allocator, "--json-out",
           "--height", str(args.height), "--width", str(args.width), "--repeat", str(args.repeat),
           "--threads", str(args.threads), "--clock", args.clock]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args) -> int:
    if args.json_out:
        print(json.dumps(measure(args)))
        return 0
    allocators = ALLOCATORS if args.allocator == "both" else (args.allocator,)
    results = {a: _child(args, a) for a in allocators}
    print(f"machine: {machine_description()}")
    print(f"{args.height}x{args.width} frame, clock {args.clock}, threads {args.threads or 'default'}, "
          f"median of {args.repeat}, each allocator setting in a fresh process")
    rows = []
    for name in results[allocators[0]]:
        ref = "flow_to_color_torch" if "color" in name else "warp_backward_torch (grid_sample)"
        for a in allocators:
            rows.append([name, a, results[a][name], results[a][ref] / results[a][name]])
    print(markdown_table(["implementation", "malloc", "median ms", "x torch version"], rows))
    return 0
