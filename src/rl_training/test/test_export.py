import numpy as np
import pytest
from rl_training_test_support import exported_policy

from rl_policy_node.policy_loader import load_policy
from rl_training.export import record_observations


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return exported_policy(tmp_path_factory.mktemp("export"))


def test_exported_file_matches_the_training_policy_on_1000_observations(exported):
    trained, path = exported
    observations = record_observations(trained, 1000, seed=11)
    assert observations.shape == (1000, trained.config.env.card(_robot()).observation.size)
    policy = load_policy(path)
    np.testing.assert_allclose(policy(observations), trained.predict(observations), atol=1e-5)


def _robot():
    from sim_bringup.profiles import load_robot_profile

    return load_robot_profile("default")


def test_normalization_is_inside_the_module(exported):
    trained, path = exported
    rms = trained.normalizer.obs_rms
    assert np.any(np.abs(rms.mean) > 1e-3)  # the statistics are not the identity
    module = load_policy(path).module
    np.testing.assert_allclose(module.obs_mean.numpy(), rms.mean, rtol=1e-6, atol=1e-6)


def test_output_is_clipped_to_the_unit_box(exported):
    _, path = exported
    policy = load_policy(path)
    rng = np.random.default_rng(0)
    extreme = rng.normal(0.0, 1000.0, (64, policy.observation_size)).astype(np.float32)
    out = policy(extreme)
    assert np.all(out >= -1.0) and np.all(out <= 1.0)


def test_card_describes_layout_scale_rate_and_training(exported):
    trained, path = exported
    card = load_policy(path).card
    assert card.observation == trained.config.env.card(_robot()).observation
    assert card.action.linear == (0.0, 0.22) and card.action.angular == (-2.0, 2.0)
    assert card.control_rate_hz == 20.0
    assert len(card.weights_sha256) == 64
    assert card.training["algorithm"] == "ppo"
    assert card.training["config"]["name"] == "tiny"
    assert card.training["git_revision"]
    assert "VecNormalize" in card.training["observation_normalization"]
