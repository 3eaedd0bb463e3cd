"""What the policy node reports on /diagnostics (no ROS)."""

from __future__ import annotations

from rl_policy_node_test_support import T0, controller_with_inputs, prepared_slot, small_card

from rl_policy_node.policy_diagnostics import (
    diagnostic_values,
    format_number,
    reason_level,
    status_message,
)
from rl_policy_node.policy_runtime import (
    REASON_DISABLED,
    REASON_GOAL_REACHED,
    REASON_OVERRUN,
    REASON_STALE_SCAN,
    PolicyController,
)
from rl_policy_node.tick_stats import TickMonitor


def test_reason_levels():
    assert reason_level("") == 0
    assert reason_level(REASON_DISABLED) == 0 and reason_level(REASON_GOAL_REACHED) == 0
    assert reason_level("no model: x") == 1
    assert reason_level(f"{REASON_STALE_SCAN}: late") == 2
    assert reason_level(f"{REASON_OVERRUN}: 3 ms") == 2


def test_status_message_and_number_format():
    assert status_message("") == "active"
    assert status_message("no goal") == "inactive: no goal"
    assert format_number(None) == "n/a"
    assert format_number(1.23456) == "1.235" and format_number(0.5, 6) == "0.500000"


def test_values_of_a_controller_without_a_model():
    values = diagnostic_values(
        PolicyController(), TickMonitor(0.05), "cpu", {"scan": 2, "odom": 0}, {"nan_range": 1}
    )
    assert values["active"] == "false" and values["enabled"] == "true"
    assert values["reason"] == "no model" and values["goal"] == "none"
    assert values["commands"] == "0" and values["device"] == "cpu"
    assert values["inference_ms_mean"] == "n/a" and values["tick_jitter_ms"] == "n/a"
    assert values["dropped_scan"] == "2" and values["dropped_odom"] == "0"
    assert values["rejected_scan_nan_range"] == "1"
    assert "model_name" not in values and "shadow_model_name" not in values
    assert all(isinstance(value, str) for value in values.values())


def test_values_of_a_running_controller_with_a_shadow(tmp_path):
    live = prepared_slot(tmp_path, "a.pt", 1)
    shadow = prepared_slot(tmp_path, "b.pt", 2, small_card())
    controller = controller_with_inputs(live)
    controller.shadow = shadow
    monitor = TickMonitor(0.05)
    for tick in range(3):
        controller.step(T0)
        controller.shadow_step()
        monitor.record(tick * 50_000_000, 1_000_000)
    values = diagnostic_values(controller, monitor, "cpu", {}, {})
    assert values["active"] == "true" and values["reason"] == "" and values["commands"] == "3"
    assert values["goal"] == "3.000, 1.000"
    assert values["model_name"] == "test-policy" and values["model_has_card"] == "true"
    assert values["model_sha256"] == live.policy.sha256
    assert values["observation_size"] == str(live.policy.observation_size)
    assert values["ticks"] == "3" and values["deadline_misses"] == "0"
    assert values["tick_period_ms_mean"] == "50.000"
    assert float(values["inference_ms_max"]) >= float(values["inference_ms_mean"]) > 0
    assert values["shadow_model_sha256"] == shadow.policy.sha256
    assert values["shadow_samples"] == "3" and len(values["shadow_divergence_p95"]) > 6
