"""The degraded-lidar fault injection (`sim_faults.degraded_lidar`): noise, bias, dropout."""

import numpy as np

from sim_bringup.sim_core import ScanData
from sim_bringup.sim_faults import degraded_lidar


def a_scan(beams: int = 4000) -> ScanData:
    ranges = np.full(beams, 2.0, dtype=np.float32)
    ranges[:10] = np.inf  # no return
    ranges[10:20] = -np.inf  # too close
    ranges[20:30] = np.nan  # the lidar's own dropout
    ranges[30:40] = 3.45  # near range_max
    return ScanData(ranges, -np.pi, 2 * np.pi / beams, 0.12, 3.5, stamp=1.0)


def test_no_fault_leaves_the_scan_as_it_was():
    scan = a_scan()
    out = degraded_lidar(scan, np.random.default_rng(0))
    np.testing.assert_array_equal(out.ranges, scan.ranges)
    assert out.ranges is not scan.ranges and out.stamp == scan.stamp


def test_bias_and_noise_move_measured_ranges_only_with_rep117_limits():
    scan = a_scan()
    out = degraded_lidar(scan, np.random.default_rng(1), noise_std=0.02, bias=0.1)
    r = out.ranges
    assert np.isposinf(r[:10]).all() and np.isneginf(r[10:20]).all() and np.isnan(r[20:30]).all()
    assert np.isposinf(r[30:40]).all()  # pushed beyond range_max: no return
    body = r[40:].astype(np.float64) - 2.0
    assert abs(body.mean() - 0.1) < 0.002 and abs(body.std() - 0.02) < 0.002
    close = degraded_lidar(scan, np.random.default_rng(1), bias=-1.95)
    assert np.isneginf(close.ranges[40:]).all()  # pulled below range_min: too close


def test_dropout_makes_that_fraction_of_beams_nan():
    out = degraded_lidar(a_scan(), np.random.default_rng(2), dropout=0.25)
    assert abs(np.isnan(out.ranges[40:]).mean() - 0.25) < 0.03
    assert out.ranges.dtype == np.float32
