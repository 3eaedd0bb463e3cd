"""Fault injection of the simulator node (no rclpy): silent or broken sensors, a jumping clock.

`sensor_fault` silences the lidar (``no_scan``), makes every range NaN (``nan_scan``) or
silences the base driver (``no_odom``: no odom, no odom TF); ground truth keeps flowing.
`clock_offset` is added to every published time (/clock and every stamp): lowering it by
N makes /clock jump back N s while the physics runs on. A published time is never before
0, and an offset that would put /clock before 0 now is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim_bringup.sim_core import ScanData

SENSOR_FAULTS = ("none", "no_scan", "nan_scan", "no_odom")


@dataclass(frozen=True)
class FaultInjection:
    """The faults in force: which sensor misbehaves, and the offset of published times."""

    sensor_fault: str = "none"
    clock_offset: float = 0.0

    @property
    def publishes_odom(self) -> bool:
        """False while the base driver is silent (no odom, no odom TF)."""
        return self.sensor_fault != "no_odom"

    @property
    def publishes_scan(self) -> bool:
        """False while the lidar is silent (the scan is not even taken)."""
        return self.sensor_fault != "no_scan"

    def scan(self, scan: ScanData) -> ScanData:
        """The scan as the faulty lidar delivers it (every range NaN under ``nan_scan``)."""
        if self.sensor_fault == "nan_scan":
            return replace(scan, ranges=np.full_like(scan.ranges, np.nan))
        return scan

    def published_time(self, sim_time: float) -> float:
        """Sim time as published: plus `clock_offset`, never before 0 (a new episode)."""
        return max(0.0, sim_time + self.clock_offset)


def sensor_fault_problem(value: object) -> str:
    """Why `value` is not a sensor fault, or "" when it is one."""
    if value not in SENSOR_FAULTS:
        return f"sensor_fault must be one of {SENSOR_FAULTS}, got {value!r}"
    return ""


def clock_offset_problem(offset: object, sim_time: float | None = None) -> str:
    """Why `offset` cannot be the clock offset (at `sim_time`, when given), or ""."""
    if not isinstance(offset, float) or not math.isfinite(offset):
        return f"clock_offset must be a finite number, got {offset!r}"
    if sim_time is not None and sim_time + offset < 0.0:
        return f"clock_offset {offset!r} would put /clock before 0 (sim time is {sim_time:.3f} s)"
    return ""
