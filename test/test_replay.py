"""Bag replay through the real node over real DDS (this test process's ROS domain), and bag errors.

The node runs as a subprocess with a tiny width-0.125 checkpoint written into tmp_path, so the
tests do not depend on the shipped model.
"""

import re

import numpy as np
import pytest

from flownet_ros.evaluation.bagio import (
    IMAGE,
    BagError,
    BagReader,
    BagWriter,
    cdr_stamp_ns,
    rgb_message,
    select_image_topic,
)
from flownet_ros.evaluation.node_process import NodeProcess, node_command
from flownet_ros.evaluation.replay import RECORD_ALL, ReplayOptions, main, replay
from flownet_ros.evaluation.sample_bag import GT_TOPIC, IMAGE_TOPIC, write_sample_bag
from flownet_ros.ros.dds import with_profile

N = 5
SIZE = (48, 64)


def input_stamps(bag):
    with BagReader(bag) as b:
        return [m.stamp_ns for m in b.messages([IMAGE_TOPIC])]


def recorded(out_bag, topic):
    with BagReader(out_bag) as b:
        if topic not in b.topics:
            return []
        return [(m.stamp_ns, m.time_ns, m.msg) for m in b.messages([topic])]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_replay_gives_one_flow_per_frame_pair(tmp_path, tiny_checkpoint, storage):
    bag = write_sample_bag(tmp_path / "in", frames=N, size=SIZE, storage=storage, progress=False)
    result = replay(ReplayOptions(bag=bag, rate=0.0, out_dir=tmp_path / "run", progress=False, record=RECORD_ALL,
                                  params={"checkpoint": tiny_checkpoint, "device": "cpu"}))
    stamps = input_stamps(bag)
    assert result.image_topic == IMAGE_TOPIC and result.frames_sent == N and result.missing == []
    flows = recorded(result.output_bag, "/flownet/flow")
    assert sorted(s for s, _, _ in flows) == stamps[1:]  # one flow per pair, stamped like the newer frame
    for stamp, t, msg in flows:
        assert msg.encoding == "32FC2" and (msg.height, msg.width) == SIZE
        assert msg.header.frame_id == "camera_optical_frame"
        assert t > stamp  # bag time = receive time on the replay clock: latency > 0
    pairs = {s: m.time_ref.sec * 10**9 + m.time_ref.nanosec for s, _, m in recorded(result.output_bag,
                                                                                   "/flownet/flow_pair")}
    assert pairs == dict(zip(stamps[1:], stamps[:-1]))  # every pair = two consecutive frames
    assert sorted(s for s, _, _ in recorded(result.output_bag, "/flownet/flow_color")) == stamps[1:]
    assert (tmp_path / "run" / "node.log").is_file()

    from flownet_ros.evaluation.report import ReportOptions, evaluate

    rep = evaluate(ReportOptions(input_bag=bag, output_bag=result.output_bag, out_dir=tmp_path / "rep",
                                 progress=False))
    node = rep["summary"][0]
    assert rep["gt_topic"] == GT_TOPIC and node["outputs"] == N - 1 and node["frames_dropped"] == 0
    assert np.isfinite(node["epe"]) and node["latency_ms_median"] > 0 and rep["replay_rate"] == 0.0


