"""Replay a rosbag2 bag through the flownet node over real ROS 2 and record the node's outputs.

``python -m flownet_ros.evaluation.replay BAG [--topic T] [--rate R] [--clock] [--no-start] ...``

* Frames are published with their recorded header stamps (the raw CDR bytes from the bag), at
  ``--rate`` times the recorded timing; ``--rate 0`` publishes the next frame only once the node's
  flow for the previous one has arrived, so nothing is dropped. Every record is checked first as the
  node would (decodable, within the size limits): records that are not are skipped, counted and
  reported, exactly as the report does.
* The node is started as a subprocess (``python -m flownet_ros.ros.node``) with the Fast DDS
  shared-memory profile, or an already running one is used (``--no-start``).
* What the report reads is recorded into an mcap bag, on the replay clock
  (:mod:`flownet_ros.evaluation.recorder`): ``~/flow``, ``~/flow_pair`` and ``/diagnostics``;
  ``--record-color`` adds ``~/flow_color``, ``--record-all`` every output (also ``~/motion``). The size of
  the recording is printed (full-resolution float flow: about 2.5 MB per 640x480 frame).
* Then the report is written (see :mod:`flownet_ros.evaluation.report`) unless ``--no-report``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from flownet_ros.cli import tool, user_path
from flownet_ros.evaluation.bagio import (
    COMPRESSED,
    INPUT_BAG_KEY,
    RATE_KEY,
    WALL_SPAN_KEY,
    BagError,
    BagReader,
    BagWriter,
    cdr_stamp_ns,
    decode_image,
    select_image_topic,
)
from flownet_ros.evaluation.node_process import (
    DIAGNOSTICS,
    NODE_OUTPUTS,
    NodeProcess,
    ReplayError,
    environ,
    node_command,
    node_topics,
    private_network,
)
from flownet_ros.evaluation.recorder import OutputRecorder
from flownet_ros.paths import workspace
from flownet_ros.ros.dds import with_profile

#: what the report reads; ``flow_color`` and ``motion`` only on request (--record-color, --record-all)
RECORD_DEFAULT = ("flow", "flow_pair", "diagnostics")
RECORD_ALL = tuple(NODE_OUTPUTS) + ("diagnostics",)


def disk_usage(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file)."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


@dataclass
class RecordedFrame:
    """One input record: raw CDR bytes, header stamp, bag time (ns), and why the node would refuse it."""

    raw: bytes
    stamp_ns: int
    time_ns: int
    error: Optional[str] = None


@dataclass
class ReplayOptions:
    """What to replay, how fast, through which node (started here or already running), where to record."""

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
    record: Tuple[str, ...] = RECORD_DEFAULT  # node outputs to record (names of node_topics)
    private_domain: bool = True  # a started node and the replay on a domain of their own, localhost only


@dataclass
class ReplayResult:
    """What a replay did: frames sent, messages recorded per topic, frames without flow, skipped records."""

    output_bag: Path
    image_topic: str
    frames_sent: int
    received: Dict[str, int]
    missing: List[int]
    wall_s: float
    node_log: Optional[Path]
    node_command: Optional[List[str]]
    undecodable: List[Tuple[int, str]] = field(default_factory=list)  # (record index, reason)
    domain: Optional[str] = None  # the private ROS_DOMAIN_ID used (None: the current one)


def camera_topic(bag: BagReader, topic: Optional[str]) -> Tuple[str, str, int]:
    """(topic, msgtype, frame count) of the camera topic to replay; at least 2 frames."""
    topic, msgtype = select_image_topic(bag, topic)
    count = bag.message_count(topic)
    if count < 2:
        raise BagError(f"bag {bag.path}: topic {topic} has {count} frame(s), need at least 2")
    return topic, msgtype, count


def node_max_pixels(params: Dict[str, str]) -> Optional[int]:
    """The ``max_pixels`` given to the node (``-p max_pixels:=N``), None = the node's default."""
    if "max_pixels" not in params:
        return None
    try:
        return int(params["max_pixels"])
    except ValueError:
        raise ValueError(f"node parameter max_pixels must be an integer, got {params['max_pixels']!r}") from None


