"""`ros2 launch flownet_ros flownet.launch.py` for real: built with colcon in a temporary workspace, started
the way users start it, fed real images over DDS, changed with `ros2 param`, stopped with Ctrl-C.

Needs the launch system and `ros2` command line: a sourced ROS 2, or ../shared/ros2-cli installed into the
venv (`make setup` does that where the folder exists); skipped with the reason otherwise. The plain
functions behind the launch file's decisions are tested without launch at the end.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO

from flownet_ros.ros.launch_setup import parameter_overrides, profile_to_set, resolve, rviz_config
from flownet_ros.ros.parameters import PARAMS, params_yaml

STAND_INS = REPO.parent / "shared" / "ros2-cli" / "stand_ins"
ROS2 = shutil.which("ros2") or str(Path(sys.executable).with_name("ros2"))
H, W = 64, 96
LAUNCH_GRACE_S = 5.0  # ros2 launch escalates to SIGTERM this long after SIGINT


def _have_launch() -> bool:
    import importlib.util

    return importlib.util.find_spec("launch_ros") is not None and Path(ROS2).exists()


needs_launch = pytest.mark.skipif(not _have_launch(), reason="ros2 launch not available: no sourced ROS 2 and "
                                  "../shared/ros2-cli not installed into the venv")


@pytest.fixture(scope="module")
def workspace(colcon_workspace):
    """The package built with colcon into a temporary workspace, as on a robot (conftest: one build per run)."""
    yield colcon_workspace
    ros2(colcon_workspace, "daemon", "stop")  # `ros2 param` started one for this ROS_DOMAIN_ID: leave nothing running


class Launch:
    """``ros2 launch flownet_ros flownet.launch.py ARGS`` in a sourced shell, in its own process group (so a
    Ctrl-C reaches launch and the node, as in a terminal); output in ``log``."""

    def __init__(self, ws: Path, tmp: Path, *args: str):
        self.log = tmp / f"launch_{int(time.monotonic() * 1e3)}.log"
        script = (f"source {shlex.quote(str(ws / 'install' / 'setup.bash'))} && exec {shlex.quote(ROS2)} launch "
                  f"flownet_ros flownet.launch.py {' '.join(shlex.quote(a) for a in args)}")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(STAND_INS), os.environ.get("PYTHONPATH")])),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1")
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(["bash", "-c", script], env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def ctrl_c(self) -> float:
        """SIGINT to the whole process group (launch and node), like Ctrl-C in a terminal; seconds to exit."""
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.wait(4 * LAUNCH_GRACE_S)
        return time.monotonic() - t0

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ros2(ws: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    script = f"source {shlex.quote(str(ws / 'install' / 'setup.bash'))} && {shlex.quote(ROS2)} " + \
        " ".join(shlex.quote(a) for a in args)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=timeout)


def ros2_param(ws: Path, *args: str) -> subprocess.CompletedProcess:
    """`ros2 param ...`, retried while the CLI has not discovered the node yet (it waits only 1 s, and a
    freshly started daemon may still be discovering on a loaded machine)."""
    for _ in range(10):
        res = ros2(ws, "param", *args)
        if "Node not found" not in res.stdout + res.stderr:
            return res
        time.sleep(1.0)
    return res


def node_processes(marker: str) -> list:
    """PIDs of flownet_node processes whose command line contains ``marker``."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if "flownet_node" in line and marker in line]


