import math
from collections import deque
from dataclasses import replace

import numpy as np
import pytest

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world, world_from_dict
from sim_bringup.movers import WaypointLoop
from sim_bringup.sim_core import (
    PHYSICS_TIMESTEP,
    Simulator,
    wheel_speeds,
    without_sensor_noise,
)

CONTROL_DT = 0.05


@pytest.fixture(scope="module")
def robot():
    return load_robot_profile("default")


def box_world(size: float = 4.0, **extra) -> object:
    data = {
        "name": "box",
        "arena": {"size": [size, size], "wall_thickness": 0.1},
        "start": {"x": 0.0, "y": 0.0, "yaw": 0.0},
        "goals": [[1.0, 0.0]],
        "goal_tolerance": 0.2,
    }
    data.update(extra)
    return world_from_dict(data, "box_world")


def fixed_randomization(robot, **ranges):
    """A profile whose randomization ranges are single values (or given ranges)."""
    values = {k: (v, v) if isinstance(v, float) else v for k, v in ranges.items()}
    return replace(robot, randomization=replace(robot.randomization, **values))


def drive(sim: Simulator, v: float, w: float, seconds: float) -> None:
    for _ in range(int(round(seconds / CONTROL_DT))):
        sim.step(v, w, CONTROL_DT)


def test_straight_at_max_speed_when_asked_for_0_3(robot):
    # The default robot tops out at 0.22 m/s (Burger), so 0.3 m/s is clamped: 5 s at
    # 0.22 m/s is 1.10 m. Tolerance 3 %: the ~0.1 s spin-up loses about 1 cm and the
    # soft contacts add sub-centimetre creep.
    sim = Simulator(robot, box_world(8.0), seed=1)
    drive(sim, 0.3, 0.0, 5.0)
    x, y, yaw = sim.pose
    assert sim.time == pytest.approx(5.0)
    assert x == pytest.approx(robot.max_linear_velocity * 5.0, rel=0.03)
    assert abs(y) < 0.02 and abs(yaw) < 0.02
    assert sim.velocity[0] == pytest.approx(robot.max_linear_velocity, rel=0.02)
    assert sim.collision_count == 0


def test_straight_0_3_m_per_s_for_5_s_moves_1_5_m(robot):
    # With a faster wheel limit (10 rad/s -> 0.33 m/s) the 0.3 m/s case applies
    # directly: 1.5 m within 3 % (same spin-up and contact creep argument as above).
    fast = replace(robot, max_wheel_speed=10.0)
    sim = Simulator(fast, box_world(8.0), seed=1)
    sim.reset(start=(-2.0, 0.0, 0.0))
    drive(sim, 0.3, 0.0, 5.0)
    assert sim.pose[0] - (-2.0) == pytest.approx(1.5, rel=0.03)
    assert sim.velocity[0] == pytest.approx(0.3, rel=0.02)


def test_turn_in_place_rate(robot):
    sim = Simulator(robot, box_world(), seed=1)
    drive(sim, 0.0, 1.0, 1.0)
    assert sim.velocity[1] == pytest.approx(1.0, rel=0.05)
    assert math.hypot(*sim.pose[:2]) < 0.02


def analytic_square_ranges(half: float, origin, heading: float, angles: np.ndarray) -> np.ndarray:
    """Distances from `origin` to the inside of the square |x|,|y| <= half along each beam."""
    directions = angles + heading
    c, s = np.cos(directions), np.sin(directions)
    with np.errstate(divide="ignore"):
        tx = np.where(c > 0, (half - origin[0]) / c, (-half - origin[0]) / c)
        ty = np.where(s > 0, (half - origin[1]) / s, (-half - origin[1]) / s)
    return np.minimum(np.abs(tx), np.abs(ty))


