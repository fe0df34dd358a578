"""flownet_node end to end: the node runs as `python -m flownet_ros.ros.node` in its own process and talks
to this test process over real rclpy / Fast DDS (own ROS_DOMAIN_ID from conftest).

Frames go out in lock step (publish, wait for the result) unless a test is about overload, so every
assertion is on message contents, counts and ordering, never on speed.
"""

import array
import math
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import rclpy
from helpers import REPO, textured
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import FRAME_ID, RELIABLE, WAIT, Client, NodeProcess, ns_time, raw_msg, stamp_of
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from flownet_ros.flow.colour import flow_to_color
from flownet_ros.flow.motion import fit_motion, intrinsics_from_k
from flownet_ros.imaging.decode import image_msg_to_array, image_msg_to_flow

H, W = 64, 96  # the size of textured() frames


@pytest.fixture(scope="module")
def nodes(tiny_checkpoint, tmp_path_factory):
    """All node configurations, started together so their start-up overlaps."""
    tmp = tmp_path_factory.mktemp("nodes")
    c = f"checkpoint:={tiny_checkpoint}"
    procs = {
        "be": NodeProcess(tmp, "be", "-p", c, "-r", "image:=/be_cam/image_raw",
                          "-r", "camera_info:=/be_cam/camera_info"),
        "rel": NodeProcess(tmp, "rel", "-p", c, "-p", "reliability:=reliable", "-p", "max_frame_gap:=0.0"),
        "cmp": NodeProcess(tmp, "cmp", "-p", c, "-p", "transport:=compressed", "-p", "use_camera_info:=false"),
        "dis": NodeProcess(tmp, "dis", "-p", "backend:=dis", "-p", "dis_preset:=medium", "-p", "color_max_flow:=4.0",
                           "-p", "threads:=1"),
    }
    yield procs
    for p in procs.values():
        p.interrupt()
    codes = {ns: p.stop() for ns, p in procs.items()}
    assert codes == {ns: 0 for ns in procs}, {ns: procs[ns].log()[-8000:] for ns in procs if codes[ns] != 0}


@pytest.fixture(scope="module")
def client(nodes):
    rclpy.init()
    node = Client()
    for ns in nodes:
        node.listen(ns)
    node.cmp_pub = node.create_publisher(CompressedImage, "/cmp/image/compressed", qos_profile_sensor_data)
    node.pubs = {
        "be": node.create_publisher(Image, "/be_cam/image_raw", qos_profile_sensor_data),
        "rel": node.create_publisher(Image, "/rel/image", RELIABLE),
        "dis": node.create_publisher(Image, "/dis/image", qos_profile_sensor_data),
    }
    node.info_pub = node.create_publisher(CameraInfo, "/be_cam/camera_info", RELIABLE)
    for ns, pub in list(node.pubs.items()) + [("cmp", node.cmp_pub), ("be", node.info_pub)]:
        def ready(pub=pub, ns=ns):
            assert nodes[ns].alive(), nodes[ns].log()
            return pub.get_subscription_count() > 0 and node.count_publishers(f"/{ns}/flownet/flow") > 0
        node.spin_until(ready, what=f"node {ns} to connect")
    yield node
    node.destroy_node()
    rclpy.shutdown()


def send_wait(client, ns, pub, msg, expect_output=True):
    """Publish ``msg``; wait until the node processed it (flow out, or the processed count went up)."""
    t = stamp_of(msg)
    if not expect_output:
        before = int(client.wait_diag(ns, lambda d: True, "current counts")["frames_processed"])
    pub.publish(msg)
    if expect_output:
        client.spin_until(lambda: any(stamp_of(m) == t for m in client.got(ns, "flow_pair")),
                          what=f"flow of {ns} stamped {t}")
    else:
        client.wait_diag(ns, lambda d: int(d["frames_processed"]) > before, "frame processed")


