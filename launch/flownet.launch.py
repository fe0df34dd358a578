"""Launch flownet_node (FlowNetC optical flow) and, optionally, RViz.

    ros2 launch flownet_ros flownet.launch.py image:=/camera/image_raw
    ros2 launch flownet_ros flownet.launch.py namespace:=front image:=/front/image_raw rviz:=true
    ros2 launch flownet_ros flownet.launch.py params_file:=/path/my_flownet.yaml use_sim_time:=true
    ros2 launch flownet_ros flownet.launch.py image:=/camera/image_raw transport:=compressed

The Fast DDS profile config/fastdds.xml (16 MiB shared-memory segments) is set for the processes
started here (``fastdds_profile:=none`` keeps the environment's); camera drivers and other image
consumers need it too (see docs/node.md). ``use_sim_time`` and ``transport`` override the params file
only when given.
"""

import tempfile
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from flownet_ros.ros.dds import profile_variable
from flownet_ros.ros.launch_setup import DEFAULT_IMAGE, parameter_overrides, profile_to_set, rviz_config
from launch import LaunchDescription

SHARE = Path(get_package_share_directory("flownet_ros"))


def _rviz(namespace: str, image: str) -> Node:
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        raise RuntimeError("rviz:=true but the package rviz2 is not installed (sudo apt install "
                           "ros-$ROS_DISTRO-rviz2); nothing was started") from None
    config = rviz_config((SHARE / "config" / "flownet.rviz").read_text(), image, namespace)
    path = Path(tempfile.mkdtemp(prefix="flownet_rviz_")) / "flownet.rviz"
    path.write_text(config)
    return Node(package="rviz2", executable="rviz2", name="flownet_rviz", namespace=namespace,
                arguments=["-d", str(path)], output="screen")


def _setup(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    namespace, image = arg("namespace"), arg("image")
    actions = []
    profile = profile_to_set(arg("fastdds_profile"))
    if profile is not None:
        actions.append(SetEnvironmentVariable(profile_variable(), profile))
    overrides = parameter_overrides(arg("use_sim_time"), arg("transport"))
    flownet = Node(package="flownet_ros", executable="flownet_node", name="flownet", namespace=namespace,
                   parameters=[arg("params_file")] + ([overrides] if overrides else []),
                   remappings=[("image", image), ("camera_info", arg("camera_info"))],
                   output="screen", emulate_tty=True)
    rviz = [_rviz(namespace, image)] if arg("rviz").lower() == "true" else []  # checked before anything starts
    return actions + [flownet] + rviz


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node (one per camera)."),
        DeclareLaunchArgument("image", default_value=DEFAULT_IMAGE,
                              description="Input image topic (transport compressed reads <image>/compressed)."),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="CameraInfo topic (rotation rates about the camera x/y axes)."),
        DeclareLaunchArgument("params_file", default_value=str(SHARE / "config" / "flownet.yaml"),
                              description="Parameter file of flownet_node."),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true: use /clock (bag replay with --clock, simulators); "
                                          "default: the params file's value (false if absent)."),
        DeclareLaunchArgument("transport", default_value="",
                              description="raw or compressed; default: the params file's value (raw if absent)."),
        DeclareLaunchArgument("rviz", default_value="false", description="Start RViz with config/flownet.rviz."),
        DeclareLaunchArgument("fastdds_profile", default_value=str(SHARE / "config" / "fastdds.xml"),
                              description="Fast DDS XML profile for the processes started here "
                                          "('none' = keep the environment's)."),
        OpaqueFunction(function=_setup),
    ])
