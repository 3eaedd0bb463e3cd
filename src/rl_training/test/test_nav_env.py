import math
from dataclasses import replace

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.observation import ObservationBuilder
from rl_training.nav_env import EnvConfig, NavEnv, scan_input
from rl_training.worlds import Task
from rlguard_common.world import World


def open_world(goal=(1.5, 0.0)):
    return World(
        name="open",
        arena_size=(6.0, 4.0),
        wall_thickness=0.1,
        obstacle_height=0.5,
        walls=(),
        boxes=(),
        cylinders=(),
        moving_cylinders=(),
        start=(0.0, 0.0, 0.0),
        goals=(goal,),
        goal_tolerance=0.25,
        source="generated",
    )


def task(start=(0.0, 0.0, 0.0), goal=(1.5, 0.0), time_limit=20.0):
    return Task(
        world=open_world(goal),
        start=start,
        goal=goal,
        tolerance=0.25,
        time_limit=time_limit,
        path_length=1.5,
        label="test/open",
    )


@pytest.mark.parametrize("stage", [0, 3])
def test_env_passes_the_gymnasium_checker(stage):
    env = NavEnv(EnvConfig(stage=stage))
    check_env(env, skip_render_check=True)


def test_observation_is_the_shared_builders_vector():
    env = NavEnv(EnvConfig(randomize=False))
    obs, _ = env.reset(seed=3, options={"task": task()})
    for _ in range(5):
        obs, *_ = env.step(np.array([0.5, 0.2], dtype=np.float32))
    builder = ObservationBuilder(env.card.observation)
    odom = env.sim.odometry()
    expected = builder.build(
        scan_input(env.scan),
        (odom.x, odom.y, odom.yaw),
        (odom.v, odom.w),
        env.task.goal,
        env.previous_action,
    )
    np.testing.assert_array_equal(obs, expected)
    assert obs.shape == (env.card.observation.size,)
    assert env.observation_space.contains(obs)


def test_spaced_frames_without_velocity_or_previous_action_pass_the_checker():
    config = EnvConfig(
        stage=3, velocity=False, previous_action=False, history_length=4, history_stride=5
    )
    env = NavEnv(config)
    spec = env.card.observation
    assert spec.velocity is None and not spec.previous_action
    assert (spec.history_length, spec.history_stride) == (4, 5)
    assert env.observation_space.shape == ((36 + 3) * 4,)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3, options={"task": task()})
    frames = [obs]
    for _ in range(10):
        obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))
        frames.append(obs)
    # The newest frame's goal distance is the one the frame 5 steps older held newest.
    distance = 36  # index of the goal distance term in a frame
    assert frames[10][39 + distance] == frames[5][distance]
    assert frames[10][distance] < frames[5][distance]


def test_actions_are_scaled_by_the_card_and_clipped():
    env = NavEnv(EnvConfig(randomize=False))
    env.reset(seed=0, options={"task": task()})
    _, _, _, _, info = env.step(np.array([0.5, -0.25], dtype=np.float32))
    assert info["command"] == pytest.approx(action_to_velocity([0.5, -0.25], env.card.action))
    _, _, _, _, info = env.step(np.array([3.0, -3.0], dtype=np.float32))
    assert info["command"] == pytest.approx((0.22, -2.0))
    np.testing.assert_array_equal(env.previous_action, [1.0, -1.0])


def test_step_velocity_feeds_back_the_policy_action_when_given():
    env = NavEnv(EnvConfig(randomize=False))
    env.reset(seed=0, options={"task": task()})
    obs, *_ = env.step_velocity(0.11, 0.0)
    np.testing.assert_allclose(env.previous_action, [0.0, 0.0], atol=1e-9)
    obs, *_ = env.step_velocity(0.0, 0.0, policy_action=np.array([0.8, -0.4]))
    np.testing.assert_allclose(env.previous_action, [0.8, -0.4])
    np.testing.assert_allclose(obs[-2:], [0.8, -0.4], atol=1e-6)


def test_driving_to_the_goal_succeeds_with_the_goal_bonus():
    env = NavEnv(EnvConfig(randomize=False))
    env.reset(seed=0, options={"task": task(goal=(0.8, 0.0))})
    total = 0.0
    for _ in range(200):
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        total += reward
        if terminated or truncated:
            break
    assert terminated and info["is_success"] and not info["collision"]
    assert info["reward_terms"]["goal"] == env.config.reward.goal
    assert info["distance"] <= 0.25


