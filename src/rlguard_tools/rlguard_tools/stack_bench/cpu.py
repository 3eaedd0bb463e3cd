"""CPU use of processes over a measurement window (from /proc), and its averages."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


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


def mean_cpu(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """CPU per process averaged over the windows that measured that process."""
    names = {name for part in parts for name in part}
    return {
        name: sum(p[name] for p in parts if name in p) / sum(1 for p in parts if name in p)
        for name in names
    }
