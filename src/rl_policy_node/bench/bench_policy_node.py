"""Benchmark rl_policy_node: per-tick compute, swap time, and the highest sustained rate.

The node runs in this process pinned to one core, with a 2x256 MLP on 67 inputs (the
assumed size of the shipped policy) and a subscriber of `policy/cmd_vel` in a child
process so publishing really serialises and sends. Figures:

- tick_compute: the whole control callback (observation + inference + publish), and
  its parts observation_build, inference, publish, measured separately;
- swap: a `model_path` set (load, checks, warm-up, dry run, swap), SWAPS times on the
  node's own executor at 20 Hz (wall clock), the gaps between commands while swapping and
  `swap_missed_ticks`, the gaps longer than 1.5 periods (target 0);
- sustained rate: the highest control_rate_hz whose ticks arrive at >= 95 % of the
  rate with <= 1 % deadline misses, running the node's real executor (two threads) for
  a few seconds; the same sweep of an empty timer shows the executor's own ceiling.
  On a busy machine that sweep measures the neighbours too, so each run also reports
  the process CPU time per tick and `one_core_capacity` = ticks per CPU-second.

Run: python src/rl_policy_node/bench/bench_policy_node.py --out /tmp/bench
"""

from __future__ import annotations

import faulthandler
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rl_policy_node.node_config import PARAMETERS
from rlguard_common.topics import POLICY_CMD_VEL
from rlguard_tools import benchlib

SECTORS = 60  # 60 scan sectors + goal 3 + velocity 2 + previous action 2 = 67 inputs
HIDDEN = 256
TICKS = 3000
SWAPS = 100  # >= 100: a rollback is a swap; about 17 s
SWAP_SPACING_S = 0.15
MISSED_TICK_PERIODS = 1.5
RATES_HZ = (100, 200, 300, 400, 600, 800, 1000, 1500, 2000)
RATE_SECONDS = 2.0
WARMUP_SECONDS = 0.3
MIN_SWEEP_HZ = 300  # sweep at least this far, so one overloaded moment does not end it

# The sink leaves when the benchmark process is gone, however that ended.
SUBSCRIBER = f"""
import os, rclpy
from geometry_msgs.msg import Twist
parent = os.getppid()
rclpy.init()
node = rclpy.create_node("bench_cmd_sink")
node.create_subscription(Twist, {POLICY_CMD_VEL!r}, lambda m: None, 10)
print("ready", flush=True)
try:
    while rclpy.ok() and os.getppid() == parent:
        rclpy.spin_once(node, timeout_sec=0.5)
except Exception:
    pass
"""
HANG_TIMEOUT_S = 150  # dump every thread's stack and exit rather than hang


def _mlp_policy(path: Path, seed: int) -> Path:
    import torch

    from rl_policy_node.policy_card import (
        ActionSpec,
        GoalSpec,
        ObservationSpec,
        PolicyCard,
        ScanSpec,
        VelocitySpec,
    )
    from rl_policy_node.policy_loader import save_policy

    card = PolicyCard(
        name="bench-mlp-2x256",
        version="1",
        observation=ObservationSpec(
            scan=ScanSpec(sectors=SECTORS, field_of_view_deg=360.0, range_cap=3.5),
            goal=GoalSpec(distance_cap=5.0),
            velocity=VelocitySpec(0.26, 1.82),
            previous_action=True,
        ),
        action=ActionSpec(linear=(-0.26, 0.26), angular=(-1.82, 1.82)),
    )
    torch.manual_seed(seed)
    size = card.observation.size
    net = torch.nn.Sequential(
        torch.nn.Linear(size, HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, 2),
        torch.nn.Tanh(),
    ).eval()
    save_policy(torch.jit.trace(net, torch.zeros(1, size)), path, card)
    return path


def _feed(node) -> None:
    """Put a 360-beam scan, odometry and a far goal straight into the node's controller."""
    import numpy as np

    from rl_policy_node.observation import ScanInput
    from rl_policy_node.policy_inputs import OdomSample, ScanSample

    now = node.get_clock().now().nanoseconds
    beams = 360
    ranges = (1.5 + np.sin(np.arange(beams) * 0.05)).astype(np.float32)
    scan = ScanInput(ranges, -math.pi, 2 * math.pi / beams, 0.12, 3.5)
    controller = node._controller
    controller.scan = ScanSample(scan, now, now)
    controller.odom = OdomSample((0.0, 0.0, 0.2), (0.1, 0.3), now, now)
    controller.set_goal(4.0, 2.0)


