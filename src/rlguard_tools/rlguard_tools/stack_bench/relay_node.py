"""A bare rclpy relay: republishes every TwistStamped from `in` on `out`, nothing else.

The floor the stack's latency is compared against: same QoS (reliable, depth 1), same
executor (SingleThreadedExecutor), one subscription and one publisher per process.

    python -m rlguard_tools.stack_bench.relay_node --ros-args -r in:=relay_0 -r out:=relay_1
"""

from __future__ import annotations

import sys

import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from rlguard_common.node_support import qos_profile
from rlguard_common.topics import COMMAND

RELAY_QOS = qos_profile(COMMAND)  # the stack's command QoS


class RelayNode(Node):
    """Forwards `in` to `out` unchanged."""

    def __init__(self) -> None:
        super().__init__("relay")
        self.publisher = self.create_publisher(TwistStamped, "out", RELAY_QOS)
        self.create_subscription(TwistStamped, "in", self.publisher.publish, RELAY_QOS)


def main(args: list[str] | None = None) -> None:
    """Run one relay until interrupted."""
    rclpy.init(args=args)
    node = RelayNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv)
