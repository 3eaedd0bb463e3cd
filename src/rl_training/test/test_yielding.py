"""The yielding expert of the nav_yield experiment (rl_training.experiments.yielding)."""

import math

import numpy as np
import pytest

from rl_training.config import PretrainConfig
from rl_training.controllers import SafetyFilteredController
from rl_training.episodes import run_episode
from rl_training.evaluate import EVALUATION_SEED, evaluation_tasks
from rl_training.experiments.yielding import (
    MoverForecast,
    YieldConfig,
    YieldingExpert,
    clearance_margin,
    decide,
    frame_to_world,
    path_schedule,
    segment_clear,
)
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.rollouts import make_expert
from rlguard_common.world import MovingCylinder
from sim_bringup.movers import WaypointLoop

CONFIG = YieldConfig()
FOOTPRINT = 0.11
STRAIGHT_EAST = np.column_stack((np.linspace(0.0, 3.0, 31), np.zeros(31)))


def crossing(speed=0.3, x=1.0, y0=-3.0, y1=8.0):
    """A cylinder going up (then back down) the line x = `x`, at y = `y0` at t = 0."""
    return MovingCylinder(radius=0.2, speed=speed, waypoints=((x, y0), (x, y1)))


def test_forecast_follows_the_simulator_loops():
    mover = MovingCylinder(radius=0.2, speed=0.25, waypoints=((0.0, 0.0), (2.0, 0.0), (2.0, 1.0)))
    forecast = MoverForecast([mover])
    loop = WaypointLoop(mover.waypoints, mover.speed)
    times = np.array([0.0, 3.3, 9.0, 17.5])
    assert forecast.positions(times)[0].tolist() == [list(loop.position(t)) for t in times]


def test_path_schedule_turns_first_then_moves_at_cruise_speed_and_stops_at_the_end():
    instants = CONFIG.instants(30.0)
    facing_away = path_schedule(STRAIGHT_EAST, math.pi, instants, CONFIG)
    facing = path_schedule(STRAIGHT_EAST, 0.0, instants, CONFIG)
    turn = math.pi / CONFIG.turn_rate
    still = instants < turn - 1e-9
    assert np.allclose(facing_away[still], 0.0)
    assert facing[10, 0] == pytest.approx(CONFIG.cruise_speed * 1.0)
    assert facing[-1].tolist() == [3.0, 0.0]  # 15 s at 0.2 m/s covers the 3 m, then it waits


def test_clearance_margin_is_distance_less_radii_and_clearance():
    robot = np.array([[0.0, 0.0], [1.0, 0.0]])
    movers = np.array([[[0.0, 1.0], [1.0, 0.5]]])
    margin = clearance_margin(robot, movers, np.array([0.2]), 0.11, 0.1)
    assert margin == pytest.approx(0.5 - 0.41)
    assert clearance_margin(robot, np.zeros((0, 2, 2)), np.zeros(0), 0.11, 0.1) == math.inf


def test_goes_on_when_no_mover_meets_the_path():
    far = MoverForecast([crossing(x=8.0)])
    decision = decide((0.0, 0.0, 0.0), STRAIGHT_EAST, 0.0, far, FOOTPRINT, CONFIG, 2.0)
    assert not decision.wait and decision.go_margin > 0.0
    assert not decide((0.0, 0.0, 0.0), None, 0.0, far, FOOTPRINT, CONFIG, 2.0).wait
    assert not decide((0.0, 0.0, 0.0), STRAIGHT_EAST, 0.0, MoverForecast([]), 0.11, CONFIG, 2).wait


