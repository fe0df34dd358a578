"""Defects a reliability probe found in flownet_node (issue 24), each tested over real DDS: the node runs as
`python -m flownet_ros.ros.node` in its own process (test/ros_helpers.py), this test process
publishes and listens with rclpy (own ROS_DOMAIN_ID from conftest).
"""

import array
import math
import os
import signal
import stat
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, textured
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import RELIABLE, WAIT, NodeProcess, ns_time, raw_msg
from sensor_msgs.msg import CompressedImage, Image

from flownet_ros.evaluation.scoring import Series, score_pair, summarize
from flownet_ros.models import ModelSpec, build_model, save_checkpoint
from flownet_ros.ros.diagnostics import FlowStats, make_status

ERROR, WARN = b"\x02", b"\x01"


@pytest.fixture(scope="module")
def nan_ckpt(tmp_path_factory):
    """A tiny FlowNetC whose weights are all NaN (what fp16 overflow or a corrupt file can give)."""
    torch.manual_seed(0)
    model = build_model("flownetc", 0.125, False, "flownet2", 20.0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(math.nan)
    return save_checkpoint(tmp_path_factory.mktemp("nan") / "nan.pt", model, ModelSpec(width=0.125))


def connect(client, proc, ns, msg_type=Image, topic="image", reliable=False):
    """A publisher to the node's input, once the node subscribes; its outputs are listened to."""
    client.listen(ns)
    pub = client.create_publisher(msg_type, f"/{ns}/{topic}", RELIABLE if reliable else qos_profile_sensor_data)

    def ready():
        assert proc.alive(), proc.log()
        return pub.get_subscription_count() > 0 and client.count_publishers(f"/{ns}/flownet/flow") > 0

    client.spin_until(ready, what=f"node {ns} to subscribe")
    client.spin_for(1.0)  # best effort: the node's side of the match may lag the publisher's
    return pub


@pytest.mark.parametrize("backend, refine", [("flownet", "none"), ("flownet", "dis"), ("adaptive", "dis")])
def test_nonfinite_network_flow_is_never_published(client, nan_ckpt, tmp_path, backend, refine):
    """NaN flow from the network: DIS is not seeded with it (that killed the node with SIGSEGV), nothing is
    published (NaN flow reads as "standing still" on ~/motion), diagnostics go ERROR, the node keeps running.
    The adaptive backend runs the network on every pair here (network_threshold 0)."""
    ns = f"nan_{backend}_{refine}"
    proc = NodeProcess(tmp_path, ns, "-p", f"checkpoint:={nan_ckpt}", "-p", f"backend:={backend}",
                       "-p", f"refine:={refine}", "-p", "network_threshold:=0.0")
    try:
        pub = connect(client, proc, ns)
        img = textured(3)
        for i in range(4):
            pub.publish(raw_msg(np.roll(img, 2 * i, axis=1), ns_time(i)))
            client.spin_for(0.3)
        d = client.wait_diag(ns, lambda d: int(d["flow_nonfinite"]) >= 2, "non-finite pairs counted")
        assert d["level"] == ERROR and "NaN/inf" in d["message"], d
        assert proc.alive(), proc.log()
        assert d["flow_published"] == "0"
        for name in ("flow", "flow_color", "motion", "flow_pair"):
            assert client.got(ns, name) == [], name
        assert "flow not published" in proc.log()
    finally:
        assert proc.stop() == 0, proc.log()[-4000:]


def test_nonfinite_flow_scores_as_the_worst():
    """The shared scoring: a NaN flow is an outlier everywhere with infinite EPE, never Fl-all 0 %."""
    gt = np.ones((8, 8, 2), np.float32)
    nan = np.full_like(gt, np.nan)
    part = gt.copy()
    part[:2] = np.inf
    s = score_pair(nan, gt, img1=np.zeros((8, 8, 3), np.uint8), img2=np.zeros((8, 8, 3), np.uint8))
    assert s.fl_all == 1.0 and math.isinf(s.epe) and math.isinf(s.photometric) and s.nonfinite_px == 64
    p = score_pair(part, gt)
    assert p.fl_all == 0.25 and math.isinf(p.epe) and p.nonfinite_px == 16
    series = Series("nan")
    series.add(score_pair(gt, gt))
    series.add(s)
    summary = summarize(series)
    assert math.isinf(summary["epe"]) and summary["fl_all"] == 0.5 and summary["pairs_nonfinite"] == 1


def many_scan_jpeg(img, extra_scans):
    """A progressive JPEG of ``img`` (RGB) with ``extra_scans`` empty scans (a repeated scan header without
    data) before its end: valid for libjpeg, which decodes it with warnings, one pass per scan."""
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    data = buf.tobytes()
    sos = data.rindex(b"\xff\xda")
    header = data[sos:sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]]
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + header * extra_scans + data[-2:]


