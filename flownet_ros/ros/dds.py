"""The Fast DDS XML profile (config/fastdds.xml) and the environment variable that loads it.

Fast DDS 2 (Humble, Iron, Jazzy) reads ``FASTRTPS_DEFAULT_PROFILES_FILE``; Fast DDS 3 (Kilted and
later) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and warns that the old name is deprecated. Every process
this package starts (launch file, bag replay, the DDS check) sets exactly the variable its Fast DDS
reads, through :func:`with_profile`: chosen by ``$ROS_DISTRO`` (a sourced ROS 2), else by the Fast DDS
wheel installed from PyPI (``ros-fastrtps`` 2.x for Jazzy, ``ros-fastdds`` 3.x for Kilted).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional

from flownet_ros.paths import find_data_file

FAST_DDS_2 = ("foxy", "galactic", "humble", "iron", "jazzy")
LOCALHOST_ONLY_DISTROS = ("foxy", "galactic", "humble")  # ROS_LOCALHOST_ONLY; Iron on: ROS_AUTOMATIC_DISCOVERY_RANGE
VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
DISCOVERY_VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")


def local_discovery(env: Optional[Mapping[str, str]] = None, distro: Optional[str] = None) -> Dict[str, str]:
    """A copy of ``env`` (default os.environ) in which ROS 2 discovers only this host (for tests and the
    demo; robots keep the default): ``ROS_LOCALHOST_ONLY=1`` on Humble and before, where the newer
    variable does not exist, else ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Iron and later; Jazzy's rcl
    warns that the old one is deprecated and then ignores the new one). A discovery setting already in
    ``env`` is kept."""
    out = dict(os.environ if env is None else env)
    if any(out.get(v) for v in DISCOVERY_VARIABLES):
        return out
    distro = (out.get("ROS_DISTRO", "") if distro is None else distro).strip().lower()
    if distro in LOCALHOST_ONLY_DISTROS:
        out["ROS_LOCALHOST_ONLY"] = "1"
    else:
        out["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return out


def wheel_fast_dds_major() -> Optional[int]:
    """Major version of the Fast DDS installed as a PyPI wheel (2: ros-fastrtps, Jazzy; 3: ros-fastdds,
    Kilted), or None when neither is installed (a sourced ROS 2)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in ("ros-fastdds", "ros-fastrtps"):
        try:
            return int(version(name).split(".")[0])
        except (PackageNotFoundError, ValueError):
            continue
    return None


def profile_variable(distro: Optional[str] = None) -> str:
    """The variable the Fast DDS of ROS distribution ``distro`` reads (default: $ROS_DISTRO; unset: the
    installed Fast DDS wheel's, :func:`wheel_fast_dds_major`, else Fast DDS 3's)."""
    distro = (os.environ.get("ROS_DISTRO", "") if distro is None else distro).strip().lower()
    if not distro and wheel_fast_dds_major() == 2:
        distro = "jazzy"
    return "FASTRTPS_DEFAULT_PROFILES_FILE" if distro in FAST_DDS_2 else "FASTDDS_DEFAULT_PROFILES_FILE"


def package_profile() -> Optional[Path]:
    """config/fastdds.xml of this package (installed share/ or the source tree), if present."""
    return find_data_file("config", "fastdds.xml")


def configured_profile(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The profile file the environment already names (either variable), or None."""
    env = os.environ if env is None else env
    return next((env[v] for v in VARIABLES if env.get(v)), None)


def with_profile(env: Optional[Mapping[str, str]] = None, profile: Optional[str] = None,
                 distro: Optional[str] = None) -> Dict[str, str]:
    """A copy of ``env`` (default os.environ) in which Fast DDS loads ``profile`` (default: the package's),
    unless the environment already names a profile: the user's choice is kept."""
    out = dict(os.environ if env is None else env)
    profile = profile or (str(package_profile()) if package_profile() else None)
    if profile and not configured_profile(out):
        out[profile_variable(distro if distro is not None else out.get("ROS_DISTRO", ""))] = str(profile)
    return out
