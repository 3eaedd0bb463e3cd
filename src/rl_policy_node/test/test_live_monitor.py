"""The live monitor (no ROS): windows, levels, near misses, goals, baseline, parameters."""

from __future__ import annotations

import math

import pytest

from rl_policy_node.live_monitor import (
    MONITOR_PARAMETERS,
    LiveMonitor,
    MonitorBaseline,
    MonitorSettings,
    baseline_from_evaluation,
    settings_from_parameters,
)
from rl_policy_node.policy_diagnostics import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN
from rlguard_common.parameters import parameter_defaults

DT = 0.05  # 20 Hz control ticks


def drive(
    monitor: LiveMonitor,
    start: float,
    seconds: float,
    *,
    active: bool = True,
    intervene_every: int = 0,
    clearance: float | None = 1.0,
    speed: float = 0.2,
    distance: float = 5.0,
    overrun_every: int = 0,
) -> tuple[float, float]:
    """Ticks for `seconds` from `start`; returns (end time, final distance to the goal).

    Every `intervene_every`-th tick is an intervention (0: none); the robot closes on
    the goal at `speed` m/s.
    """
    ticks = round(seconds / DT)
    now = start
    for i in range(ticks):
        now = start + i * DT
        monitor.record_tick(
            now,
            active=active,
            intervened=bool(intervene_every) and i % intervene_every == 0,
            clearance=clearance,
            overrun=bool(overrun_every) and i % overrun_every == 0,
            distance_to_goal=distance,
        )
        distance = max(0.0, distance - speed * DT)
    return now, distance


def small_settings(**changes: object) -> MonitorSettings:
    base = {"window": 10.0, "min_active_s": 2.0, "min_samples": 20, "max_age": 100.0}
    base.update(changes)
    return MonitorSettings(**base)  # type: ignore[arg-type]


def test_a_good_drive_is_ok_and_reports_its_values():
    monitor = LiveMonitor(small_settings())
    monitor.goal_started(0.0)
    end, _ = drive(monitor, 0.0, 8.0, intervene_every=10)
    report = monitor.report(end)
    assert report.level == LEVEL_OK and report.breaches == () and report.message == "OK"
    values = report.values
    assert float(values["intervention_rate"]) == pytest.approx(0.1)
    assert float(values["stall_rate"]) == 0.0 and values["near_misses"] == "0"
    assert values["samples"] == "160" and values["verdict"] == "judging"
    assert values["min_clearance"] == "1.000" and values["window_s"] == "10"
    assert values["baseline_goal_time"] == "n/a" and values["goals_reached"] == "0"


def test_intervention_rate_levels_ok_warn_error():
    settings = small_settings(warn_intervention_rate=0.3, max_intervention_rate=0.6)
    levels = {}
    for every, expected in ((4, LEVEL_OK), (2, LEVEL_WARN), (1, LEVEL_ERROR)):
        monitor = LiveMonitor(settings)
        monitor.goal_started(0.0)
        end, _ = drive(monitor, 0.0, 5.0, intervene_every=every)
        report = monitor.report(end)
        levels[every] = report.level
        assert report.level == expected, (every, report)
    error = LiveMonitor(settings)
    end, _ = drive(error, 0.0, 5.0, intervene_every=1)
    report = error.report(end)
    assert report.errors == report.breaches[:1]
    assert report.errors[0].startswith("intervention rate 1.00 > 0.60 over 5 s of driving")
    assert levels == {4: LEVEL_OK, 2: LEVEL_WARN, 1: LEVEL_ERROR}


def test_no_rate_verdict_before_enough_active_driving():
    monitor = LiveMonitor(small_settings(min_active_s=3.0, min_samples=20))
    end, _ = drive(monitor, 0.0, 1.0, intervene_every=1)  # every tick cut, but 1 s only
    report = monitor.report(end)
    assert report.level == LEVEL_OK and report.values["verdict"] == "waiting"
    assert "judged after 3 s" in report.message
    # Time passing without the policy driving does not make a verdict either.
    end, _ = drive(monitor, end + DT, 10.0, active=False)
    assert monitor.report(end).level == LEVEL_OK
    end, _ = drive(monitor, end + DT, 2.5, intervene_every=1)
    assert monitor.report(end).level == LEVEL_ERROR