def jpeg_msg(data, t_ns):
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8")
    msg.data = array.array("B", data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(t_ns), 1_000_000_000)
    return msg


def test_jpeg_with_thousands_of_scans_is_refused_before_decoding(client, tmp_path):
    """Decoding work is bounded from the header walk: a small JPEG with 5,000 empty scans (one pass over the
    frame each: 200,000 silenced a node for 45 s) is refused and counted; ordinary progressive JPEGs pass."""
    ns = "scans"
    proc = NodeProcess(tmp_path, ns, "-p", "backend:=dis", "-p", "transport:=compressed", "-p", "threads:=1",
                       "-p", "use_camera_info:=false")
    try:
        pub = connect(client, proc, ns, CompressedImage, "image/compressed")
        img = textured(4)
        assert cv2.imdecode(np.frombuffer(many_scan_jpeg(img, 5000), np.uint8), cv2.IMREAD_COLOR) is not None
        pub.publish(jpeg_msg(many_scan_jpeg(img, 0), ns_time(0)))
        client.wait_diag(ns, lambda d: d["frames_processed"] == "1", "first frame processed")
        pub.publish(jpeg_msg(many_scan_jpeg(np.roll(img, 2, axis=1), 5000), ns_time(1)))
        d = client.wait_diag(ns, lambda d: d["frames_refused_work"] == "1", "the many-scan JPEG refused")
        assert d["frames_processed"] == "1" and d["messages_rejected"] == "1"
        pub.publish(jpeg_msg(many_scan_jpeg(np.roll(img, 2, axis=1), 0), ns_time(2)))
        client.spin_until(lambda: len(client.got(ns, "flow")) == 1, what="flow of two progressive JPEGs")
        assert "JPEG with 5010 scans refused before decoding: at most 100" in proc.log()  # 10 + 5000
    finally:
        assert proc.stop() == 0, proc.log()[-4000:]


def test_slow_decoding_is_reported_as_such():
    """A decode that takes seconds (or still runs) is what the diagnostics say, not "pairs reset"."""
    t = [0.0]
    st = FlowStats(clock=lambda: t[0])
    st.count("received", 5)
    st.decoding()
    t[0] = 3.0
    status = make_status(st.report(), "n", "h", {})
    assert status.level == WARN and status.message.startswith("slow image decoding: still decoding one frame "
                                                              "after 3.0 s")
    st.decoded()
    t[0] = 4.0
    r = st.report()
    assert r["decode_max_s"] == 3.0 and "took 3.0 s" in make_status(r, "n", "h", {}).message
    assert st.report()["decode_max_s"] == 0.0


def png_with_bad_crc(img):
    """A PNG of ``img`` with an ancillary tEXt chunk whose CRC is wrong: libpng warns on stderr, decodes."""
    data = cv2.imencode(".png", img[..., ::-1])[1].tobytes()
    chunk = b"tEXt" + b"Comment\0probe"
    return data[:33] + struct.pack(">I", len(chunk) - 4) + chunk + b"\0\0\0\0" + data[33:]