@pytest.mark.parametrize("yaw", [0.0, 0.7])
def test_scan_in_box_world_matches_analytic_ranges(robot, yaw):
    quiet = without_sensor_noise(robot)
    sim = Simulator(quiet, box_world(4.0), seed=0)
    sim.reset(start=(0.3, -0.2, yaw))
    scan = sim.scan()
    x, y, heading = sim.pose
    mount = (
        x + quiet.lidar.mount_x * math.cos(heading),
        y + quiet.lidar.mount_x * math.sin(heading),
    )
    expected = analytic_square_ranges(2.0, mount, heading, scan.angles)
    assert scan.ranges.dtype == np.float32 and scan.ranges.size == 360
    np.testing.assert_allclose(scan.ranges, expected, atol=2e-3)
    # Beam 180 points straight ahead (angle 0): REP-103 counter-clockwise from -pi.
    assert scan.angles[180] == pytest.approx(0.0, abs=1e-12)


def test_scan_marks_no_return_as_inf_and_sees_cylinders(robot):
    quiet = without_sensor_noise(robot)
    world = box_world(12.0, cylinders=[{"center": [1.0, 0.0], "radius": 0.2}])
    sim = Simulator(quiet, world, seed=0)
    scan = sim.scan()
    ahead = scan.ranges[180]
    assert ahead == pytest.approx(1.0 - 0.2 - quiet.lidar.mount_x, abs=2e-3)
    behind = scan.ranges[0]
    assert np.isposinf(behind)  # wall 6 m away, beyond range_max 3.5 m
    assert not np.isnan(scan.ranges).any()


def test_scan_too_close_is_negative_inf(robot):
    quiet = without_sensor_noise(robot)
    world = box_world(4.0, boxes=[{"center": [0.15, 0.0], "size": [0.1, 0.6]}])
    sim = Simulator(quiet, world, seed=0)
    sim.reset(start=(0.0, 0.0, 0.0))
    # Lidar at x=-0.032 sees the box face at 0.10 -> 0.132 m > range_min 0.12: a hit.
    assert sim.scan().ranges[180] == pytest.approx(0.132, abs=2e-3)
    sim.reset(start=(0.02, 0.0, 0.0))
    assert np.isneginf(sim.scan().ranges[180])  # 0.112 m < range_min


def test_driving_into_wall_is_exactly_one_collision_episode(robot):
    sim = Simulator(robot, box_world(4.0), seed=0)
    drive(sim, 0.3, 0.0, 12.0)  # reaches the wall after ~8 s and keeps pushing
    assert sim.in_collision
    assert sim.collision_count == 1
    assert sim.pose[0] < 2.0 - robot.footprint_radius + 0.01
    drive(sim, -0.2, 0.0, 2.0)
    assert not sim.in_collision
    assert sim.collision_count == 1
    drive(sim, 0.2, 0.0, 4.0)
    assert sim.collision_count == 2  # a new contact after backing off is a new episode


def test_wheel_floor_contact_is_not_a_collision(robot):
    sim = Simulator(robot, box_world(4.0), seed=0)
    drive(sim, 0.1, 0.5, 3.0)
    assert sim.data.ncon > 0  # wheels and caster on the floor
    assert not sim.in_collision and sim.collision_count == 0


def trajectory(sim: Simulator, seconds: float = 4.0) -> np.ndarray:
    rows = []
    for i in range(int(seconds / CONTROL_DT)):
        sim.step(0.25, math.sin(i * 0.1), CONTROL_DT)
        odom = sim.odometry()
        rows.append([*sim.pose, odom.x, odom.y, *sim.velocity])
    return np.array(rows)


def test_same_seed_same_trajectory(robot):
    world = load_world("dynamic")
    first = Simulator(robot, world, seed=7, randomize=True)
    second = Simulator(robot, world, seed=7, randomize=True)
    np.testing.assert_array_equal(trajectory(first), trajectory(second))
    np.testing.assert_array_equal(first.scan().ranges, second.scan().ranges)
    other = Simulator(robot, world, seed=8, randomize=True)
    assert other.params != first.params
    first.reset(seed=7)
    np.testing.assert_array_equal(
        trajectory(first), trajectory(second.__class__(robot, world, 7, True))
    )


def test_reset_without_seed_gives_a_new_but_reproducible_episode(robot):
    world = load_world("empty")
    a = Simulator(robot, world, seed=3, randomize=True)
    b = Simulator(robot, world, seed=3, randomize=True)
    first_params = a.params
    a.reset()
    b.reset()
    assert a.params == b.params != first_params


