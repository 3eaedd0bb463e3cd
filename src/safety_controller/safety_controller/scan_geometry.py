"""Laser scan geometry shared by the safety filter and the DWA fallback (no rclpy).

Converts a LaserScan's ranges into obstacle points in the robot base frame, with the
REP-117 meaning of special values: NaN and readings outside [range_min, range_max] are
invalid and dropped; +inf means "nothing within range" and gives no point; -inf means
"too close to measure" and is placed at range_min, i.e. an obstacle right at the sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LidarMount:
    """Pose of the lidar in the base frame: position (m) and yaw (rad)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


@dataclass(frozen=True)
class ScanPoints:
    """Obstacle points of one scan in the base frame, and how many beams were valid."""

    points: np.ndarray  # shape (N, 2), metres, base frame
    valid_beams: int  # beams that returned a usable reading (including +inf "free")
    total_beams: int

    @property
    def blind(self) -> bool:
        """True when no beam gave a usable reading: the sensor sees nothing at all."""
        return self.valid_beams == 0


def beam_angles(angle_min: float, angle_increment: float, count: int) -> np.ndarray:
    """Angles (rad, sensor frame) of `count` beams."""
    return angle_min + angle_increment * np.arange(count, dtype=np.float64)


def scan_to_points(
    ranges: np.ndarray,
    angle_min: float,
    angle_increment: float,
    range_min: float,
    range_max: float,
    mount: LidarMount = LidarMount(),
) -> ScanPoints:
    """Obstacle points (base frame) of a scan, following REP-117 for special values."""
    r = np.asarray(ranges, dtype=np.float64).ravel()
    angles = beam_angles(angle_min, angle_increment, r.size)
    too_close = np.isneginf(r)
    free = np.isposinf(r)
    in_range = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    hit = in_range | too_close
    dist = np.where(too_close, range_min, r)[hit]
    a = angles[hit] + mount.yaw
    sensor_points = np.column_stack((dist * np.cos(a), dist * np.sin(a)))
    points = sensor_points + np.array([mount.x, mount.y])
    valid = int(np.count_nonzero(hit | free))
    return ScanPoints(points=points, valid_beams=valid, total_beams=int(r.size))
