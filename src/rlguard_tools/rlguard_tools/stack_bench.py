"""Helpers of the end-to-end stack benchmarks: environment, policy, probe, matching, CPU, floor.

The stack runs as separate processes over DDS (`rlguard_tools.stack_runner`). A probe node
in the benchmark process records every `policy/cmd_vel`, `cmd_vel_nav` and `cmd_vel` with
the DDS timestamps of its message info: `source_timestamp` (the writer's publish call) and
`received_timestamp` (arrival at the probe's reader, before its executor sees it). Both are
the system clock of this machine, so differences across processes are meaningful.

The benchmark policy (`write_cycling_policy`) outputs linear 0 and an angular value that
cycles through `CODES` distinct values, one per tick, so each command is identifiable
after the arbiter and the safety filter (which passes it unchanged once its acceleration
limits are raised, see `PASS_THROUGH`).
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parent

CODES = 16  # distinct commands in one cycle of the benchmark policy
ANGULAR_RANGE = (-1.5, 1.5)  # rad/s that the policy's -1 / +1 angular outputs stand for
CODE_TOLERANCE = 2e-5  # rad/s: a value this close to a code's value carries that code

# Parameters that make the stack a transparent pipe for the benchmark policy's commands.
PASS_THROUGH: dict[str, dict[str, Any]] = {
    # Accelerations so high that a step between codes is never limited, even between two
    # outputs 0.1 ms apart (the limits apply over the time since the previous output).
    "safety_controller": {
        "max_accel": [1.0e4, 1.0e5],
        "max_decel": [-1.0e4, -1.0e5],
        "emergency_decel": [-1.0e4, -1.0e5],
    },
    # The policy turns in place: no progress check, no intervention switch, quick return.
    "hybrid_fallback": {
        "stall_window": 600.0,
        "min_progress": 0.0,
        "max_intervention_rate": 1.0,
        "retry_after": 0.0,
        "max_retries": 1000,
    },
}


# ------------------------------------------------------------------------ environment


def bench_environment() -> dict[str, str]:
    """Set up this process's environment for DDS on loopback in a bench domain; return it.

    The domain is RLGUARD_BENCH_DOMAIN_ID, else 101 + pid % 20 (101..120), so bench runs
    never share a domain with the test suite (1..100) or the default domain 0.
    """
    domain = os.environ.get("RLGUARD_BENCH_DOMAIN_ID") or str(101 + os.getpid() % 20)
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    os.environ.setdefault("RLGUARD_WORKSPACE", str(WORKSPACE))
    paths = [str(HERE), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return dict(os.environ)


def merge_parameters(
    *layers: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per-node parameter dicts merged left to right (later layers win)."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for node, values in layer.items():
            merged.setdefault(node, {}).update(values)
    return merged


# hybrid_fallback and safety_controller on the wall clock (as on a robot); the policy node
# stays on sim time, since it judges the sim-stamped scan and odom by their header stamps.
WALL_CLOCK: dict[str, dict[str, Any]] = {
    "hybrid_fallback": {"use_sim_time": False},
    "safety_controller": {"use_sim_time": False},
}


def rate_parameters(rate_hz: float) -> dict[str, dict[str, Any]]:
    """The read-only rate parameters that run the command chain at `rate_hz`."""
    return {
        "rl_policy_node": {"control_rate_hz": float(rate_hz)},  # range 1..1000
        "hybrid_fallback": {"control_rate_hz": float(rate_hz)},  # range 1..100
        "safety_controller": {"publish_rate": max(20.0, float(rate_hz))},  # range 20..200
    }


# ---------------------------------------------------------------------- the policy


def code_angular(index: int) -> float:
    """The angular velocity (rad/s) the benchmark policy commands for code `index`."""
    import numpy as np

    k = np.float32(index % CODES)
    action = np.float32(-0.9) + np.float32(1.8) * k / np.float32(CODES - 1)
    low, high = ANGULAR_RANGE
    return low + (float(action) + 1.0) * 0.5 * (high - low)


CODE_VALUES = [code_angular(i) for i in range(CODES)]


def decode(linear: float, angular: float) -> int | None:
    """The code a command carries, or None when it is not a benchmark-policy command."""
    if linear != 0.0 or not math.isfinite(angular):
        return None
    low, high = ANGULAR_RANGE
    action = 2.0 * (angular - low) / (high - low) - 1.0
    index = round((action + 0.9) / (1.8 / (CODES - 1)))
    if 0 <= index < CODES and abs(angular - CODE_VALUES[index]) <= CODE_TOLERANCE:
        return index
    return None


def write_cycling_policy(path: Path, phase: int = 0, name: str = "bench-cycling") -> Path:
    """Save a TorchScript policy whose angular output steps through CODES values per call.

    `phase` (the counter's start) changes the weights' checksum, so two files with other
    phases are two different valid models for the swap benchmark.
    """
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

    class CyclingPolicy(torch.nn.Module):
        def __init__(self, codes: int, start: int) -> None:
            super().__init__()
            self.codes = codes
            self.register_buffer("count", torch.tensor([start], dtype=torch.int64))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            self.count.add_(1)
            k = torch.remainder(self.count, self.codes).to(torch.float32)
            out = torch.zeros(obs.shape[0], 2, dtype=torch.float32)
            out[:, 1] = -0.9 + 1.8 * k / (self.codes - 1)
            return out

    card = PolicyCard(
        name=name,
        version=str(phase),
        created="2026-01-01T00:00:00Z",
        observation=ObservationSpec(
            scan=ScanSpec(sectors=16, field_of_view_deg=360.0, range_cap=3.5),
            goal=GoalSpec(distance_cap=5.0),
            velocity=VelocitySpec(linear_scale=0.22, angular_scale=2.75),
            previous_action=False,
        ),
        action=ActionSpec(linear=(-0.2, 0.2), angular=ANGULAR_RANGE),
    )
    save_policy(torch.jit.script(CyclingPolicy(CODES, phase)), path, card)
    return path


# -------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One received Twist: its values, code, DDS timestamps (ns) and the probe's sim time."""

    linear: float
    angular: float
    code: int | None
    source_ns: int
    received_ns: int
    sim_ns: int


def match_first(
    upstream: Sequence[Sample], downstream: Sequence[Sample]
) -> list[tuple[Sample, Sample | None]]:
    """Pair each upstream command with the first downstream message carrying its code.

    A downstream message counts when it was published at or after the upstream one and
    before the next upstream message with the same code (a cycle later); None if none.
    """
    by_code: dict[int, list[Sample]] = {}
    for sample in downstream:
        if sample.code is not None:
            by_code.setdefault(sample.code, []).append(sample)
    for samples in by_code.values():
        samples.sort(key=lambda s: s.source_ns)
    keys = {code: [s.source_ns for s in samples] for code, samples in by_code.items()}
    next_same: dict[int, int] = {}
    bounds: list[int] = [0] * len(upstream)
    for i in range(len(upstream) - 1, -1, -1):
        code = upstream[i].code
        bounds[i] = next_same.get(code, 2**63) if code is not None else 0
        if code is not None:
            next_same[code] = upstream[i].source_ns
    pairs: list[tuple[Sample, Sample | None]] = []
    for i, up in enumerate(upstream):
        if up.code is None:
            continue
        found = None
        if up.code in keys:
            j = bisect.bisect_left(keys[up.code], up.source_ns)
            if j < len(keys[up.code]) and keys[up.code][j] < bounds[i]:
                found = by_code[up.code][j]
        pairs.append((up, found))
    return pairs


def gaps_ms(samples: Sequence[Sample]) -> list[float]:
    """Intervals between consecutive publishes (source timestamps), ms."""
    stamps = sorted(s.source_ns for s in samples)
    return [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:], strict=False)]


