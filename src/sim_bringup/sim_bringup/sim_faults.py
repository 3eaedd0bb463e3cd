"""Fault injection of the simulator node (no rclpy): silent or broken sensors, a jumping clock.

`sensor_fault` silences the lidar (``no_scan``), makes every range NaN (``nan_scan``) or
silences the base driver (``no_odom``: no odom, no odom TF); ground truth keeps flowing.
`lidar_noise_std`, `lidar_bias` and `lidar_dropout` degrade every delivered scan
(`degraded_lidar`, on top of the profile's own noise). `clock_offset` is added to every
published time (/clock and every stamp): lowering it by
N makes /clock jump back N s while the physics runs on. A published time is never before
0, and an offset that would put /clock before 0 now is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sim_bringup.sim_core import ScanData

SENSOR_FAULTS = ("none", "no_scan", "nan_scan", "no_odom")


@dataclass(frozen=True)
class FaultInjection:
    """The faults in force: which sensor misbehaves, and the offset of published times."""

    sensor_fault: str = "none"
    clock_offset: float = 0.0
    lidar_noise_std: float = 0.0  # m, extra Gaussian noise on every measured range
    lidar_bias: float = 0.0  # m, added to every measured range
    lidar_dropout: float = 0.0  # probability that a beam reads NaN
    rng: np.random.Generator = field(
        default_factory=lambda: np.random.default_rng(0), compare=False, repr=False
    )

    @property
    def degrades_lidar(self) -> bool:
        """True while any lidar degradation is in force."""
        return bool(self.lidar_noise_std or self.lidar_bias or self.lidar_dropout)

    @property
    def publishes_odom(self) -> bool:
        """False while the base driver is silent (no odom, no odom TF)."""
        return self.sensor_fault != "no_odom"

    @property
    def publishes_scan(self) -> bool:
        """False while the lidar is silent (the scan is not even taken)."""
        return self.sensor_fault != "no_scan"

    def scan(self, scan: ScanData) -> ScanData:
        """The scan as the faulty lidar delivers it (every range NaN under ``nan_scan``,
        else degraded by the lidar faults in force)."""
        if self.sensor_fault == "nan_scan":
            return replace(scan, ranges=np.full_like(scan.ranges, np.nan))
        if self.degrades_lidar:
            return degraded_lidar(
                scan, self.rng, self.lidar_noise_std, self.lidar_bias, self.lidar_dropout
            )
        return scan

    def published_time(self, sim_time: float) -> float:
        """Sim time as published: plus `clock_offset`, never before 0 (a new episode)."""
        return max(0.0, sim_time + self.clock_offset)


def fault_injection(values: Mapping[str, object], seed: int = 0) -> FaultInjection:
    """The faults the node's parameter values ask for (the lidar's noise seeded by `seed`)."""
    return FaultInjection(
        sensor_fault=str(values["sensor_fault"]),
        clock_offset=float(values["clock_offset"]),
        lidar_noise_std=float(values["lidar_noise_std"]),
        lidar_bias=float(values["lidar_bias"]),
        lidar_dropout=float(values["lidar_dropout"]),
        rng=np.random.default_rng(seed),
    )


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


def degraded_lidar(
    scan: ScanData,
    rng: np.random.Generator,
    noise_std: float = 0.0,
    bias: float = 0.0,
    dropout: float = 0.0,
) -> ScanData:
    """The scan as a degraded lidar delivers it, on top of the profile's own noise.

    Every measured range is offset by `bias` (m) plus N(0, `noise_std`) noise, then each
    beam becomes NaN (no measurement) with probability `dropout`; as in
    `Simulator.scan`, a range pushed beyond range_max reads +inf and below range_min -inf.
    """
    ranges = np.array(scan.ranges, dtype=np.float32)
    measured = np.isfinite(ranges)
    shift = np.float32(bias) + np.float32(noise_std) * rng.standard_normal(
        ranges.size, dtype=np.float32
    )
    ranges[measured] += shift[measured]
    ranges[measured & (ranges > scan.range_max)] = np.inf
    ranges[measured & (ranges < scan.range_min)] = -np.inf
    if dropout > 0.0:
        ranges[rng.random(ranges.size) < dropout] = np.nan
    return replace(scan, ranges=ranges)
