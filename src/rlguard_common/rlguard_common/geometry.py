"""Planar geometry shared by every floor (no rclpy): yaw, angle wrapping, frame names."""

from __future__ import annotations

import math

import numpy as np

# Frames of every rlguard robot description (the generated URDF and Gazebo model): odom's
# child is base_footprint (REP-105), the lidar's frame base_scan.
ODOM_FRAME_ID = "odom"
BASE_FRAME_ID = "base_footprint"
SCAN_FRAME_ID = "base_scan"
# The simulator's fixed frame of ground truth.
WORLD_FRAME_ID = "world"


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rad) of a quaternion, the rotation about z (roll and pitch ignored)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """The (x, y, z, w) quaternion of a rotation by ``yaw`` about z."""
    return (0.0, 0.0, math.sin(0.5 * yaw), math.cos(0.5 * yaw))


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Angle(s) wrapped into [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi


def base_to_odom(points: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    """Base-frame points (N, 2) of a robot at odom `pose` (x, y, yaw), in the odom frame."""
    x, y, yaw = (float(value) for value in pose)
    c, s = math.cos(yaw), math.sin(yaw)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.array([[c, s], [-s, c]]) + (x, y)


def odom_to_base(points: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    """Odom-frame points (N, 2) in the base frame of a robot at odom `pose` (x, y, yaw);
    with pose (0, 0, yaw) it turns odom-frame vectors (velocities) into base-frame ones."""
    x, y, yaw = (float(value) for value in pose)
    c, s = math.cos(yaw), math.sin(yaw)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (pts - (x, y)) @ np.array([[c, -s], [s, c]])
