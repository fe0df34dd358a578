"""``flownet_node``: camera images in; dense flow, colour-coded flow, global motion and diagnostics out.

Run: ``ros2 run flownet_ros flownet_node --ros-args -r image:=/camera/image_raw`` or
``python -m flownet_ros.ros.node --ros-args ...``. See docs/node.md for topics and parameters.

Threads: the executor thread runs the image callback (cheap checks, then a non-blocking put into a
single-slot queue), camera_info, parameters and the diagnostics timer; one worker thread converts,
pairs, runs the flow network and publishes. Nothing is computed for outputs nobody subscribes to.

Shutdown (Ctrl-C, or SIGINT/SIGTERM from ``ros2 launch``): the first signal stops spinning, later ones
are ignored; the worker finishes its frame while the node can still publish, the node is destroyed,
ROS shuts down, and the process exits without interpreter finalisation (seconds of CPU after torch).
"""

from __future__ import annotations

import os

# Before torch (and its OpenMP runtime) loads: idle OpenMP threads sleep instead of spinning. With
# spinning (the default) inference collapses when another process holds a core, as is usual on a robot:
# 947 ms instead of 113 ms per pair with one of two cores busy (docs/node.md, CPU use). Set
# OMP_WAIT_POLICY=ACTIVE in the environment to keep spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import signal
import sys

# Ctrl-C during the imports below (torch: seconds) must not print a KeyboardInterrupt traceback: when this
# module is the program, signals are only noted until run() installs the real handler (ShutdownRequest).
_EARLY_SIGNALS: list = []
if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "flownet_node":
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import difflib
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, TimeReference
from std_msgs.msg import Header

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

from flownet_ros.flow.motion import intrinsics_from_k
from flownet_ros.imaging.decode import (
    ImageConversionError,
    check_raw,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    quoted,
)
from flownet_ros.imaging.limits import (
    DecodeWorkError,
    FrameSizeError,
    check_decode_work,
    check_frame_size,
    compressed_size,
)
from flownet_ros.inference.base import Estimator
from flownet_ros.inference.factory import EstimatorSpec, build_estimator
from flownet_ros.inference.runtime import keep_frame_buffers_in_heap, release_free_memory, set_cpu_threads
from flownet_ros.models.checkpoint import CheckpointError
from flownet_ros.ros import qos
from flownet_ros.ros.conversions import array_to_image_msg, flow_to_image_msg, rgb_to_image_msg
from flownet_ros.ros.diagnostics import FlowStats, make_status
from flownet_ros.ros.pairing import Frame, FramePairer
from flownet_ros.ros.parameters import PARAM_BY_NAME, PARAMS, ParamSpec, validate, validate_all
from flownet_ros.ros.pipeline import FlowPipeline, FlowResult, NonFiniteFlowError, PipelineSettings, Wanted
from flownet_ros.ros.worker import LatestQueue, Worker

NODE_NAME = "flownet"
LOG_THROTTLE_S = 5.0
DUPLICATE_CHECK_S = 5.0  # how often the graph is searched for another node of this node's name


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


def inference_size(cfg: Dict[str, Any]):
    h, w = int(cfg["inference_height"]), int(cfg["inference_width"])
    return (h, w) if h > 0 and w > 0 else None


def estimator_spec(cfg: Dict[str, Any]) -> EstimatorSpec:
    """The estimator the node's parameters describe (settings its backend does not use are dropped)."""
    return EstimatorSpec.applicable(backend=cfg["backend"], checkpoint=cfg["checkpoint"], device=cfg["device"],
                                    precision=cfg["precision"], inference_size=inference_size(cfg),
                                    refine=cfg["refine"], dis_preset=cfg["dis_preset"],
                                    bidirectional=bool(cfg["bidirectional"]),
                                    network_threshold=float(cfg["network_threshold"]))


