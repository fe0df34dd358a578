"""ament_python package flownet_ros (colcon build, or run from the source tree with make)."""

import os
import subprocess
import sys
from glob import glob

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PACKAGE = "flownet_ros"


class BuildWithExtension(build_py):
    """Also compile the correlation extension into the built package (ops/prebuilt), so that the node does
    not compile it on its first frame after `colcon build`. Needs torch and a C++ compiler in the Python
    that runs the build; without them (or with FLOWNET_ROS_PREBUILD=0) the package still installs and
    compiles the extension on first use instead."""

    def run(self):
        super().run()
        # an editable install (pip install -e, make setup) imports the source tree: the cache serves it
        if os.environ.get("FLOWNET_ROS_PREBUILD", "1") == "0" or getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, PACKAGE, "ops", "prebuilt")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([self.build_lib, os.environ.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-m", "flownet_ros.ops.build", "--install-into", target], env=env,
                       check=False)

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
    # lower bounds = what Ubuntu 22.04 (Humble) ships in apt; torch is the user's (a CUDA / JetPack build)
    install_requires=["setuptools", "numpy>=1.21", "pyyaml>=5.4", "rosbags>=0.10.10", "tqdm>=4.57",
                      "matplotlib>=3.5", "scikit-image>=0.19"],
    python_requires=">=3.10",
    cmdclass={"build_py": BuildWithExtension},
    zip_safe=False,
    maintainer="flownet_ros maintainers",
    maintainer_email="maintainers@flownet-ros.invalid",
    description="FlowNetC optical flow for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # ros2 run flownet_ros <name> (colcon: lib/flownet_ros/) and <venv>/bin/<name> (make setup)
            "flownet_node = flownet_ros.ros.node:main",
            "flownet_replay = flownet_ros.evaluation.replay:main",
            "flownet_report = flownet_ros.evaluation.report:main",
            "flownet_demo = flownet_ros.demo:main",
            "flownet_evaluate = flownet_ros.evaluation.evaluate:main",
            "flownet_sample_bag = flownet_ros.evaluation.sample_bag:main",
            "flownet_photos = flownet_ros.data.photos:main",
            "flownet_train = flownet_ros.train.__main__:main",
            "flownet_export = flownet_ros.train.export:main",
            "flownet_bench = flownet_ros.bench.__main__:main",
            "flownet_build_ext = flownet_ros.ops.build:main",
            "flownet_dds_check = flownet_ros.ros.dds_check:main",
        ],
    },
)
