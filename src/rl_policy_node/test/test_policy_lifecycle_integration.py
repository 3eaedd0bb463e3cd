"""A model's life in rl_policy_node over DDS: gated models, transition records.

The node runs as its own process; a scripted probe feeds it (see
`rl_policy_node_test_support.PolicyProbe`). Timing tolerances are generous.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rl_policy_node_test_support import (
    NODE_MODULE,
    PolicyProbe,
    expected_commands,
    gated_file,
    load_recording,
    stateless_card,
    wait_until,
    write_policy,
)
from std_msgs.msg import Float32MultiArray

from rl_policy_node.policy_loader import load_policy
from rl_policy_node.transition_record import decode
from rlguard_common import topics
from rlguard_common.node_support import qos_profile

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def recording():
    return load_recording()


@pytest.fixture
def probe(rclpy_context, recording):
    probe = PolicyProbe(rclpy_context, recording)
    yield probe
    probe.close()


def _model_status(probe, level: int, message: str):
    return probe.wait_status(
        "model", lambda lvl, msg, values: lvl == level and msg.startswith(message)
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
