"""The safety controller's scan path, shared by the node and the campaign (no rclpy).

A scan goes through the one validator (`rlguard_common.scan_validity`), then becomes
base-frame points for the filter; a scan the validator refuses, or whose conversion
fails, is rejected and the filter brakes as if blind until a valid one arrives.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from rlguard_common.scan_validity import validate_scan
from safety_controller.scan_geometry import LidarMount, ScanPoints, scan_to_points

CONVERSION_FAILED = "conversion_failed"  # scan_to_points raised: a bug, but never a crash


class ScanLike(Protocol):
    """The fields of a sensor_msgs/LaserScan the safety controller reads."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: object
    intensities: object


class ScanSink(Protocol):
    """What the scan path feeds: the safety filter core."""

    def set_scan(self, scan: ScanPoints, now: float, stamp: float | None = None) -> None: ...  # noqa: D102

    def reject_scan(self, now: float, reason: str) -> None: ...  # noqa: D102


def feed_scan(
    sink: ScanSink, scan: ScanLike, stamp: float, now: float, mount: LidarMount
) -> str | None:
    """Validate `scan` (taken at `stamp`), then set it on `sink` or reject it.

    Returns None when accepted, else the rejection reason (also given to `reject_scan`).
    """
    ranges = np.asarray(scan.ranges, dtype=np.float64).ravel()
    intensities = scan.intensities
    reason = validate_scan(
        float(scan.angle_min),
        float(scan.angle_max),
        float(scan.angle_increment),
        float(scan.range_min),
        float(scan.range_max),
        int(ranges.size),
        0 if intensities is None else len(intensities),
        stamp,
    )
    if reason is None:
        try:
            points = scan_to_points(
                ranges, scan.angle_min, scan.angle_increment, scan.range_min, scan.range_max, mount
            )
        except Exception:  # noqa: BLE001 - a scan that cannot be read ends in a stop
            reason = CONVERSION_FAILED
    if reason is not None:
        sink.reject_scan(now, reason)
        return reason
    sink.set_scan(points, now, stamp if math.isfinite(stamp) and stamp > 0.0 else None)
    return None
