"""The node's parameters in-process (no spinning, no DDS traffic): YAML, validation, swaps."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter
from rl_policy_node_test_support import small_card, write_policy

from rl_policy_node.policy_card import ActionSpec
from rl_policy_node.policy_node import PolicyNode


@pytest.fixture
def make_node(rclpy_context):
    nodes = []

    def _make(**overrides):
        node = PolicyNode(
            context=rclpy_context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        nodes.append(node)
        return node

    yield _make
    for node in nodes:
        node.destroy_node()


def _set(node, **values):
    results = node.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    return all(r.successful for r in results), "; ".join(r.reason for r in results)


def test_config_file_lists_every_parameter_with_its_default(make_node, workspace_root):
    config = yaml.safe_load((workspace_root / "config" / "rl_policy_node.yaml").read_text())
    values = config["rl_policy_node"]["ros__parameters"]
    node = make_node()
    declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}
    assert set(values) == declared
    for name, value in values.items():
        current = node.get_parameter(name).value
        assert list(current) == value if isinstance(value, list) else current == value, name


def test_empty_model_path_starts_inactive_without_a_crash(make_node):
    node = make_node(model_path="")
    assert node._controller.slot is None
    assert node._controller.step(0).reason == "no model"


def test_bad_start_model_is_reported_as_no_model(make_node, tmp_path):
    node = make_node(model_path=str(tmp_path / "absent.pt"))
    reason = node._controller.step(0).reason
    assert reason.startswith("no model:") and "no such file" in reason


def test_invalid_values_are_refused_and_old_values_stay(make_node, tmp_path):
    node = make_node()
    ok, reason = _set(node, max_velocity=[0.26])
    assert not ok and "max_velocity" in reason
    ok, reason = _set(node, max_velocity=[0.26, float("nan")])
    assert not ok and "finite" in reason
    assert list(node.get_parameter("max_velocity").value) == [0.26, 1.82]
    ok, reason = _set(node, device="gpu")
    assert not ok and "device" in reason
    ok, reason = _set(node, control_rate_hz=50.0)
    assert not ok  # read-only
    ok, reason = _set(node, source_timeout=0.0)
    assert not ok
    assert node.get_parameter("device").value == "cpu"


def test_limits_guard_the_carded_model_and_rescale_a_cardless_one(make_node, tmp_path):
    carded = write_policy(tmp_path / "carded.pt", small_card())  # linear up to 0.26
    node = make_node(model_path=str(carded))
    ok, reason = _set(node, max_velocity=[0.2, 1.82])
    assert not ok and "exceeds max_velocity linear 0.2" in reason
    assert node._controller.slot.policy.path == carded

    cardless = write_policy(tmp_path / "seed.pt", None)
    ok, reason = _set(node, model_path=str(cardless))
    assert ok, reason
    assert node._controller.slot.action == ActionSpec((-0.26, 0.26), (-1.82, 1.82))
    ok, reason = _set(node, max_velocity=[0.2, 1.0])
    assert ok, reason
    assert node._controller.slot.action == ActionSpec((-0.2, 0.2), (-1.0, 1.0))


def test_relative_model_paths_resolve_against_models_dir(make_node, tmp_path):
    write_policy(tmp_path / "rel.pt", small_card(), seed=3)
    node = make_node(models_dir=str(tmp_path))
    ok, reason = _set(node, model_path="rel.pt")
    assert ok, reason
    assert node._controller.slot.policy.path == tmp_path / "rel.pt"
    ok, reason = _set(node, model_path="missing.pt")
    assert not ok and str(tmp_path / "missing.pt") in reason
    assert node._controller.slot.policy.path == tmp_path / "rel.pt"


def test_runtime_settings_reach_the_controller(make_node):
    node = make_node()
    ok, _ = _set(node, source_timeout=1.5, goal_tolerance=0.3, max_inference_ms=7.0)
    assert ok
    controller = node._controller
    assert controller.source_timeout_ns == 1_500_000_000
    assert controller.goal_tolerance == 0.3 and controller.max_inference_ms == 7.0
    ok, _ = _set(node, publish_inference_ms=True)
    assert ok and node._inference_pub is not None


def test_a_refused_atomic_set_changes_nothing(make_node, tmp_path):
    good = write_policy(tmp_path / "good.pt", small_card(), seed=1)
    node = make_node(model_path=str(good))
    result = node.set_parameters_atomically(
        [
            Parameter("models_dir", value=str(tmp_path / "elsewhere")),
            Parameter("model_path", value="missing.pt"),
        ]
    )
    assert not result.successful and "no such file" in result.reason
    assert node._models_dir == "" and node.get_parameter("models_dir").value == ""
    assert node._controller.slot.policy.path == good


def test_messages_become_the_offline_observation_and_action(make_node, tmp_path):
    """Golden, in-process: the node's message conversion + tick give the core's numbers."""
    from rl_policy_node_test_support import (
        goal_message,
        load_recording,
        odom_message,
        scan_message,
    )

    from rl_policy_node.observation import ObservationBuilder
    from rl_policy_node.policy_loader import load_policy

    recording = load_recording()
    model = write_policy(tmp_path / "golden.pt", recording.card, seed=5)
    node = make_node(model_path=str(model))
    stamp = node.get_clock().now().to_msg()
    messages = [scan_message(recording), odom_message(recording), goal_message(*recording.goal)]
    for msg in messages:
        msg.header.stamp = stamp
    node._on_scan(messages[0])
    node._on_odom(messages[1])
    node._on_goal(messages[2])

    policy = load_policy(model)
    builder = ObservationBuilder(policy.card.observation)
    previous = (0.0, 0.0)
    for _ in range(3):
        node._on_control_tick()
        expected = builder.build(
            recording.scan_input(), recording.pose, recording.velocity, recording.goal, previous
        )
        np.testing.assert_allclose(node._controller._last_observation, expected, atol=1e-6)
        action = policy(expected)
        np.testing.assert_allclose(node._controller._last_action, action, atol=1e-6)
        previous = np.clip(action.astype(np.float64), -1.0, 1.0)
    assert node._controller.commands == 3
