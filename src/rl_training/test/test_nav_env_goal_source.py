"""NavEnv with goal_source grid_waypoint: the goal terms come from the shared source."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rl_policy_node.goal_source import GridWaypointSource
from rl_policy_node.observation import ObservationBuilder
from rl_policy_node.policy_card import PolicyCard
from rl_training.config import load_config
from rl_training.deployed_cores import deployed_navigation
from rl_training.nav_env import EnvConfig, NavEnv, scan_input
from rl_training.worlds import shipped_task
from rlguard_common.world import load_world
from safety_controller.scan_geometry import LidarMount


def corridor_task(env, leg=0):
    world = load_world("corridor")
    return shipped_task(world, leg, np.random.default_rng(leg), env.task_settings)


def test_the_card_records_the_deployed_fallbacks_grid_and_lookahead():
    env = NavEnv(EnvConfig(goal_source="grid_waypoint", randomize=False))
    grid, guidance = deployed_navigation(env.robot)
    goal = env.card.observation.goal
    assert goal.source == "grid_waypoint" and goal.grid == grid
    assert (goal.lookahead, goal.replan_period) == (guidance.lookahead, guidance.replan_period)
    assert PolicyCard.from_json(env.card.to_json()) == env.card
    tuned = EnvConfig(
        goal_source="grid_waypoint", waypoint_lookahead=1.2, waypoint_replan_period=0.5
    )
    spec = tuned.goal_spec(env.robot)
    assert (spec.lookahead, spec.replan_period, spec.grid) == (1.2, 0.5, grid)
    assert EnvConfig().goal_spec(env.robot).source == "goal"


def test_bad_goal_source_settings_are_refused():
    with pytest.raises(ValueError, match="goal_source must be one of"):
        EnvConfig.from_mapping({"goal_source": "magic"})
    with pytest.raises(ValueError, match="need goal_source"):
        EnvConfig.from_mapping({"waypoint_lookahead": 1.0})


def test_observations_match_the_source_run_on_the_same_inputs():
    env = NavEnv(EnvConfig(goal_source="grid_waypoint", randomize=False))
    task = corridor_task(env)
    obs, _ = env.reset(seed=4, options={"task": task})
    lidar = env.robot.lidar
    mount = LidarMount(lidar.mount_x, lidar.mount_y, lidar.mount_yaw)
    reference = GridWaypointSource.from_spec(env.card.observation.goal)
    builder = ObservationBuilder(env.card.observation)
    raw_builder = ObservationBuilder(env.card.observation)
    differs = 0
    rng = np.random.default_rng(0)
    for step in range(60):
        odom = env.sim.odometry()
        pose = (odom.x, odom.y, odom.yaw)
        reference.feed_scan(scan_input(env.scan), env.scan.stamp, mount, pose, env.sim.time)
        waypoint = reference.waypoint(task.goal, pose, env.sim.time)
        args = (scan_input(env.scan), pose, (odom.v, odom.w))
        expected = builder.build(*args, waypoint, env.previous_action)
        np.testing.assert_array_equal(obs, expected, err_msg=f"step {step}")
        raw = raw_builder.build(*args, task.goal, env.previous_action)
        differs += not np.array_equal(obs, raw)
        action = np.array([0.6, rng.uniform(-0.5, 0.5)], dtype=np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        # Reward and progress stay on the true goal.
        x, y, _ = env.sim.pose
        assert info["distance"] == pytest.approx(math.hypot(task.goal[0] - x, task.goal[1] - y))
        if terminated or truncated:
            break
    assert differs > 10  # the goal lies beyond the lookahead: the terms describe the waypoint


def test_reset_starts_a_fresh_grid():
    env = NavEnv(EnvConfig(goal_source="grid_waypoint", randomize=False))
    env.reset(seed=1, options={"task": corridor_task(env, 0)})
    for _ in range(5):
        env.step(np.array([0.5, 0.0], dtype=np.float32))
    assert env.goal_source.grid.occupied.any()
    first_origin = env.goal_source.grid.origin.copy()
    env.reset(seed=2, options={"task": corridor_task(env, 1)})
    odom = env.sim.odometry()
    # The grid is centred on the new episode's first pose (it was reset, then fed once).
    assert env.goal_source.grid.origin == pytest.approx(
        np.array([odom.x, odom.y]) - env.goal_source.grid.config.size / 2
    )
    assert not np.allclose(env.goal_source.grid.origin, first_origin)


def test_the_waypoint_run_config(workspace_root):
    config = load_config(
        workspace_root / "config" / "training" / "experiments" / "nav_waypoint.yaml"
    )
    assert config.name == "nav_waypoint" and config.env.goal_source == "grid_waypoint"
    assert config.total_timesteps == 0 and config.pretrain.enabled
    weights = config.pretrain.stage_weights
    assert weights[2] == max(weights)  # clutter, walls and the shipped legs