def runtime_settings(estimator: Estimator, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The run-time parameters the estimator takes (``Estimator.configure``), from the node's parameters."""
    values = {"inference_size": inference_size(cfg), "bidirectional": bool(cfg["bidirectional"]),
              "network_threshold": float(cfg["network_threshold"])}
    return {k: v for k, v in values.items() if k in estimator.runtime_settings}


@dataclass
class Pending:
    """A received message waiting for the worker."""

    msg: Any
    seq: int  # accepted-message counter at receipt


class FlowNode(Node):
    """Thin ROS shell around FlowPipeline (see module doc)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._closing = False
        self._held: Optional[Pending] = None  # last message that arrived while nobody listened
        self._heap_size: Optional[tuple] = None  # frame size the heap was last trimmed for
        try:
            self._setup()
        except BaseException:
            self.close()  # a half-built node must not stay in the context (nor its worker run)
            raise

    def _setup(self) -> None:
        self._warn_unknown_overrides()
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, descriptor(p))
        self.cfg: Dict[str, Any] = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        bad = validate_all(self.cfg)
        if bad:
            raise ValueError(f"invalid parameters: {bad}")
        self.cpu_threads = set_cpu_threads(self.cfg["threads"])
        self.spec = estimator_spec(self.cfg)
        self.estimator = build_estimator(self.spec)
        self.stats = FlowStats()
        self.settings = PipelineSettings(self.cfg["publish_color"], self.cfg["color_max_flow"],
                                         self.cfg["publish_motion"], self.cfg["motion_threshold"])
        self._apply_consistency_settings()
        self.pairer = FramePairer(self.cfg["max_frame_gap"])
        self.pipeline = FlowPipeline(self.estimator, self.pairer, self.settings, self._intrinsics, self._on_reset)
        self._camera: Optional[CameraInfo] = None
        self._accepted = 0
        self._lock = threading.Lock()
        self._create_publishers()
        self.queue = LatestQueue()
        self.starting: Optional[str] = None  # one-time start-up work of the worker, reported in diagnostics
        self.input_topic = self.resolve_topic_name("image") + ("/compressed" if self.cfg["transport"] == "compressed"
                                                               else "")
        self.in_qos = qos.input_qos(self.cfg["reliability"], self.cfg["depth"])
        # Images are subscribed once the worker can take them (after its warm-up): a publisher that waits
        # for the subscription (replay, tests) then loses no frame to the start-up.
        self._ready = threading.Event()
        self.sub = self.sub_info = None
        self.worker = Worker(self.queue, self._work, self._on_worker_error, startup=self._warm_up)
        self.worker.start()
        # steady clock: with use_sim_time, /clock may only start once the images flow
        self._subscribe_timer = self.create_timer(0.05, self._subscribe_when_ready,
                                                  clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.diag_timer = self.create_timer(self.cfg["diagnostics_period"], self._publish_diagnostics)
        self._duplicates = 1
        self._duplicate_timer = self.create_timer(DUPLICATE_CHECK_S, self._check_duplicate_name,
                                                  clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._apply_in_on_set = not hasattr(self, "add_post_set_parameters_callback")  # Humble
        if not self._apply_in_on_set:
            self.add_post_set_parameters_callback(self._after_set_parameters)
        self.get_logger().info(
            f"{self.cfg['backend']} on {self.estimator.device}: {self.estimator.description}; input "
            f"{self.input_topic} ({qos.describe(self.in_qos)}), output {self.pub_flow.topic_name}, "
            f"{self.pub_color.topic_name}, {self.pub_motion.topic_name}")

    def _warn_unknown_overrides(self) -> None:
        """A params-file key or -p override that is no parameter of this node (a typo: ``threds``) would be
        ignored silently; say so, naming the closest parameter."""
        known = set(PARAM_BY_NAME) | {"use_sim_time", "start_type_description_service"}
        for name in getattr(self, "_parameter_overrides", {}):
            if name in known or name.startswith("qos_overrides."):
                continue
            close = difflib.get_close_matches(name, list(PARAM_BY_NAME), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.get_logger().warning(f"unknown parameter {quoted(name)} ignored{hint}")

    def _check_duplicate_name(self) -> None:
        """Two nodes of one fully qualified name publish everything twice: warn while it lasts."""
        me: Tuple[str, str] = (self.get_name(), self.get_namespace())
        count = sum((n, ns) == me for n, ns in self.get_node_names_and_namespaces())
        if count > 1 and count != self._duplicates:
            self.get_logger().warning(f"{count} nodes named {self.get_fully_qualified_name()} run in this ROS "
                                      "domain: each publishes its own flow on the same topics; give each a "
                                      "namespace or name (-r __ns:=/cam1)")
        self._duplicates = count

    def _create_publishers(self) -> None:
        out_qos = qos.output_qos(self.cfg["depth"])
        self.pub_flow = self.create_publisher(Image, "~/flow", out_qos)
        self.pub_color = self.create_publisher(Image, "~/flow_color", out_qos)
        self.pub_motion = self.create_publisher(TwistStamped, "~/motion", out_qos)
        self.pub_pair = self.create_publisher(TimeReference, "~/flow_pair", out_qos)
        self.pub_confidence = self.create_publisher(Image, "~/confidence", out_qos)
        self.pub_occlusion = self.create_publisher(Image, "~/occlusion", out_qos)
        self.pub_moving = self.create_publisher(Image, "~/moving", out_qos)
        self._camera_model = None  # the last moving-mask fit, for diagnostics
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _subscribe_when_ready(self) -> None:
        if self._ready.is_set() and self.sub is None:
            self._subscribe_timer.cancel()
            self._create_subscriptions()

    def _create_subscriptions(self) -> None:
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        if self.cfg["transport"] == "compressed":
            # image_transport's convention: the base topic 'image' after remapping, then '/compressed'
            self.sub = self.create_subscription(CompressedImage, self.input_topic, self._on_compressed, self.in_qos,
                                                event_callbacks=events)
        else:
            self.sub = self.create_subscription(Image, "image", self._on_image, self.in_qos, event_callbacks=events)
        self.sub_info = (self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, self.in_qos)
                         if self.cfg["use_camera_info"] else None)

    # ---- executor thread -------------------------------------------------------------------------

    def _accept(self, msg) -> None:
        with self._lock:
            self._accepted += 1
            seq = self._accepted
        if self.queue.put(Pending(msg, seq)) is not None:
            self.stats.count("dropped")

    def _reject(self, msg, why: str, counter: str = "rejected") -> None:
        self.stats.count("rejected")
        if counter != "rejected":
            self.stats.count(counter)
        self.get_logger().warning(f"rejected image message (frame_id {quoted(msg.header.frame_id)}): {why}",
                                  throttle_duration_sec=LOG_THROTTLE_S)

    def _on_image(self, msg: Image) -> None:
        self.stats.count("received")
        try:
            check_raw(msg.encoding, msg.height, msg.width, msg.step, len(msg.data), self.cfg["max_pixels"])
        except FrameSizeError as exc:
            self._reject(msg, str(exc), "refused_size")
            return
        except ImageConversionError as exc:
            self._reject(msg, str(exc))
            return
        self._accept(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self.stats.count("received")
        codec, size = compressed_size(msg.data)
        try:
            if size is not None:  # undecodable data is judged by the worker's decoder, with its reason
                check_frame_size(size[0], size[1], self.cfg["max_pixels"])
            check_decode_work(codec, msg.data)
        except FrameSizeError as exc:
            self._reject(msg, f"{codec} header declares a frame that is refused: {exc}", "refused_size")
            return
        except DecodeWorkError as exc:
            self._reject(msg, str(exc), "refused_work")
            return
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
        changed = dict(self.cfg)
        for p in params:
            spec = PARAM_BY_NAME.get(p.name)
            if p.name == "use_sim_time":
                return SetParametersResult(successful=False, reason="use_sim_time is read-only in flownet_node "
                                                                    "(set it at start; needs a restart)")
            if spec is not None and spec.read_only:
                return SetParametersResult(successful=False, reason=f"{p.name} is read-only (needs a restart)")
            why = validate(p.name, p.value)
            if why:
                return SetParametersResult(successful=False, reason=why)
            changed[p.name] = p.value
        why = validate_all({k: v for k, v in changed.items() if k in PARAM_BY_NAME})
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
        self._apply_consistency_settings()
        self.estimator.configure(**runtime_settings(self.estimator, self.cfg))

    def _apply_consistency_settings(self) -> None:
        """Parameters of ~/confidence, ~/occlusion and ~/moving -> the pipeline's settings."""
        for name in ("occlusion_alpha", "occlusion_beta", "confidence_tau", "moving_threshold", "moving_min_blob",
                     "moving_min_confidence", "moving_tau"):
            setattr(self.settings, name, float(self.cfg[name]))

    def _publish_diagnostics(self) -> None:
        info = {"backend": self.spec.backend, "refine": self.spec.refine, "device": self.estimator.device,
                "model": self.estimator.description,
                "input_topic": self.input_topic, "queue_depth": str(len(self.queue)),
                "cpu_threads": str(self.cpu_threads), "max_pixels": str(self.cfg["max_pixels"])}
        model = self._camera_model
        if model is not None:  # ~/moving's camera-motion fit (last pair)
            info.update(moving_camera_model=model.kind, moving_inlier_fraction=f"{model.inlier_fraction:.3f}")
        status = make_status(self.stats.report(), f"{self.get_fully_qualified_name()}: optical flow",
                             f"{self.cfg['backend']}@{self.estimator.device}", info, self.starting)
        self.pub_diag.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))

    # ---- worker thread ---------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Load the correlation extension, then let the images in; when it must be compiled (no prebuilt
        library, e.g. no compiler at install time), say so in the log and diagnostics meanwhile."""
        try:
            if self.spec.backend_info.network:
                self._load_correlation()
        finally:
            self.starting = None
            self._ready.set()

    def _load_correlation(self) -> None:
        from flownet_ros.ops import build, correlation_backend

        with_cuda = self.estimator.device.startswith("cuda") and build.cuda_buildable()
        if build.needs_compile(with_cuda):
            self.starting = ("compiling the correlation extension (one time, typically 1-2 minutes; images are "
                             "subscribed afterwards)")
            self.get_logger().warning(f"{self.starting}: build it at install time with a compiler present, "
                                      "or `python -m flownet_ros.ops.build`")
        t0 = time.monotonic()
        backend = correlation_backend()
        self.starting = None
        self.get_logger().info(f"correlation backend {backend} ready after {time.monotonic() - t0:.1f} s")

    def _wanted(self) -> Wanted:
        """What someone listens to now (image_pipeline's lazy style); skipped work is counted."""
        color = self.cfg["publish_color"] and self.pub_color.get_subscription_count() > 0
        motion = self.cfg["publish_motion"] and self.pub_motion.get_subscription_count() > 0
        confidence = self.pub_confidence.get_subscription_count() + self.pub_occlusion.get_subscription_count() > 0
        moving = self.pub_moving.get_subscription_count() > 0
        flow = color or motion or confidence or moving or self.pub_flow.get_subscription_count() > 0 or \
            self.pub_pair.get_subscription_count() > 0
        self.stats.idle(not flow)
        if flow:
            self.stats.count("color_skipped", int(self.cfg["publish_color"] and not color))
            self.stats.count("motion_skipped", int(self.cfg["publish_motion"] and not motion))
        return Wanted(flow, color, motion, confidence, moving)

    def _work(self, item: Pending) -> None:
        if self._closing:
            return
        with self._lock:
            behind = self._accepted - item.seq
        self.stats.frames_behind(behind)
        wanted = self._wanted()
        if not wanted.flow:  # nobody listens: no conversion, no inference; the newest message is kept
            self.pairer.reset()
            self._held = item
            return
        held, self._held = self._held, None
        if held is not None:  # a subscriber just appeared: the frame before this one completes the pair
            previous = self._convert(held)
            if previous is not None:
                self.pipeline.process(previous, Wanted(flow=False))
        frame = self._convert(item)
        if frame is None:
            return
        self.stats.count("processed")
        self._process(frame, wanted)
        if frame.size != self._heap_size:  # the previous size's buffers are free now: return them
            self._heap_size = frame.size
            release_free_memory()

    def _process(self, frame: Frame, wanted: Wanted) -> None:
        """The pipeline on ``frame``, then publish; a NaN/inf flow is counted and never published (NaN flow
        would read as "no motion")."""
        try:
            result = self.pipeline.process(frame, wanted)
        except NonFiniteFlowError as exc:
            self.stats.count("nonfinite")
            self.get_logger().error(f"flow not published: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        if result is not None and not self._closing:
            self._publish(result)

    def _convert(self, item: Pending) -> Optional[Frame]:
        msg = item.msg
        said: List[str] = []  # what the JPEG / PNG library printed while decoding
        self.stats.decoding()
        try:
            if isinstance(msg, CompressedImage):
                # the source pixel format (before ';') decides pairing, not the codec
                image = compressed_msg_to_rgb(msg, self.cfg["max_pixels"], said)
                encoding = "compressed " + msg.format.split(";")[0].strip()
            else:
                image, encoding = image_msg_to_rgb(msg), msg.encoding
        except FrameSizeError as exc:
            self._reject(msg, str(exc), "refused_size")
            return None
        except DecodeWorkError as exc:
            self._reject(msg, str(exc), "refused_work")
            return None
        except ImageConversionError as exc:
            self._reject(msg, str(exc))
            return None
        finally:
            self.stats.decoded()
            self._decoder_said(msg, said)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        return Frame(image, stamp_ns, msg.header, encoding, item.seq)

    def _decoder_said(self, msg, lines: List[str]) -> None:
        """Count the decoder's stderr lines and log them throttled (they came at the sender's rate)."""
        if not lines:
            return
        self.stats.count("decoder_messages", len(lines))
        more = f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else ""
        self.get_logger().warning(f"image decoder message (frame_id {quoted(msg.header.frame_id)}): "
                                  f"{quoted(lines[0], 200)}{more}", throttle_duration_sec=LOG_THROTTLE_S)

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
        for pub, image, encoding in ((self.pub_confidence, r.confidence, "32FC1"),
                                     (self.pub_occlusion, r.occlusion, "mono8"), (self.pub_moving, r.moving, "mono8")):
            if image is not None and pub.get_subscription_count() > 0:
                pub.publish(array_to_image_msg(image, encoding, header))
        if r.camera_model is not None:
            self._camera_model = r.camera_model
        self.stats.count("backward_flows", int(r.confidence is not None))
        self.pub_pair.publish(TimeReference(header=header, time_ref=r.older.header.stamp, source="previous_frame"))
        latency = (self.get_clock().now().nanoseconds - r.newer.stamp_ns) * 1e-9
        self.stats.output(latency, r.inference_s, r.motion.fit.inlier_fraction if r.motion else None)
        self.stats.flow_path(r.info)

    def _on_reset(self, reason: str) -> None:
        if reason != FramePairer.FIRST:
            self.stats.count("resets")
        self.get_logger().debug(f"flow pair reset: {reason}")

    def _on_worker_error(self, exc: BaseException, item: Pending) -> None:
        self.stats.count("errors")
        self.pairer.reset()
        self.get_logger().error(f"processing failed ({type(exc).__name__}: {exc}); pair reset",
                                throttle_duration_sec=LOG_THROTTLE_S)

    def close(self) -> None:
        """Stop the worker (it finishes its frame, still able to publish), then destroy the node."""
        self._closing = True
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop(timeout=30.0)
        self.destroy_node()


class ShutdownRequest:
    """SIGINT / SIGTERM: the first one asks the spin loop to stop; later ones are ignored, so a second
    Ctrl-C (the terminal and ``ros2 launch`` both send one) cannot interrupt the orderly shutdown."""

    def __init__(self):
        self.event = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.event.set()


def _init_ros(args) -> None:
    """Rclpy without its own signal handlers (the node handles SIGINT/SIGTERM, see ShutdownRequest)."""
    try:
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (ImportError, TypeError):  # an rclpy without the option
        rclpy.init(args=args)


def _int_for_float(message: str) -> bool:
    """Whether rclpy's type error is an integer given for a floating-point parameter."""
    given, _, expected = message.partition("expecting type")
    return "'INTEGER'" in given and "DOUBLE" in expected


def _start(args) -> Optional[FlowNode]:
    """The node, or None after printing one line on stderr (bad parameters, checkpoint, device)."""
    try:
        _init_ros(args)
        return FlowNode()
    except (CheckpointError, ValueError, ParameterException, RuntimeError, OSError) as exc:
        # RuntimeError: rclpy's argument/params-file parsing and device errors (out of GPU memory, a bad
        # CUDA ordinal). OSError: unreadable files.
        msg = f"flownet_node: cannot start: {' '.join(str(exc).split())}"
        if isinstance(exc, InvalidParameterTypeException) and _int_for_float(str(exc)):
            msg += " (write floating-point parameters with a decimal point, e.g. 2.0)"
        print(msg, file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return None


def run(args=None) -> int:
    """Start, spin until SIGINT/SIGTERM, shut down in order; returns the exit code (2 = cannot start)."""
    keep_frame_buffers_in_heap()  # before the first frame-sized allocation
    stop = ShutdownRequest()
    stop.install()
    if _EARLY_SIGNALS:  # Ctrl-C while the modules loaded: nothing started, nothing to stop
        return 0
    node = _start(args)
    if node is None:
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop.event.is_set() and rclpy.ok():
        executor.spin_once(timeout_sec=0.1)
    executor.remove_node(node)
    node.close()
    rclpy.try_shutdown()
    return 0


def main(args=None) -> None:
    """Console entry point: exit without interpreter finalisation once ROS has shut down cleanly (it
    would cost 1-2 CPU-seconds after torch, past ``ros2 launch``'s 5 s SIGINT grace on a busy robot)."""
    code = run(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
