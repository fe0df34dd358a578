"""Recording the node's outputs into a bag during a replay, on the replay clock.

Bag time = receive time on the *replay clock*: the clock on which each frame is published exactly at
its header stamp. So ``bag time - stamp`` is the end-to-end latency (publish -> output received,
wall-clock nanoseconds) at any rate, and the output bag reads like one recorded live with
``ros2 bag record`` next to a camera.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Dict, List, Optional

from flownet_ros.evaluation.bagio import BagWriter, cdr_stamp_ns


class OutputRecorder:
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
        self.last_flow_wall = 0.0  # time.monotonic() of the latest flow / diagnostics message
        self.last_diagnostics_wall = 0.0
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
                if name == "diagnostics":
                    self.last_diagnostics_wall = self.last_output_wall
                if name == "flow":
                    self.last_flow_wall = self.last_output_wall
                if name == "flow" and stamp is not None:
                    self.flow_stamps.add(stamp)
                    self.flow_wall_ns.append(wall)
                    self.max_latency_s = max(self.max_latency_s, (t_bag - stamp) / 1e9)
                    self.lock.notify_all()

        return on_message

    def wait_flow(self, stamp_ns: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: stamp_ns in self.flow_stamps, timeout)

    def subscribe(self, node) -> list:
        """Raw subscriptions of ``node`` to every output, with the QoS its publishers offer."""
        return [node.create_subscription(msg_class(self.types[name]), topic, self.callback(name),
                                         qos_like(node, topic), raw=True) for name, topic in self.topics.items()]

    def stop(self) -> List[int]:
        """Stop recording; returns the sorted wall-clock receive times of the flow messages."""
        with self.lock:
            self.active = False
            return sorted(self.flow_wall_ns)


def qos_like(node, topic: str, depth: int = 10):
    """Subscriber QoS that matches the publishers of ``topic`` (reliable only if all offer it)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else
                      ReliabilityPolicy.BEST_EFFORT)


def msg_class(msgtype: str):
    """'pkg/msg/Name' -> the rclpy message class."""
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)