def read_frames(bag: BagReader, topic: str, max_pixels: Optional[int] = None) -> Iterator[RecordedFrame]:
    """Records of ``topic`` in bag order, each checked as the node checks a message (with its ``max_pixels``)."""
    for m in bag.messages([topic]):
        try:
            decode_image(m.msg, max_pixels)
            error = None
        except (ValueError, BagError) as exc:  # undecodable CDR, bad image fields, refused size
            error = str(exc)
        try:
            stamp = cdr_stamp_ns(m.raw)
        except ValueError as exc:
            stamp, error = -1, error or str(exc)
        yield RecordedFrame(m.raw, stamp, m.time_ns, error)


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
    if "flow" not in opts.record or set(opts.record) - set(RECORD_ALL):
        raise ValueError(f"record must include 'flow' and name only {RECORD_ALL}, got {opts.record}")
    max_pixels = node_max_pixels(opts.params)
    bag = BagReader(opts.bag)
    bag.open()
    try:
        topic, msgtype, n_frames = camera_topic(bag, opts.topic)
        out_dir = Path(opts.out_dir) if opts.out_dir else default_output_dir(opts.bag)
        writer = BagWriter(out_dir / "outputs", opts.storage, custom={
            INPUT_BAG_KEY: str(opts.bag), "flownet_ros.image_topic": topic, RATE_KEY: str(opts.rate),
            "flownet_ros.clock": "bag time = receive time on the replay clock (frames published at their stamps)"})
    except BaseException:
        bag.close()
        raise
    session = Session(opts, topic, msgtype, out_dir, writer)
    try:
        session.start()
        sent, missing, undecodable = session.send(read_frames(bag, topic, max_pixels), n_frames)
        received = session.finish()
    finally:
        session.close()
        writer.close()  # idempotent
        bag.close()
    return ReplayResult(writer.path, topic, sent, received, missing, time.monotonic() - session.t_start,
                        session.node_log, session.node_cmd, undecodable, session.network.get("ROS_DOMAIN_ID"))


