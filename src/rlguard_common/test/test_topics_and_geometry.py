"""Topic names and QoS as data, and the shared geometry."""

import math

import numpy as np
import pytest

from rlguard_common import geometry, topics
from rlguard_common.topics import QosSpec


def test_stack_topics_are_relative_and_only_ros_globals_are_absolute():
    names = {k: v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)}
    assert len(set(names.values())) == len(names), "two constants name one topic"
    absolute = {v for v in names.values() if v.startswith("/")}
    assert absolute == {topics.CLOCK, topics.DIAGNOSTICS}


def test_the_goal_remap_points_the_policy_at_the_arbiters_goal():
    assert topics.STACK_REMAPPINGS["rl_policy_node"] == {topics.GOAL_POSE: topics.HYBRID_GOAL}


def test_qos_kwargs_match_rclpy_profiles():
    qos = pytest.importorskip("rclpy.qos")
    latched = qos.QoSProfile(**topics.LATCHED.rclpy_kwargs())
    assert latched.depth == 1
    assert latched.reliability == qos.ReliabilityPolicy.RELIABLE
    assert latched.durability == qos.DurabilityPolicy.TRANSIENT_LOCAL
    assert latched.history == qos.HistoryPolicy.KEEP_LAST
    sensor = qos.QoSProfile(**topics.SENSOR_DATA.rclpy_kwargs())
    reference = qos.qos_profile_sensor_data
    assert (sensor.depth, sensor.reliability, sensor.durability) == (
        reference.depth,
        reference.reliability,
        reference.durability,
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"depth": 0}, {"depth": 1, "reliability": "sometimes"}, {"depth": 1, "durability": "x"}],
)
def test_a_wrong_qos_spec_is_refused(kwargs):
    with pytest.raises(ValueError):
        QosSpec(**kwargs)


@pytest.mark.parametrize("yaw", [0.0, 0.5, -1.2, math.pi - 1e-6, -math.pi + 1e-6])
def test_yaw_round_trips_through_the_quaternion(yaw):
    assert geometry.yaw_from_quaternion(*geometry.quaternion_from_yaw(yaw)) == pytest.approx(yaw)


def test_wrap_angle_lands_in_minus_pi_to_pi():
    angles = np.array([0.0, math.pi, -math.pi, 3 * math.pi, -7.0, 7.0])
    wrapped = np.asarray(geometry.wrap_angle(angles))
    assert np.all(wrapped >= -math.pi) and np.all(wrapped < math.pi)
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-12)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(angles), atol=1e-12)


def test_base_and_odom_frames_convert_points_both_ways():
    pose = (1.0, 2.0, math.pi / 2.0)  # at (1, 2), facing +y
    ahead_and_left = np.array([[1.0, 0.0], [0.0, 1.0]])
    odom = geometry.base_to_odom(ahead_and_left, pose)
    np.testing.assert_allclose(odom, [[1.0, 3.0], [0.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(geometry.odom_to_base(odom, pose), ahead_and_left, atol=1e-12)
