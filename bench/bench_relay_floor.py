"""The relay floor: latency of a chain of bare rclpy relay processes over DDS.

On these machines a Python hop costs about a millisecond, so the stack's latency means
little without the floor measured in the same run. Chains of 2 and 3 relays (the hops
from the policy's publish to cmd_vel, and from a scan to cmd_vel) at 20 Hz and 100 Hz.

    python bench/bench_relay_floor.py --out bench/results
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor

from rlguard_tools.benchlib import bench_arguments, summarize, write_results
from rlguard_tools.process_runner import NodeProcess, NodeSpec
from rlguard_tools.stack_bench.relay_node import RELAY_QOS as QOS

RELAY_MODULE = "rlguard_tools.stack_bench.relay_node"


def measure_chain(hops: int, rate_hz: float, messages: int, env: dict[str, str]) -> list[float]:
    """One-way latencies (ms) through `hops` relay processes."""
    log_dir = Path(tempfile.mkdtemp(prefix="relay-floor-"))
    topics = [f"relay_{i}" for i in range(hops + 1)]
    relays = [
        NodeProcess(
            NodeSpec(
                module=RELAY_MODULE,
                name=f"relay_{i}",
                remappings={"in": topics[i], "out": topics[i + 1]},
            ),
            env=env,
            log_dir=log_dir,
        ).start()
        for i in range(hops)
    ]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("relay_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    latencies: list[float] = []
    sent: dict[int, int] = {}

    def arrived(msg: TwistStamped) -> None:
        seq = int(msg.twist.linear.x)
        if seq in sent:
            latencies.append((time.perf_counter_ns() - sent.pop(seq)) / 1e6)

    publisher = node.create_publisher(TwistStamped, topics[0], QOS)
    node.create_subscription(TwistStamped, topics[-1], arrived, QOS)
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and publisher.get_subscription_count() == 0:
            executor.spin_once(timeout_sec=0.05)
        # Warm up until the whole chain delivers.
        warm = time.monotonic() + 20.0
        seq = -1
        while time.monotonic() < warm and not latencies:
            msg = TwistStamped()
            msg.twist.linear.x = float(seq)
            sent[seq] = time.perf_counter_ns()
            publisher.publish(msg)
            seq -= 1
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.01)
        latencies.clear()
        sent.clear()
        period = 1.0 / rate_hz
        next_send = time.monotonic()
        for seq in range(messages):
            while time.monotonic() < next_send:
                executor.spin_once(timeout_sec=max(0.0, next_send - time.monotonic()))
            msg = TwistStamped()
            msg.twist.linear.x = float(seq)
            sent[seq] = time.perf_counter_ns()
            publisher.publish(msg)
            next_send += period
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        for relay in relays:
            relay.stop(timeout=3.0)
    return latencies


def main() -> None:
    """Measure 2- and 3-hop chains at 20 and 100 Hz; print and write the results."""
    args = bench_arguments(__doc__.splitlines()[0])
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    figures = {}
    for hops in (2, 3):
        for rate in (20.0, 100.0):
            count = int(rate * 15)
            latencies = measure_chain(hops, rate, count, env)
            figure = summarize(latencies, "ms")
            figure["lost"] = count - len(latencies)
            figures[f"relay chain {hops} hops @ {rate:.0f} Hz"] = figure
    write_results("relay_floor", figures, args.out)


if __name__ == "__main__":
    main()
