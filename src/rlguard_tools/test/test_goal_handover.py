"""A goal published once reaches the arbiter and the policy node (issue 19, item 7).

`ros2 topic pub --once goal_pose ...` publishes as soon as one subscriber matched. With two
nodes reading `goal_pose`, one of them could miss it. The stack launch makes the arbiter the
only reader of `goal_pose`; it hands every accepted goal on, on the latched `hybrid/goal`,
which the launch remaps the policy node's `goal_pose` to. The nodes here are started with
the remappings `launch/stack.launch.py` gives them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rlguard_tools.launch_check import LaunchChecker

WORKSPACE = Path(__file__).resolve().parents[3]
NODES = {
    "hybrid_fallback": "hybrid_fallback.hybrid_node",
    "rl_policy_node": "rl_policy_node.policy_node",
}

needs_build = pytest.mark.skipif(
    not (WORKSPACE / "install" / "sim_bringup" / "share").is_dir(),
    reason="launch files resolve installed share paths: run `make build` (make test does)",
)


def _launch_remappings() -> dict[str, list[tuple[str, str]]]:
    checker = LaunchChecker(WORKSPACE)
    checker.check_file(WORKSPACE / "launch" / "stack.launch.py")
    assert checker.report.problems == []
    return checker.report.remappings


def _subscriptions(probe, name: str, process) -> set[str]:
    """The topics node `name` subscribes to, once it has joined the graph (bounded polls)."""
    for _ in range(600):
        assert process.is_running(), process.output()
        if name in probe.get_node_names():
            topics = {t for t, _ in probe.get_subscriber_names_and_types_by_node(name, "/")}
            if "/scan" in topics:  # every stack node reads scan: its subscriptions exist
                return topics
        time.sleep(0.05)
    pytest.fail(f"{name} never subscribed:\n{process.output()}")


@needs_build
def test_a_goal_published_once_reaches_both_nodes(start_node, rclpy_context, workspace_root):
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.duration import Duration
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    remappings = _launch_remappings()
    processes = {
        name: start_node(
            module,
            name=name,
            params_files=[workspace_root / "config" / f"{name}.yaml"],
            parameters={"model_path": ""} if name == "rl_policy_node" else {},
            remappings=dict(remappings.get(name, [])),
        )
        for name, module in NODES.items()
    }
    probe = rclpy.create_node("goal_probe", context=rclpy_context)
    try:
        readers = {
            name for name, p in processes.items() if "/goal_pose" in _subscriptions(probe, name, p)
        }
        assert readers == {"hybrid_fallback"}, "goal_pose must have one owner, the arbiter"

        # Like `ros2 topic pub --once`: a volatile publisher that waits for one matching
        # subscription, publishes once and goes away.
        sender = rclpy.create_node("goal_once", context=rclpy_context)
        publisher = sender.create_publisher(
            PoseStamped,
            "goal_pose",
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
        )
        for _ in range(600):
            if publisher.get_subscription_count() >= 1:
                break
            time.sleep(0.05)
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x, goal.pose.position.y = 1.5, -0.5
        goal.pose.orientation.w = 1.0
        publisher.publish(goal)
        assert publisher.wait_for_all_acked(Duration(seconds=30))
        sender.destroy_node()
    finally:
        probe.destroy_node()
    for name, process in processes.items():
        assert process.wait_for_output("new goal (1.50, -0.50)", timeout=60.0), (
            name,
            process.output(),
        )
