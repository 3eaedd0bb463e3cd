"""Benchmark the embedded simulator: core control steps/s and the node's real-time-factor ceiling.

Core: 20 Hz control steps (0.05 s of physics each) with a 360-beam scan every step, in
one process on one core. Node: `mujoco_sim` as its own process pinned to one core at
real_time_factor 1000 (as fast as it can, publishing clock/odom/scan as usual); the
ceiling is sim time advanced per wall second, read from /clock by a probe on another core.

    python src/sim_bringup/bench/bench_sim.py --out /tmp/bench
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.topics import CLOCK, QosSpec
from rlguard_common.world import load_world
from rlguard_tools import benchlib
from rlguard_tools.process_runner import NodeProcess, NodeSpec
from sim_bringup.sim_core import Simulator

# Before rclpy is imported (in bench_node_ceiling): a bench domain, discovery on loopback.
os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

# The probe's /clock reader: best effort and deep, so it never slows the simulator down.
CLOCK_PROBE_QOS = QosSpec(depth=100, reliability="best_effort")

CONTROL_DT = 0.05
CORE_STEPS = 4000
NODE_SECONDS = 8.0


def bench_core(world_name: str, with_scan: bool) -> dict[str, object]:
    """Control steps per second of the core in `world_name` (one process, one core)."""
    sim = Simulator(load_robot_profile("default"), load_world(world_name), seed=0)
    durations = []
    start = time.perf_counter()
    for i in range(CORE_STEPS):
        tick = time.perf_counter()
        # Sweep the commands so the robot turns, bumps into things and drives on.
        sim.step(0.22, 1.5 if (i // 40) % 2 else -1.0, CONTROL_DT)
        if with_scan:
            sim.scan()
        durations.append(time.perf_counter() - tick)
        if i % 400 == 399:
            sim.reset()
    elapsed = time.perf_counter() - start
    figure = benchlib.summarize([1e6 * d for d in durations], "us/step")
    return {
        "throughput": {"unit": "control steps/s", "value": CORE_STEPS / elapsed, "count": 1},
        # 1 / median step time: what one core does when other processes do not preempt it.
        "throughput at median latency": {
            "unit": "control steps/s",
            "value": 1e6 / figure["median"],
            "count": 1,
        },
        "latency": figure,
        "real_time_factor": {
            "unit": "x real time",
            "value": CORE_STEPS * CONTROL_DT / elapsed,
            "count": 1,
        },
    }


def bench_node_ceiling(out_dir: Path) -> dict[str, object]:
    """Sim seconds per wall second of the node process pinned to one core."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock

    from rlguard_common.node_support import qos_profile

    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})  # the child inherits this single core
    process = NodeProcess(
        NodeSpec(
            module="sim_bringup.sim_node",
            parameters={"world": "warehouse", "real_time_factor": 1000.0},
        ),
        log_dir=out_dir,
    ).start()
    os.sched_setaffinity(0, set(cores[1:]) or {cores[0]})
    rclpy.init()
    node = rclpy.create_node("sim_bench_probe")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    samples: list[tuple[float, float]] = []

    def on_clock(msg: Clock) -> None:
        samples.append((time.monotonic(), msg.clock.sec + msg.clock.nanosec * 1e-9))

    node.create_subscription(Clock, CLOCK, on_clock, qos_profile(CLOCK_PROBE_QOS))
    try:
        deadline = time.monotonic() + 30.0
        while not samples and time.monotonic() < deadline and process.is_running():
            executor.spin_once(timeout_sec=0.1)
        samples.clear()
        end = time.monotonic() + NODE_SECONDS
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        process.stop(timeout=3.0)
        os.sched_setaffinity(0, set(cores))
    if len(samples) < 2:
        raise RuntimeError(f"no /clock from the node; log:\n{process.output()[-2000:]}")
    (wall0, sim0), (wall1, sim1) = samples[0], samples[-1]
    return {"unit": "x real time", "value": (sim1 - sim0) / (wall1 - wall0), "count": len(samples)}


def main() -> None:
    """Run both benchmarks, print a table and write the JSON results."""
    args = benchlib.bench_arguments(__doc__.splitlines()[0])
    figures: dict[str, dict[str, object]] = {}
    for world in ("warehouse", "dynamic"):
        for with_scan in (True, False):
            label = f"core {world} {'with' if with_scan else 'without'} scan"
            for key, figure in bench_core(world, with_scan).items():
                figures[f"{label}: {key}"] = figure
    figures["node real-time-factor ceiling (1 core, warehouse)"] = bench_node_ceiling(
        Path(args.out)
    )
    benchlib.write_results("sim", figures, args.out)


if __name__ == "__main__":
    main()
