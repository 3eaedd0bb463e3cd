"""The policy node's ROS-free logic: gating, swap checks, previous action, stats, paths."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from policy_fixtures import small_card, write_onnx, write_policy

from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.observation import ObservationBuilder, ScanInput
from rl_policy_node.policy_card import ActionSpec
from rl_policy_node.policy_loader import PolicyFileNotFoundError, load_policy, save_policy
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
    DryRunInputs,
    OdomSample,
    PolicyController,
    PolicyRejectedError,
    PreviousAction,
    RollingWindow,
    ScanSample,
    TickMonitor,
    check_action_limits,
    device_problem,
    input_age_problem,
    models_directory,
    prepare_policy,
    previous_action_for,
    reason_level,
    resolve_model_path,
    velocity_limits_problem,
    with_implicit_limits,
    yaw_from_quaternion,
)

LIMITS = (0.26, 1.82)
SEC = 1_000_000_000
T0 = 100 * SEC


def _scan(beams: int = 360, fov_deg: float = 360.0) -> ScanInput:
    fov = math.radians(fov_deg)
    full = fov_deg >= 360.0
    increment = fov / beams if full else fov / (beams - 1)
    ranges = 1.0 + 0.5 * np.sin(np.arange(beams) * 0.1)
    return ScanInput(ranges, -fov / 2, increment, 0.1, 6.0)


def _controller(slot=None, now=T0, **kwargs) -> PolicyController:
    controller = PolicyController(**kwargs)
    controller.install(slot)
    controller.scan = ScanSample(_scan(), now, now)
    controller.odom = OdomSample((0.0, 0.0, 0.3), (0.1, 0.2), now, now)
    controller.set_goal(3.0, 1.0)
    return controller


DEFAULT = object()


def _slot(tmp_path: Path, name: str = "p.pt", seed: int = 0, card=DEFAULT, **kwargs):
    card = small_card() if card is DEFAULT else card
    return prepare_policy(write_policy(tmp_path / name, card, seed=seed), name, LIMITS, **kwargs)


class _NanOnInput(torch.nn.Module):
    """Finite on the all-zero load check, NaN on any real observation."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros(obs.shape[0], 2)
        live = obs.abs().sum(dim=1, keepdim=True) > 0
        return torch.where(live, torch.full_like(zeros, float("nan")), zeros)


def _nan_on_input_policy(tmp_path: Path) -> Path:
    path = tmp_path / "nan.pt"
    save_policy(torch.jit.script(_NanOnInput()), path, small_card())
    return path


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


# ------------------------------------------------------------------ inputs and checks


def test_yaw_from_quaternion_round_trips():
    for yaw in (-3.0, -1.0, 0.0, 0.7, 3.1):
        assert yaw_from_quaternion(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)) == pytest.approx(
            yaw, abs=1e-12
        )


def test_input_age_checks_arrival_then_header_age_both_ways():
    timeout = SEC // 2
    assert input_age_problem("scan", T0, T0, T0 + timeout, timeout) is None
    late = input_age_problem("scan", T0, T0, T0 + timeout + 1, timeout)
    assert late.startswith("scan: last message arrived")
    old_stamp = input_age_problem("scan", T0 - 2 * SEC, T0, T0, timeout)
    assert old_stamp.startswith("scan: header stamp 2.000 s old")
    future = input_age_problem("scan", T0 + 2 * SEC, T0, T0, timeout)
    assert "in the future" in future


def test_models_directory_precedence(tmp_path):
    share = tmp_path / "share" / "models"

    def lookup():
        return share

    def missing():
        return None

    env = {"RLGUARD_MODELS_DIR": "/env/models", "RLGUARD_WORKSPACE": "/ws"}
    assert models_directory("/param", env, lookup) == Path("/param")
    assert models_directory("", env, lookup) == Path("/env/models")
    assert models_directory("", {"RLGUARD_WORKSPACE": "/ws"}, lookup) == share
    assert models_directory("", {"RLGUARD_WORKSPACE": "/ws"}, missing) == Path("/ws/models")
    assert models_directory("", {}, missing) == Path("models")


def test_resolve_model_path_keeps_absolute_paths():
    assert resolve_model_path("a/b.pt", Path("/m")) == Path("/m/a/b.pt")
    assert resolve_model_path("/x/b.pt", Path("/m")) == Path("/x/b.pt")


def test_device_and_velocity_limit_validation():
    assert device_problem("cpu", False) is None
    assert device_problem("cuda", True) is None and device_problem("cuda:1", True) is None
    assert "not available" in device_problem("cuda", False)
    assert "expected" in device_problem("gpu", True)
    assert velocity_limits_problem([0.26, 1.82]) is None
    assert "needs" in velocity_limits_problem([0.26])
    assert "finite" in velocity_limits_problem([0.26, math.nan])
    assert "finite" in velocity_limits_problem([0.0, 1.0])


