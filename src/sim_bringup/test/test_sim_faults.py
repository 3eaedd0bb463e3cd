"""Fault injection: silent and broken sensors, a clock that jumps back."""

import math

import numpy as np
import pytest

from sim_bringup.sim_core import ScanData
from sim_bringup.sim_faults import (
    SENSOR_FAULTS,
    FaultInjection,
    clock_offset_problem,
    sensor_fault_problem,
)


def a_scan() -> ScanData:
    return ScanData(
        ranges=np.array([1.0, np.inf, 2.5], dtype=np.float32),
        angle_min=-0.1,
        angle_increment=0.1,
        range_min=0.12,
        range_max=3.5,
        stamp=4.0,
    )


def test_no_fault_publishes_everything_unchanged():
    faults = FaultInjection()
    scan = a_scan()
    assert faults.publishes_odom and faults.publishes_scan
    assert faults.scan(scan) is scan
    assert faults.published_time(12.5) == 12.5


@pytest.mark.parametrize(
    ("fault", "odom", "scan"),
    [("no_scan", True, False), ("nan_scan", True, True), ("no_odom", False, True)],
)
def test_each_sensor_fault_silences_what_it_names(fault, odom, scan):
    faults = FaultInjection(fault)
    assert faults.publishes_odom is odom and faults.publishes_scan is scan


def test_nan_scan_breaks_every_range_and_keeps_the_rest():
    scan = a_scan()
    broken = FaultInjection("nan_scan").scan(scan)
    assert np.isnan(broken.ranges).all() and broken.ranges.dtype == np.float32
    assert (broken.angle_min, broken.stamp, broken.range_max) == (-0.1, 4.0, 3.5)
    assert np.isfinite(scan.ranges[0])  # the simulator's scan is untouched


def test_clock_offset_moves_published_time_but_never_before_zero():
    assert FaultInjection(clock_offset=-2.0).published_time(5.0) == 3.0
    assert FaultInjection(clock_offset=2.0).published_time(5.0) == 7.0
    assert FaultInjection(clock_offset=-10.0).published_time(5.0) == 0.0


def test_bad_faults_and_offsets_are_refused_with_a_reason():
    assert all(sensor_fault_problem(fault) == "" for fault in SENSOR_FAULTS)
    assert "must be one of" in sensor_fault_problem("smoke")
    assert clock_offset_problem(-2.0) == "" and clock_offset_problem(-2.0, sim_time=3.0) == ""
    assert "finite" in clock_offset_problem(math.inf)
    assert "finite" in clock_offset_problem(1)  # an integer is not a double parameter
    refused = clock_offset_problem(-1e4, sim_time=3.0)
    assert "before 0" in refused and "3.000 s" in refused
