"""The policy node's controller (no ROS): gating, ticks, previous action, swaps, shadow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rl_policy_node_test_support import (
    LIMITS,
    SEC,
    T0,
    controller_with_inputs,
    nan_on_input_policy,
    prepared_slot,
    scan_input,
    small_card,
    write_onnx,
    write_policy,
)

from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.observation import ObservationBuilder
from rl_policy_node.policy_inputs import OdomSample, ScanSample
from rl_policy_node.policy_loader import load_policy
from rl_policy_node.policy_runtime import (
    OVERRUN_LIMIT,
    REASON_DISABLED,
    REASON_GOAL_REACHED,
    REASON_NO_GOAL,
    REASON_NO_MODEL,
    REASON_NON_FINITE,
    REASON_OBSERVATION,
    REASON_OVERRUN,
    REASON_STALE_ODOM,
    REASON_STALE_SCAN,
    PolicyController,
)
from rl_policy_node.policy_slots import DryRunInputs, PolicyRejectedError, prepare_policy


def _offline(slot, controller, previous=(0.0, 0.0)):
    builder = ObservationBuilder(slot.policy.card.observation)
    obs = builder.build(
        controller.scan.scan,
        controller.odom.pose,
        controller.odom.velocity,
        controller.goal,
        previous,
    )
    action = slot.policy(obs)
    return action, action_to_velocity(action, slot.action)


def test_gate_reasons_in_order(tmp_path):
    controller = PolicyController(enabled=False)
    assert controller.step(T0).reason == REASON_DISABLED
    controller.enabled = True
    assert controller.step(T0).reason == REASON_NO_MODEL
    controller.install(None, "x.pt: no such file")
    assert controller.step(T0).reason == "no model: x.pt: no such file"
    controller.install(prepared_slot(tmp_path))
    assert controller.step(T0).reason == REASON_NO_GOAL
    controller.set_goal(3.0, 1.0)
    assert controller.step(T0).reason.startswith(f"{REASON_STALE_SCAN}: no scan")
    controller.scan = ScanSample(scan_input(), T0, T0)
    assert controller.step(T0).reason.startswith(f"{REASON_STALE_ODOM}: no odom")
    controller.odom = OdomSample((0.0, 0.0, 0.0), (0.0, 0.0), T0, T0)
    result = controller.step(T0 + SEC // 10)
    assert result.active and result.command is not None and controller.reason == ""


def test_stale_inputs_stop_commands(tmp_path):
    controller = controller_with_inputs(prepared_slot(tmp_path), source_timeout=0.5)
    assert controller.step(T0 + SEC // 4).active
    result = controller.step(T0 + SEC)
    assert result.command is None and not result.active
    assert result.reason.startswith(REASON_STALE_SCAN)
    controller.scan = ScanSample(scan_input(), T0 + SEC, T0 + SEC)
    assert controller.step(T0 + SEC).reason.startswith(REASON_STALE_ODOM)


def test_command_matches_the_offline_core(tmp_path):
    slot = prepared_slot(tmp_path, card=small_card())  # uses the previous action
    controller = controller_with_inputs(slot)
    action, command = _offline(slot, controller)
    first = controller.step(T0)
    np.testing.assert_allclose(first.command, command, atol=1e-9)
    _, second_command = _offline(slot, controller, previous=np.clip(action, -1, 1))
    np.testing.assert_allclose(controller.step(T0).command, second_command, atol=1e-9)


def test_previous_action_resets_after_a_pause(tmp_path):
    slot = prepared_slot(tmp_path, card=small_card())
    controller = controller_with_inputs(slot)
    first = controller.step(T0).command
    assert controller.step(T0).command != first  # fed its own previous action
    controller.enabled = False
    controller.step(T0)
    controller.enabled = True
    assert controller.step(T0).command == first


def test_goal_reached_publishes_one_zero_until_a_new_goal(tmp_path):
    controller = controller_with_inputs(prepared_slot(tmp_path), goal_tolerance=0.2)
    controller.set_goal(0.1, 0.1)
    result = controller.step(T0)
    assert result.command == (0.0, 0.0) and not result.active
    assert result.reason == REASON_GOAL_REACHED
    again = controller.step(T0)
    assert again.command is None and again.reason == REASON_GOAL_REACHED
    controller.set_goal(0.1, 0.1)  # the same place again is a new goal: one more zero
    assert controller.step(T0).command == (0.0, 0.0)
    controller.set_goal(3.0, 1.0)
    assert controller.step(T0).active


def test_non_finite_output_and_overrun_give_no_command(tmp_path):
    path = nan_on_input_policy(tmp_path)
    controller = controller_with_inputs()
    controller.install(dataclasses.replace(prepared_slot(tmp_path), policy=load_policy(path)))
    result = controller.step(T0)
    assert result.command is None and result.reason.startswith(REASON_NON_FINITE)
    assert controller.non_finite_outputs == 1

    controller = controller_with_inputs(prepared_slot(tmp_path, "ok.pt"))
    assert controller.step(T0).active
    controller.max_inference_ms = 1e-6
    # A lone overrun drops the command but keeps the policy active; OVERRUN_LIMIT in a row
    # make it inactive; a tick in time resets the count.
    result = controller.step(T0)
    assert result.command is None and result.reason.startswith(REASON_OVERRUN)
    assert result.active and result.inference_ms is not None and controller.overruns == 1
    for _ in range(OVERRUN_LIMIT - 2):
        assert controller.step(T0).active
    result = controller.step(T0)
    assert not result.active and result.reason.startswith(REASON_OVERRUN)
    assert controller.overruns == OVERRUN_LIMIT
    controller.max_inference_ms = 1e6
    assert controller.step(T0).active
    controller.max_inference_ms = 1e-6
    assert controller.step(T0).active  # the count started over


def test_observation_errors_are_reported(tmp_path):
    controller = controller_with_inputs(prepared_slot(tmp_path, card=small_card(16, 360.0)))
    controller.scan = ScanSample(scan_input(91, 90.0), T0, T0)
    result = controller.step(T0)
    assert result.command is None and result.reason.startswith(REASON_OBSERVATION)
    assert "field of view" in result.reason


def test_swap_takes_effect_on_the_next_tick(tmp_path):
    card = small_card()
    first, second = (
        prepared_slot(tmp_path, "a.pt", 1, card),
        prepared_slot(tmp_path, "b.pt", 2, card),
    )
    controller = controller_with_inputs(first)
    controller.step(T0)
    controller.install(second)
    result = controller.step(T0)
    assert result.active
    # The new model sees the last command as its previous action (same action units).
    expected_first, _ = _offline(first, controller)
    _, expected = _offline(second, controller, previous=np.clip(expected_first, -1, 1))
    np.testing.assert_allclose(result.command, expected, atol=1e-9)


def test_hot_swap_between_torchscript_and_onnx_and_refused_candidates(tmp_path):
    card = small_card()
    pt_one = prepare_policy(write_policy(tmp_path / "one.pt", card, seed=1), "one.pt", LIMITS)
    onnx_two = prepare_policy(write_onnx(tmp_path / "two.onnx", card, seed=2), "two.onnx", LIMITS)
    onnx_one = prepare_policy(write_onnx(tmp_path / "one.onnx", card, seed=1), "one.onnx", LIMITS)
    assert (pt_one.policy.runtime, onnx_two.policy.runtime) == ("torchscript", "onnxruntime")
    assert "onnxruntime" in onnx_two.label and onnx_one.policy.sha256 == pt_one.policy.sha256
    controller = controller_with_inputs(pt_one)
    commands = {}
    for tick, slot in enumerate((pt_one, onnx_two, pt_one, onnx_one)):
        if tick:
            controller.install(slot)
        previous = controller._previous.action if controller._previous else (0.0, 0.0)
        _, expected = _offline(slot, controller, previous=previous)
        result = controller.step(T0 + tick * SEC // 20)
        assert result.active, result.reason
        np.testing.assert_allclose(result.command, expected, atol=1e-6)
        commands[slot.requested_path] = result.command
    assert not np.allclose(commands["one.pt"], commands["two.onnx"], atol=1e-4)
    # Refused candidates raise before a swap: the running (ONNX) model keeps driving.
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    wrong = write_onnx(tmp_path / "wide.onnx", small_card(16, 360.0), seed=3)
    live = DryRunInputs(ScanSample(scan_input(271, 270.0), T0, T0), None, None)
    with pytest.raises(ValueError, match="not an ONNX policy"):
        prepare_policy(corrupt, "corrupt.onnx", LIMITS, live=controller.dry_run_inputs())
    with pytest.raises(PolicyRejectedError, match="field of view"):
        prepare_policy(wrong, "wide.onnx", LIMITS, live=live)
    assert controller.slot is onnx_one and controller.step(T0 + SEC // 4).active


def test_shadow_sees_the_same_observation_and_reports_divergence(tmp_path):
    card = dataclasses.replace(
        small_card(),
        observation=dataclasses.replace(small_card().observation, previous_action=False),
    )
    live, shadow = (
        prepared_slot(tmp_path, "a.pt", 1, card),
        prepared_slot(tmp_path, "b.pt", 2, card),
    )
    controller = controller_with_inputs(live)
    controller.shadow = shadow
    assert controller.shadow_step() is None  # nothing ran yet
    controller.step(T0)
    result = controller.shadow_step()
    live_action, _ = _offline(live, controller)
    shadow_action, shadow_command = _offline(shadow, controller)
    np.testing.assert_allclose(result.command, shadow_command, atol=1e-9)
    expected = np.linalg.norm(np.clip(live_action, -1, 1) - np.clip(shadow_action, -1, 1))
    assert result.divergence == pytest.approx(expected, abs=1e-6)
    assert len(controller.divergence) == 1


def test_shadow_with_another_layout_builds_its_own_observation(tmp_path):
    live = prepared_slot(tmp_path, "a.pt", 1, small_card(16, 360.0))
    shadow = prepared_slot(tmp_path, "b.pt", 2, small_card(32, 240.0))
    controller = controller_with_inputs(live)
    controller.shadow = shadow
    controller.step(T0)
    result = controller.shadow_step()
    _, expected = _offline(shadow, controller)
    np.testing.assert_allclose(result.command, expected, atol=1e-9)


def test_shadow_history_restarts_with_the_live_history(tmp_path):
    stacked = small_card(16, 360.0)
    stacked = stacked.with_updates(
        observation=dataclasses.replace(stacked.observation, history_length=2)
    )
    live = prepared_slot(tmp_path, "a.pt", 1, small_card(32, 360.0))
    shadow = prepared_slot(tmp_path, "b.pt", 2, stacked)
    controller = controller_with_inputs(live)
    controller.shadow = shadow
    controller.step(T0)
    first = controller.shadow_step().command
    controller.step(T0)
    assert controller.shadow_step().command != first  # second frame stacked on the first
    controller.enabled = False
    controller.step(T0)
    controller.enabled = True
    controller.step(T0)
    assert controller.shadow_step().command == first  # a pause restarted both histories