def test_a_collision_ends_the_episode_with_the_penalty():
    env = NavEnv(EnvConfig(randomize=False))
    # Facing the +x boundary wall (at x = 3.0) from 1 m away, goal behind the robot.
    env.reset(seed=0, options={"task": task(start=(2.0, 0.0, 0.0), goal=(-2.0, 0.0))})
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        if terminated or truncated:
            break
    assert terminated and info["collision"] and not info["is_success"]
    assert info["reward_terms"]["collision"] == -env.config.reward.collision


def test_the_time_limit_truncates():
    env = NavEnv(EnvConfig(randomize=False))
    env.reset(seed=0, options={"task": task(time_limit=1.0)})
    steps = 0
    while True:
        _, _, terminated, truncated, info = env.step(np.array([-1.0, 0.0], dtype=np.float32))
        steps += 1
        if terminated or truncated:
            break
    assert truncated and not terminated and info["timeout"]
    assert steps == round(1.0 * env.config.control_rate_hz)


def test_scan_refreshes_at_the_lidar_rate_not_every_step():
    env = NavEnv(EnvConfig(randomize=False))
    env.reset(seed=0, options={"task": task()})
    stamps = []
    for _ in range(8):
        env.step(np.array([0.0, 0.5], dtype=np.float32))
        stamps.append(env.scan.stamp)
    period = 1.0 / env.robot.lidar.rate_hz
    assert len(set(stamps)) == pytest.approx(8 * env.dt / period, abs=1)


def test_curriculum_stage_selects_generated_worlds_and_shipped_legs():
    env = NavEnv(replace(EnvConfig(), shipped_fraction=1.0, lower_stage_fraction=0.0))
    env.reset(seed=1)
    env.set_stage(0)
    assert all(env.sample_task().label == "generated/empty" for _ in range(3))
    env.set_stage(3)
    labels = {env.sample_task().label.split("/")[0] for _ in range(20)}
    assert labels <= {"corridor", "warehouse", "dynamic"} and len(labels) >= 2
    env.set_stage(99)
    assert env.stage == 3


def test_families_are_drawn_from_stage_2_and_moving_ones_from_stage_3():
    config = EnvConfig.from_mapping(
        {"families": ["doorway", "dead_end", "headon"], "family_fraction": 1.0}
    )
    assert config.families == ("doorway", "dead_end", "headon")
    assert config.to_dict()["families"] == ["doorway", "dead_end", "headon"]
    env = NavEnv(replace(config, shipped_fraction=0.0, lower_stage_fraction=0.0))
    env.reset(seed=2)
    env.set_stage(1)
    assert {env.sample_task().label for _ in range(5)} == {"generated/sparse"}
    env.set_stage(2)
    assert {env.sample_task().label for _ in range(20)} == {"doorway", "dead_end"}
    env.set_stage(3)
    assert {env.sample_task().label.split("/")[0] for _ in range(30)} == {
        "doorway",
        "dead_end",
        "headon",
    }
    with pytest.raises(ValueError, match="unknown families: nowhere"):
        EnvConfig(families=("nowhere",))
    with pytest.raises(ValueError, match="family_fraction"):
        EnvConfig(family_fraction=1.5)


def test_env_config_from_mapping_and_card():
    config = EnvConfig.from_mapping(
        {"scan_sectors": 24, "linear_velocity": [0.0, 0.2], "reward": {"goal": 5.0}}
    )
    assert config.scan_sectors == 24 and config.reward.goal == 5.0
    env = NavEnv(config)
    assert env.card.observation.scan.sectors == 24
    assert env.card.action.linear == (0.0, 0.2)
    assert env.observation_space.shape == (24 + 3 + 2 + 2,)
    assert math.isclose(env.dt, 0.05)
    with pytest.raises(ValueError, match="unknown env setting"):
        EnvConfig.from_mapping({"sectors": 3})


def test_world_loading_retries_a_file_caught_mid_save(monkeypatch):
    from rl_training import nav_env
    from rlguard_common.profile_yaml import ProfileError
    from rlguard_common.world import load_world

    calls = []

    def flaky(name):
        calls.append(name)
        if len(calls) == 1:
            raise ProfileError(name, "<file>", "invalid YAML")
        return load_world(name)

    monkeypatch.setattr(nav_env, "load_world", flaky)
    world = nav_env.load_world_patiently("corridor", attempts=3, wait=0.0)
    assert world.name == "corridor" and len(calls) == 2

    def broken(name):
        raise ProfileError(name, "<file>", "invalid YAML")

    monkeypatch.setattr(nav_env, "load_world", broken)
    with pytest.raises(ProfileError):
        nav_env.load_world_patiently("corridor", attempts=2, wait=0.0)
