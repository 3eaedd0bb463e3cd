import math

import numpy as np
import pytest
from safety_controller_test_support import TEST_LIMITS

from safety_controller.footprint import Footprint
from safety_controller.safety_filter import (
    ACCEL,
    BLIND,
    COLLISION,
    ESTOP,
    INVALID_INPUT,
    LIMIT,
    STALE_INPUT,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import ScanPoints, scan_to_points

LIMITS = TEST_LIMITS
FAR_AWAY = ScanPoints(points=np.array([[5.0, 5.0]]), valid_beams=1, total_beams=1)


def open_loop(**overrides) -> SafetyFilter:
    config = SafetyConfig(limits=LIMITS, closed_loop=False, **overrides)
    return SafetyFilter(config)


def drive(filt: SafetyFilter, v: float, w: float, start: float, seconds: float, dt: float = 0.05):
    """Send (v, w) every dt with a fresh scan; return the last output."""
    t, out = start, None
    while t < start + seconds - 1e-9:
        filt.set_scan(FAR_AWAY, t)
        filt.set_command(v, w, t)
        out = filt.step(t)
        t += dt
    return out, t


def test_free_space_command_passes_untouched_after_the_ramp():
    filt = open_loop()
    out, _ = drive(filt, 0.2, 0.5, 0.0, 1.0)
    assert (out.linear, out.angular) == pytest.approx((0.2, 0.5))
    assert out.reasons == frozenset() and out.scale == 1.0 and out.state == "OK"


def test_velocity_limit_reports_limit_and_scale():
    filt = open_loop()
    out, _ = drive(filt, 0.52, 0.0, 0.0, 1.0)
    assert out.linear == pytest.approx(0.26)
    assert out.reasons == {LIMIT} and out.scale == pytest.approx(0.5)


def test_acceleration_uses_real_elapsed_time():
    filt = open_loop()
    filt.set_scan(FAR_AWAY, 0.0)
    filt.set_command(0.26, 0.0, 0.0)
    assert filt.step(0.0).linear == 0.0  # no time has passed yet
    filt.set_command(0.26, 0.0, 0.01)
    first = filt.step(0.01)
    assert first.linear == pytest.approx(2.5 * 0.01) and ACCEL in first.reasons
    filt.set_command(0.26, 0.0, 0.05)
    assert filt.step(0.05).linear == pytest.approx(2.5 * 0.05)


def test_estop_zeroes_at_once_and_latches_until_reset():
    filt = open_loop()
    _, t = drive(filt, 0.26, 0.0, 0.0, 1.0)
    assert filt.set_estop_input(True, t)
    filt.set_command(0.26, 0.0, t)
    out = filt.step(t)
    assert (out.linear, out.angular) == (0.0, 0.0) and ESTOP in out.reasons
    assert out.scale == 0.0 and out.state == "ESTOP"
    ok, message = filt.reset(t)
    assert not ok and "still true" in message
    filt.set_estop_input(False, t + 0.1)
    out, t = drive(filt, 0.26, 0.0, t + 0.1, 0.5)
    assert out.linear == 0.0, "released estop input alone must not unlatch"
    ok, _ = filt.reset(t)
    assert ok and not filt.estop_latched
    out, _ = drive(filt, 0.26, 0.0, t, 0.5)
    assert out.linear > 0.0


def test_trigger_estop_latches():
    filt = open_loop()
    _, t = drive(filt, 0.2, 0.0, 0.0, 0.5)
    assert filt.trigger_estop(t)
    assert not filt.trigger_estop(t)
    filt.set_command(0.2, 0.0, t)
    assert filt.step(t).linear == 0.0
    assert filt.reset(t)[0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_gives_zero_and_is_counted(bad):
    filt = open_loop()
    _, t = drive(filt, 0.2, 0.3, 0.0, 0.5)
    assert not filt.set_command(bad, 0.3, t)
    out = filt.step(t)
    assert (out.linear, out.angular) == (0.0, 0.0)
    assert out.reasons == {INVALID_INPUT} and out.scale == 0.0
    assert filt.status.invalid_inputs == 1
    assert filt.status.counts[INVALID_INPUT] == 1


def test_stale_input_brakes_to_zero_at_emergency_decel():
    filt = open_loop()
    _, t = drive(filt, 0.26, 0.0, 0.0, 1.0)
    last_input = t - 0.05
    last, stopped_at = 0.26, None
    now = last_input
    while now < last_input + 1.0:
        now += 0.02
        filt.set_scan(FAR_AWAY, now)
        out = filt.step(now)
        if now - last_input <= 0.5 - 1e-9:
            assert out.linear == pytest.approx(0.26)  # the request is still fresh
        else:
            assert 0.0 <= last - out.linear <= 3.0 * 0.02 + 1e-9
            if out.linear > 0.0:
                assert out.reasons == {STALE_INPUT} and out.state == "STALE_INPUT"
                assert out.scale == 0.0
            elif stopped_at is None:
                stopped_at = now
        last = out.linear
    assert stopped_at is not None
    assert stopped_at - last_input <= 0.5 + 0.26 / 3.0 + 0.04
    assert filt.status.state == "IDLE"
    assert filt.status.counts[STALE_INPUT] == 1


def test_input_just_within_timeout_still_drives():
    filt = open_loop()
    _, t = drive(filt, 0.26, 0.0, 0.0, 1.0)
    filt.set_scan(FAR_AWAY, t + 0.4)
    assert filt.step(t + 0.4).linear == pytest.approx(0.26)


def test_without_any_scan_the_robot_does_not_move():
    filt = open_loop()
    for now in (0.0, 0.05, 0.1):
        filt.set_command(0.26, 0.0, now)
        out = filt.step(now)
        assert out.linear == 0.0 and out.state == "NO_SCAN" and out.scale == 0.0


@pytest.mark.parametrize("case", ["stale", "blind"])
def test_without_usable_scan_the_robot_stops(case):
    filt = open_loop()
    _, t = drive(filt, 0.26, 0.0, 0.0, 1.0)
    last_step = last_scan = t - 0.05
    if case == "blind":
        blind = scan_to_points(np.full(360, np.nan), -math.pi, 0.0175, 0.12, 3.5)
        filt.set_scan(blind, last_step)
    now, previous, braking = last_step, 0.26, []
    while now < last_step + 1.0:
        now += 0.02
        filt.set_command(0.26, 0.0, now)
        out = filt.step(now)
        scan_ok = case == "stale" and now - last_scan <= 0.5 - 1e-9
        if scan_ok:
            assert out.linear == pytest.approx(0.26)
        else:
            assert 0.0 <= previous - out.linear <= 3.0 * 0.02 + 1e-9
            assert out.scale == 0.0
            braking.append(out)
        previous = out.linear
    assert BLIND in braking[0].reasons
    assert braking[-1].linear == 0.0
    assert braking[-1].state == ("BLIND" if case == "blind" else "STALE_SCAN")


@pytest.mark.parametrize("case", ["stale_scan", "stale_input"])
def test_closed_loop_stop_never_ramps_back_up_to_the_lagging_odometry(case):
    """Outputs at the same instant (an input and the timer) keep braking monotonically."""
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, closed_loop=True))
    now = 0.0
    while now < 1.0:  # up to speed: 0.2 m/s, odometry agreeing
        filt.set_scan(FAR_AWAY, now)
        filt.set_command(0.2, 0.0, now)
        filt.set_odometry(0.2, 0.0, now)
        out = filt.step(now)
        now += 0.05
    assert out.linear == pytest.approx(0.2)
    start, previous, outputs = now, 0.2, []
    while now < start + 2.0:
        if case == "stale_scan":
            filt.set_command(0.2, 0.0, now)
        else:
            filt.set_scan(FAR_AWAY, now)
        # The base is slow to follow: odometry still reports most of the old speed.
        filt.set_odometry(max(previous, 0.05), 0.0, now)
        for _ in range(2):  # on the event and on the timer, same stamp
            out = filt.step(now)
            if now > start + 0.5 + 1e-9 or case == "stale_input":
                assert out.linear <= previous + 1e-12
                outputs.append(out.linear)
            previous = out.linear
        now += 0.05
    assert outputs[-1] == 0.0
    first_zero = outputs.index(0.0)
    assert all(v == 0.0 for v in outputs[first_zero:])


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.4])
def test_late_scans_are_dead_reckoned_from_their_stamp(delay):
    """Scans delivered `delay` s after they were taken still stop the robot before the wall."""
    filt = open_loop()
    wall = np.column_stack((np.full(81, 1.0), np.linspace(-1, 1, 81)))
    t, x, dt = 0.0, 0.0, 0.05
    history: list[tuple[float, float]] = []  # (time, robot x) when each scan was taken
    for _ in range(300):
        history.append((t, x))
        taken, x_then = next(item for item in history if item[0] >= t - delay - 1e-9)
        filt.set_scan(ScanPoints(wall - [x_then, 0.0], 81, 81), t, stamp=taken)
        filt.set_command(0.26, 0.0, t)
        out = filt.step(t)
        x += out.linear * dt
        t += dt
    # Footprint 0.11 + margin 0.05 from the wall at x = 1.0; open loop follows the output.
    assert x <= 1.0 - 0.16 + 1e-6, x
    assert out.linear == 0.0


