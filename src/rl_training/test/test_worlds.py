import math

import numpy as np
import pytest

from rl_training.worlds import (
    FreeSpaceGrid,
    TaskSettings,
    generate_world,
    generated_task,
    moving_clearance,
    shipped_legs,
    shipped_task,
    static_clearance,
)
from rlguard_common.world import Box, Cylinder, MovingCylinder, Wall, World, load_world


def world(**changes):
    base = {
        "name": "t",
        "arena_size": (4.0, 4.0),
        "wall_thickness": 0.1,
        "obstacle_height": 0.5,
        "walls": (),
        "boxes": (),
        "cylinders": (),
        "moving_cylinders": (),
        "start": (0.0, 0.0, 0.0),
        "goals": ((1.0, 0.0),),
        "goal_tolerance": 0.25,
    }
    base.update(changes)
    return World(**base)


def test_static_clearance_of_boxes_cylinders_and_boundary():
    w = world(boxes=(Box((1.0, 0.0), (0.4, 0.2), 0.0),), cylinders=(Cylinder((-1.0, 0.0), 0.3),))
    points = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 1.0], [1.9, 1.5]])
    clearance = static_clearance(w, points)
    assert clearance[0] == pytest.approx(0.7)  # box face at x = 0.8, cylinder at 0.7
    assert clearance[1] == pytest.approx(-0.1)  # inside the box, 0.1 from its long face
    assert clearance[2] == pytest.approx(0.7)
    assert clearance[3] == pytest.approx(0.1)  # boundary wall at x = 2.0


def test_moving_clearance_follows_the_whole_loop():
    w = world(moving_cylinders=(MovingCylinder(0.2, 0.3, ((-1.0, -1.0), (1.0, -1.0))),))
    assert moving_clearance(w, np.array([[0.0, 0.0]]))[0] == pytest.approx(0.8)
    assert moving_clearance(world(), np.array([[0.0, 0.0]]))[0] == math.inf


def test_path_length_detours_around_a_wall_and_is_inf_when_blocked():
    open_world = world()
    grid = FreeSpaceGrid(open_world, 0.15)
    straight = grid.path_length((-1.5, 0.0), (1.5, 0.0))
    assert straight == pytest.approx(3.0, abs=0.3)
    baffle = world(walls=(Wall((0.0, -2.0), (0.0, 1.0), 0.1),))
    detour = FreeSpaceGrid(baffle, 0.15).path_length((-1.5, 0.0), (1.5, 0.0))
    # Around the wall end: at least twice the hypotenuse to the inflated tip (0, 1.2).
    assert detour >= 2 * math.hypot(1.5, 1.2) - 0.05
    closed = world(walls=(Wall((0.0, -2.0), (0.0, 2.0), 0.1),))
    assert FreeSpaceGrid(closed, 0.15).path_length((-1.5, 0.0), (1.5, 0.0)) == math.inf


def test_shipped_tasks_walk_the_goal_sequence():
    warehouse = load_world("warehouse")
    legs = shipped_legs(warehouse)
    assert len(legs) == len(warehouse.goals)
    assert legs[0][0] == warehouse.start[:2]
    settings = TaskSettings()
    rng = np.random.default_rng(0)
    for leg in range(len(legs)):
        task = shipped_task(warehouse, leg, rng, settings)
        assert task.goal == legs[leg][1]
        assert math.hypot(task.start[0] - legs[leg][0][0], task.start[1] - legs[leg][0][1]) <= 0.15
        assert static_clearance(warehouse, np.array([task.start[:2]]))[0] > 0.11
        assert task.time_limit > task.path_length / settings.max_speed


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_generated_tasks_are_solvable_and_reproducible(stage):
    settings = TaskSettings()
    task = generated_task(stage, np.random.default_rng(stage), settings)
    again = generated_task(stage, np.random.default_rng(stage), settings)
    assert task == again
    assert math.isfinite(task.path_length)
    needed = settings.footprint_radius + settings.start_clearance
    ends = np.array([task.start[:2], task.goal])
    assert np.all(static_clearance(task.world, ends) > needed)
    assert task.label.startswith("generated/")


def test_stages_add_obstacles_then_movers():
    rng = np.random.default_rng(3)
    empty = generate_world(0, rng)
    assert not (empty.boxes or empty.cylinders or empty.walls or empty.moving_cylinders)
    dynamic = generate_world(3, rng)
    assert dynamic.moving_cylinders
    assert generate_world(1, rng).moving_cylinders == ()
