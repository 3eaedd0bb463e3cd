"""Issue-16 properties of the safety filter core: time, unseen space, empty scans, movers."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_controller_test_support import TEST_LIMITS

from safety_controller.collision_guard import guard_command
from safety_controller.limits import reachable_box
from safety_controller.safety_filter import (
    BLIND,
    BLIND_DIRECTION,
    COLLISION,
    INVALID_INPUT,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import LidarMount, ScanPoints, scan_to_points

LIMITS = TEST_LIMITS
MOUNT = LidarMount(x=-0.032)
PERIOD = 0.05


def ring_scan(fov: float, beams: int, distance: float = 2.0, ranges=None) -> ScanPoints:
    """A lidar centred on the robot's heading seeing a round room (or the given ranges)."""
    r = np.full(beams, distance) if ranges is None else np.asarray(ranges, dtype=float)
    return scan_to_points(r, -fov / 2.0, fov / beams, 0.12, 3.5, MOUNT)


def wall_scan(distance: float, beams: int = 360) -> ScanPoints:
    """A 360-degree scan of a wall `distance` m ahead of the base centre."""
    angles = -math.pi + 2 * math.pi / beams * np.arange(beams)
    lidar_to_wall = distance + MOUNT.x * -1.0
    with np.errstate(divide="ignore"):
        ranges = np.where(np.cos(angles) > 0.05, lidar_to_wall / np.cos(angles), np.inf)
    ranges[ranges > 3.5] = np.inf
    return scan_to_points(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5, MOUNT)


def run(filt: SafetyFilter, scan: ScanPoints, request, steps: int, start: float = 0.0):
    """Send the same scan and request every period; return the outputs."""
    t, outputs = start, []
    for _ in range(steps):
        filt.set_scan(scan, t)
        filt.set_command(*request, t)
        outputs.append(filt.step(t))
        t += PERIOD
    return outputs, t


# ---- time cannot make it faster -----------------------------------------------------------

times = st.lists(
    st.one_of(
        st.floats(0.0, 0.3),  # forward steps, up to 6 periods (gaps)
        st.just(0.0),  # repeated stamps (a stalled clock)
        st.floats(-2.0, -0.01),  # jumps back
        st.sampled_from([math.nan, math.inf, -math.inf]),
    ),
    min_size=5,
    max_size=40,
)
requests = st.tuples(st.floats(-0.5, 0.5), st.floats(-3.0, 3.0))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deltas=times,
    request_list=st.lists(requests, min_size=1, max_size=40),
    wall=st.floats(0.2, 1.5),
)
def test_time_never_makes_the_output_faster(deltas, request_list, wall):
    """For any sequence of `now`: within prev + accel over max(0, elapsed), guard-certified."""
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, closed_loop=True))
    scan = wall_scan(wall)
    now, last_time, previous = 10.0, None, (0.0, 0.0)
    for i, delta in enumerate(deltas):
        now = now + delta if math.isfinite(delta) else now
        stamp = now if math.isfinite(delta) else delta
        request = request_list[i % len(request_list)]
        filt.set_scan(scan, stamp)
        filt.set_command(*request, stamp)
        filt.set_odometry(0.3, 2.0, stamp)  # odometry far ahead of every output
        out = filt.step(stamp)
        value = (out.linear, out.angular)
        assert all(math.isfinite(v) for v in value)
        if not math.isfinite(stamp):
            assert value == (0.0, 0.0) and INVALID_INPUT in out.reasons
            previous = value
            continue
        elapsed = 0.0 if last_time is None else max(0.0, stamp - last_time)
        lo, hi = reachable_box(previous, LIMITS, min(elapsed, filt.config.max_step))
        e_lo, e_hi = reachable_box(
            previous, LIMITS, min(elapsed, filt.config.max_step), emergency=True
        )
        for axis in range(2):
            # Speed up at most by the acceleration limit; slow down at most at emergency_decel.
            assert abs(value[axis]) <= max(abs(lo[axis]), abs(hi[axis])) + 1e-9
            assert e_lo[axis] - 1e-9 <= value[axis] <= e_hi[axis] + 1e-9
        if elapsed == 0.0 and last_time is not None:
            assert abs(value[0]) <= abs(previous[0]) + 1e-12
            assert abs(value[1]) <= abs(previous[1]) + 1e-12
        # Either certified by the guard, or braking along the previous arc.
        certified = guard_command(
            filt._guard_points(stamp)[0],
            filt.config.footprint,
            value[0],
            value[1],
            filt.config.reaction_time,
            LIMITS.decel(emergency=True),
        ).scale
        braking = all(
            abs(value[a]) <= abs(previous[a]) + 1e-12 and value[a] * previous[a] >= 0.0
            for a in range(2)
        )
        assert certified >= 1.0 - 1e-6 or braking
        previous, last_time = value, stamp


