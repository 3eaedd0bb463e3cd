"""Fixtures the policy node's integration tests share: the recorded inputs and the probe."""

from __future__ import annotations

import pytest
from rl_policy_node_test_support import PolicyProbe, load_recording


@pytest.fixture
def recording():
    """The recorded scan, odometry and goal the probe feeds."""
    return load_recording()


@pytest.fixture
def probe(rclpy_context, recording):
    """A probe node feeding the policy node and recording what it says."""
    probe = PolicyProbe(rclpy_context, recording)
    yield probe
    probe.close()
