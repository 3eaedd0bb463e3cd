"""A model's life after a swap (no ROS): probation, rollback, blocked keys, events."""

from __future__ import annotations

import json

import pytest

from rl_policy_node.live_monitor import LiveMonitor, MonitorReport, MonitorSettings
from rl_policy_node.policy_diagnostics import LEVEL_ERROR, LEVEL_OK
from rl_policy_node.probation import (
    NO_TRUSTED_MODEL,
    PROBATION_PARAMETERS,
    ModelHistory,
    ProbationSettings,
    RollbackDecision,
    event_json,
    model_key,
    settings_from_parameters,
)
from rlguard_common.parameters import parameter_defaults

DT = 0.05
GOOD = model_key("nav_policy.pt", "a" * 64)
WEAK = model_key("weak_policy.pt", "b" * 64)
OTHER = model_key("other.pt", "c" * 64)
OK_REPORT = MonitorReport(LEVEL_OK, (), (), {}, "OK")


def error_report(reason: str = "stall rate 0.90 > 0.60 over 20 s of driving") -> MonitorReport:
    return MonitorReport(LEVEL_ERROR, (reason,), (reason,), {}, reason)


class Stack:
    """A node stand-in: the monitor and the history fed one tick at a time."""

    def __init__(self, history: ModelHistory[str], monitor: LiveMonitor) -> None:
        self.history, self.monitor = history, monitor
        self.slot = "good-slot"
        self.now = 0.0
        self.decisions: list[RollbackDecision[str]] = []

    def swap(self, slot: str, key: str, by_person: bool = True) -> None:
        self.slot = slot
        self.history.on_swap(slot, key, self.now, by_person)
        self.monitor.reset(self.now)

    def run(self, seconds: float, *, intervened: bool, speed: float, distance: float) -> float:
        for _ in range(round(seconds / DT)):
            self.now += DT
            self.monitor.record_tick(
                self.now,
                active=True,
                intervened=intervened,
                clearance=1.0,
                overrun=False,
                distance_to_goal=distance,
            )
            distance -= speed * DT
            decision = self.history.on_tick(self.now, True, self.monitor.report(self.now))
            if decision is not None:
                self.decisions.append(decision)
                self.slot = decision.slot
                self.monitor.reset(self.now)
        return distance


def started_history(settings: ProbationSettings | None = None) -> ModelHistory[str]:
    history: ModelHistory[str] = ModelHistory(settings or ProbationSettings(3, 60.0))
    history.on_swap("good-slot", GOOD, 0.0, by_person=False, at_start=True)
    return history


def test_a_degraded_model_is_rolled_back_within_its_probation_window():
    history = started_history()
    stack = Stack(history, LiveMonitor(MonitorSettings()))
    stack.monitor.goal_started(0.0)
    stack.run(30.0, intervened=False, speed=0.2, distance=20.0)  # the trusted model drives
    history.pending_events()
    swapped_at = stack.now
    stack.swap("weak-slot", WEAK)
    assert history.on_probation and history.rollback_key == GOOD
    # The weak model: the filter cuts most ticks and it makes no progress.
    stack.run(30.0, intervened=True, speed=0.0, distance=3.0)
    assert len(stack.decisions) == 1, stack.decisions
    decision = stack.decisions[0]
    assert decision.slot == "good-slot" and stack.slot == "good-slot"
    assert decision.key == GOOD and decision.from_key == WEAK
    assert decision.probation_started_s == pytest.approx(swapped_at)
    took = decision.event["time"] - swapped_at
    # Not before the monitor's minimum of active driving, well within 60 s of probation.
    assert MonitorSettings().min_active_s <= took < 20.0, took
    assert "probation breach" in decision.reason and "rate" in decision.reason
    events = history.pending_events()
    assert [e["type"] for e in events] == ["swap", "rollback"]
    rollback = json.loads(event_json(events[-1]))
    assert rollback["from"] == WEAK and rollback["to"] == GOOD
    assert rollback["probation_s"] == pytest.approx(took, abs=1e-6)
    assert rollback["on_probation"] is True and rollback["reason"] == decision.reason
    assert history.current_key == GOOD and not history.on_probation


