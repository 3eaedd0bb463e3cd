"""Bare rclpy nodes of the stack-latency floor: a Twist source on a timer and a Twist relay.

The floor chain stands in for the stack's command path (rl_policy_node -> hybrid_fallback
-> safety_controller) with nothing but the transport: the same message type
(geometry_msgs/Twist), the same QoS (reliable, depth 1) and the same executor
(SingleThreadedExecutor), one subscription and one publisher per relay process.

    python -m rlguard_tools.stack_bench.floor_nodes --role source --rate 20 \
        --ros-args -r out:=floor_0
    python -m rlguard_tools.stack_bench.floor_nodes --role relay \
        --ros-args -r in:=floor_0 -r out:=floor_1
"""

from __future__ import annotations

import argparse
import sys

import rclpy
from geometry_msgs.msg import Twist
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from rlguard_common.node_support import qos_profile
from rlguard_common.topics import COMMAND

FLOOR_QOS = qos_profile(COMMAND)  # the stack's command QoS
CODES = 16  # the source cycles through this many distinct angular values


def code_angular(index: int) -> float:
    """The angular velocity the floor source sends for code `index` (never zero)."""
    return -1.35 + 2.7 * (index % CODES) / (CODES - 1)


class TwistRelay(Node):
    """Forwards every Twist from `in` to `out` unchanged."""

    def __init__(self) -> None:
        super().__init__("floor_relay")
        self.publisher = self.create_publisher(Twist, "out", FLOOR_QOS)
        self.create_subscription(Twist, "in", self.publisher.publish, FLOOR_QOS)


class TwistSource(Node):
    """Publishes a Twist on `out` at `rate_hz` whose angular value cycles through CODES codes."""

    def __init__(self, rate_hz: float) -> None:
        super().__init__("floor_source")
        self.publisher = self.create_publisher(Twist, "out", FLOOR_QOS)
        self.count = 0
        self.msg = Twist()
        self.create_timer(1.0 / rate_hz, self._tick)

    def _tick(self) -> None:
        self.count += 1
        self.msg.angular.z = code_angular(self.count)
        self.publisher.publish(self.msg)


def main(argv: list[str] | None = None) -> None:
    """Run one source or relay until interrupted."""
    argv = list(sys.argv if argv is None else argv)
    own = rclpy.utilities.remove_ros_args(argv)[1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("source", "relay"), required=True)
    parser.add_argument("--rate", type=float, default=20.0, help="source rate (Hz)")
    args = parser.parse_args(own)
    rclpy.init(args=argv)
    node = TwistSource(args.rate) if args.role == "source" else TwistRelay()
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
    main()
