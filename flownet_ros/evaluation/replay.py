"""Replay a rosbag2 bag through the flownet node over real ROS 2 and record the node's outputs.

``python -m flownet_ros.evaluation.replay BAG [--topic T] [--rate R] [--clock] [--no-start] ...``

* Frames are published with their recorded header stamps (the raw CDR bytes from the bag), at
  ``--rate`` times the recorded timing; ``--rate 0`` publishes the next frame only once the node's
  flow for the previous one has arrived, so nothing is dropped.
* The node is started as a subprocess (``python -m flownet_ros.ros.node``) with the Fast DDS
  shared-memory profile, or an already running one is used (``--no-start``).
* ``~/flow``, ``~/flow_color``, ``~/motion``, ``~/flow_pair`` and ``/diagnostics`` are recorded into an mcap bag.
  Bag time = receive time on the *replay clock*: the clock on which each frame is published exactly
  at its header stamp. So ``bag time - stamp`` is the end-to-end latency (publish -> output
  received, wall-clock nanoseconds) at any rate, and the output bag reads like one recorded live
  with ``ros2 bag record`` next to a camera.
* Then the report is written (see :mod:`flownet_ros.evaluation.report`) unless ``--no-report``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from flownet_ros.evaluation import workspace
from flownet_ros.evaluation.bagio import (COMPRESSED, IMAGE, BagError, BagReader, BagWriter, cdr_stamp_ns,
                                          select_image_topic)
from flownet_ros.paths import find_data_file

TWIST = "geometry_msgs/msg/TwistStamped"
TIME_REFERENCE = "sensor_msgs/msg/TimeReference"  # ~/flow_pair: header = newer frame, time_ref = older frame
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
#: node output name -> message type (topics are <namespace>/<node name>/<output>)
#: output-bag custom_data key: wall-clock seconds between the first and the last flow received
WALL_SPAN_KEY = "flownet_ros.flow_wall_span_s"
RATE_KEY = "flownet_ros.rate"
NODE_OUTPUTS = {"flow": IMAGE, "flow_color": IMAGE, "motion": TWIST, "flow_pair": TIME_REFERENCE}


class ReplayError(RuntimeError):
    """The replay could not run (node failed to start or died, no outputs)."""


def fastdds_profile() -> Optional[Path]:
    """config/fastdds.xml of this package (installed share/ or the source tree), if present."""
    return find_data_file("config", "fastdds.xml")


def dds_environment(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``env`` (default os.environ) with the Fast DDS profile set unless the user already set one."""
    env = dict(os.environ if env is None else env)
    profile = fastdds_profile()
    if profile is not None and not (env.get("FASTDDS_DEFAULT_PROFILES_FILE")
                                    or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
        if env.get("ROS_DISTRO", "") in ("humble", "iron"):  # Fast DDS 2.x reads the older name only
            env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
    return env


def node_topics(node_name: str = "flownet", namespace: str = "") -> Dict[str, str]:
    """Absolute output topics of the node: {'flow': '/ns/flownet/flow', ...} plus '/diagnostics'."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    topics = {name: f"{ns}/{node_name}/{name}" for name in NODE_OUTPUTS}
    topics["diagnostics"] = "/diagnostics"
    return topics


def node_command(image_topic: str, msgtype: str, node_name: str = "flownet", namespace: str = "",
                 params: Optional[Dict[str, str]] = None) -> List[str]:
    """Command line that starts the node on ``image_topic`` (raw Image or CompressedImage)."""
    params = dict(params or {})
    remap = f"image:={image_topic}"
    if msgtype == COMPRESSED:
        params.setdefault("transport", "compressed")
        remap = f"image/compressed:={image_topic}"
    cmd = [sys.executable, "-m", "flownet_ros.ros.node", "--ros-args", "-r", f"__node:={node_name}",
           "-r", remap]
    if namespace.strip("/"):
        cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={value}"]
    return cmd


class NodeProcess:
    """The node as a subprocess; output goes to ``log_path``. ``stop()`` sends SIGINT, then kills."""

    def __init__(self, cmd: Sequence[str], log_path: Path, env: Dict[str, str]):
        self.cmd = list(cmd)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check(self) -> None:
        if not self.alive():
            raise ReplayError(f"the node exited with code {self.proc.returncode}; log {self.log_path}:\n"
                              f"{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@dataclass
class Frame:
    """One input frame: raw CDR bytes, header stamp and bag time (ns)."""

    raw: bytes
    stamp_ns: int
    time_ns: int


@dataclass
class ReplayOptions:
    bag: Path
    topic: Optional[str] = None
    rate: float = 1.0
    clock: bool = False
    start_node: bool = True
    node_name: str = "flownet"
    namespace: str = ""
    params: Dict[str, str] = field(default_factory=dict)
    out_dir: Optional[Path] = None  # default out/replay/<bag>_<time>: outputs/ (bag), node.log, report/
    storage: str = "mcap"
    timeout: float = 30.0
    startup_timeout: float = 120.0
    drain: float = 3.0
    progress: bool = True


@dataclass
class ReplayResult:
    output_bag: Path
    image_topic: str
    frames_sent: int
    received: Dict[str, int]
    missing: List[int]
    wall_s: float
    node_log: Optional[Path]
    node_command: Optional[List[str]]


class _Recorder:
    """Writes raw output messages into the output bag; tracks which flow stamps arrived."""

    def __init__(self, writer: BagWriter, topics: Dict[str, str], types: Dict[str, str]):
        self.writer = writer
        self.topics = topics
        self.types = types
        self.lock = threading.Condition()
        self.active = False
        self.sent: Dict[int, int] = {}  # stamp -> wall ns at publish
        self.offset = 0  # replay clock - wall clock, from the latest published frame
        self.flow_stamps: set = set()
        self.last_output_wall = 0.0
        self.flow_wall_ns: List[int] = []  # wall-clock receive times of the flow messages
        self.max_latency_s = 0.0
        for name, topic in topics.items():
            writer.add(topic, types[name])

    def mark_sent(self, stamp_ns: int, wall_ns: int) -> None:
        with self.lock:
            self.sent[stamp_ns] = wall_ns
            self.offset = stamp_ns - wall_ns
            self.active = True

    def replay_time(self, wall_ns: int, stamp_ns: Optional[int]) -> int:
        """Receive wall time -> replay clock (exact per frame when the stamp is a published frame's)."""
        if stamp_ns is not None and stamp_ns in self.sent:
            return stamp_ns + (wall_ns - self.sent[stamp_ns])
        return wall_ns + self.offset

    def callback(self, name: str):
        topic = self.topics[name]

        def on_message(raw: bytes, info) -> None:
            wall = int(info.get("received_timestamp") or 0) or time.time_ns()
            try:
                stamp = cdr_stamp_ns(raw)
            except ValueError:
                stamp = None
            with self.lock:
                if not self.active:
                    return
                t_bag = self.replay_time(wall, stamp)
                self.writer.write(topic, max(0, t_bag), raw=raw)
                self.last_output_wall = time.monotonic()
                if name == "flow" and stamp is not None:
                    self.flow_stamps.add(stamp)
                    self.flow_wall_ns.append(wall)
                    self.max_latency_s = max(self.max_latency_s, (t_bag - stamp) / 1e9)
                    self.lock.notify_all()

        return on_message

    def wait_flow(self, stamp_ns: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: stamp_ns in self.flow_stamps, timeout)


def camera_topic(bag: BagReader, topic: Optional[str]) -> Tuple[str, str, int]:
    """(topic, msgtype, frame count) of the camera topic to replay; at least 2 frames."""
    topic, msgtype = select_image_topic(bag, topic)
    count = bag.message_count(topic)
    if count < 2:
        raise BagError(f"bag {bag.path}: topic {topic} has {count} frame(s), need at least 2")
    return topic, msgtype, count


def read_frames(bag: BagReader, topic: str) -> Iterator[Frame]:
    """Frames of ``topic`` in bag order, streamed (raw bytes only, no decoding)."""
    for m in bag.messages([topic]):
        yield Frame(m.raw, cdr_stamp_ns(m.raw), m.time_ns)


def _qos_like(node, topic: str, depth: int = 10):
    """Subscriber QoS that matches the publishers of ``topic`` (reliable only if all offer it)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else
                      ReliabilityPolicy.BEST_EFFORT)


def _wait(cond, timeout: float, what: str, node_proc: Optional[NodeProcess], step: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if node_proc is not None:
            node_proc.check()
        if time.monotonic() > end:
            extra = f"; node log {node_proc.log_path}:\n{node_proc.log_tail()}" if node_proc else ""
            raise ReplayError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(step)


def default_output_dir(bag: Path) -> Path:
    return workspace() / "out" / "replay" / f"{bag.stem or bag.name}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def replay(opts: ReplayOptions) -> ReplayResult:
    """Replay ``opts.bag`` through the node and record its outputs; see the module docstring."""
    if opts.rate < 0:
        raise ValueError(f"--rate must be >= 0, got {opts.rate}")
    bag = BagReader(opts.bag)
    bag.open()
    try:
        topic, msgtype, n_frames = camera_topic(bag, opts.topic)
        out_dir = Path(opts.out_dir) if opts.out_dir else default_output_dir(opts.bag)
        out_bag = out_dir / "outputs"
        writer = BagWriter(out_bag, opts.storage, custom={
            "flownet_ros.input_bag": str(opts.bag), "flownet_ros.image_topic": topic, RATE_KEY: str(opts.rate),
            "flownet_ros.clock": "bag time = receive time on the replay clock (frames published at their stamps)"})
    except BaseException:
        bag.close()
        raise
    try:
        return _replay(opts, bag, topic, msgtype, n_frames, out_dir, writer)
    finally:
        writer.close()  # idempotent: normally closed by _replay before its result is built
        bag.close()


def _replay(opts: ReplayOptions, bag: BagReader, topic: str, msgtype: str, n_frames: int, out_dir: Path,
            writer: BagWriter) -> ReplayResult:
    out_bag = writer.path
    env = dds_environment()
    os.environ.update({k: v for k, v in env.items() if k.endswith("_DEFAULT_PROFILES_FILE")})

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image

    topics = node_topics(opts.node_name, opts.namespace)
    types = {**NODE_OUTPUTS, "diagnostics": DIAGNOSTICS}
    params = dict(opts.params)
    if opts.clock:
        params.setdefault("use_sim_time", "true")
    if opts.rate == 0:
        params.setdefault("reliability", "reliable")  # waiting for each output: lose nothing in transport

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node_proc: Optional[NodeProcess] = None
    executor = None
    spin_thread = None
    t_start = time.monotonic()
    sent = 0
    missing: List[int] = []
    sent_stamps: List[int] = []
    try:
        node = rclpy.create_node("flownet_replay", context=ctx)
        pub = node.create_publisher(CompressedImage if msgtype == COMPRESSED else Image, topic,
                                    QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        clock_pub = node.create_publisher(Clock, "/clock", 10) if opts.clock else None
        if opts.start_node:
            cmd = node_command(topic, msgtype, opts.node_name, opts.namespace, params)
            node_proc = NodeProcess(cmd, out_dir / "node.log", env)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        spin_thread = threading.Thread(target=executor.spin, daemon=True)
        spin_thread.start()

        _wait(lambda: pub.get_subscription_count() > 0 and node.count_publishers(topics["flow"]) > 0,
              opts.startup_timeout, f"the node to subscribe to {topic} and advertise {topics['flow']}",
              node_proc)
        recorder = _Recorder(writer, topics, types)
        subs = []
        for name, out_topic in topics.items():
            subs.append(node.create_subscription(_msg_class(types[name]), out_topic, recorder.callback(name),
                                                 _qos_like(node, out_topic), raw=True))
        flow_sub = subs[0]
        _wait(lambda: flow_sub.get_publisher_count() > 0, opts.startup_timeout,
              f"a connection to {topics['flow']}", node_proc)
        time.sleep(0.5)  # let the remaining endpoints (colour, motion, diagnostics) match too

        progress = _progress(n_frames, opts.progress, f"replay {topic}")
        wall0 = time.monotonic()
        bag0 = None
        consecutive_missing = 0
        for i, frame in enumerate(read_frames(bag, topic)):
            bag0 = frame.time_ns if bag0 is None else bag0
            if opts.rate > 0:
                due = wall0 + (frame.time_ns - bag0) / 1e9 / opts.rate
                while (delay := due - time.monotonic()) > 0:
                    time.sleep(min(delay, 0.05))
            if node_proc is not None:
                node_proc.check()
            now = time.time_ns()
            recorder.mark_sent(frame.stamp_ns, now)
            if clock_pub is not None:
                clock_pub.publish(Clock(clock=_ros_time(frame.stamp_ns)))
            pub.publish(frame.raw)
            sent += 1
            sent_stamps.append(frame.stamp_ns)
            progress.update(1)
            if opts.rate == 0:
                if i == 0:
                    time.sleep(0.5)  # the node keeps frame 0 as the previous frame; no output expected
                    continue
                # the first output may include one-time warm-up (extension load, cuDNN autotuning)
                wait_s = opts.timeout if recorder.flow_wall_ns else max(opts.timeout, opts.startup_timeout)
                if recorder.wait_flow(frame.stamp_ns, wait_s):
                    consecutive_missing = 0
                else:
                    missing.append(frame.stamp_ns)
                    consecutive_missing += 1
                    if consecutive_missing >= 3:
                        extra = f"; node log {node_proc.log_path}:\n{node_proc.log_tail()}" if node_proc else ""
                        raise ReplayError(f"no flow on {topics['flow']} for 3 frames in a row "
                                          f"(waited {opts.timeout:.0f} s each){extra}")
        progress.close()
        if opts.rate > 0:
            last = sent_stamps[-1]
            end = time.monotonic() + opts.timeout
            while not recorder.wait_flow(last, 0.1) and time.monotonic() < end:
                # stop early once the node has been quiet for much longer than its slowest output so
                # far (it dropped the last frames); before any output, wait the whole timeout
                quiet = time.monotonic() - max(recorder.last_output_wall, due)
                if recorder.flow_wall_ns and quiet > max(opts.drain, 3 * recorder.max_latency_s):
                    break
            with recorder.lock:
                got = set(recorder.flow_stamps)
            missing = [s for s in sent_stamps[1:] if s not in got]
        time.sleep(0.3)  # trailing colour / motion / flow_pair messages of the last flow
        with recorder.lock:
            recorder.active = False
            walls = sorted(recorder.flow_wall_ns)
        received = dict(writer.counts)
        if len(walls) > 1:
            writer.set_custom(WALL_SPAN_KEY, f"{(walls[-1] - walls[0]) / 1e9:.6f}")
    finally:
        if node_proc is not None:
            node_proc.stop()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if spin_thread is not None:
            spin_thread.join(timeout=5.0)
        writer.close()
        rclpy.shutdown(context=ctx)
    return ReplayResult(out_bag, topic, sent, {topics.get(k, k): v for k, v in received.items()}, missing,
                        time.monotonic() - t_start, node_proc.log_path if node_proc else None,
                        node_proc.cmd if node_proc else None)


def _msg_class(msgtype: str):
    import importlib

    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _ros_time(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)


def parse_params(items: Sequence[str]) -> Dict[str, str]:
    """['name:=value', ...] (also name=value) -> dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition(":=")
        if not sep:
            key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"node parameter must look like name:=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.replay", description=__doc__.split("\n")[0])
    p.add_argument("bag", type=Path, help="input rosbag2 (directory, .mcap or .db3)")
    p.add_argument("--topic", help="camera topic (Image or CompressedImage); default: the only one in the bag")
    p.add_argument("--rate", type=float, default=1.0,
                   help="1.0 = recorded timing, 2 = twice as fast, 0 = as fast as the node keeps up (no drops)")
    p.add_argument("--clock", action="store_true", help="publish /clock (and start the node with use_sim_time)")
    p.add_argument("--no-start", dest="start_node", action="store_false",
                   help="use a node that is already running instead of starting one")
    p.add_argument("--node-name", default="flownet")
    p.add_argument("--namespace", default="")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="node parameter for the started node, e.g. -p inference_width:=320 (repeatable)")
    p.add_argument("--checkpoint", help="shortcut for -p checkpoint:=PATH")
    p.add_argument("--out-dir", type=Path, help="run directory: outputs/ (the recorded bag), node.log, report/ "
                   "(default out/replay/<bag>_<time>)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one output (rate 0) / the last")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--no-report", dest="report", action="store_false", help="only record, no report")
    p.add_argument("--gt-topic", help="ground-truth flow topic (32FC2) in the input bag; default: auto")
    p.add_argument("--baseline", choices=("dis",), help="also run OpenCV DIS on the same frames")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = parse_params(args.param)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.checkpoint:
        params["checkpoint"] = str(Path(args.checkpoint).resolve())
    opts = ReplayOptions(bag=args.bag, topic=args.topic, rate=args.rate, clock=args.clock,
                         start_node=args.start_node, node_name=args.node_name, namespace=args.namespace,
                         params=params, out_dir=args.out_dir, storage=args.storage, timeout=args.timeout,
                         startup_timeout=args.startup_timeout, progress=not args.quiet)
    try:
        result = replay(opts)
    except (BagError, ReplayError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: node stopped, the recording so far is closed and readable", file=sys.stderr)
        return 130
    counts = ", ".join(f"{t}: {n}" for t, n in result.received.items())
    print(f"replayed {result.frames_sent} frames of {result.image_topic} in {result.wall_s:.1f} s; "
          f"recorded {counts} -> {result.output_bag}")
    if result.missing:
        print(f"{len(result.missing)} frame(s) got no flow output")
    if not args.report:
        return 0
    from flownet_ros.evaluation.report import ReportOptions, evaluate, print_summary

    report_dir = result.output_bag.parent / "report"
    try:
        report = evaluate(ReportOptions(input_bag=args.bag, output_bag=result.output_bag,
                                                  out_dir=report_dir, topic=result.image_topic,
                                                  gt_topic=args.gt_topic, node_name=args.node_name,
                                                  namespace=args.namespace, baseline=args.baseline,
                                                  progress=not args.quiet, rate=args.rate))
    except BagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_summary(report)
    print(f"report: {report_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