# ------------------------------------------------------------------------------ CPU


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of process `pid` (all its threads) in seconds; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU of named processes over a window, as percent of one core."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float | None] = {}
        self._wall = 0.0

    def start(self) -> None:
        """Open the window."""
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Close the window: percent of one core per process (missing if it died)."""
        wall = time.monotonic() - self._wall
        result = {}
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self._start.get(name)
            if now is not None and then is not None and wall > 0:
                result[name] = 100.0 * (now - then) / wall
        return result


# ---------------------------------------------------------------------------- probe


class Probe:
    """A node in this process that records the command chain and pokes the stack.

    Spins only when asked (`spin_for`, `spin_until`), on one SingleThreadedExecutor.
    """

    def __init__(self, topics: Sequence[str], name: str = "stack_bench_probe") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

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
        from geometry_msgs.msg import Twist
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
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
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import String

        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        node = self.node
        if clock:
            node.create_subscription(Clock, "/clock", self._on_clock, reliable)
        node.create_subscription(LaserScan, "scan", self._on_scan, qos_profile_sensor_data)
        node.create_subscription(String, "hybrid/mode", self._on_mode, latched)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)

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


# ---------------------------------------------------------------------- scan age


def scan_ages(
    decisions: Sequence[Sample],
    clock: Sequence[tuple[int, int]],
    scans: Sequence[tuple[int, int, int]],
) -> tuple[list[float], list[float]]:
    """Estimated age of the scan each decision used: (sim ms, wall ms) per decision.

    The node does not publish it, so it is estimated from what the probe saw: the scan
    used is the last one the probe had received when the command was published, and the
    tick's time is the last /clock the probe had received then (the node's clock is the
    last /clock it received). Sim: that clock minus the scan's header stamp. Wall: the
    command's publish time minus the scan's publish time (both DDS source timestamps).
    """
    clock_times = [c[0] for c in clock]
    scan_times = [s[1] for s in scans]
    sim_ms, wall_ms = [], []
    for decision in decisions:
        i = bisect.bisect_right(scan_times, decision.source_ns) - 1
        j = bisect.bisect_right(clock_times, decision.source_ns) - 1
        if i < 0 or j < 0:
            continue
        scan_source, _, stamp = scans[i]
        sim_ms.append((clock[j][1] - stamp) / 1e6)
        wall_ms.append((decision.source_ns - scan_source) / 1e6)
    return sim_ms, wall_ms


def scan_publish_to_decision(
    decisions: Sequence[Sample], scans: Sequence[tuple[int, int, int]]
) -> list[float]:
    """Per decision: its publish minus the publish of the last scan the probe had (ms)."""
    scan_times = [s[1] for s in scans]
    ages = []
    for decision in decisions:
        i = bisect.bisect_right(scan_times, decision.source_ns) - 1
        if i >= 0:
            ages.append((decision.source_ns - scans[i][0]) / 1e6)
    return ages


# ---------------------------------------------------------------------- the floor


@dataclass
class FloorResult:
    """Samples of one floor run: the source's messages and each relay's output."""

    stages: list[list[Sample]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)


def floor_decode(linear: float, angular: float) -> int | None:
    """The code of a floor message (see floor_nodes.code_angular)."""
    from floor_nodes import CODES as FLOOR_CODES
    from floor_nodes import code_angular as floor_angular

    if linear != 0.0:
        return None
    index = round((angular + 1.35) / (2.7 / (FLOOR_CODES - 1)))
    if 0 <= index < FLOOR_CODES and abs(angular - floor_angular(index)) <= 1e-9:
        return index
    return None


def run_floor(hops: int, rate_hz: float, seconds: float, env: Mapping[str, str]) -> FloorResult:
    """Run a source and `hops` Twist relays as processes; record every stage for `seconds`.

    The probe subscribes to each stage's topic, as the stack probe does to policy/cmd_vel,
    cmd_vel_nav and cmd_vel, so the writers have the same number of readers.
    """
    from rlguard_tools.process_runner import NodeProcess, NodeSpec

    topics = [f"floor_{i}" for i in range(hops + 1)]
    log_dir = Path(tempfile.mkdtemp(prefix="stack-floor-"))
    specs = [
        NodeSpec(
            module="floor_nodes",
            name="floor_source",
            extra_args=["--role", "source", "--rate", str(rate_hz)],
            remappings={"out": topics[0]},
        )
    ] + [
        NodeSpec(
            module="floor_nodes",
            name=f"floor_relay_{i + 1}",
            extra_args=["--role", "relay"],
            remappings={"in": topics[i], "out": topics[i + 1]},
        )
        for i in range(hops)
    ]
    # Relays first, so the chain is connected before the source starts.
    processes = [NodeProcess(spec, env=env, log_dir=log_dir) for spec in specs]
    for process in processes[1:]:
        process.start()
    probe = Probe(topics, name="floor_probe")
    result = FloorResult()
    try:
        processes[0].start()
        last = probe.samples[topics[-1]]
        probe.spin_until(lambda: len(last) >= 2 * rate_hz, 60.0)
        probe.spin_for(1.0)
        probe.clear()
        meter = CpuMeter({p.spec.name or "?": p.pid for p in processes})
        meter.start()
        probe.spin_for(seconds)
        result.cpu = meter.stop()
        end_ns = time.time_ns()
        probe.spin_for(0.3)  # the chain's outputs for the last messages of the window
        probe.samples[topics[0]][:] = [s for s in probe.samples[topics[0]] if s.source_ns <= end_ns]
        for topic in topics:
            result.stages.append(
                [
                    Sample(
                        s.linear,
                        s.angular,
                        floor_decode(s.linear, s.angular),
                        s.source_ns,
                        s.received_ns,
                        s.sim_ns,
                    )
                    for s in probe.samples[topic]
                ]
            )
    finally:
        probe.close()
        for process in processes:
            process.stop(timeout=3.0)
    return result


# ------------------------------------------------------------------------ figures


def end_to_end_key(label: str, names: Sequence[str]) -> str:
    """The name of a chain's end-to-end latency figure."""
    return f"{label}: {names[0]} publish -> {names[-1]} received"