def test_outputs_best_effort_with_camera_info(client, nodes):
    ns, pub = "be", client.pubs["be"]
    info = CameraInfo(width=W * 2, height=H * 2)  # calibrated at twice the resolution: scaled to the image
    info.k = [120.0, 0.0, 95.5, 0.0, 120.0, 63.5, 0.0, 0.0, 1.0]
    base = textured(1)
    frames = [raw_msg(np.roll(base, 2 * i, axis=1), ns_time(i), "bgr8", pad=8) for i in range(4)]
    for i, f in enumerate(frames):
        info.header = f.header  # like a camera driver: camera_info with every frame
        client.info_pub.publish(info)
        send_wait(client, ns, pub, f, expect_output=i > 0)
    client.spin_until(lambda: len(client.got(ns, "motion")) >= 3 and len(client.got(ns, "flow_color")) >= 3,
                      what="all outputs")
    sent = [stamp_of(f) for f in frames]
    flows, colors = client.got(ns, "flow"), client.got(ns, "flow_color")
    motions, pairs = client.got(ns, "motion"), client.got(ns, "flow_pair")
    assert [stamp_of(m) for m in flows] == sent[1:]  # stamped with the NEWER frame of each pair
    assert [stamp_of(m) for m in colors] == sent[1:] and [stamp_of(m) for m in motions] == sent[1:]
    assert [stamp_of(p) for p in pairs] == sent[1:]
    assert [p.time_ref.sec * 10**9 + p.time_ref.nanosec for p in pairs] == sent[:-1]  # the older frame
    for fl, col, mo in zip(flows, colors, motions):
        assert (fl.encoding, fl.height, fl.width, fl.step, len(fl.data)) == ("32FC2", H, W, W * 8, H * W * 8)
        assert (col.encoding, col.height, col.width, col.step, len(col.data)) == ("rgb8", H, W, W * 3, H * W * 3)
        assert fl.header.frame_id == col.header.frame_id == mo.header.frame_id == FRAME_ID
        flow = image_msg_to_flow(fl)
        assert np.isfinite(flow).all()
        # the colour image is the Middlebury coding of this very flow (GPU/torch vs numpy: +-1)
        diff = np.abs(image_msg_to_array(col).astype(int) - flow_to_color(flow).astype(int))
        assert diff.max() <= 1
        # the motion is the robust fit of this very flow, with the camera_info intrinsics
        ref = fit_motion(flow, 0.1, intrinsics_from_k(info.k, (info.width, info.height), (W, H)))
        got = (mo.twist.linear.x, mo.twist.linear.y, mo.twist.linear.z,
               mo.twist.angular.x, mo.twist.angular.y, mo.twist.angular.z)
        np.testing.assert_allclose(got, ref.linear + ref.angular, rtol=1e-4, atol=1e-6)


def test_malformed_messages_rejected_node_keeps_publishing(client, nodes):
    ns, pub = "be", client.pubs["be"]
    t = [ns_time(3000 + i) for i in range(10)]
    base = textured(2)
    send_wait(client, ns, pub, raw_msg(base, t[0]), expect_output=False)  # new pair after the gap
    rejected0 = int(client.wait_diag(ns, lambda d: True, "any")["messages_rejected"])
    good = raw_msg(base, t[1])
    bad = []
    short = raw_msg(base, t[1]); short.data = short.data[:-1]; bad.append(short)  # noqa: E702
    step = raw_msg(base, t[1]); step.step = W * 3 - 1; bad.append(step)  # noqa: E702
    enc = raw_msg(base, t[1]); enc.encoding = "32FC7"; bad.append(enc)  # noqa: E702
    empty = raw_msg(base, t[1]); empty.height = 0; empty.data = array.array("B"); bad.append(empty)  # noqa: E702
    n_diag = len(client.diag[ns])
    for m in bad:
        pub.publish(m)
        client.spin_for(0.05)
    d = client.wait_diag(ns, lambda d: int(d["messages_rejected"]) >= rejected0 + len(bad), "rejections counted")
    assert int(d["messages_rejected"]) == rejected0 + len(bad)
    assert any(x["level"] == b"\x01" and "rejected" in x["message"] for x in client.diag[ns][n_diag:])  # WARN
    assert nodes[ns].alive()
    send_wait(client, ns, pub, good)  # the next good frame pairs with the last good one
    send_wait(client, ns, pub, raw_msg(np.roll(base, 1, axis=0), t[2]))
    pair = client.got(ns, "flow_pair")[-1]
    assert pair.time_ref.sec * 10**9 + pair.time_ref.nanosec == t[1]
    assert "rejected image message" in nodes[ns].log() and "step" in nodes[ns].log()