class Session:
    """One replay over ROS 2: the publisher, the node process, the recorder, the executor thread."""

    def __init__(self, opts: ReplayOptions, topic: str, msgtype: str, out_dir: Path, writer: BagWriter):
        self.opts, self.topic, self.msgtype, self.out_dir, self.writer = opts, topic, msgtype, out_dir, writer
        self.topics = {k: v for k, v in node_topics(opts.node_name, opts.namespace).items() if k in opts.record}
        self.types = {**NODE_OUTPUTS, "diagnostics": DIAGNOSTICS}
        self.t_start = time.monotonic()
        self.node_proc: Optional[NodeProcess] = None
        self.executor = self.spin_thread = self.ctx = None
        self.recorder: Optional[OutputRecorder] = None
        self.network: Dict[str, str] = {}  # environment overrides of a private domain (see private_network)

    @property
    def node_log(self) -> Optional[Path]:
        return self.node_proc.log_path if self.node_proc else None

    @property
    def node_cmd(self) -> Optional[List[str]]:
        return self.node_proc.cmd if self.node_proc else None

    def _params(self) -> Dict[str, str]:
        params = dict(self.opts.params)
        if self.opts.clock:
            params.setdefault("use_sim_time", "true")
        if self.opts.rate == 0:
            params.setdefault("reliability", "reliable")  # waiting for each output: lose nothing in transport
        return params

    def start(self) -> None:
        """ROS context, publisher, the node (unless --no-start), then wait until everything is connected."""
        env = with_profile()
        os.environ.update({k: v for k, v in env.items() if k.endswith("_DEFAULT_PROFILES_FILE")})
        self.network = private_network(env) if self.opts.start_node and self.opts.private_domain else {}
        env.update(self.network)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image

        self.ctx = rclpy.Context()
        with environ(self.network):
            rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("flownet_replay", context=self.ctx)
        self.pub = self.node.create_publisher(CompressedImage if self.msgtype == COMPRESSED else Image, self.topic,
                                              QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10) if self.opts.clock else None
        if self.opts.start_node:
            cmd = node_command(self.topic, self.msgtype, self.opts.node_name, self.opts.namespace, self._params())
            self.node_proc = NodeProcess(cmd, self.out_dir / "node.log", env)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.spin_thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.spin_thread.start()
        flow = self.topics["flow"]
        _wait(lambda: self.pub.get_subscription_count() > 0 and self.node.count_publishers(flow) > 0,
              self.opts.startup_timeout, f"the node to subscribe to {self.topic} and advertise {flow}", self.node_proc)
        self.recorder = OutputRecorder(self.writer, self.topics, self.types)
        self.subs = self.recorder.subscribe(self.node)
        _wait(lambda: self.subs[0].get_publisher_count() > 0, self.opts.startup_timeout,
              f"a connection to {flow}", self.node_proc)
        time.sleep(0.5)  # let the remaining endpoints (colour, motion, diagnostics) match too

    def _pace(self, frame: RecordedFrame, t0: Tuple[float, int]) -> None:
        """--rate > 0: sleep until the frame is due (its bag time relative to the first, / rate)."""
        self.last_due = time.monotonic()
        if self.opts.rate > 0:
            self.last_due = t0[0] + (frame.time_ns - t0[1]) / 1e9 / self.opts.rate
            while (delay := self.last_due - time.monotonic()) > 0:
                time.sleep(min(delay, 0.05))

    def _publish(self, frame: RecordedFrame) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        if self.node_proc is not None:
            self.node_proc.check()
        self.recorder.mark_sent(frame.stamp_ns, time.time_ns())
        if self.clock_pub is not None:
            sec, nsec = divmod(frame.stamp_ns, 1_000_000_000)
            self.clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nsec)))
        self.pub.publish(frame.raw)

    def send(self, frames: Iterator[RecordedFrame], total: int) -> Tuple[int, List[int], List[Tuple[int, str]]]:
        """Publish every decodable frame; returns (sent, stamps without flow, [(index, why undecodable)])."""
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"replay {self.topic}", unit="frame", disable=not self.opts.progress, leave=False)
        sent, missing, bad, in_a_row = [], [], [], 0
        t0 = None
        for i, frame in enumerate(frames):
            bar.update(1)
            if frame.error is not None:
                bad.append((i, frame.error))
                continue
            t0 = t0 or (time.monotonic(), frame.time_ns)
            self._pace(frame, t0)
            self._publish(frame)
            sent.append(frame.stamp_ns)
            if self.opts.rate == 0:
                in_a_row = self._await_flow(frame.stamp_ns, len(sent), missing, in_a_row)
        bar.close()
        if not sent:
            raise ReplayError(f"none of the {len(bad)} records of {self.topic} can be decoded; first: {bad[0][1]}")
        if self.opts.rate > 0:
            missing = self._drain(sent)
        return len(sent), missing, bad

    def _await_flow(self, stamp: int, n_sent: int, missing: List[int], in_a_row: int) -> int:
        """--rate 0: wait for the flow of the frame just sent; three missing in a row end the replay."""
        if n_sent == 1:
            time.sleep(0.5)  # the node keeps the first frame as the previous frame; no output expected
            return 0
        # the first output may include one-time warm-up (extension load, cuDNN autotuning)
        wait_s = self.opts.timeout if self.recorder.flow_wall_ns else max(self.opts.timeout, self.opts.startup_timeout)
        if self._wait_flow(stamp, wait_s):
            return 0
        missing.append(stamp)
        if in_a_row + 1 >= 3:
            extra = f"; node log {self.node_log}:\n{self.node_proc.log_tail()}" if self.node_proc else ""
            raise ReplayError(f"no flow on {self.topics['flow']} for 3 frames in a row "
                              f"(waited {self.opts.timeout:.0f} s each){extra}")
        return in_a_row + 1

    def _wait_flow(self, stamp: int, timeout: float, step: float = 0.2) -> bool:
        """Wait for the flow of ``stamp``; a node of ours that dies meanwhile ends the wait at once (ReplayError)."""
        end = time.monotonic() + timeout
        while not self.recorder.wait_flow(stamp, max(0.0, min(step, end - time.monotonic()))):
            if self.node_proc is not None:
                self.node_proc.check()
            if time.monotonic() >= end:
                return False
        return True

    def _drain(self, sent: List[int]) -> List[int]:
        """--rate > 0: wait for the last outputs; stop early once the node has been quiet for much longer
        than its slowest output so far (it dropped the last frames); before any output, the whole timeout."""
        rec = self.recorder
        end = time.monotonic() + self.opts.timeout
        while not rec.wait_flow(sent[-1], 0.1) and time.monotonic() < end:
            quiet = time.monotonic() - max(rec.last_output_wall, self.last_due)
            if rec.flow_wall_ns and quiet > max(self.opts.drain, 3 * rec.max_latency_s):
                break
        with rec.lock:
            got = set(rec.flow_stamps)
        return [s for s in sent[1:] if s not in got]

    def finish(self) -> Dict[str, int]:
        """Stop recording after the trailing colour / motion / flow_pair messages and, when diagnostics are
        recorded, one /diagnostics sample newer than the last flow (its counters then agree with the report's
        table; the node publishes them at 1 Hz); topic -> messages."""
        time.sleep(0.3)
        rec = self.recorder
        if "diagnostics" in self.topics:
            end = time.monotonic() + 2.5
            while rec.last_diagnostics_wall <= rec.last_flow_wall and time.monotonic() < end:
                time.sleep(0.05)
        walls = self.recorder.stop()
        if len(walls) > 1:
            self.writer.set_custom(WALL_SPAN_KEY, f"{(walls[-1] - walls[0]) / 1e9:.6f}")
        return {self.topics.get(k, k): v for k, v in self.writer.counts.items()}

    def close(self) -> None:
        import rclpy

        if self.node_proc is not None:
            self.node_proc.stop()
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=2.0)
        if self.spin_thread is not None:
            self.spin_thread.join(timeout=5.0)
        self.writer.close()
        if self.ctx is not None:
            rclpy.shutdown(context=self.ctx)


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
    from flownet_ros.inference.factory import add_baseline_argument

    p = argparse.ArgumentParser(prog="python -m flownet_ros.evaluation.replay", description=__doc__.split("\n")[0])
    p.add_argument("bag", type=user_path, help="input rosbag2 (directory, .mcap or .db3)")
    p.add_argument("--topic", help="camera topic (Image or CompressedImage); default: the only one in the bag")
    p.add_argument("--rate", type=float, default=1.0,
                   help="1.0 = recorded timing, 2 = twice as fast, 0 = as fast as the node keeps up (no drops)")
    p.add_argument("--clock", action="store_true", help="publish /clock (and start the node with use_sim_time)")
    p.add_argument("--no-start", dest="start_node", action="store_false",
                   help="use a node that is already running (in the current ROS_DOMAIN_ID) instead of starting one")
    p.add_argument("--current-domain", dest="private_domain", action="store_false",
                   help="publish into the current ROS_DOMAIN_ID with the usual discovery (to watch in RViz); "
                        "default: the replay and the node it starts use a private domain, localhost only")
    p.add_argument("--node-name", default="flownet")
    p.add_argument("--namespace", default="")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="node parameter for the started node, e.g. -p refine:=none (repeatable)")
    p.add_argument("--checkpoint", type=user_path, help="shortcut for -p checkpoint:=PATH")
    p.add_argument("--out-dir", type=user_path, help="run directory: outputs/ (the recorded bag), node.log, report/ "
                   "(default out/replay/<bag>_<time>)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--record-color", action="store_true", help="also record ~/flow_color (rgb8, 0.9 MB per VGA frame)")
    p.add_argument("--record-all", action="store_true", help="record every output of the node (also ~/motion)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one output (rate 0) / the last")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--no-report", dest="report", action="store_false", help="only record, no report")
    p.add_argument("--gt-topic", help="ground-truth flow topic (32FC2) in the input bag; default: auto")
    add_baseline_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def record_option(color: bool, everything: bool) -> Tuple[str, ...]:
    """--record-color / --record-all -> ReplayOptions.record."""
    return RECORD_ALL if everything else RECORD_DEFAULT + (("flow_color",) if color else ())


