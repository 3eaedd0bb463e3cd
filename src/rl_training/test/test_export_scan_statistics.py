"""The training scan statistics an export writes into the card (the drift baseline)."""

from dataclasses import replace

import numpy as np
import pytest
from rl_training_test_support import exported_policy, untrained_policy

from rl_policy_node.onnx_export import PARITY_TOLERANCE
from rl_policy_node.policy_loader import load_policy
from rl_policy_node.scan_drift import (
    ERROR,
    KIND_TRAINING,
    OK,
    WARN,
    DriftDetector,
    DriftSettings,
    ScanStatistics,
)
from rl_training.export import (
    BASELINE_SCANS,
    export_onnx,
    export_policy,
    record_observations,
    training_scan_statistics,
)
from rl_training.nav_env import NavEnv
from rlguard_common.robot_profile import load_robot_profile
from sim_bringup.sim_faults import degraded_lidar


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return exported_policy(tmp_path_factory.mktemp("export_scan_statistics"))


def test_an_exported_card_carries_training_scan_statistics_from_dict_accepts(exported):
    trained, path = exported
    card = load_policy(path).card
    assert card.scan_statistics is not None
    stats = ScanStatistics.from_dict(card.scan_statistics, source=f"{path} scan_statistics")
    spec = card.observation.scan
    assert stats.kind == KIND_TRAINING and stats.scans == BASELINE_SCANS
    assert (stats.sectors, stats.field_of_view_deg, stats.range_cap) == (
        spec.sectors,
        spec.field_of_view_deg,
        spec.range_cap,
    )
    assert "episodes" in stats.description
    # The training env's lidar: 360 beams, noise and dropout randomized per episode
    # within the profile's ranges (noise std 5-20 mm, dropout 0-2 %).
    robot = load_robot_profile(trained.config.env.robot)
    low_noise, high_noise = robot.randomization.lidar_noise
    assert stats.beams.sum() == BASELINE_SCANS * robot.lidar.beams
    assert low_noise < np.nanmedian(stats.noise) < 1.25 * high_noise
    assert 0.0 < stats.overall_dropout_rate <= robot.randomization.lidar_dropout[1]
    assert np.all((stats.range_mean > 0.0) & (stats.range_mean <= spec.range_cap))


def test_the_onnx_export_carries_the_same_kind_of_statistics(exported, tmp_path):
    trained, _ = exported
    observations = record_observations(trained, 50, seed=3)
    card, _ = export_onnx(
        trained, tmp_path / "p.onnx", observations, tolerance=PARITY_TOLERANCE, baseline_scans=60
    )
    stats = ScanStatistics.from_dict(load_policy(tmp_path / "p.onnx").card.scan_statistics)
    assert stats.scans == 60 and stats.to_dict() == card.scan_statistics


def test_statistics_are_reproducible_and_can_be_left_out(tmp_path):
    trained = untrained_policy(tmp_path, normalization_steps=10)
    env = trained.config.env
    first = training_scan_statistics(env, scans=100, seed=4).to_dict()
    assert training_scan_statistics(env, scans=100, seed=4).to_dict() == first
    assert training_scan_statistics(env, scans=100, seed=5).to_dict() != first
    card = export_policy(trained, tmp_path / "bare.pt", baseline_scans=0)
    assert card.scan_statistics is None
    assert load_policy(tmp_path / "bare.pt").card.scan_statistics is None


def test_training_env_scans_show_no_drift_against_their_own_baseline(exported):
    """The card's baseline judges fresh training-env scans (other seeds) OK."""
    trained, path = exported
    baseline = ScanStatistics.from_dict(load_policy(path).card.scan_statistics)
    detector = DriftDetector(baseline, DriftSettings())
    env = NavEnv(trained.config.env)
    env.set_stage(3)
    env.reset(seed=99)
    rng = np.random.default_rng(99)
    last, now = None, 0.0
    for _ in range(200):
        if env.scan is not last:
            last = env.scan
            now += 0.1
            report = detector.update(last, now)
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1.0, 1.0, 2))
        if terminated or truncated:
            env.reset()
    assert report.values["noise_level"] == "OK" and report.values["dropout_level"] == "OK"
    assert report.level == OK, report


def test_lidar_faults_against_the_training_baseline(exported):
    """Noise is judged against training like against a calibration; a blocked lidar (every
    range just above range_min) is a scene unlike training: a range WARN, not an ERROR."""
    trained, path = exported
    baseline = ScanStatistics.from_dict(load_policy(path).card.scan_statistics)
    env = NavEnv(trained.config.env)
    env.set_stage(3)
    env.reset(seed=7)
    rng = np.random.default_rng(7)
    noisy = DriftDetector(baseline, DriftSettings())
    blocked = DriftDetector(baseline, DriftSettings())
    last, now = None, 0.0
    for _ in range(120):
        if env.scan is not last:
            last, now = env.scan, now + 0.1
            noisy.update(degraded_lidar(last, rng, noise_std=0.08), now)
            covered = replace(last, ranges=np.full_like(last.ranges, 1.05 * last.range_min))
            blocked.update(covered, now)
        env.step(np.array([0.0, 0.0]))
    assert noisy.level == ERROR and noisy.last_report.values["noise_level"] == "ERROR"
    assert blocked.level == WARN and blocked.last_report.values["range_level"] == "WARN"
