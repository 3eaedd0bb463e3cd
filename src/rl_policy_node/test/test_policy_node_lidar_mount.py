"""The node's lidar mount parameters reach the controller (in-process, no DDS traffic)."""

from __future__ import annotations

import pytest
from rclpy.parameter import Parameter

from rl_policy_node.policy_node import PolicyNode
from safety_controller.scan_geometry import LidarMount


@pytest.fixture
def node(rclpy_context):
    node = PolicyNode(
        context=rclpy_context,
        parameter_overrides=[Parameter("lidar_x", value=0.1), Parameter("lidar_yaw", value=0.2)],
    )
    yield node
    node.destroy_node()


def test_the_lidar_mount_is_the_parameters_at_start_and_after_a_change(node):
    assert node._controller.lidar_mount == LidarMount(0.1, 0.0, 0.2)
    results = node.set_parameters([Parameter("lidar_y", value=-0.05)])
    assert all(result.successful for result in results)
    assert node._controller.lidar_mount == LidarMount(0.1, -0.05, 0.2)
    refused = node.set_parameters([Parameter("lidar_yaw", value=4.0)])  # beyond pi
    assert not refused[0].successful
    assert node._controller.lidar_mount == LidarMount(0.1, -0.05, 0.2)