def print_result(result: ReplayResult) -> None:
    counts = ", ".join(f"{t}: {n}" for t, n in result.received.items())
    print(f"replayed {result.frames_sent} frames of {result.image_topic} in {result.wall_s:.1f} s; "
          f"recorded {counts} -> {result.output_bag} ({megabytes(disk_usage(result.output_bag))})")
    if result.undecodable:
        index, why = result.undecodable[0]
        print(f"{len(result.undecodable)} record(s) skipped: the node would refuse them (first: record {index}: {why})")
    if result.missing:
        print(f"{len(result.missing)} frame(s) got no flow output")
    if result.domain:
        print(f"the replay and its node used the private ROS domain {result.domain}, localhost only "
              f"(--current-domain publishes into ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}, e.g. for RViz)")


def node_estimator_spec(params: Dict[str, str]):
    """The EstimatorSpec of the node's ``name:=value`` parameters (estimator ones; others ignored), so that the
    report's backward flow (confidence, moving mask) comes from what the node ran."""
    import yaml

    from flownet_ros.inference.factory import EstimatorSpec

    keys = ("backend", "checkpoint", "device", "precision", "refine", "dis_preset", "bidirectional")
    given = {k: (str(v) if k == "checkpoint" else yaml.safe_load(v)) for k, v in params.items() if k in keys}
    return EstimatorSpec(**given)


