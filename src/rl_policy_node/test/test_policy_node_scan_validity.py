"""The policy node judges scans by the one validator: invalid ones are dropped and counted."""

from __future__ import annotations

import math

import pytest
from rl_policy_node_test_support import load_recording, scan_message

from rl_policy_node.policy_node import PolicyNode
from rlguard_common import scan_validity


@pytest.fixture
def node(rclpy_context):
    made = PolicyNode(context=rclpy_context)
    yield made
    made.destroy_node()


def valid_scan(node):
    msg = scan_message(load_recording())
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("angle_increment", 0.0, scan_validity.ANGLE_INCREMENT_NOT_POSITIVE),
        ("angle_increment", -0.01, scan_validity.ANGLE_INCREMENT_NOT_POSITIVE),
        ("range_min", 50.0, scan_validity.RANGE_MIN_ABOVE_RANGE_MAX),
        ("range_max", math.inf, scan_validity.RANGE_MAX_NOT_FINITE),
        ("range_max", 0.0, scan_validity.RANGE_MAX_NOT_POSITIVE),
        ("angle_max", math.nan, scan_validity.ANGLE_NOT_FINITE),
        ("ranges", "double", scan_validity.BEAM_COUNT_MISMATCH),
        ("ranges", "empty", scan_validity.EMPTY_RANGES),
        ("intensities", [1.0, 2.0], scan_validity.INTENSITIES_LENGTH_MISMATCH),
    ],
)
def test_an_invalid_scan_is_dropped_and_counted_by_reason(node, field, value, reason):
    node._on_scan(valid_scan(node))
    accepted = node._controller.scan
    assert accepted is not None

    bad = valid_scan(node)
    if value == "double":
        value = list(bad.ranges) * 2
    elif value == "empty":
        value = []
    setattr(bad, field, value)
    node._on_scan(bad)
    assert node._controller.scan is accepted, "an invalid scan must not replace the last one"

    values = node.diagnostic_values()
    assert values[f"rejected_scan_{reason}"] == "1"
    assert values["dropped_scan"] == "1"
    others = [r for r in scan_validity.REASONS if r != reason]
    assert all(values[f"rejected_scan_{r}"] == "0" for r in others)

    node._on_scan(valid_scan(node))
    assert node._controller.scan is not accepted
