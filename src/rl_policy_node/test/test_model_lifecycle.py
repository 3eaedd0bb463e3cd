"""The policy node's model life without ROS: take-overs, goals, rollback, drift's baseline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rl_policy_node_test_support import T0, controller_with_inputs, prepared_slot, small_card

from rl_policy_node.drift_watch import NO_BASELINE, DriftWatch
from rl_policy_node.live_monitor import MonitorSettings
from rl_policy_node.model_lifecycle import ModelLifecycle
from rl_policy_node.policy_inputs import OdomSample, ScanSample
from rl_policy_node.policy_runtime import PolicyController, TickResult
from rl_policy_node.probation import ProbationSettings
from rl_policy_node.scan_drift import DriftSettings, ScanStatistics

PERIOD_NS = 50_000_000
ACTIVE = TickResult((0.1, 0.0), True, "")


@pytest.fixture
def slots(tmp_path):
    return {name: prepared_slot(tmp_path, f"{name}.pt", seed=i) for i, name in enumerate("abc")}


def lifecycle(controller, **probation) -> ModelLifecycle:
    settings = ProbationSettings(**{"goals": 2, "seconds": 60.0, **probation})
    return ModelLifecycle(controller, MonitorSettings(), settings, intervention_threshold=0.9)


def run(life: ModelLifecycle, start_ns: int, seconds: float, result: TickResult = ACTIVE):
    """Tick for `seconds`; returns the rollbacks made and the time reached."""
    rollbacks, now = [], start_ns
    for _ in range(int(seconds * 1e9 / PERIOD_NS)):
        now += PERIOD_NS
        decision, _ = life.tick(now, result)
        if decision is not None:
            rollbacks.append(decision)
    return rollbacks, now


def b_on_probation_after_a(slots) -> tuple[PolicyController, ModelLifecycle, int]:
    """Model a trusted from the start, b set by a person and driving for 2 s in POLICY;
    returns the controller, the lifecycle and the time reached."""
    controller = controller_with_inputs(slots["a"])
    life = lifecycle(controller)
    life.swapped(slots["a"], by_person=True, at_start=True)
    run(life, T0, 1.0)
    controller.install(slots["b"])
    life.swapped(slots["b"], by_person=True)
    life.mode_changed("POLICY", T0 / 1e9 + 1.0)
    _, now = run(life, T0 + 1_000_000_000, 2.0)
    return controller, life, now


def test_two_take_overs_on_probation_roll_back_to_the_trusted_model(slots):
    controller, life, now = b_on_probation_after_a(slots)
    # A take-over while the policy is inactive is not the model's fault: not counted.
    controller._active = False
    life.mode_changed("FALLBACK: policy/active false", now / 1e9)
    controller._active = True
    life.mode_changed("POLICY", now / 1e9)
    assert run(life, now, 1.0)[0] == []
    life.mode_changed("FALLBACK: no progress", now / 1e9 + 1.0)
    life.mode_changed("POLICY", now / 1e9 + 1.0)
    life.mode_changed("FALLBACK: no progress", now / 1e9 + 1.0)
    rollbacks, _ = run(life, now + 1_000_000_000, 1.0)
    assert len(rollbacks) == 1 and rollbacks[0].event["automatic"]
    assert "arbiter took over 2 time(s)" in rollbacks[0].reason
    assert controller.slot is slots["a"]
    assert life.take_rollback_path() == "a.pt" and life.take_rollback_path() is None


def test_take_overs_heard_during_a_ticks_inference_count(slots):
    # The tick reads the clock before inference; a mode callback during inference
    # stamps a later time, and the tick then hands it to the monitor.
    controller, life, now = b_on_probation_after_a(slots)
    controller._active = True  # the policy drives (run() feeds results, not the controller)
    rollbacks = []
    for _ in range(2):
        life.mode_changed("FALLBACK: no progress", (now + PERIOD_NS) / 1e9 + 0.004)
        life.mode_changed("POLICY", (now + PERIOD_NS) / 1e9 + 0.004)
        found, now = run(life, now, 1.0)
        rollbacks += found
    assert len(rollbacks) == 1 and "arbiter took over 2 time(s)" in rollbacks[0].reason


def test_goal_corrections_continue_a_goal_and_a_goal_stood_at_was_reached(slots):
    controller = controller_with_inputs(slots["a"])
    life = lifecycle(controller)
    life.swapped(slots["a"], by_person=True, at_start=True)
    controller.install(slots["b"])
    life.swapped(slots["b"], by_person=True)
    life.mode_changed("POLICY", T0 / 1e9)
    now = T0
    for leg, goal in enumerate([(3.0, 1.0), (6.0, 1.0)]):
        previous = controller.goal
        controller.set_goal(*goal)
        life.goal_changed(previous if leg else None, now / 1e9)
        # The arbiter re-expresses the goal in odom: the same goal, not a new one.
        previous = controller.goal
        controller.set_goal(goal[0] + 0.05, goal[1])
        life.goal_changed(previous, now / 1e9)
        _, now = run(life, now, 2.0)
        controller.odom = OdomSample((goal[0] + 0.2, goal[1], 0.0), (0.1, 0.0), now, now)
    previous = controller.goal
    controller.set_goal(0.0, 0.0)
    life.goal_changed(previous, now / 1e9)
    run(life, now, 0.2)
    values = life.status(now / 1e9)
    assert values["goals_reached"] == "2" and values["goals_failed"] == "0"
    passed = [e for e in life.history.events if e["type"] == "probation_passed"]
    assert passed and passed[0]["goals"] == 2


def test_a_rollback_on_request_needs_a_trusted_model_and_sees_the_last_swap(slots):
    controller = controller_with_inputs(slots["a"])
    life = lifecycle(controller, trust_startup_model=False)
    life.swapped(slots["a"], by_person=True, at_start=True)
    refusal, _ = life.request_rollback(T0 / 1e9, "by hand")
    assert refusal == "no model that completed probation to return to"
    life = lifecycle(controller)
    life.swapped(slots["a"], by_person=True, at_start=True)
    controller.install(slots["c"])
    life.swapped(slots["c"], by_person=True)  # not yet seen by a tick
    refusal, events = life.request_rollback(T0 / 1e9, "by hand")
    assert refusal is None and controller.slot is slots["a"]
    assert [e["type"] for e in events][-1] == "rollback" and not events[-1]["automatic"]


def test_interventions_count_only_with_a_fresh_scale_while_the_policy_drives(slots):
    controller = controller_with_inputs(slots["a"])
    life = lifecycle(controller)
    life.swapped(slots["a"], by_person=True, at_start=True)
    life.scale(0.2, T0)
    _, now = run(life, T0, 0.4)  # fresh (source_timeout 0.5 s)
    run(life, now, 2.0)  # stale: no longer counted
    values = life.status(now / 1e9)
    # 10 ticks within source_timeout (0.5 s) of the one scale sample, of 48 driven.
    assert float(values["intervention_rate"]) == pytest.approx(10 / 48, abs=0.002)
    life.mode_changed("FALLBACK", now / 1e9)  # the fallback drives: the policy is not judged
    samples = values["samples"]
    run(life, now + 2_000_000_000, 1.0)
    assert life.status(now / 1e9)["samples"] == samples


def _noisy(scan_sample: ScanSample, sigma: float, seed: int):
    scan = scan_sample.scan
    rng = np.random.default_rng(seed)
    return dataclasses.replace(scan, ranges=scan.ranges + rng.normal(0.0, sigma, scan.ranges.size))


def test_drift_uses_the_card_statistics_then_a_calibration_and_holds_the_policy(tmp_path):
    clean = controller_with_inputs().scan
    statistics = ScanStatistics.for_scan_spec(small_card().observation.scan, "training")
    for _ in range(50):
        statistics.add(clean.scan)
    with_stats = small_card(scan_statistics=statistics.to_dict())
    controller = controller_with_inputs(prepared_slot(tmp_path, card=small_card()))
    settings = DriftSettings(window=1.0, min_scans=5, deactivates_policy=True, capture_duration=1.0)
    watch = DriftWatch(controller, settings)
    assert watch.refresh() == "" and watch.status(0.0)[1] == NO_BASELINE
    controller.install(prepared_slot(tmp_path, "s.pt", card=with_stats))
    watch.refresh()
    assert watch.detector is not None and watch.detector.baseline.kind == "training"

    message = watch.start_capture(0.0)
    assert "calibration" in message
    events = []
    for i in range(30):
        events += watch.on_scan(clean.scan, 0.05 * i)
    assert [e["type"] for e in events] == ["baseline_captured"]
    assert watch.detector.baseline.kind == "calibration"

    for i in range(40):
        events += watch.on_scan(_noisy(clean, 0.1, i), 2.0 + 0.05 * i)
    assert events[-1]["type"] == "drift" and events[-1]["level"] == "ERROR"
    assert controller.hold_reason.startswith("sensor drift:")
    assert controller.gate(T0).startswith("held: sensor drift")
    for i in range(60):
        events += watch.on_scan(clean.scan, 5.0 + 0.05 * i)
    assert events[-1]["level"] == "OK" and controller.hold_reason is None
    # A swap keeps the calibration as the baseline.
    controller.install(prepared_slot(tmp_path, "t.pt", card=with_stats))
    watch.refresh()
    assert watch.detector.baseline.kind == "calibration"
