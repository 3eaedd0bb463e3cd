"""Benchmark the safety controller: filter time per scan, e-stop and upstream-death latency.

Run: python src/safety_controller/bench/bench_safety.py --out /tmp/bench

1. Filter time per scan (in-process, one core): scan -> base-frame points -> filter step
   with a command heading into nearby obstacles, for 360, 1081 and 2048 beams.
2. Over DDS with the node as a separate process: e-stop-to-zero latency (publish
   `safety/estop` true -> first zero `cmd_vel` received) and upstream-death-to-zero time
   (the `cmd_vel_nav` publisher goes silent -> first zero `cmd_vel`).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from rlguard_common.topics import (
    CMD_VEL,
    COMMAND,
    ESTOP,
    LATCHED,
    NAV_CMD_VEL,
    SAFETY_RESET,
    SCAN,
    SENSOR_DATA,
)
from rlguard_tools.benchlib import bench_arguments, summarize, write_results
from safety_controller.footprint import Footprint, parse_polygon
from safety_controller.safety_filter import SafetyConfig, SafetyFilter
from safety_controller.scan_geometry import LidarMount, scan_to_points

FILTER_ITERATIONS = 3000
ESTOP_TRIALS = 20
DEATH_TRIALS = 5
VELOCITY_TIMEOUT = 0.5


def room_scan(beams: int, rng: np.random.Generator) -> np.ndarray:
    """Ranges of a 4 x 3 m room with some clutter close in front, with noise and dropouts."""
    angles = -math.pi + 2 * math.pi / beams * np.arange(beams)
    c, s = np.cos(angles), np.sin(angles)
    with np.errstate(divide="ignore"):
        to_x = np.where(c > 0, 2.0 / c, np.where(c < 0, -2.0 / c, np.inf))
        to_y = np.where(s > 0, 1.5 / s, np.where(s < 0, -1.5 / s, np.inf))
    ranges = np.minimum(to_x, to_y)
    clutter = np.abs(angles) < 0.4
    ranges[clutter] = np.minimum(ranges[clutter], 0.45 + 0.2 * np.abs(angles[clutter]))
    ranges += rng.normal(0.0, 0.01, beams)
    ranges[rng.random(beams) < 0.01] = np.nan
    return ranges


def bench_filter(beams: int, footprint: Footprint) -> tuple[list[float], list[float]]:
    """Seconds per scan for conversion + filter step, and for the filter step alone."""
    rng = np.random.default_rng(beams)
    scans = [room_scan(beams, rng) for _ in range(16)]
    filt = SafetyFilter(SafetyConfig(footprint=footprint, closed_loop=True))
    mount = LidarMount(x=-0.032)
    total, step_only = [], []
    now = 0.0
    for i in range(FILTER_ITERATIONS):
        ranges = scans[i % len(scans)]
        filt.set_odometry(0.2, 0.3, now)
        filt.set_command(0.26, 0.5 * math.sin(i * 0.05), now)
        start = time.perf_counter()
        points = scan_to_points(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5, mount)
        filt.set_scan(points, now)
        middle = time.perf_counter()
        filt.step(now)
        end = time.perf_counter()
        total.append(end - start)
        step_only.append(end - middle)
        now += 0.05
    return total[100:], step_only[100:]


def bench_dds() -> dict[str, dict[str, object]]:
    """E-stop-to-zero and upstream-death-to-zero over DDS, node in its own process."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import LaserScan
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    from rlguard_common.node_support import qos_profile
    from rlguard_tools.process_runner import NodeProcess, NodeSpec

    node_process = NodeProcess(
        NodeSpec(
            module="safety_controller.safety_node",
            parameters={"velocity_timeout": VELOCITY_TIMEOUT, "publish_rate": 20.0},
        )
    ).start()
    rclpy.init()
    node = rclpy.create_node("safety_bench_probe")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received: list[tuple[float, float]] = []
    node.create_subscription(
        Twist, CMD_VEL, lambda m: received.append((time.perf_counter(), m.linear.x)), 100
    )
    cmd_pub = node.create_publisher(Twist, NAV_CMD_VEL, qos_profile(COMMAND))
    scan_pub = node.create_publisher(LaserScan, SCAN, qos_profile(SENSOR_DATA))
    estop_pub = node.create_publisher(Bool, ESTOP, qos_profile(LATCHED))
    reset = node.create_client(Trigger, SAFETY_RESET)
    state = {"commanding": True}

    def send_command() -> None:
        if state["commanding"]:
            msg = Twist()
            msg.linear.x = 0.2
            cmd_pub.publish(msg)

    def send_scan() -> None:
        msg = LaserScan()
        msg.angle_min, msg.angle_increment = -math.pi, 2 * math.pi / 360
        msg.angle_max = msg.angle_min + 359 * msg.angle_increment
        msg.range_min, msg.range_max = 0.12, 3.5
        msg.ranges = [3.0] * 360
        scan_pub.publish(msg)

    node.create_timer(0.05, send_command)
    node.create_timer(0.1, send_scan)

    def spin_until(condition, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            executor.spin_once(timeout_sec=0.001)
            if condition():
                return True
        return False

    def driving() -> bool:
        return bool(received) and abs(received[-1][1] - 0.2) < 1e-6

    def zero_after(t0: float) -> float | None:
        for stamp, v in received:
            if stamp > t0 and v == 0.0:
                return stamp
        return None

    estop_latency, death_latency = [], []
    try:
        if not spin_until(driving, 30.0):
            raise RuntimeError(
                "safety controller never passed the command:\n" + node_process.output()
            )
        reset.wait_for_service(timeout_sec=10.0)
        for _ in range(ESTOP_TRIALS):
            received.clear()
            t0 = time.perf_counter()
            estop_pub.publish(Bool(data=True))
            if spin_until(lambda t0=t0: zero_after(t0) is not None, 2.0):
                estop_latency.append(zero_after(t0) - t0)
            estop_pub.publish(Bool(data=False))
            spin_until(lambda: False, 0.1)
            future = reset.call_async(Trigger.Request())
            spin_until(future.done, 5.0)
            spin_until(driving, 5.0)
        for _ in range(DEATH_TRIALS):
            spin_until(driving, 5.0)
            received.clear()
            state["commanding"] = False
            t0 = time.perf_counter()
            if spin_until(lambda t0=t0: zero_after(t0) is not None, 5.0):
                death_latency.append(zero_after(t0) - t0)
            state["commanding"] = True
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        node_process.stop(timeout=3.0)
    figures = {
        "estop_to_zero": summarize(estop_latency, "s"),
        "upstream_death_to_zero": summarize(death_latency, "s"),
    }
    figures["upstream_death_to_zero"]["velocity_timeout"] = VELOCITY_TIMEOUT
    return figures


def main() -> None:
    """Run all measurements, print and write them."""
    args = bench_arguments(__doc__.splitlines()[0])
    figures: dict[str, dict[str, object]] = {}
    circle = Footprint(radius=0.11, margin=0.05)
    polygon = Footprint(
        polygon=parse_polygon("[[0.14, 0.14], [-0.14, 0.14], [-0.14, -0.14], [0.14, -0.14]]"),
        margin=0.05,
    )
    for beams in (360, 1081, 2048):
        total, step = bench_filter(beams, circle)
        figures[f"scan_and_filter_{beams}_beams_circle"] = summarize(np.array(total) * 1e3, "ms")
        figures[f"filter_step_{beams}_beams_circle"] = summarize(np.array(step) * 1e3, "ms")
    total, _ = bench_filter(1081, polygon)
    figures["scan_and_filter_1081_beams_polygon"] = summarize(np.array(total) * 1e3, "ms")
    figures.update(bench_dds())
    write_results("safety_controller", figures, args.out)


if __name__ == "__main__":
    main()
