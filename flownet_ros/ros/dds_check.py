"""How many best-effort camera-sized images survive between two processes on this host?

    python -m flownet_ros.ros.dds_check                       # with and without config/fastdds.xml
    python -m flownet_ros.ros.dds_check --profile my.xml --count 100 --width 1280 --height 720

Starts a subscriber process and a publisher process (same ROS_DOMAIN_ID) per setting and prints the
number of rgb8 images delivered. Use it on a robot to check that a Fast DDS profile is picked up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from flownet_ros.paths import find_data_file
from flownet_ros.ros.dds import VARIABLES as PROFILE_VARS
from flownet_ros.ros.dds import with_profile

TOPIC = "/flownet_dds_check/image"


def _subscriber(seconds: float, expected: int) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("flownet_dds_check_sub")
    got = []
    node.create_subscription(Image, TOPIC, lambda m: got.append(m.header.stamp.sec), qos_profile_sensor_data)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(got) < expected:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"received {len(got)}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def _publisher(count: int, width: int, height: int, rate: float) -> None:
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from flownet_ros.ros.conversions import rgb_to_image_msg

    rclpy.init()
    node = rclpy.create_node("flownet_dds_check_pub")
    pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery settle in both directions
    msg = rgb_to_image_msg(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    for i in range(count):
        msg.header.stamp.sec = i
        pub.publish(msg)
        time.sleep(1.0 / rate)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()


def measure(profile: str, count: int, width: int, height: int, rate: float) -> int:
    """Images delivered with ``profile`` ('' = Fast DDS defaults)."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    if profile:
        env = with_profile(env, profile)  # the one variable this distribution's Fast DDS reads
    me = [sys.executable, "-m", "flownet_ros.ros.dds_check"]
    duration = count / rate + 8.0
    sub = subprocess.Popen(me + ["--role", "sub", "--seconds", str(duration), "--count", str(count)], env=env,
                           stdout=subprocess.PIPE, text=True)
    pub = subprocess.Popen(me + ["--role", "pub", "--count", str(count), "--width", str(width), "--height",
                                 str(height), "--rate", str(rate)], env=env)
    try:
        pub.wait(timeout=duration + 60.0)
        out, _ = sub.communicate(timeout=duration + 60.0)
    finally:
        for proc in (pub, sub):
            if proc.poll() is None:
                proc.kill()
    for line in out.splitlines():
        if line.startswith("received "):
            return int(line.split()[1])
    raise RuntimeError(f"subscriber printed no result: {out!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=None, help="Fast DDS XML profile (default: config/fastdds.xml); "
                    "'none' = Fast DDS defaults only")
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--rate", type=float, default=30.0, help="images per second")
    ap.add_argument("--role", choices=("sub", "pub"), help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.role == "sub":
        _subscriber(a.seconds, a.count)
        return 0
    if a.role == "pub":
        _publisher(a.count, a.width, a.height, a.rate)
        return 0
    settings = [("Fast DDS defaults", "")] if a.profile in (None, "none") else []
    if a.profile != "none":
        profile = a.profile or find_data_file("config", "fastdds.xml")
        if profile is None or not Path(profile).is_file():
            # Fast DDS silently ignores a missing profile file: the numbers would be the defaults'.
            print(f"dds_check: Fast DDS profile {profile or 'config/fastdds.xml'} not found", file=sys.stderr)
            return 2
        settings.append((f"profile {profile}", str(profile)))
    for name, profile in settings:
        got = measure(profile, a.count, a.width, a.height, a.rate)
        print(f"{name}: {got} of {a.count} best-effort {a.width}x{a.height} rgb8 images delivered", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
