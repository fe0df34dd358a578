"""Test-process isolation for ROS 2: own ROS_DOMAIN_ID, ROS_HOME and ROS_LOG_DIR in a temp folder.

Set at import time, before any test module imports rclpy.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from flownet_ros.ros.dds import VARIABLES, local_discovery, with_profile

REPO = Path(__file__).resolve().parents[1]
# Idle OpenMP threads sleep instead of spinning (as in the node): on a 2-core CI machine the test process,
# the node subprocesses it starts and torch's spinning workers would otherwise take turns for whole time
# slices (docs/node.md, CPU use). Before torch is imported by any test module.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_ros_tmp = tempfile.mkdtemp(prefix="flownet_ros_test_")
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ["ROS_HOME"] = _ros_tmp
os.environ["ROS_LOG_DIR"] = os.path.join(_ros_tmp, "log")

os.environ.update(local_discovery())  # tests discover only this host, with the variable the distribution reads
if (REPO / "config" / "fastdds.xml").is_file():  # the one variable this distribution's Fast DDS reads
    for var in VARIABLES:
        os.environ.pop(var, None)
    os.environ.update(with_profile(profile=str(REPO / "config" / "fastdds.xml")))


@pytest.fixture
def repo() -> Path:
    return REPO


def _package_files():
    """Paths (relative to the repository) git tracks or would add; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [f for f in out.decode().split("\0") if f]


def _copy_package(dest: Path) -> Path:
    """Copy the package's sources to ``dest`` (for a colcon build that leaves the working tree alone): never
    the venvs, photo sets, runs or build outputs next to them, which are gigabytes (three venvs in CI)."""
    files = _package_files()
    if files is None:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            ".venv*", ".git", "build", "install", "log", "out", "data", "runs", ".gpu_deps", "gpu_check_out",
            "prebuilt", "__pycache__", "*.egg-info"))
        return dest
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def copy_package():
    return _copy_package
