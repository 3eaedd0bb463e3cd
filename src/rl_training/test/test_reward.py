import math

import pytest

from rl_training.reward import RewardConfig, StepOutcome, reward_terms, step_reward

CONFIG = RewardConfig(
    progress=10.0,
    time=0.01,
    goal=10.0,
    collision=10.0,
    smoothness=0.02,
    proximity=0.05,
    proximity_distance=0.25,
)


def outcome(**changes):
    base = {
        "previous_distance": 2.0,
        "distance": 2.0,
        "action": (0.0, 0.0),
        "previous_action": (0.0, 0.0),
        "collided": False,
        "reached": False,
        "clearance": 1.0,
    }
    base.update(changes)
    return StepOutcome(**base)


def test_progress_toward_the_goal_pays_per_metre():
    terms = reward_terms(outcome(previous_distance=2.0, distance=1.9), CONFIG)
    assert terms["progress"] == pytest.approx(1.0)
    away = reward_terms(outcome(previous_distance=2.0, distance=2.05), CONFIG)
    assert away["progress"] == pytest.approx(-0.5)


def test_time_penalty_is_paid_every_step():
    assert reward_terms(outcome(), CONFIG)["time"] == pytest.approx(-0.01)
    assert step_reward(outcome(), CONFIG) == pytest.approx(-0.01)


def test_goal_bonus_only_when_reached():
    assert reward_terms(outcome(reached=True), CONFIG)["goal"] == 10.0
    assert reward_terms(outcome(), CONFIG)["goal"] == 0.0


def test_collision_penalty_only_on_collision():
    assert reward_terms(outcome(collided=True), CONFIG)["collision"] == -10.0
    assert reward_terms(outcome(), CONFIG)["collision"] == 0.0


def test_smoothness_penalises_the_squared_action_change():
    terms = reward_terms(outcome(action=(1.0, 0.5), previous_action=(0.0, -0.5)), CONFIG)
    assert terms["smoothness"] == pytest.approx(-0.02 * (1.0 + 1.0))
    same = reward_terms(outcome(action=(0.3, 0.3), previous_action=(0.3, 0.3)), CONFIG)
    assert same["smoothness"] == 0.0


def test_proximity_grows_linearly_inside_the_distance_and_is_capped():
    far = reward_terms(outcome(clearance=0.3), CONFIG)["proximity"]
    half = reward_terms(outcome(clearance=0.125), CONFIG)["proximity"]
    touching = reward_terms(outcome(clearance=-0.05), CONFIG)["proximity"]
    assert far == 0.0
    assert half == pytest.approx(-0.025)
    assert touching == pytest.approx(-0.05)


def test_reward_is_the_sum_of_the_terms():
    o = outcome(previous_distance=1.0, distance=0.2, reached=True, action=(1.0, 0.0), clearance=0.1)
    assert step_reward(o, CONFIG) == pytest.approx(sum(reward_terms(o, CONFIG).values()))


def test_config_from_mapping_checks_names_and_values():
    assert RewardConfig.from_mapping({"goal": 5}).goal == 5.0
    assert RewardConfig.from_mapping(None) == RewardConfig()
    with pytest.raises(ValueError, match="unknown reward term"):
        RewardConfig.from_mapping({"bonus": 1.0})
    with pytest.raises(ValueError, match="finite"):
        RewardConfig.from_mapping({"time": math.nan})
    with pytest.raises(ValueError, match=">= 0"):
        RewardConfig.from_mapping({"collision": -1.0})
