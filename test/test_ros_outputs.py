"""~/confidence, ~/occlusion and ~/moving of flownet_node over real rclpy / Fast DDS (the node in its own
process, as in test_ros_node.py; DIS backend, so no correlation extension is needed)."""

from collections import defaultdict

import numpy as np
from helpers import textured
from ros_helpers import FRAME_ID, RELIABLE, NodeProcess, ns_time, raw_msg, stamp_of
from sensor_msgs.msg import Image

from flownet_ros.imaging.decode import image_msg_to_array


def moving_object_frames(n, h=128, w=160):
    """Textured background moving +2 px per frame, a 40x40 textured square moving +8 px: (frames, square mask
    of the first frame of each pair)."""
    bg, obj = textured(20, h, w + 2 * n), textured(21, 40, 40)
    frames, masks = [], []
    for i in range(n):
        img = bg[:, 2 * n - 2 * i:2 * n - 2 * i + w].copy()
        img[40:80, 30 + 8 * i:70 + 8 * i] = obj
        mask = np.zeros((h, w), bool)
        mask[40:80, 30 + 8 * i:70 + 8 * i] = True
        frames.append(img)
        masks.append(mask)
    return frames, masks


def test_confidence_occlusion_and_moving_only_while_subscribed(client, tmp_path):
    """~/confidence (32FC1 in [0, 1]), ~/occlusion and ~/moving (mono8 0/255) carry the stamp and frame of
    ~/flow; the backward flow is computed (counted in diagnostics) only while one of them has a subscriber,
    and each is published only to its own subscribers. The moving mask finds the independently moving square."""
    node = NodeProcess(tmp_path, "cons", "-p", "backend:=dis", "-p", "threads:=1", "-p", "reliability:=reliable")
    probe = client
    try:
        pub = probe.create_publisher(Image, "/cons/image", RELIABLE)
        got = defaultdict(list)
        flow_sub = probe.create_subscription(Image, "/cons/flownet/flow", got["flow"].append, RELIABLE)
        probe.spin_until(lambda: pub.get_subscription_count() > 0 and
                         probe.count_subscribers("/cons/flownet/flow") > 0, what="cons node up")
        frames, masks = moving_object_frames(8)

        def send(i):  # lock step: the next frame only after this one was processed
            n = len(got["flow"])
            before = int(probe.wait_diag("cons", lambda d: True, "current counts")["frames_processed"]) if i == 0 else 0
            pub.publish(raw_msg(frames[i], ns_time(i)))
            if i > 0:
                probe.spin_until(lambda: len(got["flow"]) > n, what=f"flow of frame {i}")
            else:
                probe.wait_diag("cons", lambda d: int(d["frames_processed"]) > before, "first frame processed")

        send(0)
        send(1)
        d = probe.wait_diag("cons", lambda d: int(d["flow_published"]) >= 1, "first flow counted")
        assert int(d["backward_flows"]) == 0  # only ~/flow is wanted: no backward flow
        subs = [probe.create_subscription(Image, f"/cons/flownet/{name}", got[name].append, RELIABLE)
                for name in ("confidence", "occlusion", "moving")]
        probe.spin_until(lambda: all(probe.count_subscribers(f"/cons/flownet/{n}") > 0
                                     for n in ("confidence", "occlusion", "moving")), what="subscriptions")
        for i in range(2, 5):
            send(i)
        probe.spin_until(lambda: all(len(got[n]) >= 3 for n in ("confidence", "occlusion", "moving")),
                         what="confidence, occlusion and moving")
        flows = {stamp_of(m): m for m in got["flow"]}
        for name, enc in (("confidence", "32FC1"), ("occlusion", "mono8"), ("moving", "mono8")):
            for m in got[name]:
                assert m.encoding == enc and (m.height, m.width) == (128, 160) and m.header.frame_id == FRAME_ID
                assert stamp_of(m) in flows  # the newer frame's stamp, like ~/flow
        conf = image_msg_to_array(got["confidence"][-1])
        assert conf.dtype == np.float32 and conf.min() >= 0.0 and conf.max() <= 1.0 and conf.mean() > 0.5
        occ = image_msg_to_array(got["occlusion"][-1])
        assert set(np.unique(occ)) <= {0, 255}
        for m in got["moving"]:
            mask = np.squeeze(image_msg_to_array(m)) > 0
            square = masks[(stamp_of(m) - ns_time(0)) // (100 * 10**6) - 1]
            assert mask[square].mean() > 0.6 and mask[~square].mean() < 0.02
        d = probe.wait_diag("cons", lambda d: int(d["backward_flows"]) >= 3, "backward flows counted")
        assert d["moving_camera_model"] == "homography" and float(d["moving_inlier_fraction"]) > 0.7
        for s in subs[:2]:  # only ~/moving left: still the backward flow (its confidence), not the others
            probe.destroy_subscription(s)
        probe.spin_until(lambda: probe.count_subscribers("/cons/flownet/confidence") == 0, what="unsubscribed")
        counts = {n: len(got[n]) for n in got}
        send(5)
        probe.spin_until(lambda: len(got["moving"]) > counts["moving"], what="moving alone")
        probe.spin_for(0.5)
        assert len(got["confidence"]) == counts["confidence"] and len(got["occlusion"]) == counts["occlusion"]
        probe.destroy_subscription(subs[2])
        probe.spin_until(lambda: probe.count_subscribers("/cons/flownet/moving") == 0, what="unsubscribed")
        before = int(probe.wait_diag("cons", lambda d: True, "counts")["backward_flows"])
        send(6)
        send(7)
        d = probe.wait_diag("cons", lambda d: int(d["flow_published"]) >= 7, "flows counted")
        assert int(d["backward_flows"]) == before  # nobody wants them: no backward flow
        probe.destroy_subscription(flow_sub)
    finally:
        assert node.stop() == 0, node.log()[-4000:]