def test_pair_resets_on_stamp_jump_size_change_and_gap(client, nodes):
    ns, pub = "be", client.pubs["be"]
    img, small = textured(3), textured(4, 32, 48)
    t = ns_time(4000)
    send_wait(client, ns, pub, raw_msg(img, t), expect_output=False)
    resets0 = int(client.wait_diag(ns, lambda d: True, "any")["pair_resets"])
    n_flow = len(client.got(ns, "flow"))
    # stamp back by 10 s (bag loop), size change, gap above max_frame_gap (1 s): each frame starts a new pair
    for msg in (raw_msg(img, t - 10**10), raw_msg(small, t - 10**10 + 10**8), raw_msg(small, t + 10**10)):
        send_wait(client, ns, pub, msg, expect_output=False)
    client.wait_diag(ns, lambda d: int(d["pair_resets"]) == resets0 + 3, "3 resets")
    assert len(client.got(ns, "flow")) == n_flow  # no flow across a reset
    send_wait(client, ns, pub, raw_msg(small, t + 10**10 + 10**8))
    last = client.got(ns, "flow")[-1]
    assert (last.height, last.width) == (32, 48)


def test_parameters_validated(client, nodes):
    ns = "be"
    params = AsyncParameterClient(client, f"/{ns}/flownet")
    assert params.wait_for_services(timeout_sec=WAIT)

    def call(future):
        client.spin_until(future.done, what="parameter service")
        return future.result()

    res = call(params.set_parameters([Parameter("color_max_flow", value=-1.0)])).results[0]
    assert not res.successful and "out of range" in res.reason
    res = call(params.set_parameters([Parameter("reliability", value="reliable")])).results[0]
    assert not res.successful and "read-only" in res.reason
    res = call(params.set_parameters([Parameter("inference_width", value=100)])).results[0]
    assert not res.successful and "step" in res.reason
    res = call(params.set_parameters([Parameter("max_frame_gap", value="long")])).results[0]
    assert not res.successful
    # the network size is bounded by max_pixels (2048 x 2048 would cost seconds and a gigabyte per pair)
    h, w = call(params.set_parameters([Parameter("inference_height", value=2048),
                                       Parameter("inference_width", value=2048)])).results
    assert h.successful and not w.successful and "exceeds max_pixels" in w.reason
    assert call(params.set_parameters([Parameter("inference_height", value=0)])).results[0].successful
    desc = {d.name: d for d in call(params.describe_parameters(["depth", "max_frame_gap", "checkpoint"])).descriptors}
    assert desc["depth"].read_only and desc["depth"].integer_range[0].from_value == 1
    assert not desc["max_frame_gap"].read_only and desc["max_frame_gap"].floating_point_range
    assert desc["checkpoint"].read_only and desc["checkpoint"].description

    # publish_color off at run time: flow still flows, colour stops
    res = call(params.set_parameters([Parameter("publish_color", value=False)])).results[0]
    assert res.successful
    img, t = textured(5), ns_time(5000)
    send_wait(client, ns, client.pubs[ns], raw_msg(img, t), expect_output=False)
    send_wait(client, ns, client.pubs[ns], raw_msg(np.roll(img, 1, axis=1), t + 10**8))
    client.spin_for(0.3)
    assert stamp_of(client.got(ns, "flow")[-1]) == t + 10**8
    assert all(stamp_of(m) != t + 10**8 for m in client.got(ns, "flow_color"))
    assert call(params.set_parameters([Parameter("publish_color", value=True)])).results[0].successful
    send_wait(client, ns, client.pubs[ns], raw_msg(img, t + 2 * 10**8))
    client.spin_until(lambda: stamp_of(client.got(ns, "flow_color")[-1]) == t + 2 * 10**8, what="colour back")


def test_reliable_qos_and_incompatible_publisher_warning(client, nodes):
    ns, pub = "rel", client.pubs["rel"]
    img = textured(6)
    send_wait(client, ns, pub, raw_msg(img, ns_time(0)), expect_output=False)
    send_wait(client, ns, pub, raw_msg(np.roll(img, 1, axis=1), ns_time(1)))
    fl = client.got(ns, "flow")[-1]
    assert (fl.encoding, fl.width, fl.height, stamp_of(fl)) == ("32FC2", W, H, ns_time(1))
    # a best-effort publisher cannot feed a reliable subscription: the node says so
    be_pub = client.create_publisher(Image, "/rel/image", qos_profile_sensor_data)
    client.spin_until(lambda: "incompatible QoS" in nodes[ns].log(), what="QoS warning")
    client.destroy_publisher(be_pub)


