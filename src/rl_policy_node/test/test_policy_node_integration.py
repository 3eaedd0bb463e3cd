"""rl_policy_node over DDS: the node runs as its own process, a scripted probe feeds it.

Every test starts one node and checks several related behaviours on it, so the whole
file stays at a few node start-ups. Timing tolerances are generous: other work shares
the machine; speed is measured in bench/, not asserted here.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from nav_msgs.msg import Odometry
from rl_policy_node_test_support import (
    NODE_MODULE,
    expected_action,
    expected_commands,
    max_gap,
    small_card,
    stateless_card,
    wait_until,
    write_policy,
)
from std_msgs.msg import Bool

from rl_policy_node.policy_card import ActionSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE_HZ = 20.0
# A missed tick shows as a gap of two periods; anything shorter is jitter.
MISSED_TICK_GAP = 1.8 / RATE_HZ


def _gaps_around(commands, windows):
    """Gaps between consecutive commands whose later command falls in a (start, end) window."""
    times = [c[0] for c in commands]
    return [
        b - a
        for a, b in zip(times, times[1:], strict=False)
        if any(start <= b <= end for start, end in windows)
    ]


def _assert_commands(commands, expected, label):
    assert commands, f"no commands ({label})"
    values = np.array([[v, w] for _, v, w in commands])
    np.testing.assert_allclose(values, np.tile(expected, (len(commands), 1)), atol=1e-6)


def _node_side(probe):
    """What the node itself reported (for failure messages): ticks, commands, timing."""
    keys = ("reason", "ticks", "commands", "tick_period_ms_mean", "deadline_misses")
    side = {key: probe.diagnostics.get(key) for key in keys}
    side["probe_gc_pauses_s"] = [round(p, 3) for p in probe.gc_pauses]
    return side


def _start_driving(probe, recording):
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    assert wait_until(probe.is_active, 15.0), "policy never became active"


def test_rate_enable_disable_and_resume(start_node, probe, recording, tmp_path, workspace_root):
    model = write_policy(tmp_path / "a.pt", stateless_card(), seed=1)
    expected = expected_commands(model, recording)[0]
    # The shipped config file, with the model on top (as the launch files do).
    start_node(
        NODE_MODULE,
        params_files=[workspace_root / "config" / "rl_policy_node.yaml"],
        parameters={"model_path": str(model)},
    )
    _start_driving(probe, recording)

    time.sleep(0.5)
    start = time.monotonic()
    time.sleep(3.0)
    window = [c for c in probe.commands_since(start) if c[0] <= start + 3.0]
    rate = len(window) / 3.0
    assert RATE_HZ * 0.9 <= rate <= RATE_HZ * 1.1, (f"rate {rate:.2f} Hz", _node_side(probe))
    _assert_commands(window, expected, "enabled")

    probe.set_enabled(False)
    assert wait_until(lambda: not probe.is_active(), 3.0), "policy/active stayed true"
    quiet_from = time.monotonic() + 0.2  # a command already in flight may still land
    time.sleep(1.2)
    assert probe.commands_since(quiet_from) == []
    probe.wait_reason("disabled")
    assert probe.diagnostics_level == 0

    probe.set_enabled(True)
    assert wait_until(probe.is_active, 3.0), "policy did not resume"
    resumed = time.monotonic()
    time.sleep(1.0)
    _assert_commands(probe.commands_since(resumed), expected, "resumed")


def test_hot_swap_and_refused_swaps_keep_every_tick(start_node, probe, recording, tmp_path):
    card = stateless_card()
    first = write_policy(tmp_path / "first.pt", card, seed=1)
    second = write_policy(tmp_path / "second.pt", card, seed=2)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a TorchScript archive" * 20)
    wrong_size = write_policy(tmp_path / "wrong_size.pt", card, inputs=card.observation.size + 5)
    too_wide = write_policy(tmp_path / "too_wide.pt", stateless_card(fov_deg=360.0), seed=3)
    first_cmd = expected_commands(first, recording)[0]
    second_cmd = expected_commands(second, recording)[0]
    assert not np.allclose(first_cmd, second_cmd, atol=1e-4)

    start_node(NODE_MODULE, parameters={"model_path": str(first)})
    _start_driving(probe, recording)
    time.sleep(0.5)
    start = time.monotonic()
    time.sleep(1.0)

    swap_sent = time.monotonic()
    ok, reason = probe.set_parameters(model_path=str(second))
    swap_done = time.monotonic()
    assert ok, reason
    set_windows = [(swap_sent, swap_done + 0.1)]
    time.sleep(1.0)
    before = [c for c in probe.commands_since(start) if c[0] < swap_sent]
    after = probe.commands_since(swap_done + 0.1)
    _assert_commands(before, first_cmd, "before swap")
    _assert_commands(after, second_cmd, "after swap")
    # Every command is one of the two models' (nothing in between, nothing else).
    for _, v, w in probe.commands_since(start):
        assert min(np.abs([v, w] - np.array(c)).max() for c in (first_cmd, second_cmd)) < 1e-6

    refusals = [
        (tmp_path / "missing.pt", "no such file"),
        (corrupt, "not a TorchScript policy"),
        (wrong_size, f"observation of size {card.observation.size}"),
        (too_wide, "field of view"),
    ]
    for path, expected_reason in refusals:
        sent = time.monotonic()
        ok, reason = probe.set_parameters(model_path=str(path))
        set_windows.append((sent, time.monotonic() + 0.1))
        assert not ok, f"{path.name} was accepted"
        assert expected_reason in reason and str(path) in reason, reason
    time.sleep(0.5)
    _assert_commands(probe.commands_since(swap_done + 0.1), second_cmd, "after refusals")

    # No tick missed while a model was loaded and checked: no gap of two periods around
    # any set, and the whole run holds the command count of its duration. (Over the
    # whole run one gap may come from the machine's load, so that bound is looser.)
    run = probe.commands_since(start)
    duration = run[-1][0] - run[0][0]
    assert len(run) >= round(duration * RATE_HZ), (len(run), duration, _node_side(probe))
    gaps = _gaps_around(run, set_windows)
    assert len(gaps) >= 5 and max(gaps) < MISSED_TICK_GAP, (
        [round(g, 3) for g in gaps],
        _node_side(probe),
    )
    assert max_gap(run) < 2.5 / RATE_HZ, f"gap {max_gap(run):.3f} s"

    # Relative paths resolve under models_dir; policy/reload re-reads the file.
    ok, reason = probe.set_parameters(models_dir=str(tmp_path))
    assert ok, reason
    ok, reason = probe.set_parameters(model_path="first.pt")
    assert ok, reason
    time.sleep(0.4)
    relative_from = time.monotonic()
    time.sleep(0.5)
    _assert_commands(probe.commands_since(relative_from), first_cmd, "relative path")
    write_policy(tmp_path / "first.pt", card, seed=4)
    ok, message = probe.reload()
    assert ok, message
    time.sleep(0.4)
    reloaded_from = time.monotonic()
    time.sleep(0.5)
    reloaded_cmd = expected_commands(tmp_path / "first.pt", recording)[0]
    _assert_commands(probe.commands_since(reloaded_from), reloaded_cmd, "reloaded")
    assert probe.wait_diagnostics(lambda d: d.get("model_path", "").endswith("first.pt"))


def test_no_goal_stale_inputs_overrun_and_goal_reached(start_node, probe, recording, tmp_path):
    model = write_policy(tmp_path / "a.pt", stateless_card(), seed=1)
    start_node(NODE_MODULE, parameters={"model_path": str(model), "source_timeout": 0.5})
    probe.wait_for_node()
    probe.wait_reason("no goal", timeout=10.0)
    assert probe.commands == [] and not probe.is_active()

    probe.send_goal(*recording.goal)
    assert wait_until(probe.is_active, 5.0)

    def assert_stops(reason_prefix, detail):
        assert wait_until(lambda: not probe.is_active(), 3.0), reason_prefix
        quiet_from = time.monotonic() + 0.2
        probe.wait_reason(reason_prefix, detail)
        assert probe.commands_since(quiet_from) == []
        assert probe.diagnostics_level == 2

    probe.feed_scan = False
    assert_stops("stale scan", "arrived")
    probe.scan_stamp_offset = 2.0  # arriving now, but stamped two seconds ago
    probe.feed_scan = True
    assert_stops("stale scan", "header stamp")
    probe.scan_stamp_offset = 0.0
    assert wait_until(probe.is_active, 3.0)

    probe.feed_odom = False
    assert_stops("stale odom", "arrived")
    bad = Odometry()
    bad.header.frame_id = "odom"
    bad.pose.pose.position.x = float("nan")
    probe.publish_odom(bad)
    probe.feed_odom = True
    assert wait_until(probe.is_active, 3.0)
    probe.wait_diagnostics(lambda d: int(d.get("dropped_odom", "0")) >= 1)

    ok, reason = probe.set_parameters(max_inference_ms=0.001)
    assert ok, reason
    assert_stops("inference overrun", "max_inference_ms")
    ok, reason = probe.set_parameters(max_inference_ms=-1.0)
    assert not ok and reason
    ok, reason = probe.set_parameters(max_inference_ms=25.0)
    assert ok, reason
    assert wait_until(probe.is_active, 3.0)

    # A goal at the robot's position: exactly one zero command, then inactive.
    goal_sent = time.monotonic()
    probe.send_goal(recording.pose[0] + 0.05, recording.pose[1])
    assert wait_until(lambda: not probe.is_active(), 3.0)
    probe.wait_reason("goal reached")
    assert probe.diagnostics_level == 0
    time.sleep(0.5)
    zeros = [c for c in probe.commands_since(goal_sent) if c[1] == 0.0 and c[2] == 0.0]
    assert len(zeros) == 1
    assert probe.commands_since(zeros[0][0]) == []
    # The same goal re-sent (the simulator does so for late joiners) stays reached.
    probe.send_goal(recording.pose[0] + 0.05, recording.pose[1])
    time.sleep(0.5)
    assert not probe.is_active()
    assert probe.commands_since(zeros[0][0]) == []
    probe.send_goal(*recording.goal)
    assert wait_until(probe.is_active, 3.0), "a new goal did not restart the policy"


class _NanOnInput(torch.nn.Module):
    """Finite on the all-zero dry run, NaN on any real observation."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        live = obs.abs().sum(dim=1, keepdim=True) > 0
        zeros = torch.zeros(obs.shape[0], 2)
        return torch.where(live, torch.full_like(zeros, float("nan")), zeros)