class Camera:
    """Publishes textured frames (raw or compressed) and /clock from this test process; collects outputs."""

    def __init__(self, image_topic: str, output_ns: str, compressed: bool = False):
        import rclpy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("launch_test_camera", context=self.ctx)
        self.compressed = compressed
        self.pub = self.node.create_publisher(CompressedImage if compressed else Image,
                                              image_topic + ("/compressed" if compressed else ""), 10)
        self.clock = self.node.create_publisher(Clock, "/clock", 10)
        self.got = {}
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import TimeReference

        for name, typ in (("flow", Image), ("flow_color", Image), ("motion", TwistStamped),
                          ("flow_pair", TimeReference)):
            self.got[name] = []
            self.node.create_subscription(typ, f"{output_ns}/flownet/{name}", self.got[name].append, 10)
        self.got["diagnostics"] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.got["diagnostics"].append, 10)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _frame(self, k: int):
        import cv2
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CompressedImage, Image

        rng = np.random.default_rng(0)
        base = cv2.GaussianBlur(rng.integers(0, 256, (H, W + 64, 3), dtype=np.uint8), (5, 5), 0)
        img = np.ascontiguousarray(base[:, 2 * (k % 20):2 * (k % 20) + W])
        stamp = Time(sec=1_700_000_000 + k // 10, nanosec=(k % 10) * 100_000_000)
        if self.compressed:
            ok, buf = cv2.imencode(".png", img[..., ::-1])
            msg = CompressedImage(format="rgb8; png compressed bgr8", data=buf.tobytes())
        else:
            msg = Image(height=H, width=W, encoding="rgb8", step=W * 3, data=img.tobytes())
        msg.header.stamp, msg.header.frame_id = stamp, "camera_optical_frame"
        return msg, stamp

    def _run(self) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rosgraph_msgs.msg import Clock

        executor = SingleThreadedExecutor(context=self.ctx)
        executor.add_node(self.node)
        k = 0
        while not self.stop.is_set():
            msg, stamp = self._frame(k)
            self.clock.publish(Clock(clock=stamp))
            self.pub.publish(msg)
            k += 1
            end = time.monotonic() + 0.1
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.02)
        executor.shutdown()

    def wait_for(self, names, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not all(self.got[n] for n in names):
            time.sleep(0.1)
        missing = [n for n in names if not self.got[n]]
        assert not missing, f"no messages on {missing}"

    def close(self) -> None:
        import rclpy

        self.stop.set()
        self.thread.join(timeout=10)
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def assert_clean_exit(launch: Launch, seconds: float, marker: str) -> None:
    text = launch.text()
    assert launch.proc.returncode == 0, text[-4000:]
    assert seconds < LAUNCH_GRACE_S, f"exit took {seconds:.1f} s\n{text[-3000:]}"
    for bad in ("Traceback", "escalating to 'SIGTERM'", "Failed to publish", "processing failed", "exit code -",
                "XMLPARSER", "deprecated"):
        assert bad not in text, f"{bad!r} in the launch output:\n{text[-4000:]}"
    assert "process has finished cleanly" in text, text[-3000:]
    deadline = time.monotonic() + 5
    while node_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not node_processes(marker), "a flownet_node process was left behind"


@needs_launch
def test_launch_namespace_params_file_outputs_param_set_and_ctrl_c(workspace, tmp_path):
    """namespace + image remap + a params file (its use_sim_time must win over the launch's default), all
    outputs over DDS, `ros2 param set` validated, then Ctrl-C with images flowing: exit 0, well within the
    grace period, no traceback, nothing left running."""
    params = tmp_path / "front.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "use_sim_time": True, "backend": "dis", "dis_preset": "ultrafast", "max_frame_gap": 5.0}}}))
    launch = Launch(workspace, tmp_path, "namespace:=front", "image:=/front/cam", f"params_file:={params}")
    camera = Camera("/front/cam", "/front")
    try:
        camera.wait_for(["flow", "flow_color", "motion", "flow_pair", "diagnostics"])
        flow = camera.got["flow"][-1]
        assert flow.encoding == "32FC2" and (flow.height, flow.width) == (H, W)
        assert flow.header.frame_id == "camera_optical_frame"
        got = ros2_param(workspace, "get", "/front/flownet", "use_sim_time")
        assert "True" in got.stdout, got.stdout + got.stderr  # the params file's value, not launch's default
        ok = ros2_param(workspace, "set", "/front/flownet", "max_frame_gap", "2.5")
        assert "successful" in ok.stdout, ok.stdout + ok.stderr
        refused = ros2_param(workspace, "set", "/front/flownet", "inference_width", "4097")
        assert "successful" not in refused.stdout, refused.stdout
        back = ros2_param(workspace, "get", "/front/flownet", "max_frame_gap")
        assert "2.5" in back.stdout, back.stdout + back.stderr
        seconds = launch.ctrl_c()
    finally:
        camera.close()
        launch.kill()
    assert_clean_exit(launch, seconds, str(params))


@needs_launch
def test_launch_compressed_transport_and_explicit_use_sim_time(workspace, tmp_path):
    """transport:=compressed reads <image>/compressed (image_transport's convention); use_sim_time:=false
    given on the command line overrides the params file."""
    params = tmp_path / "compressed.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"use_sim_time": True, "backend": "dis",
                                                                  "dis_preset": "ultrafast"}}}))
    launch = Launch(workspace, tmp_path, "image:=/cam/image_raw", "transport:=compressed", "use_sim_time:=false",
                    f"params_file:={params}")
    camera = Camera("/cam/image_raw", "", compressed=True)
    try:
        camera.wait_for(["flow"])
        got = ros2_param(workspace, "get", "/flownet", "use_sim_time")
        assert "False" in got.stdout, got.stdout + got.stderr
        seconds = launch.ctrl_c()
    finally:
        camera.close()
        launch.kill()
    assert_clean_exit(launch, seconds, str(params))


