import math
from dataclasses import replace

import numpy as np
import pytest

from hybrid_fallback.nav_grid import NavGridConfig
from rl_training import world_families
from rl_training.controllers import DwaController
from rl_training.episodes import run_episode
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.world_families import (
    CLUTTER_COUNT,
    CLUTTER_DISTANCE,
    CLUTTER_ROUTE_GAP,
    CLUTTER_SIZE,
    CORRIDOR_WIDTH,
    DOOR_WIDTH,
    MIN_DETOUR,
    OPEN_END,
    OPEN_LENGTH,
    ROOM_COUNT,
    STATIC_FAMILIES,
    static_family_task,
)
from rl_training.worlds import FreeSpaceGrid, TaskSettings, static_clearance, time_limit_for
from rlguard_common.world import Box, Wall, World

SETTINGS = TaskSettings()
SEEDS = range(810_000, 810_030)
ROBOT_WIDTH = 2.0 * SETTINGS.footprint_radius
_cache: dict[tuple[str, float], list] = {}


def tasks(family, settings=SETTINGS):
    key = (family, settings.footprint_radius)
    if key not in _cache:
        _cache[key] = [static_family_task(family, seed, settings) for seed in SEEDS]
    return _cache[key]


def grid_length(world, start, goal, inflation=SETTINGS.footprint_radius + SETTINGS.path_inflation):
    return FreeSpaceGrid(world, inflation).path_length(tuple(start), tuple(goal))


def inside_arena(world, point):
    return abs(point[0]) < world.arena_size[0] / 2.0 and abs(point[1]) < world.arena_size[1] / 2.0


def test_an_unknown_family_is_named_in_the_error_with_the_known_ones():
    with pytest.raises(ValueError, match="maze.*doorway, clutter, dead_end, open, rooms"):
        static_family_task("maze", 1)


@pytest.mark.parametrize("family", STATIC_FAMILIES)
def test_every_task_is_seeded_clear_connected_and_a_valid_world(family):
    made = tasks(family)
    assert static_family_task(family, SEEDS[0], SETTINGS) == made[0]  # a function of (family, seed)
    assert static_family_task(family, SEEDS[0]) == made[0]  # default settings
    assert len({t.world for t in made}) == len(made)  # seeds give different worlds
    for seed, task in zip(SEEDS, made, strict=True):
        world = task.world
        assert task.label == f"{family}/{seed}"
        assert world.source == "generated" and not world.moving_cylinders
        assert world.start[:2] == task.start[:2] and world.goals == (task.goal,)
        assert task.tolerance == world.goal_tolerance == SETTINGS.generated_tolerance
        ends = np.array([task.start[:2], task.goal])
        needed = SETTINGS.footprint_radius + SETTINGS.start_clearance
        assert np.all(static_clearance(world, ends) > needed)
        length = grid_length(world, task.start[:2], task.goal)
        assert math.isfinite(length) and task.path_length == pytest.approx(length)
        expected = time_limit_for(
            length, SETTINGS.max_speed, SETTINGS.time_slack, SETTINGS.time_extra
        )
        assert task.time_limit == pytest.approx(expected)
        # What the world loader demands of a world file: centres, start and goal inside.
        for point in [
            *ends,
            *(b.center for b in world.boxes),
            *(c.center for c in world.cylinders),
        ]:
            assert inside_arena(world, point)
        assert all(w.start != w.end and w.thickness > 0.0 for w in world.walls)


def door(world: World):
    """The door of a doorway world: its clear width and centre, from the two wall pieces."""
    first, second = world.walls
    pairs = [(a, b) for a in (first.start, first.end) for b in (second.start, second.end)]
    near = min(pairs, key=lambda pair: math.dist(*pair))
    far = [p for p in (first.start, first.end) if p != near[0]] + [
        p for p in (second.start, second.end) if p != near[1]
    ]
    return math.dist(*near), np.mean(near, axis=0), far


def test_a_doorway_is_one_door_1_8_to_3_robot_widths_between_the_start_and_goal_rooms():
    widths = []
    for task in tasks("doorway"):
        world = task.world
        first, second = world.walls
        # The two pieces lie on one line: the door is the gap between their facing ends.
        direction = np.subtract(first.end, first.start)
        for point in (second.start, second.end):
            offset = np.subtract(point, first.start)
            cross = direction[0] * offset[1] - direction[1] * offset[0]
            assert abs(cross) / np.linalg.norm(direction) < 1e-9
        width, centre, far = door(world)
        widths.append(width / ROBOT_WIDTH)
        assert DOOR_WIDTH[0] <= width / ROBOT_WIDTH <= DOOR_WIDTH[1]
        # Nothing else narrows the door: its centre is half the gap from every obstacle.
        assert static_clearance(world, centre[None])[0] == pytest.approx(width / 2.0)
        # The wall runs from boundary to boundary: with the door shut, the rooms are apart.
        shut = replace(world, walls=(Wall(far[0], far[1], first.thickness),))
        assert math.isinf(grid_length(shut, task.start[:2], task.goal))
        assert math.isinf(grid_length(shut, task.start[:2], task.goal, inflation=0.05))
    assert min(widths) < 2.1 and max(widths) > 2.7  # the whole range is drawn


