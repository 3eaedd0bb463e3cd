"""The policy's inputs as plain data (no ROS): odometry and goal checks, staleness."""

from __future__ import annotations

import math

import pytest
from rl_policy_node_test_support import SEC, T0

from rl_policy_node.policy_inputs import OdomSample, goal_problem, input_age_problem, odom_sample


def _odom_at(yaw: float) -> OdomSample | None:
    quaternion = (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    return odom_sample((1.0, -2.0), quaternion, (0.2, -0.5), T0, T0 + 5)


def test_odometry_yaw_round_trips_from_the_quaternion():
    for yaw in (-3.0, -1.0, 0.0, 0.7, 3.1):
        sample = _odom_at(yaw)
        assert sample is not None
        assert sample.pose[2] == pytest.approx(yaw, abs=1e-12)
    assert _odom_at(0.7) == OdomSample((1.0, -2.0, pytest.approx(0.7)), (0.2, -0.5), T0, T0 + 5)


@pytest.mark.parametrize("where", range(8))
def test_odometry_with_any_non_finite_value_is_dropped(where):
    values = [1.0, -2.0, 0.0, 0.0, 0.0, 1.0, 0.2, -0.5]
    values[where] = math.nan if where % 2 else math.inf
    sample = odom_sample(tuple(values[:2]), tuple(values[2:6]), tuple(values[6:]), T0, T0)
    assert sample is None


def test_goals_must_be_finite_and_in_the_odometry_frame():
    assert goal_problem(1.0, 2.0, "odom", "odom") is None
    assert goal_problem(1.0, 2.0, "", "odom") is None  # no frame given: taken as odom
    assert goal_problem(1.0, 2.0, "map", "") is None  # no odometry seen yet: not checked
    problem = goal_problem(1.0, 2.0, "map", "odom")
    assert (
        problem
        == "goal dropped: (1.0, 2.0) in frame 'map' (needs finite values in the odom frame 'odom')"
    )
    assert goal_problem(math.nan, 2.0, "odom", "odom").startswith("goal dropped: (nan, 2.0)")
    assert goal_problem(1.0, math.inf, "", "") is not None


def test_input_age_checks_arrival_then_header_age_both_ways():
    timeout = SEC // 2
    assert input_age_problem("scan", T0, T0, T0 + timeout, timeout) is None
    late = input_age_problem("scan", T0, T0, T0 + timeout + 1, timeout)
    assert late.startswith("scan: last message arrived")
    old_stamp = input_age_problem("scan", T0 - 2 * SEC, T0, T0, timeout)
    assert old_stamp.startswith("scan: header stamp 2.000 s old")
    future = input_age_problem("scan", T0 + 2 * SEC, T0, T0, timeout)
    assert "in the future" in future
