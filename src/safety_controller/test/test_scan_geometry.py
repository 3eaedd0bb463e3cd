import math

import numpy as np

from safety_controller.scan_geometry import LidarMount, scan_to_points


def test_points_follow_beam_angles_and_mount_offset():
    ranges = np.array([1.0, 2.0, 3.0, 4.0])
    scan = scan_to_points(ranges, -math.pi, math.pi / 2, 0.1, 10.0, LidarMount(x=0.5))
    expected = np.array([[-1.0 + 0.5, 0.0], [0.5, -2.0], [3.5, 0.0], [0.5, 4.0]])
    np.testing.assert_allclose(scan.points, expected, atol=1e-12)
    assert scan.valid_beams == 4 and not scan.blind


def test_rep117_special_values():
    ranges = np.array([np.nan, np.inf, -np.inf, 0.01, 50.0, 2.0])
    scan = scan_to_points(ranges, 0.0, 0.1, 0.12, 10.0)
    # -inf -> a point at range_min; +inf -> free (valid, no point); NaN/out of range dropped.
    assert scan.points.shape == (2, 2)
    np.testing.assert_allclose(np.hypot(*scan.points.T), [0.12, 2.0])
    assert scan.valid_beams == 3


def test_scan_without_any_usable_reading_is_blind():
    scan = scan_to_points(np.full(8, np.nan), 0.0, 0.1, 0.1, 10.0)
    assert scan.blind and scan.points.shape == (0, 2)