def test_a_scan_stamp_from_another_clock_is_not_trusted():
    filt = open_loop()
    filt.set_scan(FAR_AWAY, 10.0, stamp=1e9)  # in the future
    assert filt.step(10.0).state != "STALE_SCAN"
    filt.set_scan(FAR_AWAY, 10.0, stamp=2.0)  # far older than source_timeout
    filt.set_command(0.1, 0.0, 10.0)
    assert filt.step(10.05).state == "OK"


def test_guard_stops_before_a_wall_and_reports_clearance():
    filt = open_loop()
    wall = np.column_stack((np.full(81, 1.0), np.linspace(-1, 1, 81)))
    t, x = 0.0, 0.0
    out = None
    for _ in range(200):
        filt.set_scan(ScanPoints(wall - [x, 0.0], 81, 81), t)
        filt.set_command(0.26, 0.0, t)
        out = filt.step(t)
        x += out.linear * 0.05
        t += 0.05
    assert out.linear == pytest.approx(0.0, abs=1e-3)
    assert COLLISION in filt.status.last_intervention_reasons
    assert 1.0 - x >= 0.11 + 0.05 - 1e-6
    assert out.min_clearance == pytest.approx(1.0 - x - 0.16, abs=1e-6)
    assert out.scale < 0.01


def test_scan_points_are_carried_forward_between_scans():
    filt = open_loop()
    wall = np.column_stack((np.full(81, 1.0), np.linspace(-1, 1, 81)))
    filt.set_scan(ScanPoints(wall, 81, 81), 0.0)
    t, x = 0.0, 0.0
    while t < 0.45:  # no new scan: the filter must dead-reckon the wall closer
        filt.set_command(0.26, 0.0, t)
        out = filt.step(t)
        assert out.min_clearance == pytest.approx(1.0 - x - 0.16, abs=1e-9)
        x += out.linear * 0.05
        t += 0.05
    assert x > 0.05