def _node(model: Path, rate_hz: float = 20.0):
    from rclpy.parameter import Parameter

    from rl_policy_node.policy_node import PolicyNode

    overrides = [
        Parameter("model_path", value=str(model)),
        Parameter("control_rate_hz", value=float(rate_hz)),
        Parameter("source_timeout", value=10.0),
        Parameter("max_inference_ms", value=1000.0),
    ]
    node = PolicyNode(parameter_overrides=overrides)
    _feed(node)
    return node


def _per_tick(node, figures: dict) -> None:
    import numpy as np
    from geometry_msgs.msg import Twist

    controller = node._controller
    tick_ms = []
    for _ in range(TICKS):
        started = time.perf_counter()
        node._on_control_tick()
        tick_ms.append((time.perf_counter() - started) * 1e3)
    assert controller.commands >= TICKS, controller.reason
    slot = controller.slot
    scan, odom, goal = controller.scan, controller.odom, controller.goal
    build_ms, infer_ms, publish_ms = [], [], []
    observation = None
    for _ in range(TICKS):
        started = time.perf_counter()
        observation = slot.builder.build(scan.scan, odom.pose, odom.velocity, goal, (0.1, -0.2))
        build_ms.append((time.perf_counter() - started) * 1e3)
    for _ in range(TICKS):
        started = time.perf_counter()
        slot.policy(observation)
        infer_ms.append((time.perf_counter() - started) * 1e3)
    twist = Twist()
    for i in range(TICKS):
        twist.linear.x = 0.001 * (i % 100)
        started = time.perf_counter()
        node._cmd_pub.publish(twist)
        publish_ms.append((time.perf_counter() - started) * 1e3)
    figures["tick_compute"] = benchlib.summarize(tick_ms, "ms")
    figures["tick_compute_bound_rate"] = {"value": 1e3 / float(np.median(tick_ms)), "unit": "Hz"}
    figures["observation_build"] = benchlib.summarize(build_ms, "ms")
    figures["inference"] = benchlib.summarize(infer_ms, "ms")
    figures["publish"] = benchlib.summarize(publish_ms, "ms")
    figures["observation_size"] = {"value": int(np.asarray(observation).size), "unit": "inputs"}


def _swaps(node, models: list[Path], figures: dict) -> None:
    from rclpy.parameter import Parameter

    from rl_policy_node.policy_node import EXECUTOR_THREADS
    from rl_policy_node.threaded_executor import StartedTaskExecutor

    swap_ms = []
    executor = StartedTaskExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    stamps: list[int] = []
    original_publish = node._cmd_pub.publish

    def publish_and_stamp(msg) -> None:
        original_publish(msg)
        stamps.append(time.perf_counter_ns())

    node._cmd_pub.publish = publish_and_stamp
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        time.sleep(0.5)
        for i in range(SWAPS):
            _feed(node)
            started = time.perf_counter()
            result = node.set_parameters([Parameter("model_path", value=str(models[i % 2]))])
            swap_ms.append((time.perf_counter() - started) * 1e3)
            assert result[0].successful, result[0].reason
            time.sleep(SWAP_SPACING_S)
    finally:
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        node._cmd_pub.publish = original_publish
    gaps = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:], strict=False)]
    figures["swap"] = benchlib.summarize(swap_ms, "ms")
    figures["command_gap_during_swaps"] = benchlib.summarize(gaps, "ms")
    limit_ms = MISSED_TICK_PERIODS * node._period * 1e3
    missed = sum(1 for gap in gaps if gap > limit_ms)
    figures["swap_missed_ticks"] = {
        "value": missed,
        "unit": f"command gaps > {limit_ms:g} ms in {SWAPS} swaps (target 0)",
    }
    print(f"swap: {missed} missed ticks in {SWAPS} swaps (command gaps > {limit_ms:g} ms)")


class _BareTimer:
    """Reference: an empty timer in the same executor set-up (the executor's own ceiling)."""

    def __init__(self, rate_hz: float) -> None:
        import rclpy
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

        from rl_policy_node.tick_stats import TickMonitor

        self.node = rclpy.create_node("bench_bare_timer")
        self.monitor = TickMonitor(1.0 / rate_hz)
        self.commands = 1
        clock = self.node.get_clock()

        def tick() -> None:
            self.monitor.record(clock.now().nanoseconds, 0)

        self.node.create_timer(1.0 / rate_hz, tick, callback_group=MutuallyExclusiveCallbackGroup())


