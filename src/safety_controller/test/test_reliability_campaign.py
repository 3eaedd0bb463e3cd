"""The adversarial reliability campaign: a small budget is clean, and its counters count.

The small campaign runs the same code path as `make reliability` (every stream in every
static world, randomized physics, the real filter configured from the YAML); broken
stand-in filters show that each counter really detects what it claims to.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from safety_controller.footprint import Footprint
from safety_controller.limits import VelocityLimits, clamp_velocity
from safety_controller.safety_filter import (
    COLLISION,
    INVALID_INPUT,
    FilterOutput,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import ScanPoints

campaign = pytest.importorskip("safety_controller.reliability_campaign")

SMALL_BUDGET = 3000
SMALL_EPISODE_STEPS = 170  # 18 stream/world cells x 170 = 3060 steps


class PassthroughFilter:
    """A broken 'filter' that forwards every request untouched."""

    def __init__(self, config: SafetyConfig) -> None:
        self._request = (0.0, 0.0)

    def set_command(self, linear: float, angular: float, now: float) -> bool:
        self._request = (linear, angular)
        return True

    def set_scan(self, scan: ScanPoints, now: float) -> None:
        pass

    def set_odometry(self, linear: float, angular: float, now: float) -> bool:
        return True

    def step(self, now: float) -> FilterOutput:
        return FilterOutput(*self._request, 1.0, frozenset(), math.inf, "OK")


class ClampOnlyFilter(PassthroughFilter):
    """Velocity limits only: no acceleration limits, no guard."""

    def __init__(self, config: SafetyConfig) -> None:
        super().__init__(config)
        self._limits = config.limits

    def step(self, now: float) -> FilterOutput:
        v, w = self._request
        if not (math.isfinite(v) and math.isfinite(w)):
            return FilterOutput(0.0, 0.0, 0.0, frozenset({INVALID_INPUT}), math.inf, "OK")
        return FilterOutput(*clamp_velocity(v, w, self._limits), 1.0, frozenset(), math.inf, "OK")


class FrozenFilter(PassthroughFilter):
    """Blocks every motion forever, claiming a collision risk."""

    def step(self, now: float) -> FilterOutput:
        return FilterOutput(0.0, 0.0, 0.0, frozenset({COLLISION}), 0.0, "OK")


def totals(specs, filter_factory=None, workers=1):
    results = campaign.run_campaign(specs, workers=workers, filter_factory=filter_factory)
    return campaign.summarize(results)["totals"]


def specs_for(stream: str, world: str, episodes: int, steps: int) -> list:
    return campaign.plan_episodes(
        episodes * steps, streams=(stream,), worlds=(world,), episode_steps=steps
    )


@pytest.mark.slow
def test_small_campaign_through_the_real_filter_is_clean():
    specs = campaign.plan_episodes(SMALL_BUDGET, episode_steps=SMALL_EPISODE_STEPS)
    assert {(s.stream, s.world) for s in specs} == {
        (stream, world) for stream in campaign.STREAMS for world in campaign.STATIC_WORLDS
    }
    total = totals(specs)
    assert total["steps"] >= SMALL_BUDGET
    assert total["collisions"] == 0
    assert total["non_finite"] == 0
    assert total["limit_violations"] == 0, total["violations"]
    assert total["stuck_episodes"] == 0
    # The campaign is adversarial: the guard had to act and invalid input was stopped.
    assert total["guard_steps"] > 100
    assert total["hard_stop_steps"] > 10


def test_passthrough_filter_collides_on_the_full_speed_stream():
    total = totals(specs_for("full_speed", "corridor", 3, 200), PassthroughFilter)
    assert total["collisions"] > 0


def test_nan_passthrough_gives_non_finite_outputs_and_velocity_violations():
    total = totals(specs_for("nonfinite", "empty", 1, 100), PassthroughFilter)
    assert total["non_finite"] > 0
    assert total["violations"]["velocity"] > 0


def test_missing_acceleration_limits_are_counted():
    total = totals(specs_for("oscillating", "empty", 2, 100), ClampOnlyFilter)
    assert total["violations"]["accel"] > 0
    assert total["violations"]["velocity"] == 0
    assert total["non_finite"] == 0


def test_a_filter_that_blocks_everything_makes_episodes_stuck():
    total = totals(specs_for("random", "empty", 2, 100), FrozenFilter)
    assert total["stuck_episodes"] > 0
    assert total["collisions"] == 0


def test_same_seeds_give_the_same_counts_in_process_and_in_a_pool():
    specs = campaign.plan_episodes(2 * 40, streams=("jitter",), episode_steps=40)[:2]
    first = campaign.run_campaign(specs, workers=1)
    again = campaign.run_campaign(specs, workers=2)
    assert [r.min_gap for r in first] == [r.min_gap for r in again]
    assert [r.guard_steps for r in first] == [r.guard_steps for r in again]
    assert [r.sim_seconds for r in first] == [r.sim_seconds for r in again]


def test_parameters_are_the_yaml_defaults_with_the_robot_overrides():
    values = campaign.safety_parameters()
    path = campaign.safety_config_path()
    raw = yaml.safe_load(Path(path).read_text())["safety_controller"]["ros__parameters"]
    profile = campaign.profiles.load_robot_profile("default")
    assert values["reaction_time"] == raw["reaction_time"]
    assert values["max_accel"] == raw["max_accel"]
    assert values["max_velocity"] == [profile.max_linear_velocity, profile.max_angular_velocity]
    assert values["robot_radius"] == profile.footprint_radius
    config, mount = campaign.filter_config(values)
    assert config.limits.max_velocity == tuple(values["max_velocity"])
    assert config.closed_loop == (raw["feedback"] == "CLOSED_LOOP")
    assert mount.x == profile.lidar.mount_x


def wall_world():
    """A single wall whose face is the line x = 1."""
    return campaign.ObstacleGeometry(
        boxes=np.array([[1.5, 0.0, 1.0, 10.0, 0.0]]),
        cylinders=np.zeros((0, 3)),
        moving=np.zeros(0, dtype=bool),
    )


def test_escape_is_judged_on_ground_truth():
    world = wall_world()
    near = (1.0 - 0.11 - 0.02, 0.0, 0.0)  # 2 cm from the wall, facing it
    assert not campaign.is_escape(near, (0.2, 0.0), world, 0.11, 0.05)
    assert campaign.is_escape(near, (-0.2, 0.0), world, 0.11, 0.05)
    assert campaign.is_escape(near, (0.0, 1.0), world, 0.11, 0.05)
    # Sliding along the wall inside the margin neither gains clearance nor is clearly free.
    along = (1.0 - 0.11 - 0.02, 0.0, math.pi / 2)
    assert not campaign.is_escape(along, (0.2, 0.0), world, 0.11, 0.05)
    far = (-2.0, 0.0, 0.0)
    assert campaign.is_escape(far, (0.2, 0.0), world, 0.11, 0.05)


def test_nearest_obstacle_point_and_clearance():
    world = wall_world()
    assert campaign.nearest_obstacle_point(np.array([0.0, 2.0]), world) == pytest.approx([1.0, 2.0])
    assert campaign.clearance(np.array([0.25, 0.0]), world) == pytest.approx(0.75)


def test_a_guard_stop_faster_than_max_decel_is_reported_as_a_safety_stop():
    # Turning at -0.14 rad/s and creeping towards a wall inside the margin, the request
    # drops to zero: the normal ramp-down would still creep forward, so the guard stops
    # at once (within emergency_decel). The output equals the request, but the stop
    # broke max_decel, so the filter must say why.
    limits = VelocityLimits(max_velocity=(0.22, 2.75), min_velocity=(-0.22, -2.75))
    filt = SafetyFilter(SafetyConfig(limits=limits, footprint=Footprint(radius=0.11, margin=0.05)))
    wall = np.column_stack((np.full(41, 0.15), np.linspace(-0.4, 0.4, 41)))
    filt.set_scan(ScanPoints(wall, 41, 41), 0.0)
    filt.set_odometry(0.0, 0.0, 0.0)
    filt.set_command(0.0, 0.0, 0.0)
    filt.step(0.0)
    filt.set_odometry(0.01, -0.14, 0.035)
    filt.set_command(0.0, 0.0, 0.035)
    out = filt.step(0.035)
    assert (out.linear, out.angular) == (0.0, 0.0)
    assert COLLISION in out.reasons