def test_every_family_follows_the_robot_footprint():
    big = replace(SETTINGS, footprint_radius=0.2)
    for family in STATIC_FAMILIES:
        for task in tasks(family, big)[:5]:
            ends = np.array([task.start[:2], task.goal])
            assert np.all(static_clearance(task.world, ends) > 0.2 + SETTINGS.start_clearance)
            assert math.isfinite(grid_length(task.world, *ends, inflation=0.2 + 0.04))
    for task in tasks("doorway", big)[:10]:
        width = door(task.world)[0]
        assert DOOR_WIDTH[0] * 0.4 <= width <= DOOR_WIDTH[1] * 0.4
    for task in tasks("rooms", big)[:10]:
        for _, _, width in dividers(task)[0]:
            assert CORRIDOR_WIDTH[0] * 0.4 - 1e-9 <= width <= CORRIDOR_WIDTH[1] * 0.4 + 1e-9


def test_clutter_packs_many_obstacles_into_a_small_arena():
    for task in tasks("clutter"):
        world = task.world
        assert all(CLUTTER_SIZE[0] <= side <= CLUTTER_SIZE[1] for side in world.arena_size)
        count = len(world.boxes) + len(world.cylinders)
        assert CLUTTER_COUNT[0] <= count <= CLUTTER_COUNT[1] and not world.walls
        assert math.dist(task.start[:2], task.goal) >= CLUTTER_DISTANCE


def test_every_clutter_task_has_a_route_the_deployed_planner_admits():
    # The fallback's grid is lethal within inflation_radius of an obstacle: a clutter task
    # whose only routes pass closer is one the stack may not drive, whatever it learned.
    lethal = NavGridConfig().inflation_radius
    assert CLUTTER_ROUTE_GAP * SETTINGS.footprint_radius > lethal
    for task in tasks("clutter"):
        grid = FreeSpaceGrid(task.world, lethal, 0.05)
        assert math.isfinite(grid.path_length(task.start[:2], task.goal))


def _clutter_across_a_gap(monkeypatch, gap: float) -> list:
    """Clutter tasks drawn when the obstacles are a wall across x = 0 with one `gap` (m)."""

    def wall_with_gap(rng, half, count):
        piece = (2.0 * half[1] - gap) / 2.0
        boxes = [
            Box(center=(0.0, -half[1] + piece / 2.0), size=(0.2, piece), yaw=0.0),
            Box(center=(0.0, half[1] - piece / 2.0), size=(0.2, piece), yaw=0.0),
        ]
        return boxes, []

    monkeypatch.setattr(world_families, "random_obstacles", wall_with_gap)
    made = [world_families.clutter(np.random.default_rng(seed), SETTINGS) for seed in range(60)]
    return [t for t in made if t is not None and t.start[0] * t.goal[0] < 0.0]


def test_clutter_refuses_a_route_through_a_gap_narrower_than_the_narrowest_door(monkeypatch):
    narrow = CLUTTER_ROUTE_GAP * ROBOT_WIDTH - 0.04  # the robot fits, with 3 cm each side
    assert narrow > ROBOT_WIDTH + 0.05
    assert _clutter_across_a_gap(monkeypatch, narrow) == []
    assert _clutter_across_a_gap(monkeypatch, CLUTTER_ROUTE_GAP * ROBOT_WIDTH + 0.1)


def u_frame(world: World):
    """The back wall's midpoint, the unit axis toward the mouth, depth and mouth half-width."""
    walls = world.walls
    assert len(walls) == 3

    def touches(wall: Wall, other: Wall) -> bool:
        return (
            min(math.dist(p, q) for p in (wall.start, wall.end) for q in (other.start, other.end))
            < 0.2
        )

    # The back wall touches both sides; each side touches only the back wall.
    sides = [w for w in walls if sum(touches(w, o) for o in walls if o is not w) == 1]
    (back,) = [w for w in walls if w not in sides]
    back_mid = np.mean([back.start, back.end], axis=0)
    side_mids = [np.mean([w.start, w.end], axis=0) for w in sides]
    axis = np.mean(side_mids, axis=0) - back_mid
    axis /= np.linalg.norm(axis)
    depth = max(math.dist(w.start, w.end) for w in sides)
    half_mouth = math.dist(side_mids[0], side_mids[1]) / 2.0 - back.thickness / 2.0
    return back_mid, axis, depth, half_mouth


def test_a_dead_end_blocks_the_straight_line_and_opens_toward_the_start():
    inside = outside = 0
    for task in tasks("dead_end"):
        world = task.world
        start, goal = np.asarray(task.start[:2]), np.asarray(task.goal)
        straight = np.linspace(start, goal, 200)
        assert np.min(static_clearance(world, straight)) <= 0.0  # the line runs into a wall
        assert task.path_length > MIN_DETOUR * math.dist(start, goal)
        back_mid, axis, depth, half_mouth = u_frame(world)
        normal = np.array([-axis[1], axis[0]])
        along, across = float((start - back_mid) @ axis), float((start - back_mid) @ normal)
        assert along > 0.0 and abs(across) < half_mouth  # in the U's channel, mouth side
        assert float((goal - back_mid) @ axis) < 0.0  # the goal is behind the closed back
        inside += along < depth
        outside += along > depth
        # The start heading points at the back wall side of the U, give or take 45 deg.
        heading = np.array([math.cos(task.start[2]), math.sin(task.start[2])])
        assert float(heading @ -axis) >= math.cos(math.pi / 4.0) - 1e-9
    assert inside and outside  # both variants: start in the U, start facing into it