def test_overload_drops_stale_frames_and_keeps_latency_bounded(client, nodes):
    """50 frames back to back (far faster than inference): the node skips to the newest frame."""
    ns, pub = "rel", client.pubs["rel"]
    base = textured(7)
    d0 = client.wait_diag(ns, lambda d: d["queue_depth"] == "0", "idle")
    n_out0 = len(client.got(ns, "flow_pair"))
    times = [ns_time(100000 + i, dt_ms=10) for i in range(50)]
    for i, t in enumerate(times):
        pub.publish(raw_msg(np.roll(base, i, axis=1), t))
    client.spin_until(lambda: any(stamp_of(m) == times[-1] for m in client.got(ns, "flow_pair")),
                      what="flow of the newest frame")
    pairs = client.got(ns, "flow_pair")[n_out0:]
    out = [stamp_of(p) for p in pairs]
    older = [p.time_ref.sec * 10**9 + p.time_ref.nanosec for p in pairs]
    assert out == sorted(out) and len(set(out)) == len(out) and set(out) <= set(times)
    assert out[-1] == times[-1]  # the newest frame is always processed
    assert len(out) < len(times) - 1  # stale frames were skipped, not queued
    assert older[1:] == out[:-1]  # each flow pairs the two frames actually processed, spanning the drops
    d = client.wait_diag(ns, lambda d: int(d["flow_published"]) == int(d0["flow_published"]) + len(out)
                         and d["queue_depth"] == "0", "counts settled")
    received = int(d["frames_received"]) - int(d0["frames_received"])
    dropped = int(d["frames_dropped"]) - int(d0["frames_dropped"])
    processed = int(d["frames_processed"]) - int(d0["frames_processed"])
    assert dropped > 0 and received == processed + dropped  # every frame is either processed or counted
    assert processed == len(out) + (older[0] in times)  # (+1: a first frame that started the pair)
    assert int(d["max_frames_behind"]) <= 1  # the worker never starts on a frame older than latest + 1


def test_compressed_input(client, nodes):
    ns, pub = "cmp", client.cmp_pub
    img = textured(8)

    def cmsg(rgb, t_ns, ext=".jpg"):
        ok, buf = cv2.imencode(ext, rgb[..., ::-1])
        m = CompressedImage(format=f"bgr8; {'jpeg' if ext == '.jpg' else 'png'} compressed bgr8")
        m.data = array.array("B", buf.tobytes())
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(t_ns, 10**9)
        m.header.frame_id = FRAME_ID
        return m

    send_wait(client, ns, pub, cmsg(img, ns_time(0)), expect_output=False)
    send_wait(client, ns, pub, cmsg(np.roll(img, 1, axis=1), ns_time(1), ".png"))
    fl = client.got(ns, "flow")[-1]
    assert (fl.encoding, fl.width, fl.height, fl.header.frame_id) == ("32FC2", W, H, FRAME_ID)
    rejected0 = int(client.wait_diag(ns, lambda d: True, "current counts")["messages_rejected"])
    corrupt = cmsg(img, ns_time(2))
    corrupt.data = array.array("B", bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    empty = cmsg(img, ns_time(2))
    empty.data = array.array("B")
    for m in (corrupt, empty):
        pub.publish(m)
        client.spin_for(0.05)
    client.wait_diag(ns, lambda d: int(d["messages_rejected"]) == rejected0 + 2, "2 rejected")
    send_wait(client, ns, pub, cmsg(np.roll(img, 2, axis=1), ns_time(3)))
    pair = client.got(ns, "flow_pair")[-1]
    assert pair.time_ref.sec * 10**9 + pair.time_ref.nanosec == ns_time(1) and nodes[ns].alive()


def test_dis_backend(client, nodes):
    ns, pub = "dis", client.pubs["dis"]
    img = textured(9)
    send_wait(client, ns, pub, raw_msg(img, ns_time(0)), expect_output=False)
    send_wait(client, ns, pub, raw_msg(np.roll(img, 2, axis=1), ns_time(1)))
    flow = image_msg_to_flow(client.got(ns, "flow")[-1])
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.3)  # DIS sees the 2 px shift
    client.spin_until(lambda: len(client.got(ns, "motion")) >= 1, what="motion")
    mo = client.got(ns, "motion")[-1]
    assert mo.twist.linear.x == pytest.approx(20.0, abs=3.0)  # 2 px in 0.1 s
    assert mo.twist.angular.x == 0.0 and mo.twist.angular.y == 0.0  # no camera_info: not reported
    d = client.wait_diag(ns, lambda d: int(d["flow_published"]) >= 1, "output counted")
    assert d["backend"] == "dis" and "DIS" in d["model"] and d["device"] == "cpu"
    assert d["cpu_threads"] == "1"  # threads:=1 applied to torch (and OpenCV)
    assert math.isfinite(float(d["motion_inlier_fraction"]))


