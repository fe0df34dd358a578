"""ament_python package flownet_ros (colcon build, or run from the source tree with make)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "flownet_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={"flownet_ros.ops": ["csrc/*.cpp", "csrc/*.cu", "csrc/*.h", "csrc/*.cuh"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.md") + glob("models/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="flownet_ros maintainers",
    maintainer_email="maintainers@flownet-ros.invalid",
    description="FlowNetC optical flow for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "flownet_node = flownet_ros.ros.node:main",
            "replay = flownet_ros.evaluation.replay:main",
        ],
    },
)
