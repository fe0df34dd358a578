"""What ``launch/flownet.launch.py`` decides from its arguments, as plain functions (testable without launch).

* the node's parameter overrides: only the arguments given on the command line override the params file
  (an argument left at its empty default keeps the file's value);
* the Fast DDS profile: set through the one variable the distribution reads (:mod:`flownet_ros.ros.dds`),
  or left to the environment (``fastdds_profile:=none``; the ROS 2 command line cannot pass an empty value);
* the RViz configuration: the shipped one with the topics of this launch (namespace, image remapping).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

#: values of fastdds_profile that keep the environment's profile (ros2 launch refuses ``name:=``)
KEEP_ENVIRONMENT = ("", "none", "keep", "''", '""')
DEFAULT_IMAGE = "/camera/image_raw"


def parameter_overrides(use_sim_time: str, transport: str) -> Dict[str, Any]:
    """Launch arguments that override the params file: only those given (non-empty)."""
    out: Dict[str, Any] = {}
    if use_sim_time.strip():
        value = use_sim_time.strip().lower()
        if value not in ("true", "false"):
            raise ValueError(f"use_sim_time must be true or false, got {use_sim_time!r}")
        out["use_sim_time"] = value == "true"
    if transport.strip():
        out["transport"] = transport.strip()
    return out


def profile_to_set(value: str) -> Optional[str]:
    """The Fast DDS profile file to set, or None to keep the environment's."""
    value = value.strip()
    return None if value.lower() in KEEP_ENVIRONMENT else value


def resolve(topic: str, namespace: str) -> str:
    """A topic name as the node resolves it in ``namespace`` (relative names go under the namespace)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return topic if topic.startswith("/") else f"{ns}/{topic}"


def rviz_config(template: str, image: str, namespace: str, node_name: str = "flownet") -> str:
    """The RViz config ``template`` with the camera topic and the node's output topics of this launch."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    topics = {"/camera/image_raw": resolve(image, namespace),
              **{f"/flownet/{out}": f"{ns}/{node_name}/{out}" for out in ("flow_color", "motion", "confidence",
                                                                            "moving")}}
    for old, new in topics.items():
        template = re.sub(rf"(Value:\s*){re.escape(old)}\s*$", rf"\g<1>{new}", template, flags=re.MULTILINE)
    return template
