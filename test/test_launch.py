"""Static checks of the launch file, parameter file, RViz config and Fast DDS profile.

`launch` / `launch_ros` are not installable here, so the launch file is parsed (ast), not run: it must
start the installed `flownet_node` executable, point at config files that exist, and set only
parameters the node declares.
"""

import ast
import re
import xml.etree.ElementTree as ET

import pytest
import yaml

from flownet_ros.ros.node import NODE_NAME, PARAMS

DECLARED = {p.name for p in PARAMS} | {"use_sim_time"}


@pytest.fixture
def launch_tree(repo):
    src = (repo / "launch" / "flownet.launch.py").read_text()
    compile(src, "flownet.launch.py", "exec")
    return ast.parse(src)


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def const(node):
    return node.value if isinstance(node, ast.Constant) else None


def test_launch_format(launch_tree):
    funcs = [n.name for n in launch_tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    imported = {a.name for n in ast.walk(launch_tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {"LaunchDescription", "DeclareLaunchArgument", "Node", "IfCondition", "FindPackageShare"} <= imported


def test_launch_arguments(launch_tree):
    args = {const(c.args[0]): c for c in calls(launch_tree, "DeclareLaunchArgument")}
    assert {"namespace", "image", "params_file", "use_sim_time", "rviz"} <= set(args)
    assert const(kw(args["rviz"], "default_value")) == "false"
    assert const(kw(args["use_sim_time"], "default_value")) == "false"
    assert all(kw(c, "description") is not None for c in args.values())


def test_launch_starts_installed_executable(launch_tree, repo):
    nodes = {const(kw(c, "package")): c for c in calls(launch_tree, "Node")}
    node = nodes["flownet_ros"]
    exe = const(kw(node, "executable"))
    assert const(kw(node, "name")) == NODE_NAME
    setup = (repo / "setup.py").read_text()
    assert re.search(rf"['\"]{exe}\s*=\s*flownet_ros\.ros\.node:main['\"]", setup), "console script missing"
    # parameters given inline are declared by the node
    for d in (p for p in ast.walk(kw(node, "parameters")) if isinstance(p, ast.Dict)):
        assert {const(k) for k in d.keys} <= DECLARED
    remapped = {const(t.elts[0]) for t in kw(node, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}
    rviz = nodes["rviz2"]
    assert const(kw(rviz, "executable")) == "rviz2" and kw(rviz, "condition") is not None


def test_launch_config_files_exist_and_are_installed(launch_tree, repo):
    refs = [[const(e) for e in c.args[0].elts[1:]] for c in calls(launch_tree, "PathJoinSubstitution")]
    files = {"/".join(r) for r in refs}
    assert files == {"config/flownet.yaml", "config/flownet.rviz", "config/fastdds.xml"}
    for f in files:
        assert (repo / f).is_file(), f
    setup = (repo / "setup.py").read_text()  # installed to share/flownet_ros/config by setup.py
    assert 'glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")' in setup
    assert 'glob("launch/*.py")' in setup


def test_params_file_only_declared_parameters(repo):
    cfg = yaml.safe_load((repo / "config" / "flownet.yaml").read_text())
    params = cfg["/**"]["ros__parameters"]
    assert set(params) <= DECLARED
    defaults = {p.name: p.default for p in PARAMS}
    for name, value in params.items():
        assert type(value) is type(defaults[name]), f"{name}: {value!r} must be {type(defaults[name]).__name__}"
        assert value == defaults[name], f"{name}: the file documents the defaults"


def test_rviz_config(repo):
    cfg = yaml.safe_load((repo / "config" / "flownet.rviz").read_text())
    displays = {d["Name"]: d for d in cfg["Visualization Manager"]["Displays"]}
    flow = displays["Flow"]
    assert flow["Class"] == "rviz_default_plugins/Image" and flow["Enabled"]
    assert flow["Topic"]["Value"] == "/flownet/flow_color"  # rgb8: RViz cannot show the 32FC2 ~/flow
    assert displays["Camera"]["Topic"]["Value"] == "/camera/image_raw"  # the launch file's default image
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in displays.values())


def test_fastdds_profile(repo):
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
