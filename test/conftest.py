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

REPO = Path(__file__).resolve().parents[1]  # not from helpers: it imports torch, due after OMP_WAIT_POLICY

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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A FlowNetC of width 0.125 with seeded random weights, saved as the package saves checkpoints."""
    import torch

    from flownet_ros.models import ModelSpec, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec(width=0.125)
    return str(save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", spec.build(), spec))


@pytest.fixture(scope="module")
def client():
    """An rclpy node that publishes frames and collects the flownet nodes' outputs (ros_helpers.Client)."""
    import rclpy
    from ros_helpers import Client

    rclpy.init()
    node = Client()
    yield node
    node.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="session")
def colcon_workspace(tmp_path_factory) -> Path:
    """The package built once per test run with real colcon (PyPI colcon-common-extensions) into a temporary
    workspace, as on a robot; shared by the colcon and ``ros2 launch`` tests (one build of the extension)."""
    import subprocess
    import sys

    ws = tmp_path_factory.mktemp("colcon_ws")
    _copy_package(ws / "src" / "flownet_ros")  # a copy: the build leaves nothing in the working tree
    colcon = Path(sys.executable).with_name("colcon")
    assert colcon.exists(), "colcon-common-extensions is a pinned test dependency (requirements.txt)"
    env = dict(os.environ, PATH=f"{colcon.parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(colcon), "--log-base", str(ws / "log"), "build", "--base-paths", str(ws / "src")],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ws


#: test modules that start processes, build workspaces, replay bags or train: `pytest -m "not slow"` is the
#: quick set for development (seconds to a few minutes); `make test` runs everything
SLOW_MODULES = {"test_colcon_build", "test_launch", "test_ros_node", "test_node_reliability", "test_ros_outputs",
                "test_replay", "test_docs", "test_shipped_model", "test_train", "test_train_distributed",
                "test_extension_cache", "test_report", "test_sample_bag"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: integration test (processes, DDS, colcon, bags, training)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