def test_non_finite_output_is_never_published(start_node, probe, recording, tmp_path):
    from rl_policy_node.policy_loader import save_policy

    card = stateless_card()
    nan_model = tmp_path / "nan.pt"
    save_policy(torch.jit.script(_NanOnInput()), nan_model, card)
    good = write_policy(tmp_path / "good.pt", card, seed=1)

    start_node(NODE_MODULE, parameters={"model_path": str(nan_model)})
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    reason = probe.wait_reason("non-finite output", timeout=10.0)
    assert "nan" in reason.lower()
    assert probe.diagnostics_level == 2
    time.sleep(0.5)
    assert probe.commands == [] and not probe.is_active()
    assert int(probe.diagnostics["non_finite_outputs"]) > 0

    ok, reason = probe.set_parameters(model_path=str(good))
    assert ok, reason
    assert wait_until(probe.is_active, 3.0)
    # The dry run on the live inputs refuses the NaN model before it can drive.
    ok, reason = probe.set_parameters(model_path=str(nan_model))
    assert not ok and "dry run on the live inputs" in reason, reason
    time.sleep(0.5)
    assert all(np.isfinite([v, w]).all() for _, v, w in probe.commands)


def test_golden_recording_gives_the_offline_command(start_node, probe, recording, tmp_path):
    # The golden card uses the previous action and two stacked frames.
    model = write_policy(tmp_path / "golden.pt", recording.card, seed=5)
    expected = expected_commands(model, recording, ticks=4)
    start_node(NODE_MODULE, parameters={"model_path": str(model)})
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    assert wait_until(lambda: len(probe.commands) >= 4, 10.0)
    got = [(v, w) for _, v, w in probe.commands[:4]]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_no_model_then_model_shadow_and_device(start_node, probe, recording, tmp_path):
    card = stateless_card()
    live = write_policy(tmp_path / "live.pt", card, seed=1)
    shadow = write_policy(tmp_path / "shadow.pt", card, seed=2)
    fast = write_policy(
        tmp_path / "fast.pt", small_card(24, 240.0, action=ActionSpec((-1.0, 1.0), (-1.0, 1.0)))
    )

    node = start_node(NODE_MODULE, parameters={"model_path": ""})
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    probe.wait_reason("no model", timeout=10.0)
    assert probe.diagnostics_level == 1
    assert probe.commands == [] and node.is_running()

    # A volatile publisher of policy/enable cannot reach the latched subscription: warned.
    probe.node.create_publisher(Bool, "policy/enable", 10)
    assert node.wait_for_output("'policy/enable' offers an incompatible QoS", 5.0)

    ok, reason = probe.set_parameters(device="cuda:0" if not torch.cuda.is_available() else "tpu")
    assert not ok and "device" in reason
    ok, reason = probe.set_parameters(model_path=str(fast))
    assert not ok and "exceeds max_velocity" in reason, reason

    ok, reason = probe.set_parameters(model_path=str(live))
    assert ok, reason
    assert wait_until(probe.is_active, 5.0)
    ok, reason = probe.set_parameters(shadow_model_path=str(shadow))
    assert ok, reason
    time.sleep(0.5)
    shadow_from = time.monotonic()
    time.sleep(1.5)
    live_cmd = expected_commands(live, recording)[0]
    shadow_cmd = expected_commands(shadow, recording)[0]
    _assert_commands(probe.commands_since(shadow_from), live_cmd, "live with shadow")
    with probe.lock:
        shadows = [c for c in probe.shadow_commands if c[0] > shadow_from]
    _assert_commands(shadows, shadow_cmd, "shadow")
    divergence = float(
        np.linalg.norm(expected_action(live, recording) - expected_action(shadow, recording))
    )
    values = probe.wait_diagnostics(lambda d: int(d.get("shadow_samples", "0")) > 5)
    for key in ("shadow_divergence_mean", "shadow_divergence_p95", "shadow_divergence_max"):
        assert abs(float(values[key]) - divergence) < 1e-5, (key, values[key], divergence)
    assert values["model_sha256"] != values["shadow_model_sha256"]
    for key in ("inference_ms_mean", "inference_ms_p99", "inference_ms_max", "tick_jitter_ms"):
        assert float(values[key]) >= 0.0
    assert int(values["deadline_misses"]) >= 0 and values["model_name"] == card.name
