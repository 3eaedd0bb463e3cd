"""The latency floor: a source and bare Twist relays as processes, recorded like the stack."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlguard_tools.stack_bench.cpu import CpuMeter, mean_cpu
from rlguard_tools.stack_bench.probe import Probe
from rlguard_tools.stack_bench.samples import Sample

FLOOR_NODES_MODULE = "rlguard_tools.stack_bench.floor_nodes"  # the source and relay processes


@dataclass
class FloorResult:
    """Samples of one floor run: the source's messages and each relay's output."""

    stages: list[list[Sample]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)


def floor_decode(linear: float, angular: float) -> int | None:
    """The code of a floor message (see floor_nodes.code_angular)."""
    from rlguard_tools.stack_bench.floor_nodes import CODES as FLOOR_CODES
    from rlguard_tools.stack_bench.floor_nodes import code_angular as floor_angular

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
            module=FLOOR_NODES_MODULE,
            name="floor_source",
            extra_args=["--role", "source", "--rate", str(rate_hz)],
            remappings={"out": topics[0]},
        )
    ] + [
        NodeSpec(
            module=FLOOR_NODES_MODULE,
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


def combine_floors(parts: Sequence[FloorResult]) -> FloorResult:
    """Pool floor runs (samples joined stage by stage, CPU averaged)."""
    stages = [[s for part in parts for s in part.stages[i]] for i in range(len(parts[0].stages))]
    return FloorResult(stages=stages, cpu=mean_cpu([part.cpu for part in parts]))