def test_device_check_asks_about_cuda_only_for_a_cuda_device():
    asked = []

    def cuda_available() -> bool:
        asked.append(True)
        return False

    assert device_problem("cpu", cuda_available) is None
    assert "expected" in device_problem("gpu", cuda_available)
    assert asked == []  # a CPU node never imports torch to ask
    assert "not available" in device_problem("cuda:0", cuda_available)
    assert asked == [True]


def test_card_action_range_must_fit_the_limits():
    check_action_limits(ActionSpec((-0.1, 0.26), (-1.82, 1.82)), LIMITS)
    with pytest.raises(PolicyRejectedError, match="linear action range"):
        check_action_limits(ActionSpec((-0.5, 0.26), (-1.0, 1.0)), LIMITS)
    with pytest.raises(PolicyRejectedError, match="angular action range"):
        check_action_limits(ActionSpec((-0.1, 0.2), (-2.0, 1.0)), LIMITS)


# ------------------------------------------------------------------------ candidates


def test_prepare_refuses_a_card_beyond_the_limits(tmp_path):
    card = small_card(action=ActionSpec((-1.0, 1.0), (-1.0, 1.0)))
    with pytest.raises(PolicyRejectedError, match="exceeds max_velocity"):
        _slot(tmp_path, card=card)


def test_prepare_refuses_a_card_the_live_scan_cannot_feed(tmp_path):
    live = DryRunInputs(ScanSample(_scan(271, 270.0), T0, T0), None, None)
    with pytest.raises(PolicyRejectedError, match="field of view"):
        _slot(tmp_path, card=small_card(16, 360.0), live=live)
    assert _slot(tmp_path, "narrow.pt", card=small_card(16, 240.0), live=live) is not None


def test_prepare_dry_runs_on_the_live_inputs(tmp_path):
    path = _nan_on_input_policy(tmp_path)
    assert prepare_policy(path, "nan.pt", LIMITS) is not None  # zero dry run only
    controller = _controller()
    with pytest.raises(PolicyRejectedError, match="dry run on the live inputs"):
        prepare_policy(path, "nan.pt", LIMITS, live=controller.dry_run_inputs())


def test_prepare_passes_load_errors_through(tmp_path):
    with pytest.raises(PolicyFileNotFoundError, match="no such file"):
        prepare_policy(tmp_path / "missing.pt", "missing.pt", LIMITS)


def test_cardless_policy_scales_by_max_velocity_and_follows_limit_changes(tmp_path):
    slot = _slot(tmp_path, "seed.pt", card=None)
    assert not slot.policy.has_card
    assert slot.action == ActionSpec((-0.26, 0.26), (-1.82, 1.82))
    faster = with_implicit_limits(slot, (0.5, 2.0))
    assert faster.action == ActionSpec((-0.5, 0.5), (-2.0, 2.0))
    carded = _slot(tmp_path, card=small_card())
    assert with_implicit_limits(carded, (0.3, 2.0)) is carded
    with pytest.raises(PolicyRejectedError):
        with_implicit_limits(carded, (0.2, 2.0))


def test_previous_action_is_zero_after_reset_and_reexpressed_after_a_swap():
    spec = ActionSpec((-0.1, 0.26), (-1.82, 1.82))
    other = ActionSpec((-0.26, 0.26), (-1.82, 1.82))
    assert tuple(previous_action_for(None, spec)) == (0.0, 0.0)
    previous = PreviousAction(np.array([0.5, -0.25]), spec)
    assert previous_action_for(previous, spec) is previous.action
    moved = previous_action_for(previous, other)
    np.testing.assert_allclose(
        action_to_velocity(moved, other), action_to_velocity(previous.action, spec), atol=1e-12
    )


# ------------------------------------------------------------------------ controller