def test_decoder_messages_are_captured_and_counted_and_strings_truncated(client, tmp_path):
    """libjpeg / libpng warnings went straight to stderr at the sender's rate; now they are counted and logged
    throttled. A sender's 10,000-character frame_id / format never reaches the log in full."""
    ns = "said"
    proc = NodeProcess(tmp_path, ns, "-p", "backend:=dis", "-p", "transport:=compressed", "-p", "threads:=1",
                       "-p", "use_camera_info:=false")
    try:
        pub = connect(client, proc, ns, CompressedImage, "image/compressed")
        img = textured(5)
        n = 8
        for i in range(n):
            data = many_scan_jpeg(np.roll(img, i, axis=1), 3) if i % 2 else png_with_bad_crc(np.roll(img, i, 1))
            pub.publish(jpeg_msg(data, ns_time(i)))
            client.wait_diag(ns, lambda d, i=i: d["frames_processed"] == str(i + 1), f"frame {i} processed")
        junk = jpeg_msg(b"\x00" * 64, ns_time(n))
        junk.header.frame_id, junk.format = "F" * 10_000, "E" * 10_000
        pub.publish(junk)
        d = client.wait_diag(ns, lambda d: d["messages_rejected"] == "1", "the junk rejected")
        assert d["decoder_messages"] == str(n), d
        log = proc.log()
        assert "image decoder message" in log
        decoder_lines = [x for x in log.splitlines() if "Inconsistent progression" in x or "CRC error" in x]
        assert len(decoder_lines) < n // 2, decoder_lines  # throttled: one per 5 s, not one per message
        assert "F" * 100 not in log and "E" * 100 not in log and "(10000 characters)" in log
        assert max(len(x) for x in log.splitlines()) < 1000
        assert len(client.got(ns, "flow")) == n - 1
    finally:
        assert proc.stop() == 0, proc.log()[-4000:]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024.0


def test_memory_returns_after_frames_of_changing_size(client, tiny_checkpoint, tmp_path):
    """Soak: a new frame size every pair (up to 3 MP) left the node ~350 MB above its VGA steady state once
    back at VGA; the heap's free pages are now returned after each size change (about 130 MB remain here,
    not attributed: Fast DDS's sample buffers at the largest size seen are the likely holder)."""
    ns = "soak"
    proc = NodeProcess(tmp_path, ns, "-p", f"checkpoint:={tiny_checkpoint}", "-p", "threads:=1", "-p",
                       "max_frame_gap:=0.0", "-p", "reliability:=reliable")
    sent = [0]

    def pair(h, w):
        img = textured(sent[0], h, w)
        for k in range(2):
            sent[0] += 1
            pub.publish(raw_msg(np.roll(img, 2 * k, axis=1), ns_time(sent[0])))
            client.wait_diag(ns, lambda d: d["frames_processed"] == str(sent[0]), f"frame {sent[0]}")

    try:
        pub = connect(client, proc, ns, reliable=True)
        for _ in range(3):
            pair(480, 640)
        steady = rss_mb(proc.proc.pid)
        rng = np.random.default_rng(1)
        sizes = [(1500, 2000)] + list(zip(rng.integers(400, 1400, 8).tolist(), rng.integers(600, 2000, 8).tolist()))
        for h, w in sizes:
            pair(h, w)
        peak = rss_mb(proc.proc.pid)
        for _ in range(2):
            pair(480, 640)
        after = rss_mb(proc.proc.pid)
        print(f"RSS steady {steady:.0f} MB, after the sizes {peak:.0f} MB, back at VGA {after:.0f} MB")
        assert after - steady < 200, (steady, peak, after)
    finally:
        assert proc.stop() == 0, proc.log()[-4000:]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exported_models_follow_the_umask(tmp_path, tiny_checkpoint, umask):
    """Checkpoints and exported models were 0600 (mkstemp): a robot's service account could not read them."""
    code = (f"import os, sys; os.umask({umask}); from flownet_ros.train.export import main; "
            f"sys.exit(main([{str(tiny_checkpoint)!r}, {str(tmp_path / 'out.pt')!r}]))")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=300)
    assert stat.S_IMODE(os.stat(tmp_path / "out.pt").st_mode) == 0o666 & ~umask