def test_repeated_stamps_hold_the_command_and_never_raise_it():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, t = run(filt, wall_scan(3.0), (0.2, 0.0), 20)
    assert outputs[-1].linear == pytest.approx(0.2) and not outputs[-1].hold
    stalled = t - PERIOD  # the last step's stamp
    for _ in range(5):  # the clock stalls: inputs keep arriving with the same stamp
        filt.set_command(0.26, 0.0, stalled)
        out = filt.step(stalled)
        assert out.linear <= 0.2 + 1e-12
    assert out.hold  # re-sending it would refresh the base's watchdog: the shell must not
    assert filt.status.held_outputs >= 4


def test_a_clock_jump_back_is_a_new_time_base_without_a_step_up():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, t = run(filt, wall_scan(3.0), (0.1, 0.0), 20, start=100.0)
    before = outputs[-1].linear
    outputs, _ = run(filt, wall_scan(3.0), (0.26, 0.0), 10, start=5.0)
    assert outputs[0].linear <= before + 1e-12  # the jump itself gives no time
    assert outputs[1].linear <= before + 2.5 * PERIOD + 1e-9  # then the ramp, from the new base
    assert outputs[-1].state == "OK" and filt.status.clock_jumps_back == 1


def test_a_gap_between_steps_accelerates_at_most_by_the_capped_elapsed_time():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    run(filt, wall_scan(3.0), (0.0, 0.0), 5)
    filt.set_scan(wall_scan(3.0), 0.25)
    filt.set_command(0.26, 0.0, 0.25)
    out = filt.step(0.25 + 5 * PERIOD)
    assert out.linear <= 2.5 * filt.config.max_step + 1e-9


def test_a_non_finite_now_stops_at_once_and_keeps_the_time_base():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    _, t = run(filt, wall_scan(3.0), (0.2, 0.0), 20)
    out = filt.step(math.nan)
    assert (out.linear, out.angular) == (0.0, 0.0) and out.state == "INVALID_TIME"
    filt.set_command(0.2, 0.0, t)
    filt.set_scan(wall_scan(3.0), t)
    assert filt.step(t).linear <= 2.5 * PERIOD + 1e-9  # ramps again from zero


# ---- unseen is not free ---------------------------------------------------------------------

FOV_270 = 1.5 * math.pi


@pytest.mark.parametrize("request_", [(-0.2, 0.0), (-0.1, 0.8), (-0.1, -0.8)])
def test_a_270_degree_lidar_refuses_reversing_into_what_it_cannot_see(request_):
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, _ = run(filt, ring_scan(FOV_270, 270), request_, 30)
    assert all(out.linear >= -1e-9 for out in outputs)
    assert BLIND_DIRECTION in filt.status.last_intervention_reasons
    assert filt.status.counts[BLIND_DIRECTION] >= 1


def test_a_270_degree_lidar_still_turns_in_place_and_drives_forward():
    for request in ((0.0, 1.0), (0.2, 0.0)):
        filt = SafetyFilter(SafetyConfig(limits=LIMITS))
        outputs, _ = run(filt, ring_scan(FOV_270, 270), request, 30)
        assert (outputs[-1].linear, outputs[-1].angular) == pytest.approx(request)


def test_reversing_is_allowed_where_an_earlier_scan_saw_free_space_until_it_ages_out():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, memory_time=2.0))
    outputs, t = run(filt, ring_scan(FOV_270, 270), (0.0, 3.0), 36)  # look all around
    assert filt._pose[2] > 0.75 * math.pi
    outputs, t = run(filt, ring_scan(FOV_270, 270), (-0.1, 0.0), 14, start=t)
    assert outputs[-1].linear == pytest.approx(-0.1)
    outputs, t = run(filt, ring_scan(FOV_270, 270), (-0.1, 0.0), 60, start=t)
    assert outputs[-1].linear == pytest.approx(0.0, abs=1e-9)  # 2 s later the memory is gone
    assert BLIND_DIRECTION in outputs[-1].reasons or BLIND_DIRECTION in (
        filt.status.last_intervention_reasons
    )


