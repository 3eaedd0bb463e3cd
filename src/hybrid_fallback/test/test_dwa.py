import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_fallback.dwa import DwaConfig, DwaPlanner, ObservedSector, grid_reduce, rollout_poses

CONFIG = DwaConfig()


def fine_rollout(linear: float, angular: float, horizon: float) -> np.ndarray:
    """The continuous arc sampled every millisecond: (steps, 2)."""
    times = np.arange(0.0, horizon + 1e-9, 0.001)
    x, y, _ = rollout_poses(np.array([linear]), np.array([angular]), times)
    return np.column_stack((x[0], y[0]))


def min_distance(path: np.ndarray, points: np.ndarray) -> float:
    if points.shape[0] == 0:
        return math.inf
    diff = path[:, None, :] - points[None, :, :]
    return float(np.sqrt((diff**2).sum(axis=2)).min())


def wall(x: float, y_from: float, y_to: float, spacing: float = 0.01) -> np.ndarray:
    ys = np.arange(y_from, y_to + 1e-9, spacing)
    return np.column_stack((np.full_like(ys, x), ys))


def test_rollout_poses_follow_unicycle_arcs():
    times = np.array([0.0, 0.5, 1.0])
    x, y, yaw = rollout_poses(np.array([0.2, 0.2]), np.array([0.0, 1.0]), times)
    np.testing.assert_allclose(x[0], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(y[0], [0.0, 0.0, 0.0])
    # Radius 0.2 arc to the left: x = r sin(t), y = r (1 - cos(t)).
    np.testing.assert_allclose(x[1], 0.2 * np.sin(times))
    np.testing.assert_allclose(y[1], 0.2 * (1 - np.cos(times)))
    np.testing.assert_allclose(yaw[1], times)


def test_grid_reduce_keeps_every_point_within_half_a_cell_diagonal():
    rng = np.random.default_rng(3)
    points = rng.uniform(-2.0, 2.0, (2000, 2))
    reduced = grid_reduce(points, 0.05)
    assert reduced.shape[0] < points.shape[0]
    diff = points[:, None, :] - reduced[None, :, :]
    nearest = np.sqrt((diff**2).sum(axis=2)).min(axis=1)
    assert nearest.max() <= 0.05 / math.sqrt(2.0) + 1e-12


def test_window_respects_accel_and_velocity_limits():
    planner = DwaPlanner(CONFIG)
    v, w = planner.window(0.25, 1.75)
    dv = CONFIG.max_linear_accel * CONFIG.control_period
    dw = CONFIG.max_angular_accel * CONFIG.control_period
    assert v.min() == pytest.approx(0.25 - dv) and v.max() == pytest.approx(0.26)
    assert w.min() == pytest.approx(1.75 - dw) and w.max() == pytest.approx(1.8)
    v0, w0 = planner.window(0.0, 0.0)
    assert v0.min() == 0.0 and ((v0 == 0.0) & (w0 == 0.0)).any()


def test_free_space_drives_toward_the_goal():
    planner = DwaPlanner(CONFIG)
    ahead = planner.compute(np.empty((0, 2)), (3.0, 0.0), (0.2, 0.0))
    assert ahead.reason == "best_sample" and ahead.linear > 0.2 and abs(ahead.angular) < 0.1
    left = planner.compute(np.empty((0, 2)), (-1.0, 2.0), (0.0, 0.0))
    assert left.angular > 0.0
    right = planner.compute(np.empty((0, 2)), (-1.0, -2.0), (0.0, 0.0))
    assert right.angular < 0.0


def test_slows_down_near_the_goal():
    planner = DwaPlanner(CONFIG)
    result = planner.compute(np.empty((0, 2)), (0.1, 0.0), (0.1, 0.0))
    assert result.linear <= CONFIG.goal_slowdown_gain * 0.1 + 1e-9


def test_wall_ahead_is_never_driven_into():
    planner = DwaPlanner(CONFIG)
    points = wall(0.35, -1.0, 1.0)
    result = planner.compute(points, (3.0, 0.0), (0.2, 0.0))
    path = fine_rollout(result.linear, result.angular, CONFIG.sim_time)
    assert min_distance(path, points) >= CONFIG.collision_radius


def test_no_safe_sample_stops_and_turns_toward_the_goal():
    # Moving fast with a slow brake: the window excludes v = 0 and every arc hits the wall.
    config = DwaConfig(max_linear_accel=0.2)
    planner = DwaPlanner(config)
    points = wall(0.3, -2.0, 2.0)
    result = planner.compute(points, (3.0, 1.0), (0.26, 0.0))
    assert result.reason == "no_safe_sample_rotate" and result.safe_samples == 0
    assert result.linear == 0.0 and result.angular > 0.0
    result = planner.compute(points, (3.0, -1.0), (0.26, 0.0))
    assert result.angular < 0.0


def test_no_safe_sample_in_contact_stops_without_turning():
    config = DwaConfig(max_linear_accel=0.2)
    planner = DwaPlanner(config)
    points = np.vstack((wall(0.3, -2.0, 2.0), [[0.05, 0.05]]))  # something inside the body
    result = planner.compute(points, (3.0, 1.0), (0.26, 0.0))
    assert result.reason == "no_safe_sample_stop"
    assert (result.linear, result.angular) == (0.0, 0.0)


def test_robot_inside_the_margin_can_back_away_but_not_approach():
    config = DwaConfig(min_linear_velocity=-0.1)
    planner = DwaPlanner(config)
    obstacle = np.array([[0.15, 0.0]])  # inside footprint + margin, outside the body
    result = planner.compute(obstacle, (3.0, 0.0), (0.0, 0.0))
    path = fine_rollout(result.linear, result.angular, config.sim_time)
    distances = np.hypot(path[:, 0] - 0.15, path[:, 1])
    assert distances.min() >= 0.15 - 1e-3  # never closer than it started (grid slack aside)
    assert result.safe_samples > 0


points_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2.0 * math.pi),
        st.floats(min_value=0.2, max_value=1.5),
    ),
    min_size=0,
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    polar=points_strategy,
    goal_angle=st.floats(min_value=-math.pi, max_value=math.pi),
    goal_distance=st.floats(min_value=0.3, max_value=5.0),
    linear=st.floats(min_value=0.0, max_value=0.26),
    angular=st.floats(min_value=-1.8, max_value=1.8),
)
def test_selected_rollout_never_hits_a_scan_point(
    polar, goal_angle, goal_distance, linear, angular
):
    planner = DwaPlanner(CONFIG)
    start_clear = CONFIG.check_radius  # points start outside the checked radius
    points = np.array(
        [(max(r, start_clear) * math.cos(a), max(r, start_clear) * math.sin(a)) for a, r in polar]
    ).reshape(-1, 2)
    goal = (goal_distance * math.cos(goal_angle), goal_distance * math.sin(goal_angle))
    result = planner.compute(points, goal, (linear, angular))
    if result.reason == "best_sample":
        path = fine_rollout(result.linear, result.angular, CONFIG.sim_time)
        assert min_distance(path, points) >= CONFIG.collision_radius - 1e-6
    else:
        assert result.linear == 0.0