@needs_launch
def test_rviz_without_rviz2_starts_nothing(workspace, tmp_path):
    params = tmp_path / "rviz.yaml"
    params.write_text(params_yaml())
    launch = Launch(workspace, tmp_path, "rviz:=true", f"params_file:={params}")
    assert launch.wait(120) == 1
    assert "rviz2 is not installed" in launch.text() and "nothing was started" in launch.text()
    time.sleep(1.0)
    assert not node_processes(str(params)), "flownet_node was started although the launch failed"


# ---- the launch file's decisions, without launch --------------------------------------------------

def test_parameter_overrides_only_for_given_arguments():
    assert parameter_overrides("", "") == {}  # the params file decides
    assert parameter_overrides("true", "") == {"use_sim_time": True}
    assert parameter_overrides("False", "compressed") == {"use_sim_time": False, "transport": "compressed"}
    with pytest.raises(ValueError, match="use_sim_time"):
        parameter_overrides("maybe", "")


def test_fastdds_profile_values():
    for keep in ("", "none", "NONE", "keep", "''", '""'):
        assert profile_to_set(keep) is None
    assert profile_to_set(" /x/fastdds.xml ") == "/x/fastdds.xml"


def test_rviz_config_follows_namespace_and_image(repo):
    template = (repo / "config" / "flownet.rviz").read_text()
    cfg = yaml.safe_load(rviz_config(template, "/front/image_raw", "front"))
    topics = {d["Name"]: d["Topic"]["Value"] for d in cfg["Visualization Manager"]["Displays"]}
    assert topics == {"Camera": "/front/image_raw", "Flow": "/front/flownet/flow_color",
                      "Motion": "/front/flownet/motion", "Confidence": "/front/flownet/confidence",
                      "Moving": "/front/flownet/moving"}
    default = yaml.safe_load(rviz_config(template, "/camera/image_raw", ""))
    assert {d["Topic"]["Value"] for d in default["Visualization Manager"]["Displays"]} == {
        "/camera/image_raw", "/flownet/flow_color", "/flownet/motion", "/flownet/confidence", "/flownet/moving"}
    assert resolve("image_raw", "front") == "/front/image_raw" and resolve("/abs", "front") == "/abs"
    displays = cfg["Visualization Manager"]["Displays"]
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in displays)  # any camera QoS


