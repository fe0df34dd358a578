"""Where things are: the package's data files (config/, launch/, models/: installed share/ or the source
tree), and the workspace for outputs and downloaded data."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

PACKAGE = "flownet_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def data_dirs() -> List[Path]:
    """Existing roots holding config/, launch/, models/: the ament share dir (colcon install), the
    share dir of this Python prefix, then the source checkout."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # no ament index (plain venv) or the package is not installed with colcon
        pass
    dirs += [Path(sys.prefix) / "share" / PACKAGE, SOURCE_ROOT]
    unique = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def find_data_file(*parts: str) -> Optional[Path]:
    """First existing ``<data dir>/<parts...>``, e.g. ``find_data_file('config', 'fastdds.xml')``."""
    return next((d.joinpath(*parts) for d in data_dirs() if d.joinpath(*parts).is_file()), None)


def workspace() -> Path:
    """Where default outputs (out/) and downloads (data/) go: the source checkout (with its Makefile) when
    run from one, else the current directory (an installed package must not write into site-packages)."""
    repo = SOURCE_ROOT
    return repo if (repo / "Makefile").is_file() and (repo / PACKAGE).is_dir() else Path.cwd()


def data_root() -> Path:
    """Folder of downloaded data (photo sets, sample bag): ``$FLOWNET_ROS_DATA``, else ``<workspace>/data``."""
    env = os.environ.get("FLOWNET_ROS_DATA")
    return Path(env).expanduser() if env else workspace() / "data"
