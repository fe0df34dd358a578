"""Helpers of the tests that talk to flownet_node over real DDS: a client node that publishes frames and
collects the outputs, the node as a subprocess, and message builders (used by test_ros_node, test_ros_outputs
and test_node_reliability)."""

import array
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from helpers import REPO
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, TimeReference

from flownet_ros.ros.diagnostics import status_values

FRAME_ID = "cam_optical"
T0 = 1_700_000_000  # stamps in seconds since the epoch, like a camera driver's
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
WAIT = 60.0  # generous: the CI machine has 2 shared cores


class Client(Node):
    """Publishes frames and collects everything the flownet nodes publish."""

    def __init__(self):
        super().__init__("flownet_test_client")
        self.inbox = defaultdict(list)
        self.diag = defaultdict(list)  # node namespace -> [{key: value}]
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg):
        for st in msg.status:
            self.diag[st.name.split("/")[1]].append(dict(status_values(st), level=st.level, message=st.message))

    def listen(self, ns, qos=RELIABLE):
        for name, typ in (("flow", Image), ("flow_color", Image), ("motion", TwistStamped),
                          ("flow_pair", TimeReference)):
            topic = f"/{ns}/flownet/{name}"
            self.create_subscription(typ, topic, lambda m, t=topic: self.inbox[t].append(m), qos)

    def got(self, ns, name):
        return self.inbox[f"/{ns}/flownet/{name}"]

    def spin_until(self, cond, timeout=WAIT, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            rclpy.spin_once(self, timeout_sec=0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def spin_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.02)

    def wait_diag(self, ns, cond, what):
        """The first diagnostics of ``ns`` published after this call that satisfy ``cond``."""
        n = len(self.diag[ns])
        self.spin_until(lambda: len(self.diag[ns]) > n and cond(self.diag[ns][-1]),
                        what=f"diagnostics of {ns}: {what}")
        return self.diag[ns][-1]


class NodeProcess:
    """flownet_node in a subprocess, namespace ``/ns``; its log goes to a file."""

    def __init__(self, tmp: Path, ns: str, *ros_args: str, env: Optional[dict] = None):
        self.ns = ns
        self.log_path = tmp / f"{ns}.log"
        # -X faulthandler: a node that does not stop gets SIGABRT and prints every thread's stack into its log
        self.cmd = [sys.executable, "-X", "faulthandler", "-m", "flownet_ros.ros.node", "--ros-args",
                    "-r", f"__ns:=/{ns}", "-p", "diagnostics_period:=0.2", *ros_args]
        self._log = open(self.log_path, "w")
        self._interrupted = False
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **(env or {})})

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self) -> None:
        """One SIGINT (Ctrl-C), as ros2 launch sends it."""
        if self.alive() and not self._interrupted:
            self._interrupted = True
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> int:
        if self.alive():
            self.interrupt()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGABRT)  # stacks into the log, then the exit code says it hung
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def stamp_of(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def raw_msg(img, t_ns, encoding="rgb8", pad=0):
    """rgb image -> Image of ``encoding`` (rgb8/bgr8) with ``pad`` bytes of row padding."""
    px = img[..., ::-1] if encoding == "bgr8" else img
    rows = np.concatenate([px.reshape(px.shape[0], -1), np.zeros((px.shape[0], pad), np.uint8)], 1)
    msg = Image(height=img.shape[0], width=img.shape[1], encoding=encoding, step=rows.shape[1])
    msg.data = array.array("B", rows.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(t_ns), 1_000_000_000)
    msg.header.frame_id = FRAME_ID
    return msg


def ns_time(i, dt_ms=100):
    return T0 * 10**9 + i * dt_ms * 10**6