def test_params_file_and_docs_match_the_parameter_table(repo):
    """config/flownet.yaml and the table in docs/node.md are generated from flownet_ros/ros/parameters.py:
    regenerate them with `python -m flownet_ros.ros.parameters --write` when this fails."""
    from flownet_ros.ros.parameters import with_table

    assert (repo / "config" / "flownet.yaml").read_text() == params_yaml()
    doc = (repo / "docs" / "node.md").read_text()
    assert doc == with_table(doc)
    values = yaml.safe_load(params_yaml())["/**"]["ros__parameters"]
    assert values == {p.name: p.default for p in PARAMS}


def test_this_fast_dds_reads_the_variable_with_profile_sets(tmp_path):
    """The variable chosen for this installation is the one its Fast DDS reads: a malformed profile set
    through it makes the participant report a parse error naming the file (Fast DDS 2 ignores the new
    name, Fast DDS 3 warns about the old one)."""
    from flownet_ros.ros.dds import VARIABLES, with_profile

    bad = tmp_path / "bad_profile.xml"
    bad.write_text('<?xml version="1.0"?><dds xmlns="http://www.eprosima.com"><profiles><participant>')
    env = with_profile({k: v for k, v in os.environ.items() if k not in VARIABLES}, profile=str(bad))
    res = subprocess.run([sys.executable, "-c", "import rclpy; rclpy.init(); rclpy.create_node('probe')."
                          "destroy_node(); rclpy.shutdown(); print('node ok')"], env=env, capture_output=True,
                         text=True, timeout=120)
    out = res.stdout + res.stderr
    assert "node ok" in out, out[-2000:]
    assert "XMLPARSER" in out and str(bad) in out, out[-2000:]
    assert "deprecated" not in out, out[-2000:]


def test_fastdds_profile(repo):
    import xml.etree.ElementTree as ET

    root = ET.parse(repo / "config" / "fastdds.xml").getroot()
    ns = {"d": "http://www.eprosima.com"}
    shm = [t for t in root.iterfind(".//d:transport_descriptor", ns) if t.findtext("d:type", namespaces=ns) == "SHM"]
    assert len(shm) == 1 and int(shm[0].findtext("d:segment_size", namespaces=ns)) == 16 * 1024 * 1024
    part = root.find(".//d:participant", ns)
    assert part.get("is_default_profile") == "true"
    used = {e.text for e in part.iterfind(".//d:userTransports/d:transport_id", ns)}
    ids = {t.findtext("d:transport_id", namespaces=ns): t.findtext("d:type", namespaces=ns)
           for t in root.iterfind(".//d:transport_descriptor", ns)}
    assert {ids[u] for u in used} == {"SHM", "UDPv4"}  # SHM on the host, UDP to other hosts
    assert part.findtext(".//d:useBuiltinTransports", namespaces=ns) == "false"


def test_profile_variable_per_distribution(monkeypatch):
    from flownet_ros.ros.dds import profile_variable, wheel_fast_dds_major, with_profile

    assert profile_variable("humble") == profile_variable("jazzy") == "FASTRTPS_DEFAULT_PROFILES_FILE"
    assert profile_variable("kilted") == "FASTDDS_DEFAULT_PROFILES_FILE"
    # no ROS_DISTRO (PyPI wheels): the installed Fast DDS decides (Jazzy's 2.14 wheels, Kilted's 3.x)
    unset = "FASTRTPS_DEFAULT_PROFILES_FILE" if wheel_fast_dds_major() == 2 else "FASTDDS_DEFAULT_PROFILES_FILE"
    assert profile_variable("") == unset
    env = with_profile({"ROS_DISTRO": "humble"}, profile="/p.xml")
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == "/p.xml" and "FASTDDS_DEFAULT_PROFILES_FILE" not in env
    kept = with_profile({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}, profile="/p.xml")
    assert kept == {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}  # the user's choice wins