def test_startup_failures_exit_nonzero_with_message(tiny_checkpoint, tmp_path):
    """Missing / corrupt checkpoint, bad parameter values, a bad or missing params file, a malformed -p, an
    inference size beyond max_pixels: exit code 2 and one clear line, no traceback."""
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04" + np.random.default_rng(7).bytes(200))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("::: not yaml [\n")
    cases = [
        (["-p", f"checkpoint:={tmp_path / 'nope.pt'}"], "file not found"),
        (["-p", f"checkpoint:={corrupt}"], "damaged or truncated PyTorch zip archive"),
        (["-p", f"checkpoint:={tiny_checkpoint}", "-p", "transport:=carrier_pigeon"],
         "transport must be one of raw, compressed"),
        (["-p", f"checkpoint:={tiny_checkpoint}", "-p", "depth:=0"], "out of range"),
        (["-p", f"checkpoint:={tiny_checkpoint}", "-p", "max_frame_gap:=2"], "decimal point"),
        (["-p", "nocolon"], "Couldn't parse parameter override rule: '-p nocolon'"),
        (["--params-file", str(tmp_path / "missing.yaml")], "Error opening YAML file"),
        (["--params-file", str(bad_yaml)], "Couldn't parse params file"),
        (["-p", f"checkpoint:={tiny_checkpoint}", "-p", "inference_height:=2048", "-p", "inference_width:=2048"],
         "exceeds max_pixels"),
    ]
    # -X faulthandler: if a process ever hangs (seen once in CI-like conditions, not reproduced), SIGABRT
    # makes it print every thread's Python stack into the failure message.
    procs = [subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "flownet_ros.ros.node", "--ros-args",
                               *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args, _ in cases]
    for (args, message), proc in zip(cases, procs):
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            for other in procs:
                other.kill()
            pytest.fail(f"node with {args} did not exit within 120 s; its stacks:\n{err[-6000:]}")
        assert proc.returncode == 2, err[-2000:]
        assert "flownet_node: cannot start" in err and message in err, err[-2000:]
        assert "Traceback" not in err


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "yuv422_yuy2", "mono16"])
def test_camera_encodings_through_the_node(client, nodes, encoding):
    """Raw camera formats reach the flow network correctly: DIS recovers a 2 px shift from each."""
    ns, pub = "dis", client.pubs["dis"]
    rgb = textured(10)
    start = {"bayer_rggb8": 200, "yuv422_yuy2": 300, "mono16": 400}[encoding]

    def encode(img, t_ns):
        if encoding == "bayer_rggb8":
            px = np.zeros(img.shape[:2], np.uint8)
            px[0::2, 0::2], px[0::2, 1::2] = img[0::2, 0::2, 0], img[0::2, 1::2, 1]
            px[1::2, 0::2], px[1::2, 1::2] = img[1::2, 0::2, 1], img[1::2, 1::2, 2]
        elif encoding == "yuv422_yuy2":  # Y0 U Y1 V with neutral chroma: a grey image
            px = np.full(img.shape[:2] + (2,), 128, np.uint8)
            px[..., 0] = img[..., 1]
        else:  # 12-bit grey, big-endian
            px = (img[..., 1].astype(np.uint16) << 4).astype(">u2")
        raw = np.ascontiguousarray(px).view(np.uint8).reshape(img.shape[0], -1)
        m = Image(height=img.shape[0], width=img.shape[1], encoding=encoding, step=raw.shape[1],
                  is_bigendian=int(encoding == "mono16"))
        m.data = array.array("B", raw.tobytes())
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(t_ns, 10**9)
        m.header.frame_id = FRAME_ID
        return m

    send_wait(client, ns, pub, encode(rgb, ns_time(start)), expect_output=False)
    send_wait(client, ns, pub, encode(np.roll(rgb, 2, axis=1), ns_time(start + 1)))
    flow = image_msg_to_flow(client.got(ns, "flow")[-1])
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.3)
    assert np.median(np.abs(flow[8:-8, 8:-8, 1])) < 0.3


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024.0


