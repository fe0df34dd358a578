"""QoS profiles of the node (REP-2003: sensor consumers default to best effort)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITIES = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def input_qos(reliability: str = "best_effort", depth: int = 5) -> QoSProfile:
    """Subscription QoS for camera topics: KEEP_LAST ``depth``, VOLATILE, ``reliability``.

    A best-effort subscription receives from best-effort and reliable publishers; a reliable one
    only from reliable publishers (ROS just warns about the mismatch: use the default).
    """
    if reliability not in RELIABILITIES:
        raise ValueError(f"reliability must be one of {sorted(RELIABILITIES)}, got {reliability!r}")
    if int(depth) < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=RELIABILITIES[reliability], durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int = 5) -> QoSProfile:
    """Publisher QoS: RELIABLE (serves best-effort and reliable subscribers alike), KEEP_LAST, VOLATILE."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, int(depth)),
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def describe(qos: QoSProfile) -> str:
    rel = "reliable" if qos.reliability == ReliabilityPolicy.RELIABLE else "best_effort"
    return f"{rel}, keep_last {qos.depth}"
