#!/usr/bin/env bash
# Create the project virtual environment and install pinned dependencies.
# - torch: a CUDA torch importable by $PYTHON is kept (the venv then sees system packages);
#   otherwise torch==2.13.0 is installed into the venv.
# - ROS 2: a sourced ROS 2 install (rclpy importable) is used as is; otherwise the Kilted
#   wheels from PyPI (requirements-ros.txt) are installed, and where ../shared/ros2-cli exists, ROS 2's
#   launch system and `ros2` command line with it (for `ros2 launch` and its tests).
# - PIN_OVERRIDES="numpy==1.26.4 opencv-python-headless==4.6.0.66": replace those pins of requirements.txt
#   (CI checks the NumPy / OpenCV versions apt ships on robots this way).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
here=$(cd "$(dirname "$0")/.." && pwd)

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
    echo "setup: rclpy not found, installing ROS 2 Kilted wheels from PyPI"
    "${PIP[@]}" -r "$here/requirements-ros.txt"
fi
ros2cli="$here/../shared/ros2-cli/install.sh"
if ! "$VENV/bin/python" -c "import launch_ros" 2>/dev/null && [ -f "$ros2cli" ]; then
    bash "$ros2cli" "$(cd "$VENV" && pwd)/bin/python" > /dev/null
    echo "setup: installed ROS 2 launch and the ros2 command line from ../shared/ros2-cli"
fi
