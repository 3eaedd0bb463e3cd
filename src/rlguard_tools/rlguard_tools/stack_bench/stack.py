"""The stack under measurement: started as processes (or composed), watched, measured."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlguard_common.topics import CMD_VEL, NAV_CMD_VEL, POLICY_CMD_VEL
from rlguard_tools.stack_bench.cpu import CpuMeter, mean_cpu
from rlguard_tools.stack_bench.probe import Probe
from rlguard_tools.stack_bench.samples import Sample

# The command chain the probe records: policy output, arbiter output, safety output.
CHAIN = (POLICY_CMD_VEL, NAV_CMD_VEL, CMD_VEL)


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
    out = probe.samples[CMD_VEL]
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


def combine_measurements(parts: Sequence[ChainMeasurement]) -> ChainMeasurement:
    """Pool measurement windows of one configuration (samples joined, CPU averaged)."""
    return ChainMeasurement(
        stages=[[s for part in parts for s in part.stages[i]] for i in range(len(CHAIN))],
        clock=[c for part in parts for c in part.clock],
        scans=[s for part in parts for s in part.scans],
        cpu=mean_cpu([part.cpu for part in parts]),
        diagnostics=parts[-1].diagnostics if parts else {},
        seconds=sum(part.seconds for part in parts),
    )
