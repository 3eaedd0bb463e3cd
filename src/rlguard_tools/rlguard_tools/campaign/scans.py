"""Scans of the campaign: the simulator's lidar as a message, malformed on purpose, fed
through the safety node's own scan path, and the schedule of fault bursts."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from rlguard_common.scan_validity import validate_scan
from rlguard_tools.campaign.filter_setup import FilterLike
from rlguard_tools.campaign.settings import NON_FINITE
from safety_controller.scan_geometry import LidarMount, ScanPoints
from safety_controller.scan_input import feed_scan as feed_scan_to
from sim_bringup.sim_core import Simulator


@dataclass
class ScanMessage:
    """The fields of a sensor_msgs/LaserScan the safety node reads (no message types here)."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray
    intensities: np.ndarray
    stamp: float


def scan_message(sim: Simulator) -> ScanMessage:
    """Ray-cast the simulator's lidar as the sim node would publish it."""
    scan = sim.scan()
    count = len(scan.ranges)
    return ScanMessage(
        angle_min=float(scan.angle_min),
        angle_max=float(scan.angle_min + scan.angle_increment * (count - 1)),
        angle_increment=float(scan.angle_increment),
        range_min=float(scan.range_min),
        range_max=float(scan.range_max),
        ranges=np.asarray(scan.ranges, dtype=np.float64),
        intensities=np.zeros(0),
        stamp=float(scan.stamp),
    )


def corrupt_scan(msg: ScanMessage, kind: str, rng: np.random.Generator) -> ScanMessage:
    """A copy of `msg` made malformed in the way SCAN_FAULTS[kind] describes."""
    bad = copy.copy(msg)
    if kind == "angle_increment_zero":
        bad.angle_increment = 0.0
    elif kind == "angle_increment_negative":
        bad.angle_min, bad.angle_max = msg.angle_max, msg.angle_min
        bad.angle_increment = -msg.angle_increment
    elif kind == "angle_increment_nan":
        bad.angle_increment = math.nan
    elif kind == "beam_count_mismatch":
        bad.ranges = np.repeat(msg.ranges, 2)
    elif kind == "range_min_above_range_max":
        bad.range_min, bad.range_max = msg.range_max, msg.range_min
    elif kind == "range_max_nonpositive":
        bad.range_max = float(rng.choice([0.0, -1.0, -msg.range_max]))
    elif kind == "range_max_nonfinite":
        bad.range_max = float(rng.choice(NON_FINITE))
    elif kind == "empty_ranges":
        bad.ranges = np.zeros(0)
    elif kind == "stamp_nonfinite":
        bad.stamp = float(rng.choice(NON_FINITE))
    elif kind == "intensities_mismatch":
        count = len(msg.ranges) + int(rng.choice([-180, -1, 1, 360]))
        bad.intensities = np.full(max(count, 1), 100.0)
    elif kind == "all_inf":
        bad.ranges = np.full(len(msg.ranges), math.inf)
    elif kind == "all_nan":
        bad.ranges = np.full(len(msg.ranges), math.nan)
    elif kind == "nonfinite":
        if rng.random() < 0.6:
            ranges = msg.ranges.copy()
            hit = rng.random(len(ranges)) < rng.uniform(0.05, 1.0)
            ranges[hit] = rng.choice(NON_FINITE, size=int(hit.sum()))
            bad.ranges = ranges
        else:
            name = str(rng.choice(["angle_min", "angle_max", "range_min", "range_max"]))
            setattr(bad, name, float(rng.choice(NON_FINITE)))
    else:
        raise ValueError(f"unknown scan fault {kind!r}")
    return bad


UNHANDLED_REJECTION = "reject_scan_missing"  # the filter has no reject_scan: scan dropped
SCAN_PATH = "safety_controller.scan_input.feed_scan"  # the node's own scan path


class _DroppingSink:
    """A filter without `reject_scan` (the old core, stand-ins): a rejected scan is dropped."""

    def __init__(self, filt: FilterLike) -> None:
        self.filt = filt
        self.reason: str | None = None

    def set_scan(self, scan: ScanPoints, now: float, stamp: float | None = None) -> None:
        self.filt.set_scan(scan, now, stamp)

    def reject_scan(self, now: float, reason: str) -> None:
        self.reason = reason


def validate_scan_message(msg: ScanMessage) -> str | None:
    """The one validator's verdict on a scan (None: valid)."""
    return validate_scan(
        msg.angle_min,
        msg.angle_max,
        msg.angle_increment,
        msg.range_min,
        msg.range_max,
        len(msg.ranges),
        len(msg.intensities),
        msg.stamp,
    )


def feed_scan(filt: FilterLike, msg: ScanMessage, now: float, mount: LidarMount) -> str | None:
    """The safety node's scan path (`scan_input.feed_scan`); None when accepted.

    A filter without `reject_scan` only has a refused scan dropped, and
    UNHANDLED_REJECTION is added to the reason.
    """
    if hasattr(filt, "reject_scan"):
        return feed_scan_to(filt, msg, msg.stamp, now, mount)
    sink = _DroppingSink(filt)
    reason = feed_scan_to(sink, msg, msg.stamp, now, mount)
    return None if reason is None else f"{reason}+{UNHANDLED_REJECTION}"


@dataclass
class FaultSchedule:
    """Alternating good stretches and fault bursts on simulated time."""

    rng: np.random.Generator
    first_good: tuple[float, float] = (0.3, 2.0)
    burst: tuple[float, float] = (0.3, 3.0)
    good: tuple[float, float] = (0.3, 2.0)
    _until: float = field(default=-1.0, init=False)
    _active: bool = field(default=True, init=False)

    def active(self, time: float) -> bool:
        """Whether a fault burst covers `time` (call with non-decreasing times)."""
        if self._until < 0.0:
            self._until = float(self.rng.uniform(*self.first_good))
            self._active = False
        while time >= self._until:
            self._active = not self._active
            self._until += float(self.rng.uniform(*(self.burst if self._active else self.good)))
        return self._active