def test_window_slides_over_driving_time_and_old_samples_age_out():
    monitor = LiveMonitor(small_settings(window=5.0, min_active_s=2.0, max_age=30.0))
    end, _ = drive(monitor, 0.0, 5.0, intervene_every=1)
    assert monitor.report(end).level == LEVEL_ERROR
    # The fallback drives for a while: the policy's last 5 s of driving are still held.
    end, _ = drive(monitor, end + DT, 10.0, active=False)
    assert monitor.report(end).level == LEVEL_ERROR
    # 5 s of clean driving push the bad ticks out of the window.
    end, _ = drive(monitor, end + DT, 5.0)
    report = monitor.report(end)
    assert report.level == LEVEL_OK, report
    assert float(report.values["intervention_rate"]) == 0.0
    assert float(report.values["active_s"]) == pytest.approx(5.0, abs=DT)
    # And driving older than max_age leaves even when nothing replaced it.
    assert monitor.report(end + 31.0).values["samples"] == "0"


def test_stall_is_little_progress_over_the_stall_window():
    settings = small_settings(stall_window=2.0, min_progress=0.1, warn_stall_rate=0.3)
    stuck = LiveMonitor(settings)
    stuck.goal_started(0.0)
    end, _ = drive(stuck, 0.0, 6.0, speed=0.01)  # 0.02 m per 2 s
    report = stuck.report(end)
    # The first stall window of driving cannot be judged: 4 of 6 s are stalled.
    assert float(report.values["stall_rate"]) == pytest.approx(4.0 / 6.0, abs=0.02)
    assert report.level == LEVEL_ERROR and "stall rate" in report.errors[0]
    moving = LiveMonitor(settings)
    moving.goal_started(0.0)
    end, _ = drive(moving, 0.0, 6.0, speed=0.1)  # 0.2 m per 2 s
    assert moving.report(end).level == LEVEL_OK
    # Near the goal less is required: half the distance left.
    near = LiveMonitor(settings)
    near.goal_started(0.0)
    end, _ = drive(near, 0.0, 6.0, speed=0.02, distance=0.06)
    assert float(near.report(end).values["stall_rate"]) == 0.0


def test_progress_made_while_the_fallback_drives_is_not_the_policys():
    monitor = LiveMonitor(small_settings(stall_window=2.0))
    monitor.goal_started(0.0)
    end, distance = drive(monitor, 0.0, 1.5, speed=0.0)
    end, distance = drive(monitor, end + DT, 5.0, active=False, speed=1.0, distance=distance)
    end, _ = drive(monitor, end + DT, 1.5, speed=0.0, distance=1.0)
    # Neither stretch of policy driving lasted a stall window: nothing is judged stalled.
    assert float(monitor.report(end).values["stall_rate"]) == 0.0


def test_near_misses_are_events_judged_at_once():
    monitor = LiveMonitor(small_settings(near_miss_distance=0.12, max_near_misses=2))
    end, _ = drive(monitor, 0.0, 0.2, clearance=0.10)  # one approach, several ticks
    report = monitor.report(end)
    assert report.values["near_misses"] == "1" and report.level == LEVEL_WARN
    assert report.values["verdict"] == "waiting"  # rates are not judged yet
    end, _ = drive(monitor, end + DT, 0.2, clearance=0.15)  # not clear enough to re-arm
    end, _ = drive(monitor, end + DT, 0.2, clearance=0.10)
    assert monitor.report(end).values["near_misses"] == "1"
    end, _ = drive(monitor, end + DT, 0.2, clearance=0.5)
    end, _ = drive(monitor, end + DT, 0.2, clearance=0.08)
    report = monitor.report(end)
    assert report.level == LEVEL_ERROR and report.values["near_misses"] == "2"
    assert "2 near miss(es)" in report.errors[0] and "limit 2" in report.errors[0]
    assert report.values["min_clearance"] == "0.080"
    # Clearances while the fallback drives are not the policy's near misses.
    calm = LiveMonitor(small_settings(max_near_misses=1))
    end, _ = drive(calm, 0.0, 1.0, active=False, clearance=0.05)
    assert calm.report(end).level == LEVEL_OK


def test_arbiter_handovers_warn_then_error():
    monitor = LiveMonitor(small_settings(max_handovers=2))
    end, _ = drive(monitor, 0.0, 1.0)
    monitor.policy_handed_over(end, "no progress")
    report = monitor.report(end)
    assert report.level == LEVEL_WARN and "arbiter took over 1 time(s)" in report.breaches[0]
    end, _ = drive(monitor, end + 5.0, 1.0)
    monitor.policy_handed_over(end, "safety intervention rate 0.40 > 0.2")
    report = monitor.report(end)
    assert report.level == LEVEL_ERROR and report.values["handovers"] == "2"
    assert "last: safety intervention rate" in report.errors[0]


