"""Where the package's data files (config/, launch/, models/) are: installed share/ or the source tree."""

from __future__ import annotations

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