def test_replay_recorded_timing_with_clock_to_a_running_node(tmp_path, tiny_checkpoint):
    """--no-start: a node started beforehand (as on a robot) with use_sim_time; /clock from the replay."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock

    bag = write_sample_bag(tmp_path / "in", frames=N, size=SIZE, progress=False)
    cmd = node_command(IMAGE_TOPIC, IMAGE, params={"checkpoint": tiny_checkpoint, "device": "cpu",
                                                   "use_sim_time": "true", "reliability": "reliable"})
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    listener = rclpy.create_node("clock_listener", context=ctx)
    clocks = []
    listener.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec), 50)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    node = NodeProcess(cmd, tmp_path / "own_node.log", with_profile())
    try:
        result = replay(ReplayOptions(bag=bag, rate=1.0, clock=True, start_node=False, out_dir=tmp_path / "run",
                                      progress=False))
        assert node.alive()
    finally:
        node.stop()
        executor.shutdown(timeout_sec=2.0)
        rclpy.shutdown(context=ctx)
    stamps = input_stamps(bag)
    flows = recorded(result.output_bag, "/flownet/flow")
    why = f"missing {result.missing}, clocks {clocks}, node log:\n{node.log_tail()}"
    assert flows, why
    assert {s for s, _, _ in flows} <= set(stamps[1:])
    assert len(flows) + len(result.missing) == N - 1
    assert result.node_log is None and not (tmp_path / "run" / "node.log").exists()
    # /clock carried the bag's time line (each frame's stamp as it was published), monotonic
    assert clocks and set(clocks) <= set(stamps) and clocks == sorted(clocks), why


def make_bag(path, topics, storage="mcap", frames=3):
    """A bag with ``topics`` = {topic: kind}, kind 'rgb8' camera, '32FC2' flow, 'imu'."""
    from flownet_ros.evaluation.bagio import TYPESTORE, flow_message, make_header

    with BagWriter(path, storage) as w:
        for topic, kind in topics.items():
            w.add(topic, "sensor_msgs/msg/Imu" if kind == "imu" else IMAGE)
        for k in range(frames):
            t = 10**9 + k * 33_333_333
            for topic, kind in topics.items():
                if kind == "rgb8":
                    msg = rgb_message(np.full((8, 8, 3), k, np.uint8), t, "cam")
                elif kind == "32FC2":
                    msg = flow_message(np.zeros((8, 8, 2), np.float32), t, "cam")
                else:
                    imu = TYPESTORE.types["sensor_msgs/msg/Imu"]
                    vec = TYPESTORE.types["geometry_msgs/msg/Vector3"]
                    quat = TYPESTORE.types["geometry_msgs/msg/Quaternion"]
                    msg = imu(header=make_header(t, "imu"), orientation=quat(x=0, y=0, z=0, w=1),
                              orientation_covariance=np.zeros(9), angular_velocity=vec(x=0, y=0, z=0),
                              angular_velocity_covariance=np.zeros(9), linear_acceleration=vec(x=0, y=0, z=0),
                              linear_acceleration_covariance=np.zeros(9))
                w.write(topic, t, msg)
    return path


def test_topic_detection_and_topic_errors(tmp_path, capsys):
    bag = make_bag(tmp_path / "b", {"/cam/image": "rgb8", "/cam/flow_gt": "32FC2", "/imu": "imu"})
    with BagReader(bag) as b:
        assert select_image_topic(b) == ("/cam/image", IMAGE)  # the 32FC2 topic is not a camera
        with pytest.raises(BagError, match=r"has no topic '/nope'.*image topics: /cam/flow_gt .*/cam/image"):
            select_image_topic(b, "/nope")
        with pytest.raises(BagError, match=r"'/imu' .* has type sensor_msgs/msg/Imu.*image topics: .*/cam/image"):
            select_image_topic(b, "/imu")
        with pytest.raises(BagError, match=r"'/cam/flow_gt' .* encoding '32FC2', not a camera image"):
            select_image_topic(b, "/cam/flow_gt")
    # the CLI exits 1 with the message, naming the bag; nothing is started
    assert main([str(bag), "--topic", "/imu", "--out-dir", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert str(bag) in err and "sensor_msgs/msg/Imu" in err and "/cam/image" in err
    assert not (tmp_path / "run").exists()

    two = make_bag(tmp_path / "two", {"/left/image": "rgb8", "/right/image": "rgb8"}, "sqlite3")
    with BagReader(two) as b, pytest.raises(BagError, match="several image topics.*--topic.*/left/image"):
        select_image_topic(b)
    none = make_bag(tmp_path / "none", {"/imu": "imu"})
    with BagReader(none) as b, pytest.raises(BagError, match=r"no camera image topic.*topics: /imu"):
        select_image_topic(b)


@pytest.mark.parametrize("storage,ext", [("mcap", "mcap"), ("sqlite3", "db3")])
def test_corrupt_bags_raise_errors_naming_the_bag(tmp_path, storage, ext, capsys):
    good = make_bag(tmp_path / "good", {"/cam/image": "rgb8"}, storage)
    data = (good / f"good.{ext}").read_bytes()
    with BagReader(good / f"good.{ext}") as b:  # a single storage file is a bag too
        assert [cdr_stamp_ns(m.raw) for m in b.messages(["/cam/image"])] == [10**9 + k * 33_333_333
                                                                           for k in range(3)]
    for name, blob in [("truncated", data[: len(data) // 2]), ("garbage", b"\x00not a bag\xff" * 64)]:
        bad = tmp_path / f"{name}.{ext}"
        bad.write_bytes(blob)
        with pytest.raises(BagError, match=f"bag {bad}: cannot open"):
            BagReader(bad).open()
        assert main([str(bad), "--out-dir", str(tmp_path / "run"), "--quiet"]) == 1
        assert str(bad) in capsys.readouterr().err
    (good / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: [")
    with pytest.raises(BagError, match=f"bag {good}: cannot open"):
        BagReader(good).open()
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")
    with pytest.raises(BagError, match="ROS 1 bag") as err:
        (tmp_path / "old.bag").write_bytes(b"#ROSBAG V2.0\n")
        BagReader(tmp_path / "old.bag")
    import sys
    from pathlib import Path

    venv_tool = Path(sys.executable).parent / "rosbags-convert"  # a venv's bin/ is often not on PATH
    assert f"({venv_tool if venv_tool.is_file() else 'rosbags-convert'} --src" in str(err.value)


def test_demo_on_a_user_bag(tmp_path, tiny_checkpoint, capsys):
    """``make demo BAG=... TOPIC=...``: replay, record, report, summary table and report path printed."""
    from flownet_ros import demo

    bag = write_sample_bag(tmp_path / "user_bag", frames=4, size=SIZE, storage="sqlite3", progress=False)
    code = demo.main(["--bag", str(bag), "--topic", IMAGE_TOPIC, "--out-dir", str(tmp_path / "run"),
                      "-p", f"checkpoint:={tiny_checkpoint}", "-p", "inference_height:=64",
                      "-p", "inference_width:=64"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| EPE (px) |" in out and "| dropped |" in out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in out.splitlines()
            if line.startswith("| ") and "---" not in line}
    dropped = rows["method"].index("dropped")
    assert [rows[m][dropped] for m in ("node /flownet/flow", "dis-medium offline", "zero flow")] == ["0", "0", "0"]
    assert f"report: {tmp_path / 'run' / 'report' / 'report.md'}" in out
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "dis-medium offline" in report
    # by default only what the report reads is recorded, and the size is said
    with BagReader(tmp_path / "run" / "outputs") as b:
        assert set(b.topics) == {"/flownet/flow", "/flownet/flow_pair", "/diagnostics"}
    assert re.search(rf"outputs: {re.escape(str(tmp_path / 'run'))} \([0-9.]+ MB: outputs/ [0-9.]+ MB, "
                     r"report/ [0-9.]+ MB\)", out), out
    assert re.search(r"-> .*outputs \([0-9.]+ MB\)", out)
    # the header's node counters are a sample taken after the last output: they agree with the table
    diag = next(line for line in report.splitlines() if line.startswith("- node diagnostics"))
    assert "after the last flow output" in diag and "flow_published=3," in diag, diag
    assert rows["node /flownet/flow"][rows["method"].index("outputs")] == "3"
    # parameters given by the user replace the demo's defaults instead of being passed twice
    params = demo.demo_params(["inference_height:=64", "device:=cuda"], "cpu")
    assert params == {"device": "cuda", "inference_height": "64"}
    assert demo.main(["--bag", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_make_demo_errors_name_make_variables(tmp_path, capsys, monkeypatch):
    from flownet_ros import demo

    two = make_bag(tmp_path / "two", {"/left/image": "rgb8", "/right/image": "rgb8"})
    monkeypatch.setenv("MAKELEVEL", "1")  # make sets it for the commands it runs
    assert demo.main(["--bag", str(two), "--out-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "choose one with TOPIC=<topic>" in err and "--topic" not in err, err
    monkeypatch.delenv("MAKELEVEL")
    assert demo.main(["--bag", str(two), "--out-dir", str(tmp_path / "run2")]) == 1
    assert "choose one with --topic" in capsys.readouterr().err


def test_replay_compressed_images(tmp_path, tiny_checkpoint):
    """A CompressedImage (jpeg) camera topic: the node is started with transport compressed."""
    import cv2

    from flownet_ros.evaluation.bagio import COMPRESSED, TYPESTORE, make_header
    from flownet_ros.evaluation.sample_bag import SceneSequence

    topic = "/cam/image_raw/compressed"
    compressed = TYPESTORE.types[COMPRESSED]
    stamps = [10**9 + k * 33_333_333 for k in range(4)]
    with BagWriter(tmp_path / "jpeg", "mcap") as w:
        w.add(topic, COMPRESSED)
        for t, (img, _) in zip(stamps, SceneSequence(SIZE).frames(4)):
            ok, buf = cv2.imencode(".jpg", img[..., ::-1])
            w.write(topic, t, compressed(header=make_header(t, "cam"), format="bgr8; jpeg compressed bgr8",
                                         data=buf.reshape(-1)))
    cmd = node_command(topic, COMPRESSED)
    assert "transport:=compressed" in cmd and "image:=/cam/image_raw" in cmd  # image_transport's <base>/compressed
    result = replay(ReplayOptions(bag=tmp_path / "jpeg", rate=0.0, out_dir=tmp_path / "run", progress=False,
                                  params={"checkpoint": tiny_checkpoint, "device": "cpu"}))
    assert result.image_topic == topic and result.missing == []
    assert sorted(s for s, _, _ in recorded(result.output_bag, "/flownet/flow")) == stamps[1:]


def test_node_that_cannot_start_is_reported_with_its_log(tmp_path, capsys):
    bag = write_sample_bag(tmp_path / "in", frames=2, size=SIZE, progress=False)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    code = main([str(bag), "--rate", "0", "--checkpoint", str(tmp_path / "bad.pt"),
                 "--out-dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the node exited with code" in err and "bad.pt" in err and str(tmp_path / "run" / "node.log") in err


def test_report_after_replay_uses_the_nodes_estimator_for_the_backward_flow():
    from flownet_ros.evaluation.replay import node_estimator_spec
    from flownet_ros.inference.factory import EstimatorSpec

    assert node_estimator_spec({"backend": "dis", "dis_preset": "fast", "threads": "1"}) == EstimatorSpec(
        backend="dis", dis_preset="fast")
    assert node_estimator_spec({"checkpoint": "a.pt", "bidirectional": "true"}) == EstimatorSpec(
        checkpoint="a.pt", bidirectional=True)
    with pytest.raises(ValueError, match="refine"):
        node_estimator_spec({"refine": "bogus"})


def _node_children(pid):
    """PIDs of the flownet nodes whose parent is ``pid`` (from /proc)."""
    from pathlib import Path

    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"flownet_ros.ros.node" in cmd:
            out.append(int(stat.parent.name))
    return out


def _gone(pid):
    """True when ``pid`` no longer runs (exited, or a zombie nobody reaps)."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def _wait_until(cond, timeout, step=0.05):
    import time

    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(step)
    return True


