"""Launch flownet_node (FlowNetC optical flow) and, optionally, RViz.

    ros2 launch flownet_ros flownet.launch.py image:=/camera/image_raw
    ros2 launch flownet_ros flownet.launch.py namespace:=front image:=/front/image_raw rviz:=true
    ros2 launch flownet_ros flownet.launch.py params_file:=/path/my_flownet.yaml use_sim_time:=true

The Fast DDS profile config/fastdds.xml (16 MiB shared-memory segments) is set for the processes
started here; camera drivers and other image consumers need it too (see docs/node.md).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("flownet_ros")
    namespace = LaunchConfiguration("namespace")
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    params_file = LaunchConfiguration("params_file")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    fastdds_profile = LaunchConfiguration("fastdds_profile")

    arguments = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node (one instance per camera)."),
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (transport 'compressed' reads <image>/compressed)."),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="CameraInfo topic (rotation rates about the camera x/y axes)."),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "flownet.yaml"]),
                              description="Parameter file of flownet_node."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (bag replay with --clock, simulators)."),
        DeclareLaunchArgument("rviz", default_value="false", description="Start RViz with config/flownet.rviz."),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=PathJoinSubstitution([share, "config", "fastdds.xml"]),
                              description="Fast DDS XML profile for the processes started here "
                                          "('' = keep the environment)."),
    ]

    flownet = Node(
        package="flownet_ros",
        executable="flownet_node",
        name="flownet",
        namespace=namespace,
        parameters=[params_file, {"use_sim_time": use_sim_time}],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", camera_info),
        ],
        output="screen",
        emulate_tty=True,
    )

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="flownet_rviz",
        namespace=namespace,
        arguments=["-d", PathJoinSubstitution([share, "config", "flownet.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )

    use_profile = IfCondition(PythonExpression(["'", fastdds_profile, "' != ''"]))
    return LaunchDescription(arguments + [
        # Fast DDS 3 (Kilted and later) reads the first, Fast DDS 2 (Humble, Jazzy) the second
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", fastdds_profile, condition=use_profile),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", fastdds_profile, condition=use_profile),
        flownet,
        rviz,
    ])
