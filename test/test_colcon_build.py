"""The package builds with real colcon (PyPI colcon-common-extensions) and installs what `ros2 run`/launch need."""

import os

from helpers import REPO


def test_colcon_build_installs_executables_and_share_files(colcon_workspace):
    """The shared workspace (conftest.colcon_workspace, built once per run) holds what `ros2 run`/launch need."""
    ws = colcon_workspace
    prefix = ws / "install" / "flownet_ros"
    for exe in ("flownet_node", "flownet_replay", "flownet_report", "flownet_demo"):
        path = prefix / "lib" / "flownet_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), f"{exe} not installed under lib/flownet_ros"
    share = prefix / "share" / "flownet_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "flownet_ros").is_file()
    assert (share / "package.xml").is_file()
    for rel in ("launch", "config", "models"):
        src_files = sorted(p.name for p in (REPO / rel).iterdir() if p.is_file())
        installed = sorted(p.name for p in (share / rel).iterdir()) if (share / rel).is_dir() else []
        assert set(src_files) <= set(installed), f"share/{rel}: {installed} lacks some of {src_files}"
    site = list((prefix / "lib").glob("python3*/site-packages/flownet_ros/ops/csrc"))
    assert site and any(site[0].iterdir()), "correlation sources (csrc) must be installed for the JIT build"
    # the correlation extension was compiled at build time: no first-frame compile stall on the robot
    assert list(prefix.glob("lib/python3*/site-packages/flownet_ros/ops/prebuilt/*.so"))


def test_package_xml_keys_resolve_with_rosdep_and_leave_torch_alone():
    """The two faults a robot user met: `ament_python` is no rosdep key (rosdep install fails), and
    python3-pytorch-pip would pip-install a PyPI torch and torchvision over JetPack's or a CUDA build.
    The Python keys used are those of ros/rosdistro's rosdep/python.yaml (checked there for jammy / noble)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("export/build_type") == "ament_python"
    deps = {e.tag: [] for e in root}
    for e in root:
        deps[e.tag].append(e.text)
    assert "ament_python" not in deps.get("buildtool_depend", [])
    keys = set(deps["exec_depend"]) | set(deps.get("test_depend", []))
    assert not {k for k in keys if "torch" in k}, "a torch key would replace the user's CUDA torch"
    python_keys = {k for k in keys if k.startswith("python3-")}
    assert python_keys == {"python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-matplotlib",
                           "python3-skimage", "python3-rosbags-pip", "python3-pytest", "python3-hypothesis"}
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "builtin_interfaces", "launch_ros"} <= keys