def test_a_full_circle_lidar_reverses_freely():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, _ = run(filt, ring_scan(2 * math.pi, 360), (-0.2, 0.0), 30)
    assert outputs[-1].linear == pytest.approx(-0.2) and outputs[-1].reasons == frozenset()


def test_a_long_run_of_missing_beams_is_unobserved_but_dropout_is_not():
    ranges = np.full(360, 2.0)
    ranges[::7] = np.nan  # scattered dropout: seen
    dropout = ring_scan(2 * math.pi, 360, ranges=ranges)
    assert dropout.frontier.shape[0] == 0
    ranges = np.full(360, 2.0)
    ranges[:60] = np.nan  # 60 degrees behind the robot without a measurement
    gap = ring_scan(2 * math.pi, 360, ranges=ranges)
    assert gap.frontier.shape[0] > 0
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, _ = run(filt, gap, (-0.2, 0.0), 30)
    assert all(out.linear >= -1e-9 for out in outputs)


def test_a_too_close_return_blocks_motion_toward_it_and_allows_moving_away():
    ranges = np.full(360, 2.0)
    # Behind the robot, between its rear edge and range_min: the lidar says "too close".
    ranges[np.r_[0:6, 355:360]] = -np.inf
    scan = ring_scan(2 * math.pi, 360, ranges=ranges)
    assert scan.near_field.shape[0] > 0
    toward = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, _ = run(toward, scan, (-0.15, 0.0), 30)
    assert all(out.linear >= -1e-9 for out in outputs)
    assert COLLISION in toward.status.last_intervention_reasons
    away = SafetyFilter(SafetyConfig(limits=LIMITS))
    outputs, _ = run(away, scan, (0.15, 0.0), 30)
    assert outputs[-1].linear == pytest.approx(0.15)


# ---- empty and rejected scans -------------------------------------------------------------


def test_a_scan_without_any_return_is_blind_once_that_lasts_source_timeout():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, source_timeout=0.5))
    _, t = run(filt, wall_scan(2.0), (0.2, 0.0), 20)
    empty = ring_scan(2 * math.pi, 360, ranges=np.full(360, np.inf))
    outputs, _ = run(filt, empty, (0.2, 0.0), 20, start=t)
    assert outputs[0].state == "OK"  # the last scan that saw something still holds
    assert outputs[-1].state == "EMPTY_SCAN" and BLIND in outputs[-1].reasons
    assert outputs[-1].linear == 0.0
    allowed = SafetyFilter(SafetyConfig(limits=LIMITS, allow_empty_scans=True))
    outputs, _ = run(allowed, empty, (0.2, 0.0), 20)
    assert outputs[-1].state == "OK" and outputs[-1].linear == pytest.approx(0.2)


def test_a_rejected_scan_brakes_until_a_valid_one_arrives():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    _, t = run(filt, wall_scan(3.0), (0.2, 0.0), 20)
    filt.reject_scan(t, "angle_increment_not_positive")
    outputs = []
    for _ in range(10):
        filt.set_command(0.2, 0.0, t)
        outputs.append(filt.step(t))
        t += PERIOD
    assert outputs[0].state == "INVALID_SCAN" and BLIND in outputs[0].reasons
    assert outputs[-1].linear == 0.0
    assert filt.status.last_rejected_reason == "angle_increment_not_positive"
    outputs, _ = run(filt, wall_scan(3.0), (0.2, 0.0), 20, start=t)
    assert outputs[-1].state == "OK" and outputs[-1].linear == pytest.approx(0.2)


# ---- moving obstacles -------------------------------------------------------------------


def cylinder_scan(robot_x: float, centre_x: float, radius: float, rng, noise=0.01) -> ScanPoints:
    """A 360-degree scan of a cylinder on the robot's axis, seen from (robot_x, 0)."""
    beams = 360
    angles = -math.pi + 2 * math.pi / beams * np.arange(beams)
    origin_x = robot_x + MOUNT.x
    d = np.column_stack((np.cos(angles), np.sin(angles)))
    oc = np.array([origin_x - centre_x, 0.0])
    b = d @ oc
    disc = b * b - (oc @ oc - radius * radius)
    hit = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
    ranges = np.where(hit > 0, hit, np.inf) + rng.normal(0.0, noise, beams)
    ranges[ranges > 3.5] = np.inf
    ranges[ranges < 0.12] = -np.inf
    return scan_to_points(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5, MOUNT)