def test_handovers_count_over_the_goal_window_not_the_driving_window():
    # A weak model drives longer than the rate window before each take-over: the two
    # take-overs are still one goal window apart, and that is an ERROR.
    monitor = LiveMonitor(small_settings(window=10.0, goal_window=200.0, max_handovers=2))
    end, _ = drive(monitor, 0.0, 30.0)
    monitor.policy_handed_over(end, "no progress")
    end, _ = drive(monitor, end + 20.0, 30.0, active=False)  # the fallback drives
    end, _ = drive(monitor, end + 1.0, 30.0)  # three driving windows later
    monitor.policy_handed_over(end, "no progress")
    report = monitor.report(end)
    assert report.level == LEVEL_ERROR and report.values["handovers"] == "2"
    assert "in 200 s" in report.errors[0]
    # Past the goal window the first one is forgotten.
    first = end
    end, _ = drive(monitor, end + 200.0 - 30.0, 30.0)
    report = monitor.report(end)
    assert report.values["handovers"] == "1" and report.level == LEVEL_WARN, (first, report)


def test_goals_failures_timeouts_and_time_against_the_baseline():
    baseline = MonitorBaseline(0.9, 20.0, 0.2, "test")
    settings = small_settings(
        max_goal_time=100.0, min_goals=2, warn_goal_time_ratio=1.5, max_goal_time_ratio=3.0
    )
    monitor = LiveMonitor(settings, baseline)
    for start in (0.0, 40.0):
        monitor.goal_started(start)
        monitor.goal_reached(start + 35.0)  # 1.75 x the baseline
    report = monitor.report(80.0)
    assert report.level == LEVEL_WARN and "1.8 x baseline 20.0 s" in report.breaches[0]
    assert report.values["mean_goal_time"] == "35.0" and report.values["goals_reached"] == "2"
    assert report.values["baseline_goal_time"] == "20.0"
    # Without a baseline the same goals are not judged by time.
    assert LiveMonitor(settings).report(0.0).level == LEVEL_OK
    unjudged = LiveMonitor(settings)
    for start in (0.0, 40.0):
        unjudged.goal_started(start)
        unjudged.goal_reached(start + 35.0)
    assert unjudged.report(80.0).level == LEVEL_OK

    failing = LiveMonitor(settings.__class__(**{**settings.__dict__, "max_goal_failures": 2}))
    failing.goal_started(0.0)
    failing.goal_started(10.0)  # replaces the unreached one
    report = failing.report(10.0)
    assert report.level == LEVEL_WARN and "replaced by a new goal" in report.breaches[0]
    report = failing.report(111.0)  # the second one ran over max_goal_time
    assert report.level == LEVEL_ERROR and report.values["goals_failed"] == "2"
    assert "timeout after 100 s" in report.errors[0]


def test_goal_window_ages_goal_results_out():
    monitor = LiveMonitor(small_settings(goal_window=50.0, max_goal_failures=1))
    monitor.goal_started(0.0)
    monitor.goal_failed(5.0, "collision")
    assert monitor.report(5.0).level == LEVEL_ERROR
    assert monitor.report(56.0).level == LEVEL_OK


def test_overrun_rate_levels():
    monitor = LiveMonitor(small_settings(warn_overrun_rate=0.05, max_overrun_rate=0.2))
    end, _ = drive(monitor, 0.0, 4.0, overrun_every=10)
    report = monitor.report(end)
    assert report.level == LEVEL_WARN and report.breaches[0].startswith("overrun rate 0.10")
    assert report.values["overrun_rate"] == "0.100"


def test_reset_starts_over_for_a_new_model_and_keeps_the_goal():
    monitor = LiveMonitor(small_settings(max_goal_time=50.0))
    monitor.goal_started(0.0)
    end, _ = drive(monitor, 0.0, 5.0, intervene_every=1)
    assert monitor.report(end).level == LEVEL_ERROR
    monitor.reset(end)
    report = monitor.report(end)
    assert report.level == LEVEL_OK and report.values["samples"] == "0"
    # The goal in progress is timed from the reset: no timeout at 51 s after its start.
    assert monitor.report(51.0).values["goals_failed"] == "0"
    monitor.goal_reached(52.0)
    assert monitor.report(52.0).values["mean_goal_time"] == f"{52.0 - end:.1f}"


def test_clock_going_back_starts_the_windows_over():
    monitor = LiveMonitor(small_settings())
    end, _ = drive(monitor, 100.0, 5.0, intervene_every=1)
    assert monitor.report(end).level == LEVEL_ERROR
    end, _ = drive(monitor, 1.0, 1.0)
    report = monitor.report(end)
    assert report.level == LEVEL_OK and report.values["samples"] == "20"