def _start_replay_cli(tmp_path, checkpoint, frames, *extra):
    """``python -m flownet_ros.evaluation.replay`` as a process; returns (process, run dir, node pid) once its
    node has logged that it is ready."""
    import subprocess
    import sys

    bag = write_sample_bag(tmp_path / "in", frames=frames, size=SIZE, progress=False)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "flownet_ros.evaluation.replay", str(bag), "--out-dir", str(run),
                             "--quiet", "--no-report", "--checkpoint", checkpoint, "-p", "device:=cpu", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "node.log"
    assert _wait_until(lambda: log.is_file() and "ready" in log.read_text(errors="replace"), 180), \
        proc.communicate(timeout=30) if proc.poll() is not None else "node not ready"
    nodes = _node_children(proc.pid)
    assert len(nodes) == 1
    return proc, run, nodes[0]


def test_sigterm_of_replay_stops_its_node_and_leaves_a_readable_bag(tmp_path, tiny_checkpoint):
    import signal

    proc, run, node = _start_replay_cli(tmp_path, tiny_checkpoint, 60, "--rate", "0.3")
    assert _wait_until(lambda: False, 3) is False  # let some frames through
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted" in err and "Traceback" not in err
    assert _wait_until(lambda: _gone(node), 15)
    with BagReader(run / "outputs") as b:  # closed properly: readable, with what was recorded so far
        assert "/flownet/flow" in b.topics and b.message_count("/flownet/flow") >= 1