def _run_at(rate: float, model: Path | None) -> tuple[float, int, int, int, float]:
    """(achieved Hz, ticks, deadline misses, commands, process CPU s) over RATE_SECONDS."""
    from rclpy.executors import MultiThreadedExecutor

    if model is None:
        bare = _BareTimer(rate)
        node, monitor = bare.node, bare.monitor
    else:
        node = _node(model, rate)
        monitor = node._monitor
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    time.sleep(WARMUP_SECONDS)
    started_ticks, started_misses = monitor.ticks, monitor.deadline_misses
    started, cpu_started = time.monotonic(), time.process_time()
    time.sleep(RATE_SECONDS)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    ticks = monitor.ticks - started_ticks
    misses = monitor.deadline_misses - started_misses
    commands = node._controller.commands if model is not None else ticks
    executor.shutdown(timeout_sec=1.0)
    spinner.join(timeout=2.0)
    node.destroy_node()
    return ticks / elapsed, ticks, misses, commands, cpu


def _sustained_rate(model: Path | None, label: str, figures: dict) -> None:
    """Raise the rate until the loop falls below 95 % of it or misses > 1 % of deadlines."""
    best = 0
    capacity = 0.0
    # The node refuses a control_rate_hz above its parameter's range (the sweep ends there).
    top = PARAMETERS["control_rate_hz"].bounds[1] if model is not None else math.inf
    for rate in (r for r in RATES_HZ if r <= top):
        achieved, ticks, misses, commands, cpu = _run_at(rate, model)
        sustained = achieved >= 0.95 * rate and misses <= 0.01 * max(ticks, 1) and commands > 0
        # Ticks per second of this process's CPU time (all its threads, DDS included):
        # the rate one otherwise idle core could carry, whatever else shares the machine.
        capacity = ticks / cpu if cpu > 0 else 0.0
        print(
            f"{label} {rate:5d} Hz: achieved {achieved:7.1f} Hz, {misses} deadline misses "
            f"of {ticks} ticks, {1e3 * cpu / max(ticks, 1):.3f} ms CPU per tick "
            f"-> {'sustained' if sustained else 'not sustained'}"
        )
        figures[f"{label}_{rate}hz_achieved"] = {"value": achieved, "unit": "Hz", "count": ticks}
        figures[f"{label}_{rate}hz_cpu_per_tick"] = {
            "value": 1e3 * cpu / max(ticks, 1),
            "unit": "ms",
            "count": ticks,
        }
        if sustained:
            best = rate
        elif rate >= MIN_SWEEP_HZ:
            break
    figures[f"{label}_max_sustained_rate"] = {"value": best, "unit": "Hz"}
    figures[f"{label}_one_core_capacity"] = {"value": capacity, "unit": "Hz"}


def main() -> None:
    """Run the benchmark and write the results."""
    args = benchlib.bench_arguments(__doc__.splitlines()[0])
    faulthandler.dump_traceback_later(HANG_TIMEOUT_S, exit=True)
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    core = sorted(os.sched_getaffinity(0))[0]
    sink = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER], stdout=subprocess.PIPE, env=dict(os.environ)
    )
    os.sched_setaffinity(0, {core})  # the node under test gets one core
    import rclpy
    import torch

    torch.set_num_interop_threads(1)
    figures: dict = {}
    try:
        sink.stdout.readline()
        rclpy.init()
        with tempfile.TemporaryDirectory() as tmp:
            models = [_mlp_policy(Path(tmp) / f"mlp{i}.pt", seed=i) for i in range(2)]
            node = _node(models[0])
            deadline = time.monotonic() + 5.0
            while node.count_subscribers(POLICY_CMD_VEL) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            figures["subscribers"] = {"value": node.count_subscribers(POLICY_CMD_VEL)}
            _per_tick(node, figures)
            _swaps(node, models, figures)
            node.destroy_node()
            _sustained_rate(models[0], "node", figures)
            _sustained_rate(None, "bare_timer", figures)
        figures["pinned_core"] = {"value": core}
        figures["load_average_1min"] = {"value": os.getloadavg()[0], "unit": "runnable"}
    finally:
        sink.terminate()
        sink.wait(timeout=5)
        faulthandler.cancel_dump_traceback_later()
        rclpy.try_shutdown()
    benchlib.write_results("policy_node", figures, args.out)


if __name__ == "__main__":
    main()