def test_waits_in_place_for_a_cylinder_that_would_cross_the_path_as_the_robot_gets_there():
    # Robot at x = 0 heading east; a 0.3 m/s cylinder reaches y = 0 at x = 1 after 10 s,
    # when the robot would be there too if it went on at 0.2 m/s after 5 s of waiting.
    forecast = MoverForecast([crossing(speed=0.3, x=1.0, y0=-1.5)])
    decision = decide((0.0, 0.0, 0.0), STRAIGHT_EAST, 0.0, forecast, FOOTPRINT, CONFIG, 2.0)
    assert decision.wait and decision.linear == 0.0
    assert decision.go_margin < 0.0 <= decision.wait_margin
    # Facing away from the path, it turns toward it while it waits.
    turned = decide((0.0, 0.0, 2.0), STRAIGHT_EAST, 0.0, forecast, FOOTPRINT, CONFIG, 2.0)
    assert turned.wait and turned.linear == 0.0 and turned.angular < 0.0
    # Once the cylinder has gone by (and is far up its lane), it goes on.
    later = decide((0.0, 0.0, 0.0), STRAIGHT_EAST, 12.0, forecast, FOOTPRINT, CONFIG, 2.0)
    assert not later.wait


def test_moves_out_of_a_lane_it_would_otherwise_wait_in():
    # The robot stands on the lane x = 0, facing up it, with a 0.5 m/s cylinder behind it:
    # it cannot outrun the cylinder along its path, and waiting there is being run over.
    forecast = MoverForecast([crossing(speed=0.5, x=0.0, y0=-2.0)])
    north = STRAIGHT_EAST[:, ::-1]
    pose = (0.0, 0.0, math.pi / 2)
    decision = decide(pose, north, 0.0, forecast, FOOTPRINT, CONFIG, 2.0)
    assert decision.wait and decision.go_margin < 0.0 <= decision.wait_margin
    assert decision.angular > 0.0  # it turns to leave the lane (toward the west, first found)
    # With a wall just west of it, it leaves the lane to the east instead.
    wall = np.array([[-0.3, y] for y in np.linspace(-1.0, 1.0, 41)])
    walled = decide(pose, north, 0.0, forecast, FOOTPRINT, CONFIG, 2.0, obstacles=wall)
    assert walled.wait and walled.wait_margin >= 0.0 and walled.angular < 0.0


def test_segment_clear_sees_points_near_the_segment_only():
    start, end = np.array([0.0, 0.0]), np.array([1.0, 0.0])
    assert segment_clear(start, end, np.array([[0.5, 0.3]]), 0.2)
    assert not segment_clear(start, end, np.array([[0.5, 0.1]]), 0.2)
    assert not segment_clear(start, end, np.array([[1.1, 0.0]]), 0.2)
    assert segment_clear(start, end, np.zeros((0, 2)), 0.2)


def test_frame_to_world_places_frame_points_at_the_true_pose():
    # The robot is at (1, 0) facing +y in odom and at (2, 2) facing +x in the world.
    odom_points = np.array([[1.0, 1.0], [1.0, 0.0]])  # 1 m ahead of it, and where it is
    world = frame_to_world(odom_points, (1.0, 0.0, math.pi / 2), (2.0, 2.0, 0.0))
    np.testing.assert_allclose(world, [[3.0, 2.0], [2.0, 2.0]], atol=1e-12)


@pytest.mark.parametrize("leg", [0, 2])
def test_the_yielding_expert_waits_for_the_dynamic_worlds_crossing_cylinders(leg):
    # Legs 0 and 2 of `dynamic` are the ones where a cylinder faster than the robot crosses
    # the robot's path just as it gets there (the plain DWA is hit on most of them).
    expert = make_expert(PretrainConfig(yield_to_moving=True))
    assert isinstance(expert, YieldingExpert) and expert.privileged
    shielded = SafetyFilteredController(expert)
    env = NavEnv(EnvConfig(randomize=True))
    tasks = evaluation_tasks("dynamic", 4, env.task_settings, EVALUATION_SEED)
    result = run_episode(env, shielded, tasks[leg], 17 + leg, "expert", "dynamic")
    assert result.outcome == "success"
    assert expert.waiting_steps > 0  # it got there by yielding, not by luck