def test_randomization_stays_in_ranges_and_changes_the_model(robot):
    ranges = robot.randomization
    world = load_world("empty")
    sim = Simulator(robot, world, seed=0, randomize=True)
    seen = []
    for seed in range(20):
        sim.reset(seed=seed)
        p = sim.params
        seen.append(p)
        for name in ("friction", "mass", "wheel_radius", "actuator_delay"):
            low, high = getattr(ranges, name)
            assert low <= getattr(p, name) <= high
        assert ranges.lidar_noise[0] <= p.lidar_noise <= ranges.lidar_noise[1]
        assert ranges.lidar_dropout[0] <= p.lidar_dropout <= ranges.lidar_dropout[1]
        m = sim.model
        assert m.body_mass[sim._base_body] == pytest.approx(p.mass)
        assert all(m.geom_friction[g, 0] == pytest.approx(p.friction) for g in sim._wheel_geoms)
        assert all(m.geom_size[g, 0] == pytest.approx(p.wheel_radius) for g in sim._wheel_geoms)
    for name in ("friction", "mass", "wheel_radius", "actuator_delay", "lidar_noise"):
        assert len({getattr(p, name) for p in seen}) == len(seen)
    nominal = Simulator(robot, world, seed=0, randomize=False)
    assert nominal.params == nominal.nominal_parameters()


def test_payload_mass_slows_acceleration(robot):
    light = Simulator(fixed_randomization(robot, mass=0.8), box_world(), randomize=True)
    heavy = Simulator(fixed_randomization(robot, mass=4.0), box_world(), randomize=True)
    for sim in (light, heavy):
        drive(sim, 0.22, 0.0, 0.1)
    assert heavy.velocity[0] < 0.8 * light.velocity[0]


def test_low_friction_makes_wheels_slip(robot):
    grippy = Simulator(fixed_randomization(robot, friction=1.2), box_world(), randomize=True)
    icy = Simulator(fixed_randomization(robot, friction=0.05), box_world(), randomize=True)
    for sim in (grippy, icy):
        drive(sim, 0.22, 0.0, 0.15)
    assert icy.velocity[0] < 0.7 * grippy.velocity[0]
    assert icy.odometry().x - icy.pose[0] > 0.005  # wheels spun, odometry overshoots


def test_actuator_delay_postpones_motion(robot):
    delayed = Simulator(fixed_randomization(robot, actuator_delay=0.2), box_world(), randomize=True)
    drive(delayed, 0.2, 0.0, 0.15)
    assert abs(delayed.velocity[0]) < 0.01
    drive(delayed, 0.2, 0.0, 0.3)
    assert delayed.velocity[0] > 0.1


def test_wheel_radius_makes_odometry_drift(robot):
    big = fixed_randomization(robot, wheel_radius=0.036)
    sim = Simulator(big, box_world(8.0), randomize=True)
    drive(sim, 0.2, 0.0, 4.0)
    travelled, reported = sim.pose[0], sim.odometry().x
    assert travelled / reported == pytest.approx(0.036 / robot.wheel_radius, rel=0.01)
    nominal = Simulator(robot, box_world(8.0))
    drive(nominal, 0.2, 0.0, 4.0)
    assert nominal.odometry().x == pytest.approx(nominal.pose[0], abs=0.01)


def test_lidar_noise_and_dropout_follow_parameters(robot):
    noisy_robot = fixed_randomization(robot, lidar_noise=0.05, lidar_dropout=0.2)
    noisy = Simulator(noisy_robot, box_world(4.0), randomize=True)
    exact = Simulator(without_sensor_noise(robot), box_world(4.0))
    errors, dropped = [], 0
    for _ in range(10):
        ranges = noisy.scan().ranges
        dropped += int(np.isnan(ranges).sum())
        valid = np.isfinite(ranges)
        errors.append((ranges - exact.scan().ranges)[valid])
    assert np.std(np.concatenate(errors)) == pytest.approx(0.05, rel=0.15)
    assert dropped / 3600 == pytest.approx(0.2, abs=0.03)


