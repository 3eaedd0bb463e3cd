import math

import numpy as np
import pytest
from safety_controller_test_support import TEST_LIMITS

from safety_controller.limits import (
    LimitsError,
    VelocityLimits,
    brake_along_arc,
    clamp_velocity,
    in_box,
    limit_acceleration,
    reachable_box,
    reachable_interval,
)

LIMITS = TEST_LIMITS


def test_clamp_scales_both_axes_and_keeps_curvature():
    v, w = clamp_velocity(0.52, 1.0, LIMITS)
    assert v == pytest.approx(0.26) and w == pytest.approx(0.5)
    v, w = clamp_velocity(0.1, -3.64, LIMITS)
    assert v == pytest.approx(0.05) and w == pytest.approx(-1.82)
    assert clamp_velocity(0.1, 0.2, LIMITS) == (0.1, 0.2)


def test_clamp_drops_a_forbidden_direction_but_keeps_the_other_axis():
    forward_only = VelocityLimits(min_velocity=(0.0, -1.82))
    assert clamp_velocity(-0.2, 0.5, forward_only) == (0.0, 0.5)


def test_clamp_of_huge_values_stays_within_limits():
    v, w = clamp_velocity(1e300, -1e300, LIMITS)
    assert 0.0 <= v <= 0.26 and -1.82 <= w <= 0.0
    assert math.isfinite(v) and math.isfinite(w)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_velocity", (-0.1, 1.0), "max_velocity linear"),
        ("min_velocity", (0.1, -1.0), "min_velocity linear"),
        ("max_accel", (0.0, 1.0), "max_accel linear"),
        ("max_decel", (2.5, -3.2), "max_decel linear"),
        ("max_decel", (-1.0, -3.2), "weaker than max_accel"),
        ("emergency_decel", (-1.0, -5.0), "weaker than max_decel"),
        ("max_velocity", (0.26, math.nan), "non-finite"),
        ("max_velocity", (0.26,), "2 values"),
    ],
)
def test_invalid_limits_are_rejected_with_a_reason(field, value, message):
    with pytest.raises(LimitsError, match=message):
        VelocityLimits(**{field: value})


def test_reachable_interval_brakes_through_zero_before_reversing():
    assert reachable_interval(0.2, 1.0, 2.0, 0.05) == pytest.approx((0.1, 0.25))
    # 0.2 m/s at 2 m/s^2 stops in 0.1 s, then 0.1 s of reverse acceleration at 1 m/s^2.
    assert reachable_interval(0.2, 1.0, 2.0, 0.2) == pytest.approx((-0.1, 0.4))
    assert reachable_interval(-0.2, 1.0, 2.0, 0.2) == pytest.approx((-0.4, 0.1))
    assert reachable_interval(0.0, 1.0, 2.0, 0.1) == pytest.approx((-0.1, 0.1))


def test_acceleration_from_rest_uses_elapsed_time_and_keeps_curvature():
    for dt in (0.01, 0.04):
        box = reachable_box((0.0, 0.0), LIMITS, dt)
        v, w = limit_acceleration((0.26, 0.2), (0.0, 0.0), box)
        assert v == pytest.approx(2.5 * dt)
        assert w / v == pytest.approx(0.2 / 0.26)
        # A sharper request is bound by the angular acceleration instead.
        v, w = limit_acceleration((0.26, 1.0), (0.0, 0.0), box)
        assert w == pytest.approx(3.2 * dt) and w / v == pytest.approx(1.0 / 0.26)


def test_deceleration_uses_max_decel_or_emergency_decel():
    normal = limit_acceleration((0.0, 0.0), (0.26, 0.0), reachable_box((0.26, 0.0), LIMITS, 0.02))
    assert normal[0] == pytest.approx(0.26 - 2.5 * 0.02)
    box = reachable_box((0.26, 0.0), LIMITS, 0.02, emergency=True)
    hard = limit_acceleration((0.0, 0.0), (0.26, 0.0), box)
    assert hard[0] == pytest.approx(0.26 - 3.0 * 0.02)


def test_unreachable_curvature_moves_toward_the_target_inside_the_box():
    box = reachable_box((0.26, 0.0), LIMITS, 0.05)
    v, w = limit_acceleration((0.26, 1.82), (0.26, 0.0), box)
    assert in_box((v, w), box)
    assert v == pytest.approx(0.26) and w == pytest.approx(3.2 * 0.05)


def test_brake_along_arc_keeps_curvature_and_respects_emergency_decel():
    v, w = brake_along_arc((0.2, 1.6), LIMITS, 0.05)
    assert w / v == pytest.approx(8.0)
    assert 0.2 - v <= 3.0 * 0.05 + 1e-12 and 1.6 - w <= 4.0 * 0.05 + 1e-12
    assert max(0.2 - v - 3.0 * 0.05, 1.6 - w - 4.0 * 0.05) == pytest.approx(0.0, abs=1e-12)
    assert brake_along_arc((0.01, 0.0), LIMITS, 1.0) == (0.0, 0.0)
    np.testing.assert_allclose(brake_along_arc((0.0, 0.0), LIMITS, 0.1), (0.0, 0.0))
