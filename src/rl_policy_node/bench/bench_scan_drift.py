"""Benchmark the lidar drift detector per scan: statistics, window update, judgement.

The policy node runs it on every scan (10-20 Hz). Scans are 360-beam scans of the default
robot in the warehouse world (embedded simulator, the profile's noise and dropout),
recorded first; the detector uses the default settings (5 s window) and a calibration
baseline of 100 of them, laid out as the default training card (36 sectors, 360 deg).
Figures, per scan, in this process pinned to one core:

- statistics_add: `ScanStatistics.add` (per-sector sums of one scan);
- detector_add: `DriftDetector.add` (the same, plus the sliding window);
- detector_update: `DriftDetector.update` = add + judging the window against the
  baseline, what the node calls per scan (judging alone: update - add);
- detector_report_unchanged: `DriftDetector.report` again on an unchanged window (a
  diagnostics call between scans: the last judgement is reused).

Run: python src/rl_policy_node/bench/bench_scan_drift.py --out bench/results
"""

from __future__ import annotations

import os
import time

from rl_policy_node.policy_card import ScanSpec
from rl_policy_node.scan_drift import DriftDetector, DriftSettings, ScanStatistics
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from rlguard_tools import benchlib
from sim_bringup.sim_core import Simulator

SPEC = ScanSpec(sectors=36, field_of_view_deg=360.0, range_cap=3.5)
RECORDED = 200
CALLS = 5000
ROUNDS = 3
SCAN_PERIOD = 0.1  # s between scans of the default 10 Hz lidar


def _record_scans() -> list:
    sim = Simulator(load_robot_profile("default"), load_world("warehouse"), seed=1)
    scans = []
    for _ in range(RECORDED):
        sim.step(0.1, 0.3, SCAN_PERIOD)
        scans.append(sim.scan())
    return scans


def _per_call_us(call, count: int) -> float:
    started = time.perf_counter()
    for k in range(count):
        call(k)
    return (time.perf_counter() - started) / count * 1e6


def _round(baseline: ScanStatistics, scans: list) -> dict[str, float]:
    """One round of every figure, microseconds per call."""
    stats = ScanStatistics.for_scan_spec(SPEC)
    figures = {"statistics_add": _per_call_us(lambda k: stats.add(scans[k % RECORDED]), CALLS)}
    detector = DriftDetector(baseline, DriftSettings())
    figures["detector_add"] = _per_call_us(
        lambda k: detector.add(scans[k % RECORDED], k * SCAN_PERIOD), CALLS
    )
    figures["detector_report_unchanged"] = _per_call_us(lambda k: detector.report(), CALLS)
    fresh = DriftDetector(baseline, DriftSettings())
    figures["detector_update"] = _per_call_us(
        lambda k: fresh.update(scans[k % RECORDED], k * SCAN_PERIOD), CALLS
    )
    return figures


def main() -> None:
    """Run the benchmark and write the results."""
    args = benchlib.bench_arguments(__doc__.splitlines()[0])
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})
    scans = _record_scans()
    baseline = ScanStatistics.for_scan_spec(SPEC)
    for scan in scans[:100]:
        baseline.add(scan)
    samples: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for name, value in _round(baseline, scans).items():
            samples.setdefault(name, []).append(value)
    figures: dict = {name: benchlib.summarize(values, "us") for name, values in samples.items()}
    figures["beams"] = {"value": int(scans[0].ranges.size)}
    figures["sectors"] = {"value": SPEC.sectors}
    figures["pinned_core"] = {"value": core}
    figures["load_average_1min"] = {"value": os.getloadavg()[0], "unit": "runnable"}
    benchlib.write_results("scan_drift", figures, args.out)


if __name__ == "__main__":
    main()
