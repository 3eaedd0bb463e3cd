"""Rolling statistics of the control loop (no ROS): inference times, tick period, misses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RollingWindow:
    """The last `capacity` samples in a preallocated ring (no allocation per sample)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._values = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._filled = 0
        self.total = 0

    def add(self, value: float) -> None:
        """Record one sample."""
        self._values[self._next] = value
        self._next = (self._next + 1) % self._values.size
        self._filled = min(self._filled + 1, self._values.size)
        self.total += 1

    def __len__(self) -> int:
        return self._filled

    def values(self) -> np.ndarray:
        """A copy of the samples held (oldest order not kept)."""
        return self._values[: self._filled].copy()

    def summary(self, percentiles: Sequence[float] = (99.0,)) -> dict[str, float]:
        """mean, max and the requested percentiles (``p99``...) of the held samples."""
        data = self.values()
        if data.size == 0:
            return {}
        result = {"mean": float(data.mean()), "max": float(data.max())}
        for q in percentiles:
            result[f"p{q:g}"] = float(np.percentile(data, q))
        return result


class TickMonitor:
    """Tick period, jitter and deadline misses of a periodic loop.

    A deadline miss is a tick that started more than half a period late (a skipped
    slot) or whose own work took longer than one period.
    """

    def __init__(self, period_s: float, capacity: int = 1024) -> None:
        self.period_ns = int(period_s * 1e9)
        self.periods_ms = RollingWindow(capacity)
        self.compute_ms = RollingWindow(capacity)
        self.deadline_misses = 0
        self.ticks = 0
        self._last_start_ns: int | None = None

    def record(self, start_ns: int, compute_ns: int) -> None:
        """Record one tick that started at `start_ns` and took `compute_ns` of work."""
        self.ticks += 1
        if self._last_start_ns is not None:
            gap = start_ns - self._last_start_ns
            self.periods_ms.add(gap / 1e6)
            if gap > 1.5 * self.period_ns:
                self.deadline_misses += 1
        if compute_ns > self.period_ns:
            self.deadline_misses += 1
        self._last_start_ns = start_ns
        self.compute_ms.add(compute_ns / 1e6)

    def jitter_ms(self) -> float | None:
        """Standard deviation of the tick period, ms (None before two periods)."""
        if len(self.periods_ms) < 2:
            return None
        return float(self.periods_ms.values().std())

    def max_period_error_ms(self) -> float | None:
        """Largest |period - nominal|, ms."""
        if len(self.periods_ms) == 0:
            return None
        return float(np.max(np.abs(self.periods_ms.values() - self.period_ns / 1e6)))
