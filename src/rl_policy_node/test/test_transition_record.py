"""The transition record's Float32MultiArray layout (no ROS): round trip and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rl_policy_node.transition_record import (
    FORMAT,
    TRANSITION_PARAMETERS,
    TransitionLayoutError,
    TransitionRecord,
    closest_return,
    decode,
    encode,
)

SHA = "ab" * 32
# A sim-clock stamp past 2^24 s and with odd nanoseconds: float32 could not carry it.
STAMP_NS = 123_456_789_012_345_679


def record(**changes: object) -> TransitionRecord:
    values: dict[str, object] = {
        "stamp_ns": STAMP_NS,
        "observation": np.linspace(-1.0, 1.0, 7, dtype=np.float32),
        "action": np.array([0.25, -1.5], dtype=np.float32),
        "command": (0.13, -0.5),
        "weights_sha256": SHA,
        "pose": (1.0, -2.0, 0.5),
        "goal": (3.0, 4.0),
        "closest_range": 0.75,
        "goal_tolerance": 0.08,
    }
    values.update(changes)
    return TransitionRecord(**values)


def assert_same(a: TransitionRecord, b: TransitionRecord) -> None:
    assert a.stamp_ns == b.stamp_ns
    assert a.weights_sha256 == b.weights_sha256
    np.testing.assert_array_equal(a.observation, b.observation)
    np.testing.assert_array_equal(a.action, b.action)
    for name in ("command", "pose", "goal", "closest_range", "goal_tolerance"):
        assert getattr(a, name) == getattr(b, name), name


def test_round_trip_keeps_every_field_and_the_exact_stamp():
    original = record()
    labels, sizes, data = encode(original)
    assert labels[0] == f"format:{FORMAT}"
    assert sum(sizes) == len(data) == 7 + 2 + 2 + 3 + 2 + 1 + 1
    decoded = decode(labels, sizes, data)
    assert decoded.stamp_ns == STAMP_NS
    assert float(np.float32(STAMP_NS)) != STAMP_NS  # why the stamp is not a float
    assert decoded.weights_sha256 == SHA
    np.testing.assert_array_equal(decoded.observation, original.observation)
    assert decoded.observation.dtype == np.float32
    np.testing.assert_array_equal(decoded.action, [0.25, -1.5])  # raw, not clipped
    # Float fields come back as their float32 values.
    assert decoded.command == pytest.approx((0.13, -0.5), abs=1e-7)
    assert decoded.command[0] == float(np.float32(0.13))
    assert decoded.pose == (1.0, -2.0, 0.5)
    assert decoded.goal == (3.0, 4.0)
    assert decoded.closest_range == 0.75
    assert decoded.goal_tolerance == pytest.approx(0.08)
    assert_same(decode(*encode(decoded)), decoded)


def test_round_trip_of_an_empty_sha_an_infinite_range_and_stamp_zero():
    decoded = decode(*encode(record(weights_sha256="", closest_range=math.inf, stamp_ns=0)))
    assert decoded.weights_sha256 == ""
    assert decoded.closest_range == math.inf
    assert decoded.stamp_ns == 0


def test_the_decoder_takes_numpy_data_and_sizes_as_a_message_gives_them():
    labels, sizes, data = encode(record())
    decoded = decode(tuple(labels), np.array(sizes, dtype=np.uint32), np.array(data, np.float32))
    assert_same(decoded, decode(labels, sizes, data))


def _broken(index: int, label: str | None = None, size: int | None = None):
    labels, sizes, data = encode(record())
    if label is not None:
        labels[index] = label
    if size is not None:
        sizes[index] = size
    return labels, sizes, data


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        (_broken(0, label="format:rlguard.transition/2"), "format"),
        (_broken(0, label="observation"), "must be 'format:"),
        (_broken(1, label="stamp_ns:1.5e9"), "stamp_ns must be a non-negative integer"),
        (_broken(1, label="stamp_ns:-3"), "stamp_ns must be a non-negative integer"),
        (_broken(2, label="sha256:XYZ"), "64 lowercase hex"),
        (_broken(2, size=1), "must have size 0"),
        (_broken(4, label="actions"), "dim 4 must be 'action'"),
        (_broken(5, size=3), "the dims hold"),
    ],
)
def test_a_bad_layout_is_refused_with_the_reason(layout, reason):
    with pytest.raises(TransitionLayoutError, match=reason):
        decode(*layout)


def test_wrong_field_sizes_and_lengths_are_refused():
    labels, sizes, data = encode(record())
    # Sizes that still add up, moved from action to command.
    moved = list(sizes)
    moved[4], moved[5] = 1, 3
    with pytest.raises(TransitionLayoutError, match="action must have 2 values, got 1"):
        decode(labels, moved, data)
    with pytest.raises(TransitionLayoutError, match="the dims hold .* data has"):
        decode(labels, sizes, data[:-1])
    with pytest.raises(TransitionLayoutError, match="dims"):
        decode(labels[:-1], sizes[:-1], data[:-1])
    with pytest.raises(TransitionLayoutError, match="labels but"):
        decode(labels, sizes[:-1], data)
    empty = list(sizes)
    empty[3] = 0
    with pytest.raises(TransitionLayoutError, match="observation must have >= 1"):
        decode(labels, empty, data[7:])


def test_a_record_refuses_bad_values():
    with pytest.raises(TransitionLayoutError, match="2 values"):
        record(action=np.zeros(3))
    with pytest.raises(TransitionLayoutError, match="pose has 3"):
        record(pose=(0.0, 0.0))
    with pytest.raises(TransitionLayoutError, match="stamp_ns must be an integer"):
        record(stamp_ns=1.5)
    with pytest.raises(TransitionLayoutError, match="hex"):
        record(weights_sha256="AB" * 32)


def test_closest_return_follows_rep117():
    ranges = np.array([np.nan, 0.01, 2.0, 0.5, np.inf], dtype=np.float32)
    assert closest_return(ranges, range_min=0.12) == 0.5
    assert closest_return(np.array([1.0, -np.inf]), range_min=0.12) == 0.0
    assert closest_return(np.array([np.nan, np.inf]), range_min=0.12) == math.inf


def test_the_parameter_is_off_by_default():
    spec = TRANSITION_PARAMETERS["record_transitions"]
    assert spec.default is False and len(spec.description) > 10
