"""Property tests of the safety filter core (hypothesis)."""

import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safety_controller_test_support import TEST_LIMITS

from safety_controller.footprint import Footprint, parse_polygon
from safety_controller.safety_filter import (
    HARD_STOP_REASONS,
    SAFETY_REASONS,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import ScanPoints

LIMITS = TEST_LIMITS
FOOTPRINTS = {
    "circle": Footprint(radius=0.11, margin=0.05),
    "rectangle": Footprint(
        polygon=parse_polygon("[[0.2, 0.12], [-0.12, 0.12], [-0.12, -0.12], [0.2, -0.12]]"),
        margin=0.04,
    ),
}
REACTION_TIME = 0.15
MAX_DT = REACTION_TIME / 1.5

weird = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 1e6, -1e6, 0.0])
speed = st.one_of(
    st.floats(-0.4, 0.4),
    st.floats(-3.0, 3.0),
    weird,
    st.floats(allow_nan=True, allow_infinity=True),
)
forward = st.floats(0.1, 0.5)
# (linear, angular, dt, scan every n steps, held for n steps); mostly driving forward.
commands = st.lists(
    st.tuples(
        st.one_of(forward, forward, speed),
        speed,
        st.floats(0.005, MAX_DT),
        st.integers(1, 4),
        st.integers(1, 12),
    ),
    min_size=3,
    max_size=20,
)
# (bearing, distance beyond the inflated footprint, wall length; 0 = a single point)
obstacles = st.lists(
    st.tuples(
        st.floats(0.0, 2 * math.pi),
        st.floats(0.0, 1.2),
        st.sampled_from([0.0, 0.0, 0.5, 2.0]),
    ),
    min_size=1,
    max_size=12,
)


def obstacle_points(polar, footprint) -> np.ndarray:
    """Points and walls (segments of points facing the robot) outside footprint+margin."""
    points = []
    for bearing, distance, length in polar:
        r = footprint.bounding_radius + 0.01 + distance
        centre = np.array([r * math.cos(bearing), r * math.sin(bearing)])
        along = np.array([-math.sin(bearing), math.cos(bearing)])
        count = max(1, int(length / 0.02))
        offsets = np.linspace(-length / 2, length / 2, count) if length else [0.0]
        for offset in offsets:
            point = centre + offset * along
            points.append(point)
    return np.array(points)


def in_robot_frame(world: np.ndarray, pose: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    d = world - pose[:2]
    return np.column_stack((c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]))


def follow(pose: np.ndarray, v: float, w: float, duration: float, world, footprint) -> float:
    """Move the robot with (v, w) by small midpoint steps; the smallest clearance seen."""
    steps = max(1, math.ceil(duration / 0.004))
    h = duration / steps
    frames = []
    for _ in range(steps):
        heading = pose[2] + w * h / 2.0
        pose += (v * h * math.cos(heading), v * h * math.sin(heading), w * h)
        frames.append(in_robot_frame(world, pose))
    return float(footprint.clearance(np.concatenate(frames)).min())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(sorted(FOOTPRINTS)),
    polar=obstacles,
    stream=commands,
)
def test_robot_following_the_filter_never_touches_an_obstacle(shape, polar, stream):
    footprint = FOOTPRINTS[shape]
    world = obstacle_points(polar, footprint)
    filt = SafetyFilter(
        SafetyConfig(
            limits=LIMITS, footprint=footprint, reaction_time=REACTION_TIME, closed_loop=False
        )
    )
    pose = np.zeros(3)
    now, last_time, previous, since_scan = 0.0, 0.0, (0.0, 0.0), 0
    guard_braked = False
    held = [(v, w, dt, n) for v, w, dt, n, repeat in stream for _ in range(repeat)]
    for v_cmd, w_cmd, dt, scan_every in held:
        if since_scan == 0:
            points = in_robot_frame(world, pose)
            filt.set_scan(ScanPoints(points, points.shape[0], points.shape[0]), now)
        since_scan = (since_scan + 1) % scan_every
        filt.set_command(v_cmd, w_cmd, now)
        out = filt.step(now)
        v, w = out.linear, out.angular
        guard_braked |= "collision" in out.reasons

        assert math.isfinite(v) and math.isfinite(w)
        assert LIMITS.min_velocity[0] <= v <= LIMITS.max_velocity[0]
        assert LIMITS.min_velocity[1] <= w <= LIMITS.max_velocity[1]
        assert 0.0 <= out.scale <= 1.0
        if not out.reasons & HARD_STOP_REASONS and now > 0.0:
            elapsed = now - last_time
            emergency = bool(out.reasons & SAFETY_REASONS)
            for axis, (new, old) in enumerate(((v, previous[0]), (w, previous[1]))):
                accel = LIMITS.max_accel[axis]
                decel = -(LIMITS.emergency_decel if emergency else LIMITS.max_decel)[axis]
                assert abs(new - old) <= max(accel, decel) * elapsed + 1e-9
                if abs(new) > abs(old) and new * old >= 0.0:
                    assert abs(new) - abs(old) <= accel * elapsed + 1e-9

        clearance = follow(pose, v, w, dt, world, footprint)
        # The inflated footprint (margin included) is never entered.
        assert clearance >= -1e-6, f"obstacle {clearance} m inside footprint+margin"
        previous, last_time = (v, w), now
        now += dt
    event(f"collision guard braked: {guard_braked}")


@settings(max_examples=40, deadline=None)
@given(stream=commands)
def test_without_scan_data_the_output_only_ever_brakes(stream):
    filt = SafetyFilter(SafetyConfig(limits=LIMITS, closed_loop=True))
    now, measured = 0.0, (0.0, 0.0)
    for v_cmd, w_cmd, dt, _, _ in stream:
        # Odometry is as wild as the commands; a non-finite one is ignored.
        if filt.set_odometry(v_cmd, w_cmd, now):
            measured = (v_cmd, w_cmd)
        filt.set_command(v_cmd, w_cmd, now)
        out = filt.step(now)
        for axis, value in enumerate((out.linear, out.angular)):
            assert math.isfinite(value)
            assert LIMITS.min_velocity[axis] <= value <= LIMITS.max_velocity[axis]
            assert abs(value) <= abs(measured[axis]) and value * measured[axis] >= 0.0
        assert out.scale == 0.0 and out.state in ("NO_SCAN", "INVALID_INPUT")
        now += dt