def test_open_space_is_long_with_start_and_goal_at_opposite_ends():
    along_y = 0
    for task in tasks("open"):
        world = task.world
        long_axis = int(world.arena_size[1] > world.arena_size[0])
        along_y += long_axis
        length = world.arena_size[long_axis]
        assert OPEN_LENGTH[0] <= length <= OPEN_LENGTH[1] and not world.walls
        gap = abs(task.goal[long_axis] - task.start[long_axis])
        assert gap >= length - 2.0 * OPEN_END[1]
    assert 0 < along_y < len(SEEDS)  # both orientations


def dividers(task):
    """The blocks between rooms as (x0, x1, corridor width), in the frame with rooms along x.

    A divider is two axis-aligned boxes with the same x extent, one from the lower arena
    boundary and one to the upper; the corridor is the gap between them.
    """
    world = task.world
    start, goal = task.start[:2], task.goal
    if world.arena_size[1] > world.arena_size[0]:  # the row runs along y: mirror it back
        world = replace(
            world,
            arena_size=world.arena_size[::-1],
            boxes=tuple(Box(b.center[::-1], b.size[::-1], -b.yaw) for b in world.boxes),
        )
        start, goal = start[::-1], goal[::-1]
    half_y = world.arena_size[1] / 2.0
    lower = {}
    upper = {}
    for box in world.boxes:
        if box.yaw != 0.0:
            continue
        x_span = (
            round(box.center[0] - box.size[0] / 2, 9),
            round(box.center[0] + box.size[0] / 2, 9),
        )
        bottom, top = box.center[1] - box.size[1] / 2, box.center[1] + box.size[1] / 2
        if bottom == pytest.approx(-half_y):
            lower[x_span] = top
        elif top == pytest.approx(half_y):
            upper[x_span] = bottom
    assert lower.keys() == upper.keys()
    found = [(x0, x1, upper[(x0, x1)] - lower[(x0, x1)]) for x0, x1 in sorted(lower)]
    return found, start, goal


def test_rooms_are_joined_by_corridors_and_start_and_goal_are_in_different_rooms():
    room_counts = set()
    for task in tasks("rooms"):
        found, start, goal = dividers(task)
        room_counts.add(len(found) + 1)
        assert ROOM_COUNT[0] <= len(found) + 1 <= ROOM_COUNT[1]
        for _, _, width in found:
            assert CORRIDOR_WIDTH[0] - 1e-9 <= width / ROBOT_WIDTH <= CORRIDOR_WIDTH[1] + 1e-9
        # Each divider spans the arena but for its corridor, so a divider between start
        # and goal puts them in different rooms.
        assert any(
            min(start[0], goal[0]) < x0 and x1 < max(start[0], goal[0]) for x0, x1, _ in found
        )
    assert room_counts == {2, 3}


@pytest.mark.parametrize("family", STATIC_FAMILIES)
def test_each_family_loads_in_the_simulator_and_the_dwa_drives_in_it(family):
    env = NavEnv(EnvConfig(randomize=False))
    task = static_family_task(family, SEEDS[0], env.task_settings)
    env.reset(seed=0, options={"task": task})
    # The simulator built the generated obstacles: the nearest return is the nearest one.
    x, y, yaw = task.start
    mount = env.robot.lidar
    lidar = (
        x + math.cos(yaw) * mount.mount_x - math.sin(yaw) * mount.mount_y,
        y + math.sin(yaw) * mount.mount_x + math.cos(yaw) * mount.mount_y,
    )
    nearest = static_clearance(task.world, np.array([lidar]))[0]
    ranges = np.asarray(env.scan.ranges)
    assert nearest < mount.range_max
    assert float(np.min(ranges[np.isfinite(ranges)])) == pytest.approx(nearest, abs=0.05)
    result = run_episode(env, DwaController(), replace(task, time_limit=3.0), 0, "dwa", family)
    assert result.outcome != "collision"
    assert result.path_length > 0.1


@pytest.mark.parametrize("family", STATIC_FAMILIES)
def test_evaluation_takes_a_family_by_name_on_held_out_seeds(family):
    from rl_training.evaluate import EVALUATION_SEED, FAMILY_WORLDS, evaluation_tasks

    assert family in FAMILY_WORLDS
    tasks = evaluation_tasks(family, 3, SETTINGS, EVALUATION_SEED)
    assert [t.label for t in tasks] == [f"{family}/{EVALUATION_SEED + k}" for k in range(3)]
    assert tasks[1] == static_family_task(family, EVALUATION_SEED + 1, SETTINGS)