def chain_figures(
    stages: Sequence[Sequence[Sample]], label: str, names: Sequence[str]
) -> dict[str, dict[str, object]]:
    """End-to-end and per-hop latency figures of one chain (stage 0 is the origin).

    end-to-end: stage 0's publish (source timestamp) -> the last stage's arrival at the
    probe's reader (received timestamp). Hop i: stage i-1's publish -> stage i's publish.
    """
    from rlguard_tools.benchlib import summarize

    figures: dict[str, dict[str, object]] = {}
    first, last = stages[0], stages[-1]
    pairs = match_first(first, last)
    end_to_end = [(d.received_ns - u.source_ns) / 1e6 for u, d in pairs if d is not None]
    figure = summarize(end_to_end, "ms")
    lost = sum(1 for _, d in pairs if d is None)
    figure["lost"] = lost
    figures[end_to_end_key(label, names)] = figure
    figures[f"{label}: {names[0]} with no {names[-1]} (superseded)"] = {
        "value": lost,
        "unit": f"of {len(pairs)} commands",
    }
    matched = [{id(u): d for u, d in match_first(first, stage)} for stage in stages[1:]]
    for i in range(1, len(stages)):
        values = []
        for up in first:
            current = matched[i - 1].get(id(up))
            previous = up if i == 1 else matched[i - 2].get(id(up))
            if current is not None and previous is not None:
                values.append((current.source_ns - previous.source_ns) / 1e6)
        figures[f"{label}: hop {names[i - 1]} -> {names[i]} publish"] = summarize(values, "ms")
    deliveries = [(d.received_ns - d.source_ns) / 1e6 for _, d in pairs if d is not None]
    figures[f"{label}: {names[-1]} delivery to the probe"] = summarize(deliveries, "ms")
    return figures


