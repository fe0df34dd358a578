"""``flownet_node``: camera images in; dense flow, colour-coded flow, global motion and diagnostics out.

Run: ``ros2 run flownet_ros flownet_node --ros-args -r image:=/camera/image_raw`` or
``python -m flownet_ros.ros.node --ros-args ...``. See docs/node.md for topics and parameters.

Threads: the executor thread runs the image callback (cheap checks, then a non-blocking put into a
single-slot queue), camera_info, parameters and the ~1 Hz diagnostics timer; one worker thread
converts, pairs, runs the flow network and publishes.
"""

from __future__ import annotations

import os

# Before torch (and its OpenMP runtime) loads: idle OpenMP threads sleep instead of spinning. With
# spinning (the default) inference collapses when another process holds a core, as is usual on a robot:
# 947 ms instead of 113 ms per pair with one of two cores busy (docs/node.md, CPU use). Set
# OMP_WAIT_POLICY=ACTIVE in the environment to keep spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import re
import sys
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, TimeReference

from flownet_ros.flow.motion import intrinsics_from_k
from flownet_ros.inference.runtime import keep_frame_buffers_in_heap, set_cpu_threads
from flownet_ros.models.checkpoint import CheckpointError
from flownet_ros.ros import qos
from flownet_ros.ros.conversions import (ImageConversionError, check_raw, compressed_msg_to_rgb,
                                         flow_to_image_msg, image_msg_to_rgb, rgb_to_image_msg)
from flownet_ros.ros.diagnostics import FlowStats, make_status
from flownet_ros.ros.pairing import Frame, FramePairer
from flownet_ros.ros.pipeline import FlowPipeline, FlowResult, PipelineSettings
from flownet_ros.ros.worker import LatestQueue, Worker

NODE_NAME = "flownet"
BACKENDS = ("flownet", "dis")
PRECISIONS = ("fp32", "fp16", "bf16")
TRANSPORTS = ("raw", "compressed")
DIS_PRESETS = ("ultrafast", "fast", "medium")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
LOG_THROTTLE_S = 5.0


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: Optional[tuple] = None  # allowed string values
    int_range: Optional[tuple] = None  # (from, to, step)
    float_range: Optional[tuple] = None  # (from, to)


PARAMS = (
    ParamSpec("backend", "flownet", "Flow backend: 'flownet' (FlowNetC checkpoint) or 'dis' (OpenCV DIS, CPU).",
              True, BACKENDS),
    ParamSpec("checkpoint", "", "FlowNet checkpoint file; '' = the shipped model.", True),
    ParamSpec("device", "auto", "Torch device: auto (CUDA if available), cpu, cuda or cuda:N.", True),
    ParamSpec("precision", "fp32", "Inference precision on CUDA: fp32, fp16 or bf16 (CPU always fp32).",
              True, PRECISIONS),
    ParamSpec("inference_height", 0, "Network input height (multiple of 64; 0 = input height rounded "
              "to 64). Used only when inference_width is also > 0.", int_range=(0, 4096, 64)),
    ParamSpec("inference_width", 0, "Network input width (multiple of 64; 0 = input width rounded to 64).",
              int_range=(0, 4096, 64)),
    ParamSpec("threads", 0, "CPU threads for inference, colour coding and image conversion (torch and "
              "OpenCV); 0 = all cores. Keeps cores free for other nodes on a robot.", True,
              int_range=(0, 1024, 1)),
    ParamSpec("dis_preset", "medium", "OpenCV DIS preset for backend 'dis': ultrafast, fast or medium.",
              True, DIS_PRESETS),
    ParamSpec("transport", "raw", "Input: 'raw' subscribes 'image' (sensor_msgs/Image), 'compressed' "
              "subscribes 'image/compressed' (sensor_msgs/CompressedImage).", True, TRANSPORTS),
    ParamSpec("reliability", "best_effort", "Input QoS reliability: best_effort (receives from any "
              "publisher, REP-2003) or reliable (only from reliable publishers).", True, tuple(qos.RELIABILITIES)),
    ParamSpec("depth", 5, "QoS history depth (KEEP_LAST) of the subscriptions and publishers.", True,
              int_range=(1, 1000, 1)),
    ParamSpec("max_frame_gap", 1.0, "Do not pair frames whose stamps differ by more than this many "
              "seconds (0 = no limit).", float_range=(0.0, 3600.0)),
    ParamSpec("publish_color", True, "Publish ~/flow_color (rgb8 Middlebury colour coding)."),
    ParamSpec("color_max_flow", 0.0, "Flow magnitude in pixels that maps to full colour saturation "
              "(0 = the largest magnitude of each frame).", float_range=(0.0, 10000.0)),
    ParamSpec("publish_motion", True, "Publish ~/motion (robust global image-plane motion)."),
    ParamSpec("motion_threshold", 1.0, "Inlier threshold of the motion fit in pixels (raised to 5 % of "
              "the median flow magnitude).", float_range=(0.01, 100.0)),
    ParamSpec("use_camera_info", True, "Subscribe 'camera_info' and report rotation rates about the camera "
              "x/y axes in ~/motion angular.x/y.", True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", True,
              float_range=(0.1, 60.0)),
)
PARAM_BY_NAME = {p.name: p for p in PARAMS}


