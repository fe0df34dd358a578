#!/usr/bin/env bash
# Create the project virtual environment and install pinned dependencies.
# - torch: a CUDA torch importable by $PYTHON is kept (the venv then sees system packages);
#   otherwise torch==2.13.0 is installed into the venv.
# - ROS 2: a sourced ROS 2 install (rclpy importable) is used as is; otherwise the wheels from PyPI of
#   ROS_DISTRO (kilted, the default: requirements-ros.txt; jazzy: requirements-ros-jazzy.txt) are installed,
#   and where ../shared/ros2-cli exists, ROS 2's launch system and `ros2` command line with it (for
#   `ros2 launch` and its tests).
# - flownet_ros itself: installed editable (pip install -e), so `import flownet_ros` and the console scripts
#   (.venv/bin/flownet_node, flownet_replay, flownet_report, ...) work from any directory.
# - PIN_OVERRIDES="numpy==1.26.4 opencv-python-headless==4.6.0.66": replace those pins of requirements.txt
#   (CI checks the NumPy / OpenCV versions apt ships on robots this way).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
ROS_DISTRO=${ROS_DISTRO:-kilted}
here=$(cd "$(dirname "$0")/.." && pwd)
case "$ROS_DISTRO" in
    kilted) ros_requirements="$here/requirements-ros.txt" ;;
    jazzy) ros_requirements="$here/requirements-ros-jazzy.txt" ;;
    *) ros_requirements="" ;;  # humble etc.: no PyPI wheels; a sourced install is required
esac

venv_args=()
if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "setup: keeping the CUDA torch of $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
    venv_args+=(--system-site-packages)
    keep_torch=1
else
    keep_torch=0
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip
if [ "$keep_torch" = 0 ] && ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "${PIP[@]}" torch==2.13.0
fi
requirements="$here/requirements.txt"
if [ -n "${PIN_OVERRIDES:-}" ]; then
    requirements=$(mktemp)
    trap 'rm -f "$requirements"' EXIT
    names=$(for pin in $PIN_OVERRIDES; do printf '%s|' "${pin%%[=<>]*}"; done)
    grep -v -E "^(${names%|})[=;< ]" "$here/requirements.txt" > "$requirements"
    printf '%s\n' $PIN_OVERRIDES >> "$requirements"
    echo "setup: pins replaced: $PIN_OVERRIDES"
fi
"${PIP[@]}" -r "$requirements"
if "$VENV/bin/python" -c "import rclpy" 2>/dev/null; then
    echo "setup: using the installed ROS 2 rclpy"
else
    if [ -z "$ros_requirements" ]; then
        echo "setup: rclpy not found and ROS 2 $ROS_DISTRO has no PyPI wheels here (kilted, jazzy);" \
             "source its setup.bash first" >&2
        exit 1
    fi
    echo "setup: rclpy not found, installing ROS 2 $ROS_DISTRO wheels from PyPI ($(basename "$ros_requirements"))"
    "${PIP[@]}" -r "$ros_requirements"
fi
ros2cli="$here/../shared/ros2-cli/install.sh"
if ! "$VENV/bin/python" -c "import launch_ros" 2>/dev/null && [ -f "$ros2cli" ]; then
    bash "$ros2cli" "$(cd "$VENV" && pwd)/bin/python" > /dev/null
    echo "setup: installed ROS 2 launch and the ros2 command line from ../shared/ros2-cli"
fi
# editable, without build isolation (setuptools is pinned in requirements.txt) and without dependencies (above)
"${PIP[@]}" --no-deps --no-build-isolation -e "$here"
echo "setup: flownet_ros installed editable into $VENV (console scripts in $VENV/bin)"
