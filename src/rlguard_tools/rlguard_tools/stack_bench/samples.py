"""Received commands as samples, and the statistics over them: matching, gaps, scan ages."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


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


def pass_through_fraction(samples: Sequence[Sample]) -> float:
    """Fraction of cmd_vel messages that carry a policy code (unchanged by the filter)."""
    return sum(1 for s in samples if s.code is not None) / len(samples) if samples else math.nan
