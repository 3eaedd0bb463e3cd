"""Rolling statistics of the control loop (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from rl_policy_node.tick_stats import RollingWindow, TickMonitor


def test_rolling_window_summarises_the_last_samples():
    window = RollingWindow(capacity=4)
    assert window.summary() == {}
    for value in range(1, 7):
        window.add(float(value))
    held = np.array([3.0, 4.0, 5.0, 6.0])
    assert sorted(window.values()) == held.tolist() and window.total == 6
    summary = window.summary((50.0, 99.0))
    assert summary["mean"] == held.mean() and summary["max"] == 6.0
    assert summary["p50"] == np.percentile(held, 50) and summary["p99"] == np.percentile(held, 99)


def test_tick_monitor_counts_late_ticks_and_long_work():
    monitor = TickMonitor(0.05)
    ms = 1_000_000
    start = 0
    for _ in range(5):
        monitor.record(start, 1 * ms)
        start += 50 * ms
    assert monitor.deadline_misses == 0 and monitor.jitter_ms() == pytest.approx(0.0)
    start += 50 * ms  # one slot skipped
    monitor.record(start, 1 * ms)
    assert monitor.deadline_misses == 1
    monitor.record(start + 50 * ms, 60 * ms)  # work longer than the period
    assert monitor.deadline_misses == 2
    assert monitor.max_period_error_ms() == pytest.approx(50.0)
    assert monitor.jitter_ms() > 0 and monitor.ticks == 7
