"""Stepping logic of the simulator node (no rclpy): publish times and the base's commands.

`SimStepper` advances a `Simulator` to a target sim time and says when an odometry
message, a scan or a clock tick is due; `CommandLatch` is the base driver's command
watchdog. How far to step (real-time pacing and lockstep with the commands) lives in
`sim_pacing`, which goal to hand out in `goal_schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from sim_bringup.sim_core import PHYSICS_TIMESTEP, Simulator

EVENT_CLOCK, EVENT_ODOM, EVENT_SCAN = "clock", "odom", "scan"


class PeriodicSchedule:
    """Due times k * period (k = 1, 2, ...) of a periodic output in sim time."""

    def __init__(self, rate_hz: float, now: float = 0.0) -> None:
        # Periods snap to whole physics steps so every due time is reachable exactly.
        steps = max(1, round(1.0 / (rate_hz * PHYSICS_TIMESTEP)))
        self.period = steps * PHYSICS_TIMESTEP
        self.next_time = (math.floor(now / self.period + 1e-9) + 1) * self.period

    def due(self, now: float) -> bool:
        """True (and the next due time advances) when `now` has reached the due time."""
        if now + 1e-9 >= self.next_time:
            while self.next_time <= now + 1e-9:
                self.next_time += self.period
            return True
        return False


@dataclass
class CommandLatch:
    """The last velocity command and when it arrived; stale or non-finite means stop."""

    timeout: float
    v: float = 0.0
    w: float = 0.0
    stamp: float = -math.inf
    non_finite_count: int = 0
    timeouts: int = 0
    _timed_out: bool = True

    def set(self, v: float, w: float, now: float) -> bool:
        """Store a command received at sim time `now`; False if it was not finite (stop)."""
        finite = math.isfinite(v) and math.isfinite(w)
        if not finite:
            self.non_finite_count += 1
            v, w = 0.0, 0.0
        self.v, self.w, self.stamp = v, w, now
        self._timed_out = False
        return finite

    def get(self, now: float) -> tuple[float, float]:
        """The command to apply at `now`: zero once it is older than `timeout`."""
        if now - self.stamp > self.timeout:
            if not self._timed_out:
                self._timed_out = True
                self.timeouts += 1
            return (0.0, 0.0)
        return (self.v, self.w)

    @property
    def timed_out(self) -> bool:
        """True while the wheels are stopped for lack of a fresh command."""
        return self._timed_out


class SimStepper:
    """Advances a simulator in sim time and reports which outputs fall due on the way."""

    def __init__(
        self, sim: Simulator, odom_rate_hz: float, scan_rate_hz: float, clock_rate_hz: float
    ) -> None:
        self.sim = sim
        now = sim.time
        self.schedules = {
            EVENT_CLOCK: PeriodicSchedule(clock_rate_hz, now),
            EVENT_ODOM: PeriodicSchedule(odom_rate_hz, now),
            EVENT_SCAN: PeriodicSchedule(scan_rate_hz, now),
        }

    def advance_to(self, target: float, latch: CommandLatch) -> Iterator[str]:
        """Step to `target` (s); yields each due event right after the state reaches it.

        The command is re-read from `latch` at every stop, so a command that goes stale
        mid-way stops the wheels at the right sim time.
        """
        sim = self.sim
        while sim.time < target - 1e-9:
            next_due = min(s.next_time for s in self.schedules.values())
            stop = min(next_due, target)
            v, w = latch.get(sim.time)
            sim.step(v, w, stop - sim.time)
            for name, schedule in self.schedules.items():
                if schedule.due(sim.time):
                    yield name
