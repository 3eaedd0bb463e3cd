"""The simulator's scans pass the one scan validator, as the env and the sim node send them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rl_training.nav_env import EnvConfig, NavEnv, checked_scan
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.scan_validity import (
    ANGLE_INCREMENT_NOT_POSITIVE,
    BEAM_COUNT_MISMATCH,
    validate_scan_message,
)
from rlguard_common.world import load_world
from sim_bringup.sim_core import Simulator

ROBOTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[3] / "config" / "robots").glob("*.yaml")
)


def as_published(scan, lidar) -> SimpleNamespace:
    """The LaserScan the sim node publishes for `scan` (float32 fields, angle_max its last beam)."""
    f32 = lambda value: float(np.float32(value))  # noqa: E731
    return SimpleNamespace(
        angle_min=f32(scan.angle_min),
        angle_max=f32(lidar.angle_max),
        angle_increment=f32(scan.angle_increment),
        range_min=f32(scan.range_min),
        range_max=f32(scan.range_max),
        ranges=scan.ranges.astype(np.float32),
        intensities=[],
        header=SimpleNamespace(stamp=SimpleNamespace(sec=int(scan.stamp), nanosec=0)),
    )


@pytest.mark.parametrize("robot", ROBOTS)
def test_every_robot_profiles_scans_are_valid(robot):
    assert "default" in ROBOTS
    profile = load_robot_profile(robot)
    sim = Simulator(profile, load_world("warehouse"), seed=3, randomize=True)
    sim.reset(seed=3)
    for _ in range(3):
        sim.step(0.1, 0.3, 0.1)
        scan = sim.scan()
        assert scan.ranges.size == profile.lidar.beams
        assert checked_scan(scan, profile.lidar.angle_max) is scan
        assert validate_scan_message(as_published(scan, profile.lidar)) is None


def test_the_default_lidar_is_the_360_beam_full_circle():
    lidar = load_robot_profile("default").lidar
    assert lidar.beams == 360
    assert lidar.angle_min == pytest.approx(-np.pi)
    assert lidar.angle_increment == pytest.approx(2 * np.pi / 360)
    assert lidar.angle_max == pytest.approx(np.pi - 2 * np.pi / 360)


def test_an_invalid_simulator_scan_is_a_clear_error():
    profile = load_robot_profile("default")
    sim = Simulator(profile, load_world("empty"), seed=0)
    sim.reset(seed=0)
    scan = sim.scan()
    with pytest.raises(ValueError, match=ANGLE_INCREMENT_NOT_POSITIVE):
        checked_scan(dataclasses.replace(scan, angle_increment=0.0), profile.lidar.angle_max)
    with pytest.raises(ValueError, match=BEAM_COUNT_MISMATCH):
        checked_scan(dataclasses.replace(scan, ranges=np.repeat(scan.ranges, 2)), np.pi)


def test_the_env_checks_every_scan_it_takes(monkeypatch):
    env = NavEnv(EnvConfig())
    env.reset(seed=1)
    broken = dataclasses.replace(env.scan, angle_increment=0.0)
    monkeypatch.setattr(env.sim, "scan", lambda: broken)
    with pytest.raises(ValueError, match=ANGLE_INCREMENT_NOT_POSITIVE):
        for _ in range(5):  # the next scan is taken within one lidar period
            env.step(np.zeros(2))