def test_sigkill_of_replay_takes_its_node_with_it(tmp_path, tiny_checkpoint):
    import signal

    proc, _, node = _start_replay_cli(tmp_path, tiny_checkpoint, 60, "--rate", "0.3")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _wait_until(lambda: _gone(node), 15), "the node outlived its replay"


def test_rate0_replay_notices_at_once_that_its_node_died(tmp_path, tiny_checkpoint):
    """A node that dies mid-replay ends a --rate 0 replay with its log, not after the per-frame timeout."""
    import os
    import signal

    proc, _, node = _start_replay_cli(tmp_path, tiny_checkpoint, 400, "--rate", "0", "--timeout", "600")
    os.kill(node, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)  # before the fix: the 600 s timeout (TimeoutExpired here)
    assert proc.returncode == 1 and "the node exited with code -9" in err, err


def test_a_replay_that_starts_its_node_stays_off_the_current_domain(tmp_path, tiny_checkpoint):
    """By default the replay and its node use a private domain, localhost only: a process on the current domain
    (this test's) sees neither the camera topic nor the node; with --current-domain it sees both."""
    import signal

    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    watcher = rclpy.create_node("watcher", context=ctx)
    seen = {}
    try:
        for private in (True, False):
            extra = () if private else ("--current-domain",)
            proc, _, _ = _start_replay_cli(tmp_path / f"private_{private}", tiny_checkpoint, 60, "--rate", "0.5",
                                           *extra)
            try:
                seen[private] = _wait_until(lambda: watcher.count_publishers(IMAGE_TOPIC) > 0
                                            and "flownet" in watcher.get_node_names(), 10)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=60)
    finally:
        watcher.destroy_node()
        rclpy.shutdown(context=ctx)
    assert seen == {True: False, False: True}