def test_nan_and_huge_commands_are_clamped(robot):
    sim = Simulator(robot, box_world(8.0), seed=0)
    sim.step(float("nan"), float("inf"), 1.0)
    assert math.hypot(*sim.pose[:2]) < 1e-3 and abs(sim.pose[2]) < 1e-3
    drive(sim, 1e9, 0.0, 1.0)
    left, right = sim.wheel_velocities
    assert max(abs(left), abs(right)) <= robot.max_wheel_speed * 1.01
    assert sim.velocity[0] <= robot.max_linear_velocity * 1.02
    assert all(math.isfinite(v) for v in (*sim.pose, *sim.velocity))
    sim.step(0.1, 0.0, float("nan"))  # a bad duration does nothing
    assert sim.time == pytest.approx(2.0)


def test_wheel_speed_clamp_keeps_turn_radius():
    left, right = wheel_speeds(1.0, 2.0, 0.033, 0.16, 6.67)
    assert max(abs(left), abs(right)) == pytest.approx(6.67)
    v = 0.033 * (left + right) / 2
    w = 0.033 * (right - left) / 0.16
    assert w / v == pytest.approx(2.0)
    assert wheel_speeds(float("nan"), 0.5, 0.033, 0.16, 6.67) == wheel_speeds(
        0.0, 0.5, 0.033, 0.16, 6.67
    )


def test_step_time_does_not_drift(robot):
    sim = Simulator(robot, box_world(), seed=0)
    for _ in range(300):
        sim.step(0.0, 0.0, 0.0123)
    assert sim.time == pytest.approx(300 * 0.0123, abs=PHYSICS_TIMESTEP)


def test_moving_obstacles_follow_waypoint_loops(robot):
    loop = WaypointLoop(((0.0, 0.0), (2.0, 0.0)), speed=0.5)
    assert loop.position(0.0) == (0.0, 0.0)
    assert loop.position(2.0) == pytest.approx((1.0, 0.0))
    assert loop.position(6.0) == pytest.approx((1.0, 0.0))  # on the way back
    assert loop.position(8.0) == pytest.approx((0.0, 0.0))
    world = load_world("dynamic")
    sim = Simulator(without_sensor_noise(robot), world, seed=0)
    before = sim.obstacles().cylinders[sim.obstacles().moving].copy()
    drive(sim, 0.0, 0.0, 2.0)
    after = sim.obstacles().cylinders[sim.obstacles().moving]
    moved = np.hypot(*(after[:, :2] - before[:, :2]).T)
    expected = [mover.speed * 2.0 for mover in world.moving_cylinders]
    np.testing.assert_allclose(moved, expected, atol=1e-6)
    # The physics mocap body is where the geometry says it is.
    np.testing.assert_allclose(sim.data.mocap_pos[:, :2], after[:, :2], atol=0.03)


def test_moving_obstacle_pushes_into_robot_counts_as_collision(robot):
    world = box_world(
        6.0,
        moving_cylinders=[{"radius": 0.2, "speed": 0.3, "waypoints": [[-2.0, 0.0], [2.0, 0.0]]}],
    )
    sim = Simulator(robot, world, seed=0)
    drive(sim, 0.0, 0.0, 8.0)
    assert sim.collision_count >= 1


def test_driving_into_a_wall_is_an_at_fault_collision(robot):
    sim = Simulator(robot, box_world(4.0), seed=0)
    drive(sim, 0.2, 0.0, 12.0)  # reaches the wall and keeps pushing
    assert sim.collision_count == 1
    assert sim.at_fault_collision_count == 1


def test_reversing_into_a_wall_is_an_at_fault_collision(robot):
    # The contact is behind the robot: the normal must be oriented robot -> obstacle.
    sim = Simulator(robot, box_world(4.0), seed=0)
    sim.reset(start=(1.5, 0.0, math.pi))
    drive(sim, -0.2, 0.0, 6.0)
    assert sim.collision_count == 1
    assert sim.at_fault_collision_count == 1


def mover_world(speed: float) -> object:
    return box_world(
        6.0,
        moving_cylinders=[{"radius": 0.2, "speed": speed, "waypoints": [[-2.0, 0.0], [2.5, 0.0]]}],
    )