def percent_figures(cpu: Mapping[str, float], label: str) -> dict[str, dict[str, object]]:
    """CPU per process as single-value figures."""
    return {
        f"{label}: CPU {name}": {"value": value, "unit": "% of one core"}
        for name, value in sorted(cpu.items())
    }


# ------------------------------------------------------------------------ the stack

CHAIN = ("policy/cmd_vel", "cmd_vel_nav", "cmd_vel")


@dataclass
class StackRun:
    """A started stack (node processes) and the probe that watches it."""

    runner: Any
    probe: Probe
    pids: dict[str, int]

    def stop(self) -> None:
        """Close the probe and stop every node process."""
        self.probe.close()
        self.runner.stop(timeout=3.0)


def start_stack(
    model: Path,
    parameters: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, str],
    log_dir: Path,
    runner_factory: Callable[..., Any] | None = None,
    timeout: float = 90.0,
    clock: bool = True,
) -> StackRun:
    """Start the stack on the empty world with `model`; wait until its commands flow.

    Ready means: hybrid_fallback in POLICY and cmd_vel carrying the policy's codes.
    `runner_factory(options, log_dir, env)` replaces `StackRunner` (e.g. composed nodes);
    `clock` False spares the probe the 100 Hz /clock (sim times are then not recorded).
    Raises RuntimeError (with the node logs' tails) when the stack does not get there.
    """
    from rlguard_tools.stack_runner import StackOptions, StackRunner

    options = StackOptions(world="empty", model_path=str(model), extra_parameters=parameters)
    factory = runner_factory or StackRunner
    runner = factory(options, log_dir, env).start()
    probe = Probe(CHAIN)
    probe.watch_stack(clock=clock)
    out = probe.samples["cmd_vel"]
    ready = probe.spin_until(
        lambda: probe.mode == "POLICY" and sum(1 for s in out[-20:] if s.code is not None) >= 5,
        timeout,
    )
    pids = {process_label(p): p.pid for p in runner.processes}
    run = StackRun(runner, probe, pids)
    if not ready or runner.dead():
        logs = "\n".join(f"--- {process_label(p)}\n{p.output()[-1500:]}" for p in runner.processes)
        run.stop()
        raise RuntimeError(f"stack not ready (mode {probe.mode!r}):\n{logs}")
    return run