def replay_and_report(opts: ReplayOptions, gt_topic: Optional[str] = None, baselines: Sequence[str] = (),
                      report: bool = True, wording: Callable[[str], str] = str) -> int:
    """Replay, print what happened, then write and print the report; returns the exit code. ``wording``
    rewrites error messages for the caller's users (``make demo`` says TOPIC= where the message says --topic)."""
    from flownet_ros.evaluation.report import ReportOptions, evaluate, print_summary

    try:
        result = replay(opts)
    except (BagError, ReplayError, ValueError) as err:
        print(f"error: {wording(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (flownet_ros.cli.tool)
        print("interrupted: node stopped, the recording so far is closed and readable", file=sys.stderr)
        return 128 + int(getattr(exc, "signum", 2))
    print_result(result)
    if not report:
        return 0
    report_dir = result.output_bag.parent / "report"
    try:
        rep = evaluate(ReportOptions(input_bag=opts.bag, output_bag=result.output_bag, out_dir=report_dir,
                                     topic=result.image_topic, gt_topic=gt_topic, node_name=opts.node_name,
                                     namespace=opts.namespace, baselines=tuple(baselines), progress=opts.progress,
                                     rate=opts.rate, estimator=node_estimator_spec(opts.params),
                                     max_pixels=node_max_pixels(opts.params)))
    except (BagError, ValueError) as err:  # ValueError: node parameters that make no estimator
        print(f"error: {wording(str(err))}", file=sys.stderr)
        return 1
    print_summary(rep)
    print(f"report: {report_dir / 'report.md'}")
    return 0


@tool("python -m flownet_ros.evaluation.replay")
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
                         startup_timeout=args.startup_timeout, progress=not args.quiet,
                         record=record_option(args.record_color, args.record_all),
                         private_domain=args.private_domain)
    return replay_and_report(opts, args.gt_topic, args.baseline, args.report)


if __name__ == "__main__":
    sys.exit(main())
