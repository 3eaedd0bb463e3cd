"""The probe node: records the command chain with DDS timestamps and watches the stack.

A probe node in the benchmark process records every `policy/cmd_vel`, `cmd_vel_nav` and
`cmd_vel` with the DDS timestamps of its message info: `source_timestamp` (the writer's
publish call) and `received_timestamp` (arrival at the probe's reader, before its executor
sees it). Both are the system clock of this machine, so differences across processes are
meaningful.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rlguard_common.topics import (
    CLOCK,
    DIAGNOSTICS,
    HYBRID_MODE,
    LATCHED,
    SCAN,
    SENSOR_DATA,
    QosSpec,
)
from rlguard_tools.stack_bench.cycling_policy import decode
from rlguard_tools.stack_bench.samples import Sample

# Reliable and deep, so the probe's reader drops nothing at the highest chain rates.
PROBE_QOS = QosSpec(depth=100)


class Probe:
    """A node in this process that records the command chain and pokes the stack.

    Spins only when asked (`spin_for`, `spin_until`), on one SingleThreadedExecutor.
    """

    def __init__(self, topics: Sequence[str], name: str = "stack_bench_probe") -> None:
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.executors import SingleThreadedExecutor

        from rlguard_common.node_support import qos_profile

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.samples: dict[str, list[Sample]] = {topic: [] for topic in topics}
        self.sim_ns = 0
        self.clock: list[tuple[int, int]] = []  # (received_ns, sim_ns)
        self.scans: list[tuple[int, int, int]] = []  # (source_ns, received_ns, stamp_ns)
        self.modes: list[tuple[int, str]] = []  # (wall ns at the probe, mode)
        self.diagnostics: dict[str, dict[str, str]] = {}
        reliable = qos_profile(PROBE_QOS)
        for topic in topics:
            self.node.create_subscription(Twist, topic, self._recorder(topic), reliable)

    def _recorder(self, topic: str) -> Callable[[Any, Any], None]:
        store = self.samples[topic]

        def record(msg: Any, info: Any) -> None:
            linear, angular = msg.linear.x, msg.angular.z
            store.append(
                Sample(
                    linear,
                    angular,
                    decode(linear, angular),
                    int(info["source_timestamp"]),
                    int(info["received_timestamp"]),
                    self.sim_ns,
                )
            )

        return record

    def watch_stack(self, clock: bool = True) -> None:
        """Also record scan stamps, hybrid/mode, /diagnostics and (with `clock`) /clock."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import String

        from rlguard_common.node_support import qos_profile

        latched = qos_profile(LATCHED)
        reliable = qos_profile(PROBE_QOS)
        node = self.node
        if clock:
            node.create_subscription(Clock, CLOCK, self._on_clock, reliable)
        node.create_subscription(LaserScan, SCAN, self._on_scan, qos_profile(SENSOR_DATA))
        node.create_subscription(String, HYBRID_MODE, self._on_mode, latched)
        node.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, reliable)

    def _on_clock(self, msg: Any, info: Any) -> None:
        self.sim_ns = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec
        self.clock.append((int(info["received_timestamp"]), self.sim_ns))

    def _on_scan(self, msg: Any, info: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.scans.append((int(info["source_timestamp"]), int(info["received_timestamp"]), stamp))

    def _on_mode(self, msg: Any) -> None:
        self.modes.append((time.time_ns(), msg.data))

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    @property
    def mode(self) -> str:
        """The last hybrid/mode received ('' before any)."""
        return self.modes[-1][1] if self.modes else ""

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Process callbacks until `condition()` holds (True) or `timeout` s pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return condition()

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        """Call a service and wait for the response (None on timeout)."""
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        self.spin_until(future.done, timeout)
        return future.result() if future.done() else None

    def clear(self) -> None:
        """Forget the recorded samples, clock and scans (keeps modes and diagnostics)."""
        for store in self.samples.values():
            store.clear()
        self.clock.clear()
        self.scans.clear()

    def close(self) -> None:
        """Destroy the node and shut the probe's context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