def test_a_good_model_completes_probation_and_is_kept():
    history = started_history(ProbationSettings(goals=0, seconds=20.0))
    stack = Stack(history, LiveMonitor(MonitorSettings()))
    assert [e["type"] for e in history.pending_events()] == ["swap"]  # the start-up model
    stack.swap("other-slot", OTHER)
    stack.monitor.goal_started(stack.now)
    stack.run(25.0, intervened=False, speed=0.2, distance=20.0)
    assert stack.decisions == [] and not history.on_probation
    events = history.pending_events()
    assert [e["type"] for e in events] == ["swap", "probation_passed"]
    assert events[1]["active_s"] == pytest.approx(20.0, abs=DT)
    assert "s of driving without a monitor ERROR" in events[1]["reason"]
    # Later breaches do not roll it back: only the monitor shows the ERROR.
    stack.run(20.0, intervened=True, speed=0.0, distance=1.0)
    assert stack.monitor.report(stack.now).level == LEVEL_ERROR
    assert stack.decisions == [] and history.current_key == OTHER
    assert history.pending_events() == []
    # The model it replaced stays the rollback target, on request.
    assert history.rollback_key == GOOD


def test_probation_completes_by_goals_the_policy_drove():
    history = started_history(ProbationSettings(goals=2, seconds=0.0))
    history.on_swap("other-slot", OTHER, 1.0, by_person=True)
    assert history.on_goal_reached(2.0, policy_drove=False) is None  # the fallback's goal
    assert history.on_goal_reached(3.0, policy_drove=True) is None
    assert history.on_probation and history.status(3.0)["probation_goals"] == "1/2"
    passed = history.on_goal_reached(4.0, policy_drove=True)
    assert passed is not None and passed["type"] == "probation_passed"
    assert passed["goals"] == 2 and passed["probation_s"] == 3.0
    assert not history.on_probation and history.status(4.0)["model_state"] == "trusted"


def test_rollback_without_a_trusted_model_is_refused_with_the_reason():
    history: ModelHistory[str] = ModelHistory(ProbationSettings(trust_startup_model=False))
    history.on_swap("weak-slot", WEAK, 0.0, by_person=False, at_start=True)
    assert history.on_probation and history.rollback_key is None
    assert history.request_rollback(1.0, "operator") == NO_TRUSTED_MODEL
    # A breach during probation cannot roll back: the model keeps driving, marked failed.
    assert history.on_tick(2.0, True, error_report()) is None
    failed = history.pending_events()[-1]
    assert failed["type"] == "probation_failed" and NO_TRUSTED_MODEL in failed["reason"]
    assert not history.on_probation and history.status(2.0)["model_state"] == "failed"
    # It never becomes trusted, however long it drives.
    for tick in range(2000):
        history.on_tick(3.0 + tick * DT, True, OK_REPORT)
    assert history.status(200.0)["model_state"] == "failed"
    assert ModelHistory().request_rollback(0.0, "x") == "no model is driving"


def test_breach_with_rollback_disabled_only_reports():
    history = started_history(ProbationSettings(rollback_on_breach=False))
    history.on_swap("weak-slot", WEAK, 1.0, by_person=True)
    assert history.on_tick(2.0, True, error_report()) is None
    event = history.pending_events()[-1]
    assert event["type"] == "probation_failed" and "rollback_on_breach is false" in event["reason"]
    assert history.current_key == WEAK


