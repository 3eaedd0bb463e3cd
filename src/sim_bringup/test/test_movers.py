"""Moving obstacles: constant speed along a closed waypoint loop."""

import numpy as np
import pytest

from sim_bringup.movers import WaypointLoop


@pytest.mark.parametrize(
    ("waypoints", "speed"),
    [
        (((0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (0.0, 1.0)), 0.3),
        (((1.0, 1.0), (1.0, 1.0), (3.0, 1.0)), 0.25),  # a zero-length segment
        (((0.5, 0.5), (1.5, 0.5)), 0.0),  # standing still
    ],
)
def test_loop_positions_at_many_times_equal_position_at_each(waypoints, speed):
    loop = WaypointLoop(waypoints, speed)
    times = np.concatenate((np.linspace(0.0, 60.0, 601), [1e-9, 123.456, 1e4]))
    expected = [list(loop.position(float(t))) for t in times]
    assert loop.positions(times).tolist() == expected  # the same arithmetic, bit for bit


def test_a_loop_starts_at_its_first_waypoint_and_closes():
    loop = WaypointLoop(((0.0, 0.0), (2.0, 0.0), (2.0, 1.0)), speed=1.0)
    assert loop.perimeter == pytest.approx(2.0 + 1.0 + 5.0**0.5)
    assert loop.position(0.0) == (0.0, 0.0)
    assert loop.position(2.5) == pytest.approx((2.0, 0.5))
    assert loop.position(loop.perimeter) == pytest.approx((0.0, 0.0))  # back at the start
    assert loop.position(loop.perimeter + 1.0) == pytest.approx((1.0, 0.0))


def test_velocity_is_along_the_current_segment():
    loop = WaypointLoop(((0.0, 0.0), (2.0, 0.0)), speed=0.5)
    assert loop.velocity(1.0) == pytest.approx((0.5, 0.0))
    assert loop.velocity(5.0) == pytest.approx((-0.5, 0.0))  # on the way back
    still = WaypointLoop(((1.0, 1.0), (2.0, 1.0)), speed=0.0)
    assert still.velocity(3.0) == (0.0, 0.0) and still.position(3.0) == (1.0, 1.0)
    point = WaypointLoop(((1.0, 1.0),), speed=0.3)  # a single waypoint: no way to go
    assert point.position(7.0) == (1.0, 1.0) and point.velocity(7.0) == (0.0, 0.0)
    assert point.positions(np.array([0.0, 7.0])).tolist() == [[1.0, 1.0], [1.0, 1.0]]