@dataclass
class ChainMeasurement:
    """What one measurement window of the command chain recorded."""

    stages: list[list[Sample]]
    clock: list[tuple[int, int]]
    scans: list[tuple[int, int, int]]
    cpu: dict[str, float]
    diagnostics: dict[str, dict[str, str]]
    seconds: float


def measure_chain(run: StackRun, seconds: float, settle: float = 2.0) -> ChainMeasurement:
    """Record the chain and the CPU of every process for `seconds` after `settle` s."""
    probe = run.probe
    probe.spin_for(settle)
    probe.clear()
    meter = CpuMeter({**run.pids, "probe (this process)": os.getpid()})
    meter.start()
    probe.spin_for(seconds)
    cpu = meter.stop()
    end_ns = time.time_ns()
    probe.spin_for(0.3)  # the chain's outputs for the last commands of the window
    stages = [list(probe.samples[topic]) for topic in CHAIN]
    stages[0] = [s for s in stages[0] if s.source_ns <= end_ns]
    return ChainMeasurement(
        stages=stages,
        clock=list(probe.clock),
        scans=list(probe.scans),
        cpu=cpu,
        diagnostics={k: dict(v) for k, v in probe.diagnostics.items()},
        seconds=seconds,
    )


def pass_through_fraction(samples: Sequence[Sample]) -> float:
    """Fraction of cmd_vel messages that carry a policy code (unchanged by the filter)."""
    return sum(1 for s in samples if s.code is not None) / len(samples) if samples else math.nan


def process_label(process: Any) -> str:
    """A process's node name, or the '+'-joined node names of a composed process."""
    spec = process.spec
    if spec.name:
        return spec.name
    args = list(spec.extra_args)
    if "--nodes" in args:
        return "+".join(args[args.index("--nodes") + 1].split(","))
    return spec.module.rsplit(".", 1)[-1]


