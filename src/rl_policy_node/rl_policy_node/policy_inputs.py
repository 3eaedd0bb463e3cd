"""The policy's inputs as plain data (no ROS): scan, odometry and goal, and when they are stale.

A message callback turns each message into a sample holding its header stamp and its
arrival time (node clock, ns); the controller asks `input_age_problem` whether a sample
may still feed a tick. `odom_sample` and `goal_problem` hold the input checks the node
applies before a sample reaches the controller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rl_policy_node.observation import ScanInput
from rlguard_common.geometry import yaw_from_quaternion


@dataclass(frozen=True)
class ScanSample:
    """The latest scan with its header stamp and arrival time (node clock, ns)."""

    scan: ScanInput
    stamp_ns: int
    arrival_ns: int


@dataclass(frozen=True)
class OdomSample:
    """The latest odometry: pose (x, y, yaw), body velocity (v, w), stamps in ns."""

    pose: tuple[float, float, float]
    velocity: tuple[float, float]
    stamp_ns: int
    arrival_ns: int


def odom_sample(
    position: tuple[float, float],
    orientation: tuple[float, float, float, float],
    velocity: tuple[float, float],
    stamp_ns: int,
    arrival_ns: int,
) -> OdomSample | None:
    """An odometry sample from position (x, y), quaternion (x, y, z, w) and (v, w).

    None when any value is not finite: such a message is dropped, not used.
    """
    values = (*position, *orientation, *velocity)
    if not all(math.isfinite(v) for v in values):
        return None
    yaw = yaw_from_quaternion(*orientation)
    return OdomSample(
        (position[0], position[1], yaw), (velocity[0], velocity[1]), stamp_ns, arrival_ns
    )


def goal_problem(x: float, y: float, frame: str, odom_frame: str) -> str | None:
    """Why a goal is dropped (non-finite, or in another frame than odometry), else None.

    An empty goal frame, or no odometry frame seen yet, is not a mismatch.
    """
    wrong_frame = frame and odom_frame and frame != odom_frame
    if math.isfinite(x) and math.isfinite(y) and not wrong_frame:
        return None
    return (
        f"goal dropped: ({x}, {y}) in frame {frame!r} "
        f"(needs finite values in the odom frame {odom_frame!r})"
    )


def input_age_problem(
    name: str, stamp_ns: int, arrival_ns: int, now_ns: int, timeout_ns: int
) -> str | None:
    """Why an input is stale (header age or arrival age beyond the timeout), else None."""
    arrival_age = now_ns - arrival_ns
    if arrival_age > timeout_ns:
        return (
            f"{name}: last message arrived {arrival_age / 1e9:.3f} s ago "
            f"(source_timeout {timeout_ns / 1e9:.3f} s)"
        )
    header_age = now_ns - stamp_ns
    if abs(header_age) > timeout_ns:
        word = "in the future" if header_age < 0 else "old"
        return (
            f"{name}: header stamp {abs(header_age) / 1e9:.3f} s {word} "
            f"(source_timeout {timeout_ns / 1e9:.3f} s)"
        )
    return None