@pytest.mark.parametrize("obstacle_speed", [0.25, 0.45])
def test_a_robot_driving_at_a_mover_has_stopped_before_it_arrives(obstacle_speed):
    """Head-on: at contact the robot does not move toward it (the contact is not its fault)."""
    rng = np.random.default_rng(3)
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    robot, mover, radius, out, t = 0.0, 2.5, 0.1, 0.0, 0.0
    for k in range(300):
        if k % 2 == 0:
            filt.set_scan(cylinder_scan(robot, mover, radius, rng), t)
        filt.set_command(0.26, 0.0, t)
        filt.set_odometry(out, 0.0, t)
        out = filt.step(t).linear
        for _ in range(10):  # the robot follows the output exactly
            robot += out * PERIOD / 10
            mover -= obstacle_speed * PERIOD / 10
            if mover - radius - robot <= 0.11:
                assert out <= 1e-9, f"at-fault contact at {out} m/s"
                return
        t += PERIOD
    pytest.fail("the mover never arrived")


def test_a_stopped_robot_may_back_away_from_a_mover_closing_in():
    rng = np.random.default_rng(4)
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    mover, t = 1.0, 0.0
    for k in range(20):
        if k % 2 == 0:
            filt.set_scan(cylinder_scan(0.0, mover, 0.1, rng), t)
        filt.set_command(-0.2, 0.0, t)
        out = filt.step(t)
        mover -= 0.4 * PERIOD
        t += PERIOD
    assert filt.status.closing_speed > 0.2
    assert out.linear == pytest.approx(-0.2)


def corridor_run(max_obstacle_speed: float) -> tuple[float, int]:
    """Drive 10 s down a noisy 0.7 m corridor; (distance, steps the guard cut)."""
    rng = np.random.default_rng(5)
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, max_obstacle_speed=max_obstacle_speed))
    beams = 360
    angles = -math.pi + 2 * math.pi / beams * np.arange(beams)
    x, out, t, cut = 0.0, 0.0, 0.0, 0
    for k in range(200):
        if k % 2 == 0:
            with np.errstate(divide="ignore"):
                ranges = np.abs(0.35 / np.sin(angles))
            ranges = ranges + rng.normal(0.0, 0.03, beams)
            ranges[ranges > 3.5] = np.inf
            filt.set_scan(scan_to_points(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5), t)
        filt.set_command(0.26, 0.0, t)
        filt.set_odometry(out, 0.0, t)
        result = filt.step(t)
        out = result.linear
        cut += COLLISION in result.reasons
        x += out * PERIOD
        t += PERIOD
    return x, cut


def test_a_noisy_static_corridor_is_not_taken_for_movers():
    """3 cm range noise (a poor lidar): motion estimation costs no progress and no stop."""
    with_motion, cut = corridor_run(0.5)
    static, _ = corridor_run(0.0)
    assert cut == 0
    assert with_motion == pytest.approx(static, abs=0.01)


def test_a_command_sent_after_a_clock_jump_back_is_fresh():
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    run(filt, wall_scan(3.0), (0.1, 0.0), 20, start=100.0)
    filt.set_scan(wall_scan(3.0), 50.0)
    filt.set_command(0.1, 0.0, 50.0)  # already in the new time base
    out = filt.step(50.0)
    assert out.state == "OK" and out.linear == pytest.approx(0.1)


def test_a_blind_stop_harder_than_max_decel_keeps_its_safety_reason():
    """Braking at emergency_decel to a zero request is a safety stop, not a plain ramp."""
    filt = SafetyFilter(SafetyConfig(limits=LIMITS))
    _, t = run(filt, wall_scan(3.0), (0.0, 0.24), 20)
    filt.reject_scan(t, "angle_increment_not_positive")
    filt.set_command(0.0, 0.0, t)
    out = filt.step(t)
    assert out.angular < 0.24 - 3.2 * PERIOD  # beyond max_decel's reach in one period
    assert BLIND in out.reasons