def node_run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "flownet_ros.ros.node", "--ros-args", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_parameter_messages(tmp_path):
    """The decimal-point hint only for an integer given to a float parameter; a typo in a params file is
    named with the closest parameter."""
    wrong = node_run("-p", "backend:=dis", "-p", "threads:=two")
    assert wrong.returncode == 2 and "decimal point" not in wrong.stderr, wrong.stderr[-2000:]
    assert "Traceback" not in wrong.stderr
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    threds: 2\n    backend: dis\n    depth: 0\n")
    typo = node_run("--params-file", str(params))  # depth 0: refused, so the node exits after the warning
    assert typo.returncode == 2
    assert "unknown parameter 'threds' ignored (did you mean 'threads'?)" in typo.stderr + typo.stdout


@pytest.mark.parametrize("after_s", [0.3, 1.0, 2.0])
def test_ctrl_c_during_start_up_exits_cleanly(after_s):
    proc = subprocess.Popen([sys.executable, "-m", "flownet_ros.ros.node", "--ros-args", "-p", "backend:=dis"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]


def test_use_sim_time_is_read_only_and_a_duplicate_name_is_warned(client, tmp_path):
    first = NodeProcess(tmp_path, "twin", "-p", "backend:=dis")
    (tmp_path / "second").mkdir()
    second = NodeProcess(tmp_path / "second", "twin", "-p", "backend:=dis")
    try:
        connect(client, first, "twin")
        params = AsyncParameterClient(client, "/twin/flownet")
        assert params.wait_for_services(timeout_sec=WAIT)
        future = params.set_parameters([Parameter("use_sim_time", value=True)])
        client.spin_until(future.done, what="parameter service")
        result = future.result().results[0]
        assert not result.successful and "read-only" in result.reason
        client.spin_until(lambda: "nodes named /twin/flownet run in this ROS domain" in first.log() + second.log(),
                          what="the duplicate-name warning")
    finally:
        assert first.stop() == 0 and second.stop() == 0


def test_tests_and_demo_discover_only_this_host(monkeypatch, tmp_path):
    """Test and demo traffic stays on the machine, with the variable each distribution reads; a user's own
    setting is kept; robots (the launch file, the node) keep ROS's default."""
    from flownet_ros.ros.dds import local_discovery

    clean = {"PATH": "/usr/bin"}
    assert local_discovery(clean, "humble") == {**clean, "ROS_LOCALHOST_ONLY": "1"}
    for distro in ("jazzy", "kilted", ""):
        assert local_discovery(clean, distro) == {**clean, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    assert local_discovery({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, "jazzy") == {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST" or os.environ.get("ROS_LOCALHOST_ONLY")
    from flownet_ros import demo
    from flownet_ros.evaluation.node_process import private_network

    seen = {}
    monkeypatch.setattr(demo, "replay_and_report", lambda opts, **kw: seen.setdefault("opts", opts) and 0)
    (tmp_path / "in.mcap").touch()
    assert demo.main(["--bag", str(tmp_path / "in.mcap"), "--param", "checkpoint:=x.pt", "--out-dir",
                      str(tmp_path / "out")]) == 0
    assert seen["opts"].private_domain  # the demo's node and replay: a private domain, this host only
    for distro, var in (("humble", "ROS_LOCALHOST_ONLY"), ("jazzy", "ROS_AUTOMATIC_DISCOVERY_RANGE")):
        net = private_network({"ROS_DISTRO": distro, "ROS_DOMAIN_ID": "7"})
        assert net["ROS_DOMAIN_ID"] != "7" and var in net and len(net) == 2, net
