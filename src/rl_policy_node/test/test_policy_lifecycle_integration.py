"""A model's life in rl_policy_node over DDS: gated models, transition records, the live
monitor's rollback, sensor drift.

The node runs as its own process; a scripted probe feeds it (see
`rl_policy_node_test_support.PolicyProbe`). Timing tolerances are generous.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from rl_policy_node_test_support import (
    NODE_MODULE,
    PolicyProbe,
    expected_commands,
    gated_file,
    stateless_card,
    wait_until,
    write_policy,
)
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float32, Float32MultiArray, String
from std_srvs.srv import Trigger

from rl_policy_node.policy_loader import load_policy
from rl_policy_node.transition_record import decode
from rlguard_common import topics
from rlguard_common.node_support import qos_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _model_status(probe, level: int, message: str):
    """Wait for the model status to start with `message` at `level` or above (the live
    monitor may add its own WARN: the recorded scan holds a too-close reading)."""
    return probe.wait_status(
        "model", lambda lvl, msg, values: lvl >= level and msg.startswith(message)
    )


def test_gated_models_are_required_or_flagged(start_node, probe, recording, tmp_path):
    card = stateless_card()
    ungated = write_policy(tmp_path / "ungated.pt", card, seed=1)
    passed = gated_file(tmp_path / "passed.pt", True, seed=2, card=card)
    failed = gated_file(tmp_path / "failed.pt", False, seed=3, card=card)
    passed_cmd = expected_commands(passed, recording)[0]

    start_node(NODE_MODULE, parameters={"model_path": str(ungated), "require_gated_model": True})
    probe.wait_for_node()
    # Refused at start, with the reason; the node runs without a model.
    probe.wait_reason("no model", contains="ungated model: the card has no gate record")

    ok, reason = probe.set_parameters(model_path=str(failed))
    assert not ok and "gate not passed (version 2)" in reason, reason
    ok, reason = probe.set_parameters(model_path=str(passed))
    assert ok, reason
    probe.send_goal(*recording.goal)
    assert wait_until(probe.is_active, 15.0), "the gated model never drove"
    _, _, values = _model_status(probe, 0, "gated model")
    assert values["gate"] == "passed (gate version 2)"

    # An ungated swap is refused and the gated model keeps driving.
    ok, reason = probe.set_parameters(model_path=str(ungated))
    assert not ok and "ungated model" in reason, reason
    assert wait_until(lambda: len(probe.commands_since(0.0)) > 5, 5.0)
    last = probe.commands[-1]
    np.testing.assert_allclose(last[1:], passed_cmd, atol=1e-6)

    # Not required: the same file loads and the model status warns.
    ok, reason = probe.set_parameters(require_gated_model=False)
    assert ok, reason
    ok, reason = probe.set_parameters(model_path=str(ungated))
    assert ok, reason
    _, _, values = _model_status(probe, 1, "ungated model")
    assert values["gate"].startswith("ungated model")
    # Requiring it again while an ungated model drives is refused (it would keep driving).
    ok, reason = probe.set_parameters(require_gated_model=True)
    assert not ok and "the running model is not gated" in reason, reason


def test_transition_records_match_the_commands(start_node, probe, recording, tmp_path):
    card = stateless_card()
    model = write_policy(tmp_path / "a.pt", card, seed=4)
    sha = load_policy(model).sha256
    expected = expected_commands(model, recording)[0]
    records = []
    lock = threading.Lock()

    def on_transition(msg: Float32MultiArray) -> None:
        record = decode(
            [d.label for d in msg.layout.dim], [d.size for d in msg.layout.dim], msg.data
        )
        with lock:
            records.append(record)

    probe.node.create_subscription(
        Float32MultiArray, topics.POLICY_TRANSITION, on_transition, qos_profile(topics.RELIABLE)
    )
    start_node(NODE_MODULE, parameters={"model_path": str(model), "record_transitions": True})
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    assert wait_until(lambda: len(records) >= 10, 20.0), f"{len(records)} transition records"
    with lock:
        got = list(records)
    for record in got:
        assert record.weights_sha256 == sha
        assert record.observation.shape == (card.observation.size,)
        np.testing.assert_allclose(record.command, expected, atol=1e-5)
        assert record.goal == pytest.approx(recording.goal)
    stamps = [r.stamp_ns for r in got]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # Switched off at run time: no more records.
    ok, reason = probe.set_parameters(record_transitions=False)
    assert ok, reason
    time.sleep(0.5)  # records already in flight may still land
    with lock:
        count = len(records)
    time.sleep(1.0)
    assert len(records) == count and probe.is_active()


class LifecycleProbe:
    """The probe's extras for a model's life: safety/scale, policy/events and services."""

    def __init__(self, probe: PolicyProbe) -> None:
        node = probe.node
        self.scale = 1.0
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._scale_pub = node.create_publisher(
            Float32, topics.SAFETY_SCALE, qos_profile(topics.RELIABLE)
        )
        node.create_subscription(
            String, topics.POLICY_EVENTS, self._on_event, qos_profile(topics.EVENTS)
        )
        node.create_timer(0.05, lambda: self._scale_pub.publish(Float32(data=self.scale)))
        self.rollback_client = node.create_client(Trigger, topics.POLICY_ROLLBACK)
        self.capture_client = node.create_client(Trigger, topics.POLICY_CAPTURE_BASELINE)

    def _on_event(self, msg: String) -> None:
        with self._lock:
            self.events.append(json.loads(msg.data))

    def wait_event(self, predicate, timeout: float) -> dict:
        """Wait for an event satisfying `predicate`; return it."""

        def found():
            with self._lock:
                return next((e for e in self.events if predicate(e)), None)

        assert wait_until(lambda: found() is not None, timeout), self.events
        return found()

    def call(self, client, timeout: float = 20.0) -> tuple[bool, str]:
        assert wait_until(client.service_is_ready, timeout)
        future = client.call_async(Trigger.Request())
        assert wait_until(future.done, timeout), "service call timed out"
        return future.result().success, future.result().message


# Judged on safety interventions alone: the probe's robot never moves (every tick would be
# a stall) and its recorded scan holds a too-close reading (a near miss).
MONITOR_ON_INTERVENTIONS = {
    "monitor_window": 4.0,
    "monitor_min_active_s": 2.0,
    "monitor_min_samples": 20,
    "monitor_warn_stall_rate": 1.0,
    "monitor_max_stall_rate": 1.0,
    "monitor_max_near_misses": 1000,
    "probation_goals": 0,
    "probation_seconds": 5.0,
}


def test_degraded_model_rolled_back_and_good_model_kept(start_node, probe, recording, tmp_path):
    card = stateless_card()
    first, good, weak = (
        write_policy(tmp_path / f"{name}.pt", card, seed=seed)
        for name, seed in (("first", 1), ("good", 2), ("weak", 3))
    )
    good_cmd = expected_commands(good, recording)[0]
    life = LifecycleProbe(probe)
    start_node(NODE_MODULE, parameters={"model_path": str(first), **MONITOR_ON_INTERVENTIONS})
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    assert wait_until(probe.is_active, 15.0)
    ok, reason = life.call(life.rollback_client)
    assert not ok and "no model that completed probation" in reason, reason

    # A good model: on probation, passes after 5 s of driving, is kept.
    ok, reason = probe.set_parameters(model_path=str(good))
    assert ok, reason
    life.wait_event(lambda e: e["type"] == "swap" and e["probation"], 10.0)
    passed = life.wait_event(lambda e: e["type"] == "probation_passed", 30.0)
    assert passed["to"].startswith(str(good))

    # A degraded one: the filter cuts most of its requests; rolled back within probation.
    ok, reason = probe.set_parameters(model_path=str(weak))
    assert ok, reason
    life.scale = 0.2
    rollback = life.wait_event(lambda e: e["type"] == "rollback", 30.0)
    life.scale = 1.0
    assert rollback["automatic"] and rollback["on_probation"]
    assert rollback["from"].startswith(str(weak)) and rollback["to"].startswith(str(good))
    assert "intervention rate" in rollback["reason"]
    assert rollback["probation_s"] <= MONITOR_ON_INTERVENTIONS["probation_seconds"] + 5.0
    # The good model drives again and model_path says so.
    probe.wait_diagnostics(lambda v: v.get("model_path") == str(good), 10.0)
    since = time.monotonic() + 0.3
    assert wait_until(lambda: len(probe.commands_since(since)) >= 5, 5.0)
    np.testing.assert_allclose(probe.commands[-1][1:], good_cmd, atol=1e-6)
    _, _, values = probe.wait_status("model", lambda lvl, msg, v: "model_state" in v)
    assert values["blocked_models"] == "1" and values["model_state"] == "trusted"

    # A person may set the rolled-back model again; a rollback on request undoes it.
    ok, reason = probe.set_parameters(model_path=str(weak))
    assert ok, reason
    ok, reason = life.call(life.rollback_client)
    assert ok, reason
    requested = life.wait_event(lambda e: e["type"] == "rollback" and not e["automatic"], 10.0)
    assert requested["to"].startswith(str(good))


def _degraded(scan: LaserScan, noise: float, dropout: float, seed: int) -> LaserScan:
    rng = np.random.default_rng(seed)
    ranges = np.array(scan.ranges, dtype=np.float32)
    finite = np.isfinite(ranges) & (ranges > scan.range_min)
    ranges[finite] += rng.normal(0.0, noise, int(finite.sum())).astype(np.float32)
    ranges[rng.random(ranges.size) < dropout] = np.nan
    degraded = LaserScan()
    degraded.header = scan.header
    for name in ("angle_min", "angle_max", "angle_increment", "range_min", "range_max"):
        setattr(degraded, name, getattr(scan, name))
    degraded.ranges = ranges.tolist()
    return degraded


def test_sensor_drift_raised_and_cleared_against_a_captured_baseline(
    start_node, probe, recording, tmp_path
):
    model = write_policy(tmp_path / "a.pt", stateless_card(), seed=1)
    life = LifecycleProbe(probe)
    start_node(
        NODE_MODULE,
        parameters={
            "model_path": str(model),
            "drift_window": 2.0,
            "drift_capture_duration": 2.0,
            "drift_deactivates_policy": True,
        },
    )
    probe.wait_for_node()
    probe.send_goal(*recording.goal)
    assert wait_until(probe.is_active, 15.0)
    # No scan statistics in this card: no baseline until one is captured.
    probe.wait_status("scan drift", lambda lvl, msg, v: msg.startswith("no baseline"))
    ok, reason = life.call(life.capture_client)
    assert ok, reason
    life.wait_event(lambda e: e["type"] == "baseline_captured", 15.0)
    probe.wait_status(
        "scan drift", lambda lvl, msg, v: lvl == 0 and v.get("baseline") == "calibration"
    )

    clean = probe._scan
    probe._scan = _degraded(clean, noise=0.08, dropout=0.3, seed=5)
    raised = life.wait_event(lambda e: e["type"] == "drift" and e["level"] == "ERROR", 15.0)
    assert any("dropout" in reason for reason in raised["reasons"]), raised
    probe.wait_reason("held", contains="sensor drift", timeout=10.0)
    assert wait_until(lambda: not probe.is_active(), 5.0)

    probe._scan = clean
    life.wait_event(lambda e: e["type"] == "drift" and e["level"] == "OK", 15.0)
    probe.wait_status("scan drift", lambda lvl, msg, v: lvl == 0)
    assert wait_until(probe.is_active, 10.0), "the policy did not resume after the drift"