class ComposedRunner:
    """Like `StackRunner`, but the stack nodes run in `groups` of nodes per process.

    Each group is one `rlguard_tools.composed_stack` process with the given executor; the
    simulator stays its own process. Parameters are exactly those `stack_node_specs` gives.
    """

    def __init__(
        self,
        options: Any,
        log_dir: Path,
        env: Mapping[str, str],
        groups: Sequence[Sequence[str]],
        executor: str = "single",
        threads: int = 2,
    ) -> None:
        from rlguard_tools.composed_stack import composed_parameters_file
        from rlguard_tools.process_runner import NodeProcess, NodeSpec
        from rlguard_tools.stack_runner import stack_node_specs

        specs = {spec.name: spec for spec in stack_node_specs(options)}
        self.processes = [NodeProcess(specs["mujoco_sim"], env=env, log_dir=log_dir)]
        for index, group in enumerate(groups):
            params_files = [f for name in group for f in specs[name].params_files]
            overrides = composed_parameters_file(
                {name: specs[name].parameters for name in group},
                Path(log_dir) / f"group{index}-overrides.yaml",
            )
            spec = NodeSpec(
                module="rlguard_tools.composed_stack",
                params_files=[*params_files, overrides],
                extra_args=[
                    "--nodes",
                    ",".join(group),
                    "--executor",
                    executor,
                    "--threads",
                    str(threads),
                ],
            )
            self.processes.append(
                NodeProcess(spec, env=env, log_dir=Path(log_dir) / f"group{index}")
            )

    def start(self) -> ComposedRunner:
        """Start every process."""
        for process in self.processes:
            process.start()
        return self

    def dead(self) -> list[Any]:
        """Processes that have exited."""
        return [p for p in self.processes if not p.is_running()]

    def stop(self, timeout: float = 5.0) -> dict[str, int | None]:
        """Stop all processes, the simulator last."""
        return {process_label(p): p.stop(timeout) for p in reversed(self.processes)}


def composed_factory(
    groups: Sequence[Sequence[str]], executor: str, threads: int = 2
) -> Callable[..., ComposedRunner]:
    """A `runner_factory` for `start_stack` that composes `groups` with `executor`."""

    def factory(options: Any, log_dir: Path, env: Mapping[str, str]) -> ComposedRunner:
        return ComposedRunner(options, log_dir, env, groups, executor, threads)

    return factory


def stack_latency_figures(
    measurement: ChainMeasurement, label: str, floor_p99: object
) -> dict[str, dict[str, object]]:
    """Chain latency, ratio to the floor's p99, pass-through, achieved rate and CPU figures."""
    figures = chain_figures(measurement.stages, label, CHAIN)
    stack_p99 = figures[end_to_end_key(label, CHAIN)].get("p99")
    if isinstance(stack_p99, float) and isinstance(floor_p99, float):
        figures[f"{label}: ratio p99 stack / floor"] = {
            "value": stack_p99 / floor_p99,
            "unit": "x (target <= 1.25)",
        }
    figures[f"{label}: cmd_vel carrying the code"] = {
        "value": 100.0 * pass_through_fraction(measurement.stages[2]),
        "unit": "% of cmd_vel messages",
    }
    figures[f"{label}: policy/cmd_vel rate achieved"] = {
        "value": len(measurement.stages[0]) / measurement.seconds,
        "unit": "Hz",
    }
    figures.update(percent_figures(measurement.cpu, label))
    nodes = [v for k, v in measurement.cpu.items() if k not in ("mujoco_sim",) and "probe" not in k]
    figures[f"{label}: CPU of the stack nodes together"] = {
        "value": sum(nodes),
        "unit": "% of one core",
    }
    return figures


def _mean_cpu(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    names = {name for part in parts for name in part}
    return {
        name: sum(p[name] for p in parts if name in p) / sum(1 for p in parts if name in p)
        for name in names
    }


def combine_measurements(parts: Sequence[ChainMeasurement]) -> ChainMeasurement:
    """Pool measurement windows of one configuration (samples joined, CPU averaged)."""
    return ChainMeasurement(
        stages=[[s for part in parts for s in part.stages[i]] for i in range(len(CHAIN))],
        clock=[c for part in parts for c in part.clock],
        scans=[s for part in parts for s in part.scans],
        cpu=_mean_cpu([part.cpu for part in parts]),
        diagnostics=parts[-1].diagnostics if parts else {},
        seconds=sum(part.seconds for part in parts),
    )


def combine_floors(parts: Sequence[FloorResult]) -> FloorResult:
    """Pool floor runs (samples joined stage by stage, CPU averaged)."""
    stages = [[s for part in parts for s in part.stages[i]] for i in range(len(parts[0].stages))]
    return FloorResult(stages=stages, cpu=_mean_cpu([part.cpu for part in parts]))


def load_figure(label: str) -> dict[str, dict[str, object]]:
    """The machine's 1-minute load average now (other jobs share the cores), as a figure."""
    return {
        f"machine load average (1 min), {label}": {
            "value": os.getloadavg()[0],
            "unit": f"runnable tasks on {os.cpu_count()} cores",
        }
    }