def forged_png(width, height):
    """A few hundred bytes of PNG whose header declares width x height (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    body = zlib.compress(b"\x00" * 200_000, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_frames_beyond_the_size_limits_are_refused_before_any_work(client, nodes):
    """Decompression bombs (PNG headers declaring 4096x4096 and 16384x16384), a 1x65536 strip, a 16x4096
    sliver and a raw frame over max_pixels: refused from their headers, counted, logged with the limit
    hit; the node's memory stays flat and the next good frames still give flow."""
    ns, t0 = "cmp", ns_time(9000)
    pid = nodes[ns].proc.pid
    before = rss_mb(pid)
    refused0 = int(client.wait_diag(ns, lambda d: True, "any")["frames_refused_size"])
    for k, (w, h) in enumerate([(4096, 4096), (16384, 16384)] * 3):
        msg = CompressedImage(format="rgb8; png compressed bgr8", data=forged_png(w, h))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t0 + k * 10**6, 10**9)
        client.cmp_pub.publish(msg)
        client.spin_for(0.05)
    client.wait_diag(ns, lambda d: int(d["frames_refused_size"]) >= refused0 + 6, "bombs refused")
    assert rss_mb(pid) < before + 100, (before, rss_mb(pid))
    assert "exceeds max_pixels" in nodes[ns].log()
    dis, pub = "dis", client.pubs["dis"]
    refused1 = int(client.wait_diag(dis, lambda d: True, "any")["frames_refused_size"])
    for shape in ((1, 65536), (16, 4096), (2000, 2000)):
        pub.publish(raw_msg(np.zeros(shape + (3,), np.uint8), t0))
        client.spin_for(0.05)
    client.wait_diag(dis, lambda d: int(d["frames_refused_size"]) >= refused1 + 3, "odd sizes refused")
    assert "65536x1 is too small" in nodes[dis].log()  # the first refusal; later ones are throttled
    img = textured(9)
    send_wait(client, ns, client.cmp_pub, _png_msg(img, t0 + 10**8), expect_output=False)
    send_wait(client, ns, client.cmp_pub, _png_msg(np.roll(img, 1, axis=1), t0 + 2 * 10**8))
    assert nodes[ns].alive() and nodes[dis].alive()


def _png_msg(img, t_ns):
    ok, buf = cv2.imencode(".png", img[..., ::-1])
    msg = CompressedImage(format="rgb8; png compressed bgr8", data=buf.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(t_ns), 1_000_000_000)
    msg.header.frame_id = FRAME_ID
    return msg


def test_refined_flow_over_dds(client, nodes):
    """The default refinement (DIS seeded by the network) turns even an untrained tiny network's flow into
    the right motion: a textured frame moved by (3, 1) px comes out as (3, 1) px over DDS."""
    ns, pub = "be", client.pubs["be"]
    img, t = textured(11), ns_time(7000)
    send_wait(client, ns, pub, raw_msg(img, t), expect_output=False)
    send_wait(client, ns, pub, raw_msg(np.roll(img, (1, 3), axis=(0, 1)), t + 10**8))
    flow = image_msg_to_flow(client.got(ns, "flow")[-1])
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), [3.0, 1.0], atol=0.3)
    d = client.wait_diag(ns, lambda d: True, "any")
    assert d["refine"] == "dis" and "seeded by the network" in d["model"] and "bidirectional" not in d["model"]
    # bidirectional switched on at run time: the network runs both ways from the next pair on
    params = AsyncParameterClient(client, f"/{ns}/flownet")
    assert params.wait_for_services(timeout_sec=WAIT)
    future = params.set_parameters([Parameter("bidirectional", value=True)])
    client.spin_until(future.done, what="parameter service")
    assert future.result().results[0].successful
    try:
        send_wait(client, ns, pub, raw_msg(np.roll(img, (2, 6), axis=(0, 1)), t + 2 * 10**8))
        flow = image_msg_to_flow(client.got(ns, "flow")[-1])
        np.testing.assert_allclose(np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), [3.0, 1.0], atol=0.3)
        client.wait_diag(ns, lambda d: "bidirectional" in d["model"], "bidirectional in the diagnostics")
    finally:
        future = params.set_parameters([Parameter("bidirectional", value=False)])
        client.spin_until(future.done, what="parameter service")


