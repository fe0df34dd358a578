"""Test-process isolation for ROS 2: own ROS_DOMAIN_ID, ROS_HOME and ROS_LOG_DIR in a temp folder.

Set at import time, before any test module imports rclpy.
"""

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_ros_tmp = tempfile.mkdtemp(prefix="flownet_ros_test_")
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ["ROS_HOME"] = _ros_tmp
os.environ["ROS_LOG_DIR"] = os.path.join(_ros_tmp, "log")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
if (REPO / "config" / "fastdds.xml").is_file():
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "fastdds.xml")
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "fastdds.xml")


@pytest.fixture
def repo() -> Path:
    return REPO