def descriptor(p: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.int_range:
        d.integer_range = [IntegerRange(from_value=p.int_range[0], to_value=p.int_range[1], step=p.int_range[2])]
    if p.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=p.float_range[0], to_value=p.float_range[1],
                                                     step=0.0)]
    return d


def validate(name: str, value: Any) -> Optional[str]:
    """Reason why ``value`` is not acceptable for parameter ``name`` (None = fine).

    Types and numeric ranges are enforced by rclpy from the descriptors; this checks the rest.
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


def build_estimator(cfg: Dict[str, Any]):
    """FlowEstimator or DISEstimator from the node's parameters (raises CheckpointError / ValueError)."""
    if cfg["backend"] == "dis":
        from flownet_ros.inference.dis import DISEstimator
        return DISEstimator(cfg["dis_preset"])
    from flownet_ros.inference import FlowEstimator
    return FlowEstimator.from_checkpoint(cfg["checkpoint"] or None, device=cfg["device"],
                                         precision=cfg["precision"], inference_size=_inference_size(cfg))


def _inference_size(cfg: Dict[str, Any]):
    h, w = int(cfg["inference_height"]), int(cfg["inference_width"])
    return (h, w) if h > 0 and w > 0 else None


@dataclass
class Pending:
    """A received message waiting for the worker."""

    msg: Any
    seq: int  # accepted-message counter at receipt


