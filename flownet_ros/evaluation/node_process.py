"""The flownet node as a subprocess of a replay: its command line, topics, environment and lifetime."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from flownet_ros.evaluation.bagio import COMPRESSED, IMAGE
from flownet_ros.ros.dds import local_discovery

TWIST = "geometry_msgs/msg/TwistStamped"
TIME_REFERENCE = "sensor_msgs/msg/TimeReference"  # ~/flow_pair: header = newer frame, time_ref = older frame
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
#: node output name -> message type (topics are <namespace>/<node name>/<output>)
NODE_OUTPUTS = {"flow": IMAGE, "flow_color": IMAGE, "motion": TWIST, "flow_pair": TIME_REFERENCE}


def private_network(env: Dict[str, str]) -> Dict[str, str]:
    """Environment overrides that put a replay and the node it starts on a ROS domain of their own, other than
    ``env``'s, with localhost-only discovery: nothing of the replay reaches the robot's network or domain.
    The domain is one of 1..101 (the ids every DDS maps to valid ports), chosen by process id."""
    current = int(env.get("ROS_DOMAIN_ID") or 0)
    domains = [d for d in range(1, 102) if d != current]
    discovery = local_discovery({}, env.get("ROS_DISTRO", ""))  # the one variable this distribution reads
    return {"ROS_DOMAIN_ID": str(domains[os.getpid() % len(domains)]), **discovery}


@contextlib.contextmanager
def environ(overrides: Dict[str, str]):
    """os.environ with ``overrides`` inside the block (rclpy reads the domain and discovery range at init)."""
    old = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ReplayError(RuntimeError):
    """The replay could not run (node failed to start or died, no outputs)."""


def node_topics(node_name: str = "flownet", namespace: str = "") -> Dict[str, str]:
    """Absolute output topics of the node: {'flow': '/ns/flownet/flow', ...} plus '/diagnostics'."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    topics = {name: f"{ns}/{node_name}/{name}" for name in NODE_OUTPUTS}
    topics["diagnostics"] = "/diagnostics"
    return topics


def node_command(image_topic: str, msgtype: str, node_name: str = "flownet", namespace: str = "",
                 params: Optional[Dict[str, str]] = None) -> List[str]:
    """Command line that starts the node on ``image_topic`` (raw Image or CompressedImage).

    A compressed topic ``<base>/compressed`` is image_transport's convention, which the node follows
    (base topic ``image`` remapped to ``<base>``); any other compressed topic name is remapped on top.
    """
    params = dict(params or {})
    remaps = [f"image:={image_topic}"]
    if msgtype == COMPRESSED:
        params.setdefault("transport", "compressed")
        if image_topic.endswith("/compressed"):
            remaps = [f"image:={image_topic[: -len('/compressed')]}"]
        else:
            remaps = ["image:=/flownet_replay/image", f"/flownet_replay/image/compressed:={image_topic}"]
    cmd = [sys.executable, "-m", "flownet_ros.ros.node", "--ros-args", "-r", f"__node:={node_name}"]
    for rule in remaps:
        cmd += ["-r", rule]
    if namespace.strip("/"):
        cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={value}"]
    return cmd


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _parent_death_signal(sig: int = signal.SIGTERM):
    """A ``preexec_fn`` that makes the kernel send ``sig`` to the child when the parent dies (even by
    SIGKILL); None where prctl is missing (not Linux). libc is resolved here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os.kill(os.getpid(), sig)

    return preexec


class NodeProcess:
    """The node as a subprocess; output goes to ``log_path``. ``stop()`` sends SIGINT, then kills.

    The node cannot outlive the process that started it: it gets SIGTERM when that process dies, however
    it dies (Linux parent-death signal), and it runs in its own process group (``stop`` signals the group).
    The kernel ties that signal to the creating *thread*: create it from a thread that lives as long as the
    node should (the main thread, as replay does).
    """

    def __init__(self, cmd: Sequence[str], log_path: Path, env: Dict[str, str]):
        self.cmd = list(cmd)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=_parent_death_signal())

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

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # its own session: the group id is its pid
        except (ProcessLookupError, PermissionError):
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        if self.alive():
            self._signal_group(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
