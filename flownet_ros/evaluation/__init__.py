"""Bag replay evaluation: rosbag2 I/O, replay through the node, reports, the synthetic sample bag.

Modules: ``bagio`` (reading/writing bags with rosbags), ``replay`` (publish a bag to the node over
ROS 2 and record its outputs), ``report`` (latency / accuracy metrics, plots, offline mode),
``sample_bag`` (synthetic camera sequence with ground-truth flow).
"""

from pathlib import Path


def workspace() -> Path:
    """Where default outputs go: the source checkout (with its Makefile) when run from one, else the
    current directory (an installed package must not write into site-packages)."""
    repo = Path(__file__).resolve().parents[2]
    return repo if (repo / "Makefile").is_file() and (repo / "flownet_ros").is_dir() else Path.cwd()