def test_frames_above_the_default_max_pixels_go_through_with_the_nodes_max_pixels(tmp_path, tiny_checkpoint,
                                                                                   capsys):
    """-p max_pixels:=... reaches the node and the replay's / report's own decoding (a 3.2 MP camera)."""
    import json

    import cv2

    from flownet_ros.evaluation.report import main as report_main

    h, w = 1600, 2000  # 3.2 MP, above the default 3 MP
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (h, w + 8, 3), np.uint8), (0, 0), 2)
    with BagWriter(tmp_path / "big", "mcap") as bag:
        bag.add("/cam/image", IMAGE)
        for k in range(3):
            t = 10**9 + k * 10**8
            bag.write("/cam/image", t, rgb_message(np.ascontiguousarray(texture[:, 2 * k:2 * k + w]), t, "cam"))
    assert main([str(tmp_path / "big"), "--rate", "0", "--checkpoint", tiny_checkpoint, "-p", "device:=cpu",
                 "-p", "refine:=none", "-p", "max_pixels:=4000000", "--out-dir", str(tmp_path / "run"),
                 "--quiet"]) == 0, capsys.readouterr()
    rep = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert rep["records_skipped"] == [] and rep["summary"][0]["outputs"] == 2
    # the report on its own: without the node's max_pixels it refuses the frames as the node would
    assert report_main([str(tmp_path / "big"), "--offline", "--out", str(tmp_path / "r1"), "--quiet"]) == 1
    assert "exceeds max_pixels (3000000)" in capsys.readouterr().err
    assert report_main([str(tmp_path / "big"), "--offline", "--out", str(tmp_path / "r2"), "--quiet",
                        "--max-pixels", "4000000", "--checkpoint", tiny_checkpoint, "--device", "cpu"]) == 0