def test_gate_reasons_in_order(tmp_path):
    controller = PolicyController(enabled=False)
    assert controller.step(T0).reason == REASON_DISABLED
    controller.enabled = True
    assert controller.step(T0).reason == REASON_NO_MODEL
    controller.install(None, "x.pt: no such file")
    assert controller.step(T0).reason == "no model: x.pt: no such file"
    controller.install(_slot(tmp_path))
    assert controller.step(T0).reason == REASON_NO_GOAL
    controller.set_goal(3.0, 1.0)
    assert controller.step(T0).reason.startswith(f"{REASON_STALE_SCAN}: no scan")
    controller.scan = ScanSample(_scan(), T0, T0)
    assert controller.step(T0).reason.startswith(f"{REASON_STALE_ODOM}: no odom")
    controller.odom = OdomSample((0.0, 0.0, 0.0), (0.0, 0.0), T0, T0)
    result = controller.step(T0 + SEC // 10)
    assert result.active and result.command is not None and controller.reason == ""


def test_stale_inputs_stop_commands(tmp_path):
    controller = _controller(_slot(tmp_path), source_timeout=0.5)
    assert controller.step(T0 + SEC // 4).active
    result = controller.step(T0 + SEC)
    assert result.command is None and not result.active
    assert result.reason.startswith(REASON_STALE_SCAN)
    controller.scan = ScanSample(_scan(), T0 + SEC, T0 + SEC)
    assert controller.step(T0 + SEC).reason.startswith(REASON_STALE_ODOM)


def test_command_matches_the_offline_core(tmp_path):
    slot = _slot(tmp_path, card=small_card())  # uses the previous action
    controller = _controller(slot)
    action, command = _offline(slot, controller)
    first = controller.step(T0)
    np.testing.assert_allclose(first.command, command, atol=1e-9)
    _, second_command = _offline(slot, controller, previous=np.clip(action, -1, 1))
    np.testing.assert_allclose(controller.step(T0).command, second_command, atol=1e-9)


def test_previous_action_resets_after_a_pause(tmp_path):
    slot = _slot(tmp_path, card=small_card())
    controller = _controller(slot)
    first = controller.step(T0).command
    assert controller.step(T0).command != first  # fed its own previous action
    controller.enabled = False
    controller.step(T0)
    controller.enabled = True
    assert controller.step(T0).command == first


def test_goal_reached_publishes_one_zero_until_a_new_goal(tmp_path):
    controller = _controller(_slot(tmp_path), goal_tolerance=0.2)
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
    path = _nan_on_input_policy(tmp_path)
    controller = _controller()
    controller.install(dataclasses.replace(_slot(tmp_path), policy=load_policy(path)))
    result = controller.step(T0)
    assert result.command is None and result.reason.startswith(REASON_NON_FINITE)
    assert controller.non_finite_outputs == 1

    controller = _controller(_slot(tmp_path, "ok.pt"))
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
    controller = _controller(_slot(tmp_path, card=small_card(16, 360.0)))
    controller.scan = ScanSample(_scan(91, 90.0), T0, T0)
    result = controller.step(T0)
    assert result.command is None and result.reason.startswith(REASON_OBSERVATION)
    assert "field of view" in result.reason


def test_swap_takes_effect_on_the_next_tick(tmp_path):
    card = small_card()
    first, second = _slot(tmp_path, "a.pt", 1, card), _slot(tmp_path, "b.pt", 2, card)
    controller = _controller(first)
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
    controller = _controller(pt_one)
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
    live = DryRunInputs(ScanSample(_scan(271, 270.0), T0, T0), None, None)
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
    live, shadow = _slot(tmp_path, "a.pt", 1, card), _slot(tmp_path, "b.pt", 2, card)
    controller = _controller(live)
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
    live = _slot(tmp_path, "a.pt", 1, small_card(16, 360.0))
    shadow = _slot(tmp_path, "b.pt", 2, small_card(32, 240.0))
    controller = _controller(live)
    controller.shadow = shadow
    controller.step(T0)
    result = controller.shadow_step()
    _, expected = _offline(shadow, controller)
    np.testing.assert_allclose(result.command, expected, atol=1e-9)


def test_reason_levels():
    assert reason_level("") == 0
    assert reason_level(REASON_DISABLED) == 0 and reason_level(REASON_GOAL_REACHED) == 0
    assert reason_level("no model: x") == 1
    assert reason_level(f"{REASON_STALE_SCAN}: late") == 2
    assert reason_level(f"{REASON_OVERRUN}: 3 ms") == 2


# ----------------------------------------------------------------------------- stats


def test_rolling_window_summarises_the_last_samples():
    window = RollingWindow(capacity=4)
    assert window.summary() == {}
    for value in range(1, 7):
        window.add(float(value))
    held = np.array([3.0, 4.0, 5.0, 6.0])
    assert sorted(window.values()) == held.tolist() and window.total == 6
    summary = window.summary((50.0, 99.0))
    assert summary["mean"] == held.mean() and summary["max"] == 6.0
    assert summary["p50"] == np.percentile(held, 50) and summary["p99"] == np.percentile(held, 99)


def test_tick_monitor_counts_late_ticks_and_long_work():
    monitor = TickMonitor(0.05)
    ms = 1_000_000
    start = 0
    for _ in range(5):
        monitor.record(start, 1 * ms)
        start += 50 * ms
    assert monitor.deadline_misses == 0 and monitor.jitter_ms() == pytest.approx(0.0)
    start += 50 * ms  # one slot skipped
    monitor.record(start, 1 * ms)
    assert monitor.deadline_misses == 1
    monitor.record(start + 50 * ms, 60 * ms)  # work longer than the period
    assert monitor.deadline_misses == 2
    assert monitor.max_period_error_ms() == pytest.approx(50.0)
    assert monitor.jitter_ms() > 0 and monitor.ticks == 7


def test_shadow_history_restarts_with_the_live_history(tmp_path):
    stacked = small_card(16, 360.0)
    stacked = stacked.with_updates(
        observation=dataclasses.replace(stacked.observation, history_length=2)
    )
    live = _slot(tmp_path, "a.pt", 1, small_card(32, 360.0))
    shadow = _slot(tmp_path, "b.pt", 2, stacked)
    controller = _controller(live)
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