class FlowNode(Node):
    """Thin ROS shell around FlowPipeline (see module doc)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._setup()
        except BaseException:
            self.destroy_node()  # a half-built node must not stay in the context (nor its worker run)
            raise

    def _setup(self) -> None:
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, descriptor(p))
        self.cfg: Dict[str, Any] = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        bad = [r for r in (validate(k, v) for k, v in self.cfg.items()) if r]
        if bad:
            raise ValueError("invalid parameters: " + "; ".join(bad))
        self.cpu_threads = set_cpu_threads(self.cfg["threads"])
        self.estimator = build_estimator(self.cfg)
        self.stats = FlowStats()
        self.settings = PipelineSettings(self.cfg["publish_color"], self.cfg["color_max_flow"],
                                         self.cfg["publish_motion"], self.cfg["motion_threshold"])
        self.pairer = FramePairer(self.cfg["max_frame_gap"])
        self.pipeline = FlowPipeline(self.estimator, self.pairer, self.settings, self._intrinsics, self._on_reset)
        self._camera: Optional[CameraInfo] = None
        self._apply_in_on_set = False
        self._accepted = 0
        self._lock = threading.Lock()

        out_qos = qos.output_qos(self.cfg["depth"])
        self.pub_flow = self.create_publisher(Image, "~/flow", out_qos)
        self.pub_color = self.create_publisher(Image, "~/flow_color", out_qos)
        self.pub_motion = self.create_publisher(TwistStamped, "~/motion", out_qos)
        self.pub_pair = self.create_publisher(TimeReference, "~/flow_pair", out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.queue = LatestQueue()
        self.worker = Worker(self.queue, self._work, self._on_worker_error)
        self.worker.start()

        in_qos = qos.input_qos(self.cfg["reliability"], self.cfg["depth"])
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        if self.cfg["transport"] == "compressed":
            self.sub = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed,
                                                in_qos, event_callbacks=events)
        else:
            self.sub = self.create_subscription(Image, "image", self._on_image, in_qos, event_callbacks=events)
        self.sub_info = (self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, in_qos)
                         if self.cfg["use_camera_info"] else None)
        self.diag_timer = self.create_timer(self.cfg["diagnostics_period"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):  # Iron and later
            self.add_post_set_parameters_callback(self._after_set_parameters)
        else:  # Humble: apply in the validating callback
            self._apply_in_on_set = True
        self.get_logger().info(
            f"{self.cfg['backend']} on {self.estimator.device}: {self.estimator.description}; "
            f"input {self.sub.topic_name} ({qos.describe(in_qos)}), output {self.pub_flow.topic_name}, "
            f"{self.pub_color.topic_name}, {self.pub_motion.topic_name}")

    # ---- executor thread -------------------------------------------------------------------------

    def _accept(self, msg) -> None:
        with self._lock:
            self._accepted += 1
            seq = self._accepted
        if self.queue.put(Pending(msg, seq)) is not None:
            self.stats.count("dropped")

    def _reject(self, msg, why: str) -> None:
        self.stats.count("rejected")
        self.get_logger().warning(f"rejected image message (frame_id {msg.header.frame_id!r}): {why}",
                                  throttle_duration_sec=LOG_THROTTLE_S)

    def _on_image(self, msg: Image) -> None:
        self.stats.count("received")
        try:
            check_raw(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        except ImageConversionError as exc:
            self._reject(msg, str(exc))
            return
        self._accept(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self.stats.count("received")
        if len(msg.data) == 0:
            self._reject(msg, "compressed image has no data")
            return
        self._accept(msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera = msg

    def _intrinsics(self, width: int, height: int):
        cam = self._camera
        if cam is None:
            return None
        return intrinsics_from_k(cam.k, (cam.width, cam.height), (width, height))

    def _on_incompatible_qos(self, event) -> None:
        self.get_logger().warning(
            f"a publisher of {self.sub.topic_name} offers incompatible QoS (policy "
            f"{event.last_policy_kind}); with reliability={self.cfg['reliability']} nothing is received "
            f"from it: use reliability:=best_effort", throttle_duration_sec=LOG_THROTTLE_S)

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        for p in params:
            spec = PARAM_BY_NAME.get(p.name)
            if spec is not None and spec.read_only:
                return SetParametersResult(successful=False, reason=f"{p.name} is read-only (needs a restart)")
            why = validate(p.name, p.value)
            if why:
                return SetParametersResult(successful=False, reason=why)
        if self._apply_in_on_set:
            self._after_set_parameters(params)
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: List[Parameter]) -> None:
        for p in params:
            self.cfg[p.name] = p.value
        s = self.settings
        s.publish_color, s.color_max_flow = self.cfg["publish_color"], self.cfg["color_max_flow"]
        s.publish_motion, s.motion_threshold = self.cfg["publish_motion"], self.cfg["motion_threshold"]
        self.pairer.max_gap_s = self.cfg["max_frame_gap"]
        if hasattr(self.estimator, "inference_size"):
            self.estimator.inference_size = _inference_size(self.cfg)

    def _publish_diagnostics(self) -> None:
        info = {"backend": self.cfg["backend"], "device": str(self.estimator.device),
                "model": self.estimator.description, "input_topic": self.sub.topic_name,
                "queue_depth": str(len(self.queue)), "cpu_threads": str(self.cpu_threads)}
        status = make_status(self.stats.report(), f"{self.get_fully_qualified_name()}: optical flow",
                             f"{self.cfg['backend']}@{self.estimator.device}", info)
        self.pub_diag.publish(DiagnosticArray(header=_header(self.get_clock().now().to_msg()), status=[status]))

    # ---- worker thread ---------------------------------------------------------------------------

    def _work(self, item: Pending) -> None:
        with self._lock:
            behind = self._accepted - item.seq
        self.stats.frames_behind(behind)
        msg = item.msg
        try:
            if isinstance(msg, CompressedImage):
                # the source pixel format (before ';') decides pairing, not the codec
                image, encoding = compressed_msg_to_rgb(msg), "compressed " + msg.format.split(";")[0].strip()
            else:
                image, encoding = image_msg_to_rgb(msg), msg.encoding
        except ImageConversionError as exc:
            self._reject(msg, str(exc))
            return
        self.stats.count("processed")
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        result = self.pipeline.process(Frame(image, stamp_ns, msg.header, encoding, item.seq))
        if result is not None:
            self._publish(result)

    def _publish(self, r: FlowResult) -> None:
        header = r.newer.header
        self.pub_flow.publish(flow_to_image_msg(r.flow, header))
        if r.color is not None:
            self.pub_color.publish(rgb_to_image_msg(r.color, header))
        if r.motion is not None:
            m = TwistStamped()
            m.header = header
            m.twist.linear.x, m.twist.linear.y, m.twist.linear.z = r.motion.linear
            m.twist.angular.x, m.twist.angular.y, m.twist.angular.z = r.motion.angular
            self.pub_motion.publish(m)
        self.pub_pair.publish(TimeReference(header=header, time_ref=r.older.header.stamp, source="previous_frame"))
        latency = (self.get_clock().now().nanoseconds - r.newer.stamp_ns) * 1e-9
        self.stats.output(latency, r.inference_s, r.motion.fit.inlier_fraction if r.motion else None)

    def _on_reset(self, reason: str) -> None:
        if reason != FramePairer.FIRST:
            self.stats.count("resets")
        self.get_logger().debug(f"flow pair reset: {reason}")

    def _on_worker_error(self, exc: BaseException, item: Pending) -> None:
        self.stats.count("errors")
        self.pairer.reset()
        self.get_logger().error(f"processing failed ({type(exc).__name__}: {exc}); pair reset",
                                throttle_duration_sec=LOG_THROTTLE_S)

    def destroy_node(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop()
        super().destroy_node()


def _header(stamp, frame_id: str = ""):
    from std_msgs.msg import Header
    return Header(stamp=stamp, frame_id=frame_id)


def main(args=None) -> int:
    """Console entry point; returns the exit code (2 = bad parameters or checkpoint)."""
    keep_frame_buffers_in_heap()  # before the first frame-sized allocation
    rclpy.init(args=args)
    try:
        node = FlowNode()
    except (CheckpointError, ValueError, ParameterException, RuntimeError, OSError) as exc:
        # RuntimeError/OSError: e.g. an invalid CUDA ordinal or out of GPU memory while moving the model.
        msg = f"flownet_node: cannot start: {exc}"
        if isinstance(exc, InvalidParameterTypeException):
            msg += " (write floating-point parameters with a decimal point, e.g. 2.0)"
        print(msg, file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
