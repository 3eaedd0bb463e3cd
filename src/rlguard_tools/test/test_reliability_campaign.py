"""The adversarial reliability campaign: every class holds on a small budget, and it counts.

`make test` runs a small budget of every class through the same code path as
`make reliability` (the real filter built by the node's own builder from the YAML, scans
through the real validator, randomized physics, the base stopping on a stale command); one
test per class fails when that class regresses. Broken stand-in filters show that each
counter really detects what it claims to.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlguard_common.robot_profile import load_robot_profile
from safety_controller.limits import clamp_velocity
from safety_controller.node_config import load_parameters
from safety_controller.safety_filter import (
    COLLISION,
    INVALID_INPUT,
    FilterOutput,
    SafetyConfig,
)
from safety_controller.scan_geometry import LidarMount, ScanPoints

campaign = pytest.importorskip("rlguard_tools.campaign")
sim_core = pytest.importorskip("sim_bringup.sim_core")

SMALL_STEPS_PER_CLASS = 600
SMALL_EPISODE_STEPS = 200  # 3 episodes per class: one per static world, or 3 among movers


class PassthroughFilter:
    """A broken 'filter' that forwards every request untouched (and has no reject_scan)."""

    def __init__(self, config: SafetyConfig) -> None:
        self._request = (0.0, 0.0)

    def set_command(self, linear: float, angular: float, now: float) -> bool:
        self._request = (linear, angular)
        return True

    def set_scan(self, scan: ScanPoints, now: float, stamp: float | None = None) -> None:
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

    def reject_scan(self, now: float, reason: str) -> None:
        pass

    def step(self, now: float) -> FilterOutput:
        return FilterOutput(0.0, 0.0, 0.0, frozenset({COLLISION}), 0.0, "OK")


class RaisingOnBadTimeFilter(FrozenFilter):
    """Raises on a non-finite `now` (the contract says: zero, no exception)."""

    def step(self, now: float) -> FilterOutput:
        if not math.isfinite(now):
            raise ValueError("now is not finite")
        return super().step(now)


def totals(specs, filter_factory=None, workers=1):
    results = campaign.run_campaign(specs, workers=workers, filter_factory=filter_factory)
    return campaign.summarize(results)["totals"]


def specs_for(name: str, episodes: int, steps: int) -> list:
    cls = campaign.CLASS_BY_NAME[name]
    specs = campaign.plan_episodes(episodes * steps, classes=(name,), episode_steps=steps)
    return specs[: max(episodes, len(cls.worlds))]


# --------------------------------------------------------------------------- every class holds


@pytest.fixture(scope="module")
def small_campaign() -> dict:
    specs = campaign.plan_episodes(SMALL_STEPS_PER_CLASS, episode_steps=SMALL_EPISODE_STEPS)
    return campaign.summarize(campaign.run_campaign(specs, workers=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", [c.name for c in campaign.CLASSES])
def test_each_class_holds_on_a_small_budget(small_campaign, name):
    entry = small_campaign["classes"][name]
    cls = campaign.CLASS_BY_NAME[name]
    assert entry["steps"] >= SMALL_STEPS_PER_CLASS
    assert {c.split("/")[1] for c in small_campaign["cells"] if c.startswith(name + "/")} == set(
        cls.worlds
    )
    assert entry["at_fault"] == 0, [e for e in small_campaign["events"] if e["class_name"] == name]
    assert entry["non_finite"] == 0
    assert entry["exceptions"] == 0
    assert entry["limit_violations"] == 0, (
        entry["violations"],
        [e for e in small_campaign["events"] if e["class_name"] == name][:5],
    )
    assert entry["stuck_episodes"] == 0
    assert campaign.expected_reason_seen(name, entry), (entry["reasons"], entry["scan_rejections"])
    assert entry["failures"] == []
    if cls.scan_fault or cls.clock:
        assert entry["faults_injected"] > 0  # the class really injected its fault
    if cls.scan_fault and cls.scan_fault not in ("all_inf", "all_nan", "nonfinite"):
        # The malformed scans were refused by the validator under their own name.
        assert set(entry["scan_rejections"]) <= set(cls.expected_reasons)
        assert entry["scan_rejections"]
    elif not cls.scan_fault:
        assert entry["scan_rejections"] == {}  # the simulator's scans are all valid


@pytest.mark.slow
def test_the_small_campaign_is_adversarial(small_campaign):
    total = small_campaign["totals"]
    assert total["guard_steps"] > 1000
    assert total["hard_stop_steps"] > 10
    assert set(small_campaign["classes"]) == set(campaign.CLASS_BY_NAME)


# --------------------------------------------------------------------------- the counters count


def test_passthrough_filter_collides_at_fault_on_the_full_speed_stream():
    total = totals(specs_for("full_speed", 3, 200), PassthroughFilter)
    assert total["at_fault"] > 0


def test_nan_passthrough_gives_non_finite_outputs_and_velocity_violations():
    total = totals(specs_for("nonfinite_commands", 1, 100)[:1], PassthroughFilter)
    assert total["non_finite"] > 0
    assert total["violations"]["velocity"] > 0


def test_missing_acceleration_limits_are_counted_step_to_step():
    total = totals(specs_for("alternating", 3, 60), ClampOnlyFilter)
    assert total["violations"]["accel"] > 0
    assert total["violations"]["velocity"] == 0
    assert total["non_finite"] == 0


def test_a_filter_that_blocks_everything_makes_episodes_stuck():
    total = totals(specs_for("random", 3, 100), FrozenFilter)
    assert total["stuck_episodes"] > 0
    assert total["collisions"] == 0


def test_a_filter_without_reject_scan_fails_the_malformed_scan_classes():
    specs = specs_for("scan_beam_count_mismatch", 3, 100)

    def failures(factory) -> list[str]:
        results = campaign.run_campaign(specs, workers=1, filter_factory=factory)
        return campaign.summarize(results)["classes"]["scan_beam_count_mismatch"]["failures"]

    unhandled = "rejected scans not passed"
    assert not any(unhandled in f for f in failures(FrozenFilter))  # it has reject_scan
    assert any(unhandled in f for f in failures(PassthroughFilter))


def test_non_finite_now_must_give_zero_without_an_exception():
    specs = specs_for("clock_nonfinite", 3, 200)
    assert totals(specs, PassthroughFilter)["violations"]["invalid_now"] > 0
    raising = totals(specs, RaisingOnBadTimeFilter)
    assert raising["exceptions"] > 0
    assert raising["violations"]["invalid_now"] == 0  # the node publishes zero instead


def test_a_mover_hitting_a_standing_robot_is_not_at_fault():
    # A robot that never moves in the head-on corridor: the mover sweeps the lane.
    total = totals(specs_for("movers_headon", 2, 900), FrozenFilter)
    assert total["collisions"] > 0
    assert total["at_fault"] == 0
    assert total["not_at_fault"] == total["collisions"]


def test_same_seeds_give_the_same_counts_in_process_and_in_a_pool():
    specs = specs_for("jitter", 2, 40)[:2]
    first = campaign.run_campaign(specs, workers=1)
    again = campaign.run_campaign(specs, workers=2)
    assert [r.min_gap for r in first] == [r.min_gap for r in again]
    assert [r.guard_steps for r in first] == [r.guard_steps for r in again]
    assert [r.sim_seconds for r in first] == [r.sim_seconds for r in again]


def test_a_class_subset_plans_the_same_episodes_as_the_full_campaign():
    full = campaign.plan_episodes(400, episode_steps=200)
    subset = campaign.plan_episodes(400, classes=("clock_stall",), episode_steps=200)
    assert [s.seed for s in full if s.class_name == "clock_stall"] == [s.seed for s in subset]


# --------------------------------------------------------------------------- the pieces


def test_parameters_come_from_the_yaml_through_the_node_builder():
    values = campaign.safety_parameters()
    raw = load_parameters(campaign.safety_config_path())
    profile = load_robot_profile("default")
    assert values["reaction_time"] == raw["reaction_time"]
    assert values["max_velocity"] == [profile.max_linear_velocity, profile.max_angular_velocity]
    config, mount = campaign.build_config(values)
    assert config.limits.max_velocity == tuple(values["max_velocity"])
    assert config.closed_loop == (raw["feedback"] == "CLOSED_LOOP")
    assert mount.x == profile.lidar.mount_x
    assert campaign.base_horizon(values) == pytest.approx(values["base_command_timeout"])
    lidar270 = campaign.robot_profile(campaign.LIDAR270)
    assert lidar270.lidar.fov == pytest.approx(1.5 * math.pi)
    assert not lidar270.lidar.full_circle


@pytest.fixture(scope="module")
def good_scan():
    sim = campaign.shared_simulator("default", "warehouse")
    sim.reset(3)
    return campaign.scan_message(sim)


def test_the_simulators_scans_are_valid(good_scan):
    assert campaign.validate_scan_message(good_scan) is None


@pytest.mark.parametrize(
    "kind",
    [k for k in campaign.SCAN_FAULTS if k not in ("all_inf", "all_nan", "nonfinite")],
)
def test_each_malformed_scan_is_refused_under_its_name(good_scan, kind):
    rng = np.random.default_rng(1)
    expected = campaign.SCAN_FAULTS[kind][1]
    for _ in range(10):
        assert (
            campaign.validate_scan_message(campaign.corrupt_scan(good_scan, kind, rng)) in expected
        )


def test_all_inf_and_all_nan_scans_are_well_formed_but_empty(good_scan):
    rng = np.random.default_rng(1)
    for kind in ("all_inf", "all_nan"):
        bad = campaign.corrupt_scan(good_scan, kind, rng)
        assert campaign.validate_scan_message(bad) is None
        assert not np.isfinite(bad.ranges).any()
        assert len(bad.ranges) == len(good_scan.ranges)


def test_feed_scan_rejects_through_the_filter_or_sets_points(good_scan):
    calls = []

    class Recorder(FrozenFilter):
        def reject_scan(self, now, reason):
            calls.append(("reject", now, reason))

        def set_scan(self, scan, now, stamp=None):
            calls.append(("scan", now, scan.total_beams))

    filt = Recorder(SafetyConfig())
    mount = LidarMount()
    assert campaign.feed_scan(filt, good_scan, 1.0, mount) is None
    bad = campaign.corrupt_scan(good_scan, "beam_count_mismatch", np.random.default_rng(0))
    assert campaign.feed_scan(filt, bad, 2.0, mount) == "beam_count_mismatch"
    assert calls == [("scan", 1.0, len(good_scan.ranges)), ("reject", 2.0, "beam_count_mismatch")]


def test_fault_schedule_alternates_good_stretches_and_bursts():
    schedule = campaign.FaultSchedule(np.random.default_rng(5))
    states = [schedule.active(t) for t in np.arange(0.0, 30.0, 0.1)]
    assert not states[0]
    flips = sum(a != b for a, b in zip(states, states[1:], strict=False))
    assert flips >= 6
    assert 0.2 < sum(states) / len(states) < 0.8


def _nows(kind: str, seconds: float = 30.0) -> list[list[float]]:
    clock = campaign.FilterClock(kind, np.random.default_rng(11))
    return [clock.nows(t)[0] for t in np.arange(0.0, seconds, campaign.CONTROL_PERIOD)]


def test_clock_faults_produce_the_sequences_they_name():
    stall = _nows("stall")
    flat = [b[0] - a[-1] for a, b in zip(stall, stall[1:], strict=False)]
    assert sum(d == 0.0 for d in flat) > 20  # a stalled clock repeats its stamp
    assert any(len(n) == 2 and n[0] == n[1] for n in stall)  # two steps at one stamp
    back = [b[0] - a[0] for a, b in zip(_nows("backward"), _nows("backward")[1:], strict=False)]
    assert min(back) < -0.04
    fwd = [b[0] - a[0] for a, b in zip(_nows("forward"), _nows("forward")[1:], strict=False)]
    assert max(fwd) > 0.2
    assert any(not math.isfinite(n[0]) for n in _nows("nonfinite"))
    true_clock = zip(_nows(""), np.arange(0.0, 30.0, campaign.CONTROL_PERIOD), strict=True)
    assert all(n == [pytest.approx(t)] for n, t in true_clock)
    clock = campaign.FilterClock("gaps", np.random.default_rng(2))
    periods = [clock.period(campaign.CONTROL_PERIOD) for _ in range(200)]
    assert max(periods) <= campaign.MAX_GAP_PERIODS * campaign.CONTROL_PERIOD
    assert max(periods) > 3.0 * campaign.CONTROL_PERIOD


def test_the_modelled_base_stops_on_a_command_older_than_its_horizon():
    spec = campaign.EpisodeSpec(0, "clock_gaps", "empty", 7, 1)

    def speed_after(horizon: float) -> float:
        episode = campaign.Episode(spec, None, FrozenFilter)
        episode.horizon = horizon
        episode.base_command, episode.base_time = (0.2, 0.0), episode.time
        episode.advance(0.35)
        return episode.sim.velocity[0]

    assert speed_after(math.inf) > 0.15
    assert abs(speed_after(0.15)) < 0.03


def wall_world():
    """A single wall whose face is the line x = 1."""
    return sim_core.ObstacleGeometry(
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


def test_generated_mover_worlds_load_and_move():
    for name in campaign.MOVER_WORLDS:
        world = campaign.load_campaign_world(name)
        assert world.moving_cylinders, name
        sim = campaign.shared_simulator("default", name)
        sim.reset(0)
        before = sim.moving_obstacles()[:, :2].copy()
        sim.step(0.0, 0.0, 1.0)
        assert np.abs(sim.moving_obstacles()[:, :2] - before).max() > 0.1


def test_the_command_line_writes_the_report(tmp_path):
    from rlguard_tools import reliability_campaign

    argv = ["--steps", "40", "--episode-steps", "20", "--classes", "random", "--workers", "1"]
    status = reliability_campaign.main([*argv, "--out", str(tmp_path)])
    (report,) = tmp_path.glob("reliability_campaign-*.json")
    payload = json.loads(report.read_text())
    assert status == (1 if payload["classes"]["random"]["failures"] else 0)
    assert payload["settings"]["episodes"] == 3  # one per static world
    assert payload["classes"]["random"]["steps"] == 60
    assert set(payload["machine"]) >= {"cores", "cpu_model", "python"}
    assert report.with_suffix(".md").read_text().count("| random |") == 1