def test_mover_hitting_a_standing_robot_is_not_at_fault(robot):
    sim = Simulator(robot, mover_world(0.3), seed=0)
    drive(sim, 0.0, 0.0, 8.0)
    assert sim.collision_count >= 1
    assert sim.at_fault_collision_count == 0


def test_mover_catching_up_with_a_retreating_robot_is_not_at_fault(robot):
    # The robot drives away (+x) at 0.1 m/s; the mover comes from behind at 0.3 m/s.
    sim = Simulator(robot, mover_world(0.3), seed=0)
    for _ in range(int(12.0 / CONTROL_DT)):  # it catches up after ~8.5 s
        sim.step(0.1, 0.0, CONTROL_DT)
        if sim.collision_count:
            break
    assert sim.collision_count == 1
    assert sim.at_fault_collision_count == 0


def test_driving_into_a_mover_is_at_fault(robot):
    # A slow mover crossing ahead; the robot drives straight into its side.
    world = box_world(
        6.0,
        moving_cylinders=[{"radius": 0.2, "speed": 0.02, "waypoints": [[0.8, 0.0], [0.8, 2.0]]}],
    )
    sim = Simulator(robot, world, seed=0)
    drive(sim, 0.2, 0.0, 5.0)
    assert sim.collision_count == 1
    assert sim.at_fault_collision_count == 1


def free_space_grid(sim: Simulator, clearance: float, cell: float = 0.05):
    half_x, half_y = sim.world.arena_size[0] / 2, sim.world.arena_size[1] / 2
    xs = np.arange(-half_x + cell / 2, half_x, cell)
    ys = np.arange(-half_y + cell / 2, half_y, cell)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    free = np.ones_like(gx, dtype=bool)
    obstacles = sim.obstacles()
    for cx, cy, sx, sy, yaw in obstacles.boxes:
        dx, dy = gx - cx, gy - cy
        lx = np.abs(np.cos(yaw) * dx + np.sin(yaw) * dy) - sx / 2
        ly = np.abs(-np.sin(yaw) * dx + np.cos(yaw) * dy) - sy / 2
        free &= np.hypot(np.maximum(lx, 0), np.maximum(ly, 0)) > clearance
    for (cx, cy, r), moving in zip(obstacles.cylinders, obstacles.moving, strict=True):
        if not moving:
            free &= np.hypot(gx - cx, gy - cy) - r > clearance
    return xs, ys, free


def cell_of(xs, ys, point):
    return int(np.argmin(np.abs(xs - point[0]))), int(np.argmin(np.abs(ys - point[1])))


def reachable(free, start, goal) -> bool:
    seen, queue = {start}, deque([start])
    while queue:
        i, j = queue.popleft()
        if (i, j) == goal:
            return True
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            n = (i + di, j + dj)
            if 0 <= n[0] < free.shape[0] and 0 <= n[1] < free.shape[1]:
                if free[n] and n not in seen:
                    seen.add(n)
                    queue.append(n)
    return False


@pytest.mark.parametrize("name", ["empty", "corridor", "warehouse", "dynamic"])
def test_world_goals_are_reachable_with_clearance(robot, name):
    sim = Simulator(robot, load_world(name), seed=0)
    xs, ys, free = free_space_grid(sim, robot.footprint_radius + 0.03)
    points = [sim.world.start[:2], *sim.world.goals]
    cells = [cell_of(xs, ys, p) for p in points]
    for point, cell in zip(points, cells, strict=True):
        assert free[cell], f"{name}: {point} is too close to an obstacle"
    for a, b in zip(cells, cells[1:], strict=False):
        assert reachable(free, a, b), f"{name}: no path from {a} to {b}"
    assert not sim.in_collision


def test_corridor_gaps_are_about_two_and_a_half_robot_widths(robot):
    world = load_world("corridor")
    half_y = world.arena_size[1] / 2
    gaps = []
    for wall in world.walls:
        top, bottom = max(wall.start[1], wall.end[1]), min(wall.start[1], wall.end[1])
        gaps.append(max(half_y - top, bottom + half_y))
    for gap in gaps:
        assert gap / (2 * robot.footprint_radius) == pytest.approx(2.5, abs=0.1)