def test_no_work_for_outputs_nobody_subscribes_to(client, tmp_path):
    """A node nobody listens to converts nothing and runs nothing (counted idle); with a subscriber to
    ~/flow only, the flow is computed (from the first frame on: the last idle one completes the pair) but
    colour coding and motion fit are skipped and counted."""
    node = NodeProcess(tmp_path, "lazy", "-p", "backend:=dis", "-p", "dis_preset:=ultrafast")
    probe = client
    try:
        pub = probe.create_publisher(Image, "/lazy/image", RELIABLE)
        probe.spin_until(lambda: pub.get_subscription_count() > 0, what="lazy node up")
        img, frames = textured(12), iter(range(10**6))

        def feed_until(cond, what):  # frames every 0.2 s (a best-effort input may lose some at start-up)
            deadline = time.monotonic() + WAIT
            while not cond() and time.monotonic() < deadline:
                i = next(frames)
                pub.publish(raw_msg(np.roll(img, i % 40, axis=1), ns_time(i, dt_ms=50)))
                probe.spin_for(0.2)
            assert cond(), what

        idle = lambda: probe.diag["lazy"] and int(probe.diag["lazy"][-1]["frames_idle"]) >= 5  # noqa: E731
        feed_until(idle, "5 idle frames")
        d = probe.diag["lazy"][-1]
        assert int(d["frames_processed"]) == 0 and int(d["flow_published"]) == 0 and "idle" in d["message"]
        flows = []
        probe.create_subscription(Image, "/lazy/flownet/flow", flows.append, RELIABLE)
        probe.spin_until(lambda: probe.count_subscribers("/lazy/flownet/flow") > 0, what="subscription")
        feed_until(lambda: len(flows) >= 2, "flow for the subscriber")
        # the last idle frame was kept: the first frame someone wants already gives a flow
        d = probe.wait_diag("lazy", lambda d: int(d["color_skipped"]) >= 2 and
                            int(d["frames_processed"]) == int(d["flow_published"]), "a flow for every processed frame")
        assert int(d["motion_skipped"]) >= 2 and int(d["flow_published"]) >= 2
    finally:
        assert node.stop() == 0, node.log()[-4000:]


def test_compiling_at_start_is_reported_and_images_wait_for_it(client, tiny_checkpoint, tmp_path):
    """Without a prebuilt or cached correlation library the node compiles it first: the diagnostics say
    so (WARN), the image topic is subscribed only afterwards, and then the first pair gives a flow."""
    from flownet_ros.ops import build

    if build.prebuilt_library(False) is not None:
        pytest.skip("a prebuilt library is installed next to the package: nothing to compile")
    node = NodeProcess(tmp_path, "cold", "-p", f"checkpoint:={tiny_checkpoint}", "-p", "device:=cpu",
                       env={"FLOWNET_ROS_BUILD_DIR": str(tmp_path / "empty_cache")})
    try:
        pub = client.create_publisher(Image, "/cold/image", RELIABLE)
        client.listen("cold")
        d = client.wait_diag("cold", lambda d: "compiling the correlation extension" in d["message"], "compiling")
        assert d["level"] == b"\x01" and pub.get_subscription_count() == 0
        client.spin_until(lambda: pub.get_subscription_count() > 0, timeout=600, what="subscription after the build")
        img = textured(5)
        for i in range(2):  # exactly two frames: nothing may be lost to the start-up
            pub.publish(raw_msg(np.roll(img, 3 * i, axis=1), ns_time(i)))
            client.spin_for(0.3)
        client.spin_until(lambda: len(client.got("cold", "flow")) == 1, what="the first flow")
        assert (tmp_path / "empty_cache").is_dir() and "ready after" in node.log()
    finally:
        assert node.stop() == 0, node.log()[-4000:]
