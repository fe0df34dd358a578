"""The node's parameters: one table (:data:`PARAMS`), the one source of every default.

``config/flownet.yaml`` and the table in ``docs/node.md`` are generated from it
(``python -m flownet_ros.ros.parameters --write``); a test fails when they differ.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from flownet_ros.flow import consistency, moving
from flownet_ros.imaging.limits import DEFAULT_MAX_PIXELS, MAX_SIDE
from flownet_ros.inference.backends import BACKENDS, NODE_BACKENDS
from flownet_ros.inference.classic import DIS_PRESETS
from flownet_ros.inference.factory import EstimatorSpec
from flownet_ros.inference.preprocess import AUTO_MAX_SIDE
from flownet_ros.inference.refine import REFINEMENTS
from flownet_ros.inference.runtime import PRECISIONS

SPEC = EstimatorSpec()  # the estimator defaults: the node runs what the tools run by default
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type is the parameter's), description, and what values are allowed."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: Optional[tuple] = None  # allowed string values
    int_range: Optional[tuple] = None  # (from, to, step)
    float_range: Optional[tuple] = None  # (from, to)


PARAMS = (
    ParamSpec("backend", SPEC.backend, "Flow backend: " + "; ".join(f"'{n}' ({BACKENDS[n].summary})"
                                                                    for n in NODE_BACKENDS) + ".", True, NODE_BACKENDS),
    ParamSpec("checkpoint", SPEC.checkpoint, "FlowNet checkpoint file; '' = the shipped model (flownetc_cuda.pt on "
              "CUDA when present, else flownetc_cpu.pt).", True),
    ParamSpec("device", SPEC.device, "Torch device: auto (CUDA if available), cpu, cuda or cuda:N.", True),
    ParamSpec("precision", SPEC.precision, "Inference precision on CUDA: fp32, fp16 or bf16 (CPU always fp32).", True,
              tuple(PRECISIONS)),
    ParamSpec("refine", SPEC.refine, "Refinement of the network's flow at full resolution: none, variational "
              "(OpenCV variational refinement, the paper's +v) or dis (DIS seeded by the network, preset "
              "dis_preset).", True, REFINEMENTS),
    ParamSpec("bidirectional", SPEC.bidirectional, "Run the network both ways (img1->img2 and img2->img1, one "
              "batch) and average the two flows: cancels the network's direction-independent bias (small motions); the "
              "network takes about 1.5x as long (one batch of two pairs). Best with refine none."),
    ParamSpec("network_threshold", SPEC.network_threshold, "Backend adaptive: the DIS failure score (photometric "
              "error of DIS's flow relative to the image gradient, see docs/node.md) above which the network runs "
              "on a pair; 0 = the network on every pair, large = DIS only.", float_range=(0.0, 100.0)),
    ParamSpec("dis_preset", SPEC.dis_preset, "OpenCV DIS preset (backend dis and refine dis): ultrafast, fast "
              "or medium.", True, tuple(DIS_PRESETS)),
    ParamSpec("inference_height", 0, "Network input height, a multiple of 64 (0 = automatic: the input scaled "
              f"to at most {AUTO_MAX_SIDE} px on its longer side, rounded to 64). Used only when inference_width "
              "is also > 0; height x width at most max_pixels.", int_range=(0, MAX_SIDE, 64)),
    ParamSpec("inference_width", 0, "Network input width, a multiple of 64 (0 = automatic, see inference_height).",
              int_range=(0, MAX_SIDE, 64)),
    ParamSpec("max_pixels", DEFAULT_MAX_PIXELS, "Largest frame (width x height) the node processes; larger "
              "frames, also compressed ones whose header declares more, are refused before decoding. Raise it for "
              "4K cameras.", True, int_range=(4096, 1 << 28, 1)),
    ParamSpec("threads", 0, "CPU threads for inference, refinement, colour coding and image conversion (torch "
              "and OpenCV); 0 = all cores. Keeps cores free for other nodes on a robot.", True,
              int_range=(0, 1024, 1)),
    ParamSpec("transport", "raw", "Input: 'raw' subscribes 'image' (sensor_msgs/Image), 'compressed' subscribes "
              "'<image>/compressed' (sensor_msgs/CompressedImage, 'image' resolved after remapping).", True,
              TRANSPORTS),
    ParamSpec("reliability", "best_effort", "Input QoS reliability: best_effort (receives from any publisher, "
              "REP-2003) or reliable (only from reliable publishers).", True, RELIABILITIES),
    ParamSpec("depth", 5, "QoS history depth (KEEP_LAST) of the subscriptions and publishers.", True,
              int_range=(1, 1000, 1)),
    ParamSpec("max_frame_gap", 1.0, "Do not pair frames whose stamps differ by more than this many seconds "
              "(0 = no limit).", float_range=(0.0, 3600.0)),
    ParamSpec("publish_color", True, "Publish ~/flow_color (rgb8 Middlebury colour coding; computed only while "
              "someone subscribes)."),
    ParamSpec("color_max_flow", 0.0, "Flow magnitude in pixels that maps to full colour saturation (0 = the "
              "largest magnitude of each frame).", float_range=(0.0, 10000.0)),
    ParamSpec("publish_motion", True, "Publish ~/motion (robust global image-plane motion; fitted only while "
              "someone subscribes)."),
    ParamSpec("motion_threshold", 1.0, "Inlier threshold of the motion fit in pixels (raised to 5 % of the "
              "median flow magnitude).", float_range=(0.01, 100.0)),
    ParamSpec("occlusion_alpha", consistency.OCCLUSION_ALPHA, "~/occlusion marks a pixel where |f + b(x+f)|^2 > "
              "a (|f|^2 + |b(x+f)|^2) + c (forward flow f, backward flow b): this is a.", float_range=(0.0, 10.0)),
    ParamSpec("occlusion_beta", consistency.OCCLUSION_BETA, "c of the occlusion test (px^2); ~/confidence is "
              "exp(-|f + b(x+f)|^2 / (a (...) + c)) times the photometric term.", float_range=(0.01, 1000.0)),
    ParamSpec("confidence_tau", consistency.CONFIDENCE_TAU, "~/confidence times the photometric term "
              "exp(-|I1(x) - I2(x+f)| / tau), tau in grey levels; 0 = forward-backward consistency alone (ranks "
              "flow errors better on the real-image set, docs/evaluation.md).", float_range=(0.0, 1000.0)),
    ParamSpec("moving_threshold", moving.THRESHOLD_PX, "~/moving marks pixels whose flow the fitted camera motion "
              "misses by more than this many pixels (raised to 5 % of the flow magnitude).",
              float_range=(0.01, 100.0)),
    ParamSpec("moving_min_blob", moving.MIN_BLOB, "Smallest region ~/moving marks, as a fraction of the image.",
              float_range=(0.0, 1.0)),
    ParamSpec("moving_min_confidence", moving.MIN_CONFIDENCE, "~/moving marks only pixels whose forward-backward "
              "confidence times exp(-|I1(x) - I2(x+f)| / moving_tau) is at least this (a wrong flow looks like a "
              "moving object).", float_range=(0.0, 1.0)),
    ParamSpec("moving_tau", consistency.PHOTO_TAU, "Photometric term of the trust ~/moving requires, grey levels "
              "(0 = none).", float_range=(0.0, 1000.0)),
    ParamSpec("use_camera_info", True, "Subscribe 'camera_info' and report rotation rates about the camera x/y "
              "axes in ~/motion angular.x/y.", True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", True, float_range=(0.1, 60.0)),
)
PARAM_BY_NAME = {p.name: p for p in PARAMS}
DEFAULTS: Dict[str, Any] = {p.name: p.default for p in PARAMS}


def validate(name: str, value: Any) -> Optional[str]:
    """Reason why ``value`` is not acceptable for parameter ``name`` (None = fine).

    rclpy enforces types and the descriptors' ranges; this checks the rest (choices, device syntax),
    and the ranges again for callers without rclpy.
    """
    p = PARAM_BY_NAME.get(name)
    if p is None:
        return None
    if p.choices and value not in p.choices:
        return f"{name} must be one of {', '.join(p.choices)}; got {value!r}"
    if name == "device" and not DEVICE_RE.match(str(value)):
        return f"device must be auto, cpu, cuda or cuda:N; got {value!r}"
    if p.int_range and (value < p.int_range[0] or value > p.int_range[1] or value % p.int_range[2]):
        return f"{name} must be a multiple of {p.int_range[2]} in [{p.int_range[0]}, {p.int_range[1]}]; got {value}"
    if p.float_range and not (p.float_range[0] <= value <= p.float_range[1]):
        return f"{name} must be in [{p.float_range[0]}, {p.float_range[1]}]; got {value}"
    return None


def validate_all(cfg: Dict[str, Any]) -> Optional[str]:
    """Reasons why a whole parameter set is not acceptable (each value, then combinations)."""
    bad = [r for r in (validate(k, v) for k, v in cfg.items()) if r]
    h, w = cfg.get("inference_height", 0), cfg.get("inference_width", 0)
    if h * w > cfg.get("max_pixels", DEFAULT_MAX_PIXELS):
        bad.append(f"inference_height x inference_width = {h} x {w} = {h * w} exceeds max_pixels "
                   f"({cfg.get('max_pixels', DEFAULT_MAX_PIXELS)})")
    return "; ".join(bad) or None


# ---- generated files ---------------------------------------------------------------------------

def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return '""' if v == "" else str(v)


def _type(v: Any) -> str:
    return {bool: "bool", int: "int", float: "double", str: "string"}[type(v)]


def params_yaml() -> str:
    """config/flownet.yaml: every parameter with its default and description."""
    lines = ["# Parameters of flownet_node with their defaults (generated from flownet_ros/ros/parameters.py by",
             "# `python -m flownet_ros.ros.parameters --write`; docs/node.md explains them).",
             "# Floating-point values need a decimal point (1.0, not 1): ROS 2 parameters are strictly typed.",
             "/**:", "  ros__parameters:"]
    for p in PARAMS:
        lines.append(f"    {p.name}: {_yaml_value(p.default)}")
    return "\n".join(lines) + "\n"


def params_markdown() -> str:
    """The parameter table of docs/node.md."""
    rows = ["| name | type | default | run time | meaning |", "|---|---|---|---|---|"]
    for p in PARAMS:
        default = f"`{_yaml_value(p.default)}`"
        rows.append(f"| `{p.name}` | {_type(p.default)} | {default} | {'read-only' if p.read_only else 'yes'} | "
                    f"{p.description} |")
    rows.append("| `use_sim_time` | bool | `false` | read-only | standard ROS parameter (bag replay with `--clock`) |")
    return "\n".join(rows) + "\n"


BEGIN = "<!-- parameters: generated by python -m flownet_ros.ros.parameters --write -->"
END = "<!-- parameters: end -->"


def with_table(doc: str) -> str:
    """``doc`` with the text between the :data:`BEGIN` and :data:`END` markers replaced by the table."""
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return doc[:start] + "\n" + params_markdown() + doc[end:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.ros.parameters", description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite config/flownet.yaml and the table in docs/node.md")
    args = p.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    if not args.write:
        print(params_yaml() + "\n" + params_markdown())
        return 0
    (root / "config" / "flownet.yaml").write_text(params_yaml())
    doc = root / "docs" / "node.md"
    doc.write_text(with_table(doc.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