def test_a_crossing_obstacle_changes_the_choice_only_when_it_is_tracked():
    planner = DwaPlanner(CONFIG)
    # Crossing the robot's straight path from the left, arriving there in about 1 s.
    moving = np.array([[0.25, 0.3, 0.0, -0.3, 0.2]])
    blind = planner.compute(np.zeros((0, 2)), (3.0, 0.0), (0.26, 0.0))
    tracked = planner.compute(np.zeros((0, 2)), (3.0, 0.0), (0.26, 0.0), moving=moving)
    assert (blind.linear, blind.angular) != (tracked.linear, tracked.angular)
    assert tracked.min_clearance >= 0.0 or tracked.reason != "best_sample"


HELD = DwaConfig(moving_horizon=4.0)


@pytest.mark.parametrize("config", [CONFIG, HELD], ids=["rollout", "held_to_4s"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=st.floats(-2.0, 2.0),
    y=st.floats(-1.5, 1.5),
    vx=st.floats(-0.6, 0.6),
    vy=st.floats(-0.6, 0.6),
    radius=st.floats(0.1, 0.3),
    speed=st.floats(0.0, 0.26),
)
def test_a_selected_rollout_is_not_met_by_a_moving_obstacle(config, x, y, vx, vy, radius, speed):
    """Along the rollout, and held at its end up to `moving_horizon` when that is longer."""
    planner = DwaPlanner(config)
    moving = np.array([[x, y, vx, vy, radius]])
    result = planner.compute(np.zeros((0, 2)), (3.0, 0.0), (speed, 0.0), moving=moving)
    if result.reason != "best_sample" or math.hypot(x, y) - radius <= config.check_radius:
        return
    path = fine_rollout(result.linear, result.angular, config.sim_time)
    horizon = max(config.moving_horizon, config.sim_time)
    times = np.arange(0.0, horizon + 1e-9, 0.001)
    held = np.vstack((path, np.repeat(path[-1:], times.size - path.shape[0], axis=0)))
    obstacle = np.column_stack((x + vx * times, y + vy * times))
    gap = np.hypot(*(held - obstacle).T) - radius
    assert gap.min() >= config.collision_radius - 1e-6


def test_standing_in_a_movers_way_is_refused_beyond_the_rollout():
    # A mover 1.6 m behind, walking up the robot's lane at 0.35 m/s: it reaches the robot in
    # about 4 s, after the 1.5-s rollouts end.
    moving = np.array([[-1.6, 0.0, 0.35, 0.0, 0.2]])
    short = DwaPlanner(CONFIG).compute(np.zeros((0, 2)), (0.0, 3.0), (0.0, 0.0), moving=moving)
    held = DwaPlanner(HELD).compute(np.zeros((0, 2)), (0.0, 3.0), (0.0, 0.0), moving=moving)
    assert short.moving_samples == 0
    assert held.moving_samples > 0


def test_with_no_way_clear_of_a_mover_the_robot_evades_it():
    # From standstill nothing leaves the lane in time: the pick is the latest meeting,
    # forward, away from the mover, not a stop in its way.
    moving = np.array([[-0.9, 0.0, 0.4, 0.0, 0.2]])
    result = DwaPlanner(HELD).compute(np.zeros((0, 2)), (3.0, 0.0), (0.0, 0.0), moving=moving)
    assert result.reason == "evade_moving"
    assert result.linear > 0.0


# --------------------------------------------------------------- unseen is not free


def outside_sector(points: np.ndarray, sector: ObservedSector) -> np.ndarray:
    """Per point: True where its bearing from the lidar lies outside the sector."""
    rel = points - np.asarray(sector.origin)
    bearing = np.arctan2(rel[:, 1], rel[:, 0])
    return np.mod(bearing - sector.start, 2.0 * math.pi) > sector.span + 1e-9


def footprint_samples(path: np.ndarray, radius: float) -> np.ndarray:
    """Points on the footprint circle (and the centre) at every pose of a path: (N, 2)."""
    phi = np.linspace(0.0, 2.0 * math.pi, 73)
    ring = np.column_stack((np.cos(phi), np.sin(phi))) * radius
    return np.concatenate(((path[:, None, :] + ring[None, :, :]).reshape(-1, 2), path))


def test_observed_sector_from_a_scan():
    assert ObservedSector.from_scan(-math.pi, math.radians(1.0), 360) is None  # full circle
    sector = ObservedSector.from_scan(-0.75 * math.pi, math.radians(1.0), 271, -0.032, 0.0, 0.1)
    assert sector is not None
    assert sector.start == pytest.approx(-0.75 * math.pi + 0.1)
    assert sector.span == pytest.approx(1.5 * math.pi)
    assert sector.origin == (-0.032, 0.0)
    assert sector.contains(0.0) and sector.contains(0.75 * math.pi)
    assert not sector.contains(math.pi) and not sector.contains(-0.8 * math.pi + 0.1)
    edges = sector.boundary_points(0.5, 0.02)
    assert edges.shape[0] > 40
    assert not outside_sector(edges[np.hypot(*(edges - sector.origin).T) > 1e-9], sector).any()
    for bad in ((math.nan, 0.01, 10), (0.0, 0.0, 10), (0.0, -0.01, 10), (0.0, 0.01, 0)):
        with pytest.raises(ValueError):
            ObservedSector.from_scan(*bad)
    with pytest.raises(ValueError):
        ObservedSector(start=0.0, span=2.0 * math.pi)


def test_reversing_into_the_unobserved_back_is_refused():
    planner = DwaPlanner(DwaConfig(min_linear_velocity=-0.2))
    sector = ObservedSector.from_scan(-0.75 * math.pi, math.radians(1.0), 271, -0.032, 0.0)
    empty = np.zeros((0, 2))
    # Goal behind, nothing seen: with the full circle observed it backs up ...
    seen = planner.compute(empty, (-2.0, 0.0), (-0.1, 0.0))
    assert seen.linear < 0.0 and seen.blind_samples == 0
    # ... with a 270-degree front lidar the back is unobserved: no reverse at all.
    for velocity in ((0.0, 0.0), (-0.1, 0.0), (-0.1, 1.0)):
        result = planner.compute(empty, (-2.0, 0.0), velocity, observed_sector=sector)
        assert result.linear >= 0.0
        assert result.blind_samples > 0
    # Turning on the spot stays possible (it sweeps no new area).
    result = planner.compute(empty, (-2.0, 0.0), (0.0, 0.0), observed_sector=sector)
    assert result.linear == 0.0 and result.angular != 0.0
    # Edges of unobserved space given as points have the same effect.
    edges = sector.boundary_points(1.0, 0.02)
    result = planner.compute(empty, (-2.0, 0.0), (0.0, 0.0), unobserved_edges=edges)
    assert result.linear >= 0.0 and result.blind_samples > 0
    result = planner.compute(empty, (-2.0, 0.0), (0.0, 0.0), unobserved_edges=np.zeros((0, 2)))
    assert result.linear < 0.0


def test_forward_driving_is_unchanged_by_an_unobserved_back():
    planner = DwaPlanner(CONFIG)
    sector = ObservedSector.from_scan(-0.75 * math.pi, math.radians(1.0), 271, -0.032, 0.0)
    points = wall(1.0, -2.0, 0.3)
    for goal, velocity in (((3.0, 0.5), (0.2, 0.0)), ((1.0, 2.0), (0.1, 0.5))):
        full = planner.compute(points, goal, velocity)
        front = planner.compute(points, goal, velocity, observed_sector=sector)
        assert (front.linear, front.angular) == (full.linear, full.angular)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.floats(-math.pi, math.pi),
    span=st.floats(0.2 * math.pi, 1.9 * math.pi),
    origin_x=st.floats(-0.05, 0.05),
    origin_y=st.floats(-0.05, 0.05),
    goal_angle=st.floats(-math.pi, math.pi),
    goal_distance=st.floats(0.3, 5.0),
    linear=st.floats(-0.2, 0.26),
    angular=st.floats(-1.8, 1.8),
)
def test_selected_rollout_never_carries_the_footprint_into_unobserved_space(
    start, span, origin_x, origin_y, goal_angle, goal_distance, linear, angular
):
    config = DwaConfig(min_linear_velocity=-0.2)
    planner = DwaPlanner(config)
    sector = ObservedSector(start=start, span=span, origin=(origin_x, origin_y))
    goal = (goal_distance * math.cos(goal_angle), goal_distance * math.sin(goal_angle))
    result = planner.compute(np.zeros((0, 2)), goal, (linear, angular), observed_sector=sector)
    path = fine_rollout(result.linear, result.angular, config.sim_time)
    body = footprint_samples(path, config.footprint_radius)
    unseen = body[outside_sector(body, sector)]
    # Only space the body covered at the start may be entered (grid rounding aside).
    assert np.hypot(unseen[:, 0], unseen[:, 1]).max(initial=0.0) <= (config.footprint_radius + 1e-3)
