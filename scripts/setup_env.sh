#!/usr/bin/env bash
# Create the project virtual environment and install pinned dependencies.
# - torch: a CUDA torch importable by $PYTHON is kept (the venv then sees system packages);
#   otherwise torch==2.13.0 is installed into the venv.
# - ROS 2: a sourced ROS 2 install (rclpy importable) is used as is; otherwise the Kilted
#   wheels from PyPI (requirements-ros.txt) are installed.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

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
"${PIP[@]}" -r requirements.txt
if "$VENV/bin/python" -c "import rclpy" 2>/dev/null; then
    echo "setup: using the installed ROS 2 rclpy"
else
    echo "setup: rclpy not found, installing ROS 2 Kilted wheels from PyPI"
    "${PIP[@]}" -r requirements-ros.txt
fi