def test_an_event_stamped_just_after_the_next_tick_is_kept():
    # A callback that runs during a tick's inference stamps a later time than the tick.
    monitor = LiveMonitor(small_settings())
    end, _ = drive(monitor, 100.0, 5.0)
    monitor.policy_handed_over(end + 0.003, "no progress")
    drive(monitor, end, 1.0)
    monitor.policy_handed_over(end + 1.003, "no progress")
    end, _ = drive(monitor, end + 1.0, 1.0)
    report = monitor.report(end)
    assert report.level == LEVEL_ERROR
    assert "arbiter took over 2 time(s)" in report.errors[0]


# ----------------------------------------------------------------------------- baseline


def card_evaluation() -> dict:
    def stats(success: float, time: float | None, interventions: float, episodes: int = 20):
        return {
            "success_rate": success,
            "mean_time_to_goal": time,
            "intervention_rate": interventions,
            "episodes": episodes,
        }

    return {
        "summary": {
            "empty": {"policy": stats(1.0, 10.0, 0.0), "policy_safety": stats(1.0, 20.0, 0.1)},
            "corridor": {"policy_safety": stats(0.5, 40.0, 0.3)},
            "broken": "not a mapping",
        },
        "gate": {"passed": False},
    }


def test_baseline_from_a_card_shaped_evaluation():
    baseline = baseline_from_evaluation(card_evaluation())
    assert baseline is not None and baseline.source == "evaluation mode policy_safety, 2 world(s)"
    assert baseline.success_rate == pytest.approx(0.75)
    # Mean time weighted by successful episodes: (20 * 20 + 40 * 10) / 30.
    assert baseline.mean_goal_time == pytest.approx(800.0 / 30.0)
    assert baseline.intervention_rate == pytest.approx(0.2)


def test_baseline_prefers_the_stack_mode_and_tolerates_missing_values():
    evaluation = card_evaluation()
    evaluation["summary"]["empty"]["stack"] = {
        "success_rate": 0.0,
        "mean_time_to_goal": None,
        "intervention_rate": math.nan,
        "episodes": 4,
    }
    baseline = baseline_from_evaluation(evaluation)
    assert baseline is not None and "mode stack, 1 world(s)" in baseline.source
    assert baseline.success_rate == 0.0 and baseline.mean_goal_time is None
    assert baseline.intervention_rate is None
    assert baseline_from_evaluation({}) is None
    assert baseline_from_evaluation({"summary": {"empty": {"dwa": {}}}}) is None
    assert baseline_from_evaluation({"summary": []}) is None


def test_baseline_of_the_shipped_card_when_present():
    from pathlib import Path

    from rl_policy_node.policy_loader import load_policy

    model = Path(__file__).resolve().parents[3] / "models" / "nav_policy.onnx"
    if not model.exists():
        pytest.skip("no shipped model here")
    baseline = baseline_from_evaluation(load_policy(model).card.evaluation)
    assert baseline is not None and "stack" in baseline.source  # the card evaluates the stack
    assert 0.5 < baseline.success_rate <= 1.0 and 10.0 < baseline.mean_goal_time < 60.0


# --------------------------------------------------------------------------- parameters


def test_parameters_match_the_settings_defaults_and_are_described():
    defaults = parameter_defaults(MONITOR_PARAMETERS)
    assert settings_from_parameters(defaults) == MonitorSettings()
    for name, spec in MONITOR_PARAMETERS.items():
        assert name.startswith("monitor_") and spec.description and spec.bounds, name
    assert settings_from_parameters({}) == MonitorSettings()
    # The node may pass all its parameters: other names are ignored.
    assert settings_from_parameters({"model_path": "x"}) == MonitorSettings()


def test_settings_from_parameters_refuses_bad_values_with_the_reason():
    changed = settings_from_parameters({"monitor_window": 30, "monitor_max_near_misses": 5.0})
    assert changed.window == 30.0 and changed.max_near_misses == 5
    assert isinstance(changed.max_near_misses, int)
    with pytest.raises(ValueError, match="monitor_max_intervention_rate must be in"):
        settings_from_parameters({"monitor_max_intervention_rate": 1.5})
    with pytest.raises(ValueError, match="monitor_warn_stall_rate .* must be <="):
        settings_from_parameters({"monitor_warn_stall_rate": 0.9, "monitor_max_stall_rate": 0.5})
    with pytest.raises(ValueError, match="integer"):
        settings_from_parameters({"monitor_min_samples": 2.5})
    with pytest.raises(ValueError, match="number"):
        settings_from_parameters({"monitor_window": "20"})
    with pytest.raises(ValueError, match="finite"):
        settings_from_parameters({"monitor_window": math.inf})
