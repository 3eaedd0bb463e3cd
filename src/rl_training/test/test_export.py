from pathlib import Path

import numpy as np
import pytest
from rl_training_test_support import exported_policy

from rl_policy_node.policy_loader import load_policy
from rl_training.cli import main
from rl_training.export import (
    convert_to_onnx,
    export_onnx,
    record_observations,
    record_policy_observations,
)


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
    from rlguard_common.robot_profile import load_robot_profile

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


# ---------------------------------------------------------------------------- ONNX

ONNX_PARITY = 1e-5
MODELS = Path(__file__).resolve().parents[3] / "models"


def test_onnx_export_of_a_run_matches_torchscript_and_the_training_policy(exported, tmp_path):
    trained, pt_path = exported
    observations = record_observations(trained, 200, seed=5)
    card, result = export_onnx(trained, tmp_path / "p.onnx", observations, name="test_policy")
    assert result.max_difference <= ONNX_PARITY and result.observations == 200
    onnx_policy, pt_policy = load_policy(tmp_path / "p.onnx"), load_policy(pt_path)
    assert onnx_policy.runtime == "onnxruntime"
    assert onnx_policy.sha256 == card.weights_sha256 == pt_policy.sha256
    assert onnx_policy.card.observation == pt_policy.card.observation
    assert onnx_policy.card.action == pt_policy.card.action
    np.testing.assert_allclose(onnx_policy(observations), pt_policy(observations), atol=ONNX_PARITY)
    np.testing.assert_allclose(
        onnx_policy(observations), trained.predict(observations), atol=ONNX_PARITY
    )


def test_convert_keeps_the_card_text_and_checks_parity(exported, tmp_path):
    _, pt_path = exported
    source = load_policy(pt_path)
    observations = record_policy_observations(source, 150, seed=2)
    again = record_policy_observations(source, 150, seed=2)
    np.testing.assert_array_equal(observations, again)  # a deterministic recording
    result = convert_to_onnx(pt_path, tmp_path / "c.onnx", observations)
    converted = load_policy(tmp_path / "c.onnx")
    assert converted.card_text == source.card_text and converted.sha256 == source.sha256
    assert result.max_difference <= ONNX_PARITY
    with pytest.raises(ValueError, match="not a TorchScript policy file"):
        convert_to_onnx(tmp_path / "c.onnx", tmp_path / "d.onnx", observations)


def test_cli_export_format_checks_and_conversion(exported, tmp_path):
    _, pt_path = exported
    out = tmp_path / "cli.onnx"
    assert main(["export", "--policy", str(pt_path), "--out", str(out), "--parity", "100"]) == 0
    assert load_policy(out).card_text == load_policy(pt_path).card_text
    bad = [
        ["--policy", str(pt_path), "--out", str(tmp_path / "x.pt")],
        ["--policy", str(pt_path), "--out", str(tmp_path / "x.onnx"), "--format", "torchscript"],
        ["--policy", str(pt_path), "--out", str(tmp_path / "x.onnx"), "--parity", "0"],
        ["--run", str(tmp_path), "--out", str(tmp_path / "x.pt"), "--format", "onnx"],
    ]
    for args in bad:
        assert main(["export", *args]) == 2, args
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.pt").exists()


def test_shipped_onnx_matches_the_shipped_torchscript_on_recorded_observations():
    pt_policy = load_policy(MODELS / "nav_policy.pt")
    onnx_policy = load_policy(MODELS / "nav_policy.onnx")
    observations = record_policy_observations(pt_policy, 200, seed=1)
    reference = pt_policy(observations)
    np.testing.assert_allclose(onnx_policy(observations), reference, atol=ONNX_PARITY, rtol=0)
    assert onnx_policy.card_text == pt_policy.card_text
