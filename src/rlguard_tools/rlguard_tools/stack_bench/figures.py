"""Figures of the stack benchmarks: chain latencies, per-hop, pass-through, CPU, load."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from rlguard_tools.benchlib import summarize
from rlguard_tools.stack_bench.samples import Sample, match_first, pass_through_fraction
from rlguard_tools.stack_bench.stack import CHAIN, ChainMeasurement


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


def load_figure(label: str) -> dict[str, dict[str, object]]:
    """The machine's 1-minute load average now (other jobs share the cores), as a figure."""
    return {
        f"machine load average (1 min), {label}": {
            "value": os.getloadavg()[0],
            "unit": f"runnable tasks on {os.cpu_count()} cores",
        }
    }