def test_not_trapped_at_a_wall_backing_off_passes_through_the_filter():
    filt = open_loop()
    wall = np.column_stack((np.full(61, 0.14), np.linspace(-0.6, 0.6, 61)))  # inside margin
    scan = ScanPoints(wall, 61, 61)
    t = 0.0
    for _ in range(20):
        filt.set_scan(scan, t)
        filt.set_command(0.2, 0.0, t)
        assert filt.step(t).linear == 0.0
        t += 0.05
    for _ in range(20):
        filt.set_scan(scan, t)
        filt.set_command(-0.2, 0.0, t)
        out = filt.step(t)
        assert COLLISION not in out.reasons
        t += 0.05
    assert out.linear == pytest.approx(-0.2)


def test_ramps_start_from_the_previous_output_not_from_odometry():
    """Odometry ahead of the command (a push, a lagging base) never makes the output jump."""
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, closed_loop=True))
    filt.set_scan(FAR_AWAY, 0.0)
    filt.set_odometry(0.2, 0.0, 0.0)
    filt.set_command(0.26, 0.0, 0.0)
    assert filt.step(0.0).linear == 0.0
    filt.set_scan(FAR_AWAY, 0.01)
    filt.set_odometry(0.2, 0.0, 0.01)
    filt.set_command(0.26, 0.0, 0.01)
    out = filt.step(0.01)
    assert out.linear == pytest.approx(2.5 * 0.01)  # TEST_LIMITS accelerate at 2.5 m/s^2
    assert not filt.status.odom_stale
    filt.set_scan(FAR_AWAY, 1.0)
    filt.set_command(0.26, 0.0, 1.0)
    filt.step(1.0)
    assert filt.status.odom_stale  # dead reckoning falls back to the last output
    assert not filt.set_odometry(math.nan, 0.0, 1.0)


def test_intervention_rate_over_window():
    filt = open_loop(intervention_window=1.0)
    _, t = drive(filt, 0.1, 0.0, 0.0, 2.0)
    assert filt.status.intervention_rate == 0.0
    for _ in range(10):
        filt.set_scan(FAR_AWAY, t)
        filt.set_command(math.nan, 0.0, t)
        filt.step(t)
        t += 0.05
    assert filt.status.intervention_rate == pytest.approx(10 / 21, abs=0.06)
    _, t = drive(filt, 0.1, 0.0, t, 2.0)
    assert filt.status.intervention_rate == 0.0


def test_clock_going_back_does_not_break_the_filter():
    filt = open_loop()
    _, t = drive(filt, 0.2, 0.0, 0.0, 1.0)
    filt.set_scan(FAR_AWAY, 0.0)
    filt.set_command(0.2, 0.0, 0.0)
    out = filt.step(0.0)
    assert math.isfinite(out.linear) and abs(out.linear) <= 0.26


def test_footprint_polygon_config():
    polygon = np.array([[0.2, 0.15], [-0.1, 0.15], [-0.1, -0.15], [0.2, -0.15]])
    filt = open_loop(footprint=Footprint(polygon=polygon, margin=0.02))
    wall = np.column_stack((np.full(81, 0.6), np.linspace(-1, 1, 81)))
    t, x = 0.0, 0.0
    for _ in range(200):
        filt.set_scan(ScanPoints(wall - [x, 0.0], 81, 81), t)
        filt.set_command(0.26, 0.0, t)
        x += filt.step(t).linear * 0.05
        t += 0.05
    assert 0.6 - x >= 0.2 + 0.02 - 1e-6
