import math

import numpy as np
import pytest

from rl_training.mover_scenes import (
    CORRIDOR_WIDTH,
    FAMILIES,
    MOVER_RADIUS,
    MOVER_SPEED,
    OVERTAKING_SPEED,
    PASSING_GAP,
    WALL_GAP,
    loop_length,
    phased_loop,
    scene_task,
)
from rl_training.worlds import FreeSpaceGrid, TaskSettings, moving_clearance, static_clearance
from sim_bringup.movers import WaypointLoop

SETTINGS = TaskSettings()
SEEDS = range(970_000, 970_012)


def scenes(family):
    return [scene_task(family, seed, SETTINGS) for seed in SEEDS]


def positions(mover, times):
    return WaypointLoop(mover.waypoints, mover.speed).positions(np.asarray(times))


@pytest.mark.parametrize("offset", [0.0, 0.3, 1.0, 2.5, 3.999, 4.0, 5.7, -0.4])
def test_a_phased_loop_is_the_same_loop_shifted_in_time(offset):
    loop = ((0.0, 0.0), (1.0, 0.0), (1.0, 3.0))  # perimeter 1 + 3 + sqrt(10)
    speed = 0.3
    times = np.linspace(0.0, 60.0, 601)
    shifted = WaypointLoop(phased_loop(loop, offset), speed).positions(times)
    reference = WaypointLoop(loop, speed).positions(times + offset / speed)
    np.testing.assert_allclose(shifted, reference, atol=1e-9)
    assert loop_length(phased_loop(loop, offset)) == pytest.approx(loop_length(loop))


def test_a_phased_loop_needs_two_waypoints_and_a_finite_offset():
    with pytest.raises(ValueError):
        phased_loop(((0.0, 0.0),), 1.0)
    with pytest.raises(ValueError):
        phased_loop(((0.0, 0.0), (1.0, 0.0)), math.nan)


def test_an_unknown_family_is_named_in_the_error():
    with pytest.raises(ValueError, match="swarm"):
        scene_task("swarm", 1)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_scene_is_seeded_checked_and_connected(family):
    tasks = scenes(family)
    again = scene_task(family, SEEDS[0], SETTINGS)
    assert again == tasks[0]  # a function of (family, seed)
    assert len({t.world for t in tasks}) == len(tasks)  # seeds give different scenes
    for seed, task in zip(SEEDS, tasks, strict=True):
        assert task.label == f"{family}/{seed}"
        world = task.world
        assert world.moving_cylinders
        ends = np.array([task.start[:2], task.goal])
        assert np.all(static_clearance(world, ends) > SETTINGS.footprint_radius + 0.15)
        goal_to_movers = moving_clearance(world, ends[1:])[0]
        assert goal_to_movers > SETTINGS.footprint_radius + SETTINGS.moving_clearance
        if family != "overtaking":  # the overtaking mover's lane may run through the start
            start_to_movers = moving_clearance(world, ends[:1])[0]
            assert start_to_movers > SETTINGS.footprint_radius + SETTINGS.moving_clearance
        grid = FreeSpaceGrid(world, SETTINGS.footprint_radius + SETTINGS.path_inflation)
        assert math.isfinite(grid.path_length(task.start[:2], task.goal))
        assert task.path_length >= math.dist(task.start[:2], task.goal) - 1e-9
        for mover in world.moving_cylinders:
            assert MOVER_RADIUS[0] <= mover.radius <= MOVER_RADIUS[1]
            assert MOVER_SPEED[0] <= mover.speed <= MOVER_SPEED[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_movers_do_not_all_start_on_a_corner_of_their_path(family):
    on_corner = 0
    for task in scenes(family):
        for mover in task.world.moving_cylinders:
            first = np.asarray(mover.waypoints[0])
            corners = np.asarray(mover.waypoints[1:])
            on_corner += bool(np.min(np.hypot(*(corners - first).T)) < 1e-6)
    assert on_corner == 0  # phases are continuous: the first point is never repeated


def test_a_crossing_mover_is_on_the_route_when_a_robot_would_be():
    for task in scenes("crossing"):
        (mover,) = task.world.moving_cylinders
        start, goal = np.asarray(task.start[:2]), np.asarray(task.goal)
        a, b = np.asarray(mover.waypoints[1]), np.asarray(mover.waypoints[2])
        # The crossing point: the mover's line meets the straight route.
        matrix = np.column_stack((goal - start, a - b))
        u, v = np.linalg.solve(matrix, a - start)
        assert 0.3 < u < 0.7 and 0.0 < v < 1.0
        crossing = start + u * (goal - start)
        distance = float(np.hypot(*(crossing - start)))
        earliest = min(distance / 0.22 - 1.5, 0.5)
        times = np.arange(max(earliest, 0.0), distance / 0.12 + 1.5, 0.01)
        gap = np.min(np.hypot(*(positions(mover, times) - crossing).T))
        assert gap < 0.01
        direction = (b - a) / np.linalg.norm(b - a)
        route = (goal - start) / np.linalg.norm(goal - start)
        angle = math.degrees(math.acos(abs(float(direction @ route))))
        assert angle >= 60.0 - 1e-6


def corridor_checks(task):
    width = task.world.arena_size[1]
    assert CORRIDOR_WIDTH[0] <= width <= CORRIDOR_WIDTH[1]
    (mover,) = task.world.moving_cylinders
    lane_y = mover.waypoints[0][1]
    assert all(y == lane_y for _, y in mover.waypoints)
    near_wall = width / 2.0 - abs(lane_y) - mover.radius
    passing = width / 2.0 + abs(lane_y) - mover.radius
    assert near_wall >= WALL_GAP - 1e-9 and passing >= PASSING_GAP - 1e-9
    return mover


def test_a_head_on_mover_walks_toward_the_robot_and_leaves_a_passing_gap():
    for task in scenes("headon"):
        mover = corridor_checks(task)
        (x0, _), (x1, _) = positions(mover, [0.0, 0.5])
        assert x1 < x0  # the robot starts at -x, the mover comes from +x
        assert x0 > task.start[0] + 1.0


def test_an_overtaking_mover_comes_from_behind_and_catches_up():
    for task in scenes("overtaking"):
        mover = corridor_checks(task)
        assert OVERTAKING_SPEED[0] <= mover.speed <= OVERTAKING_SPEED[1]
        assert mover.speed > SETTINGS.max_speed
        (x0, _), (x1, _) = positions(mover, [0.0, 0.5])
        assert x1 > x0 and task.start[0] - x0 >= 0.7 - 1e-9  # behind, moving forward
        # A robot at top speed straight along the corridor is caught within 70 % of the route.
        route = task.goal[0] - task.start[0]
        caught = (task.start[0] - x0) / (mover.speed - SETTINGS.max_speed)
        assert SETTINGS.max_speed * caught <= 0.7 * route + 1e-6


def test_several_movers_share_a_room_with_static_obstacles_and_cross_the_route():
    for task in scenes("movers"):
        world = task.world
        assert 2 <= len(world.moving_cylinders) <= 4
        assert world.boxes or world.cylinders
        start, goal = np.asarray(task.start[:2]), np.asarray(task.goal)
        assert np.hypot(*(goal - start)) >= 3.0
        route = start + np.linspace(0.0, 1.0, 200)[:, None] * (goal - start)
        assert np.min(moving_clearance(world, route)) < 0.5
        for mover in world.moving_cylinders:  # loops keep off the static obstacles
            path = positions(mover, np.linspace(0.0, loop_length(mover.waypoints) / mover.speed))
            assert np.all(static_clearance(world, path) > mover.radius)