def test_a_rolled_back_key_is_blocked_for_retries_but_not_for_a_person():
    history = started_history()
    history.on_swap("weak-slot", WEAK, 1.0, by_person=True)
    decision = history.on_tick(2.0, True, error_report())
    assert decision is not None and decision.key == GOOD
    problem = history.blocked_problem(WEAK, by_person=False)
    assert problem is not None and WEAK in problem and "set model_path again" in problem
    assert history.blocked_problem(WEAK, by_person=True) is None
    assert history.blocked_problem(WEAK, by_person=False) is not None  # asking clears nothing
    assert history.blocked_problem(GOOD, by_person=False) is None
    assert history.blocked_problem(model_key("weak_policy.pt", "d" * 64), False) is None
    history.on_swap("weak-slot", WEAK, 3.0, by_person=True)  # a person sets it again
    assert history.blocked_problem(WEAK, by_person=False) is None
    assert history.on_probation  # on probation again, with the good model to return to
    assert history.rollback_key == GOOD


def test_request_rollback_returns_to_the_trusted_model_and_blocks_the_left_one():
    history = started_history(ProbationSettings(goals=1, seconds=0.0))
    history.on_swap("other-slot", OTHER, 1.0, by_person=True)
    history.on_goal_reached(5.0, policy_drove=True)  # OTHER completed probation
    history.pending_events()
    decision = history.request_rollback(9.0, "operator asked")
    assert isinstance(decision, RollbackDecision)
    assert decision.slot == "good-slot" and decision.from_key == OTHER
    assert decision.probation_started_s is None  # it had completed probation
    assert decision.reason == "requested: operator asked"
    event = history.pending_events()[0]
    assert event["type"] == "rollback" and event["on_probation"] is False
    assert history.blocked_problem(OTHER, by_person=False) is not None
    # One model is remembered: nothing older to go back to now.
    assert history.request_rollback(10.0, "again") == NO_TRUSTED_MODEL


def test_a_key_that_completed_probation_is_trusted_when_it_comes_back():
    history = started_history(ProbationSettings(goals=1, seconds=0.0))
    history.on_swap("other-slot", OTHER, 1.0, by_person=True)
    assert history.on_probation
    history.on_swap("good-slot-2", GOOD, 2.0, by_person=True)  # back to the start-up model
    assert not history.on_probation and history.current_key == GOOD
    swap = history.pending_events()[-1]
    assert swap["probation"] is False and swap["from"] == OTHER and swap["to"] == GOOD


def test_probation_counts_only_active_driving_time():
    history = started_history(ProbationSettings(goals=0, seconds=1.0))
    history.on_swap("other-slot", OTHER, 0.0, by_person=True)
    for tick in range(1, 200):  # 10 s of the fallback driving
        history.on_tick(tick * DT, False, OK_REPORT)
    assert history.on_probation
    for tick in range(200, 222):
        history.on_tick(tick * DT, True, OK_REPORT)
    assert not history.on_probation


def test_probation_settings_from_parameters():
    defaults = parameter_defaults(PROBATION_PARAMETERS)
    assert settings_from_parameters(defaults) == ProbationSettings()
    assert set(defaults) == {
        "probation_goals",
        "probation_seconds",
        "rollback_on_breach",
        "trust_startup_model",
    }
    changed = settings_from_parameters({"probation_goals": 5, "probation_seconds": 30})
    assert changed.goals == 5 and changed.seconds == 30.0 and isinstance(changed.seconds, float)
    with pytest.raises(ValueError, match="probation_goals must be in"):
        settings_from_parameters({"probation_goals": -1})
    with pytest.raises(ValueError, match="true or false"):
        settings_from_parameters({"rollback_on_breach": 1})
    with pytest.raises(ValueError, match="integer"):
        settings_from_parameters({"probation_goals": 1.5})
    no_probation = ModelHistory[str](
        settings_from_parameters({"probation_goals": 0, "probation_seconds": 0.0})
    )
    no_probation.on_swap("a", GOOD, 0.0, by_person=True)
    assert not no_probation.on_probation


def test_events_are_json():
    history = started_history()
    event = history.on_swap("weak-slot", WEAK, 1.5, by_person=True)
    text = event_json(event)
    assert json.loads(text) == {
        "type": "swap",
        "time": 1.5,
        "from": GOOD,
        "to": WEAK,
        "reason": "set by a person",
        "by_person": True,
        "probation": True,
    }
