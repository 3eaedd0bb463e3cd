"""Scheduling logic of the simulator node (no rclpy): stepping, publish times, commands, goals.

`SimStepper` advances a `Simulator` to a target sim time and says when an odometry
message, a scan or a clock tick is due; `CommandLatch` is the base driver's command
watchdog; `CommandPacer` keeps sim time from running ahead of the commands (lockstep
with the stack, so sim-time results do not depend on CPU load); `GoalSequencer` hands
out the world's goals one after the other, and `world_point_in_odom` expresses a world
goal in the drifting odometry frame.
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


class CommandPacer:
    """How far sim time may advance: in lockstep with the velocity commands, or freely.

    Once a command has arrived, sim time may run at most `lead` s past the sim time at
    which the last command was received: a stack that falls behind (a loaded CPU) slows
    the simulation down instead of letting the robot drive on an old command, so results
    in sim time do not depend on load. If no command arrives for `patience` s of wall
    time the pacer lets go (the controller is dead or stopped): the simulation runs freely
    and the base's command timeout stops the robot in sim time. The next command resumes
    lockstep. `lead` 0 disables pacing. The lead must be shorter than the base's command
    timeout, so that a stalled stack is waited for before its last command runs out.
    """

    def __init__(self, lead: float, patience: float) -> None:
        if not (math.isfinite(lead) and lead >= 0.0):
            raise ValueError(f"lead must be a finite number >= 0, got {lead!r}")
        if not (math.isfinite(patience) and patience > 0.0):
            raise ValueError(f"patience must be a finite number > 0, got {patience!r}")
        self.lead = lead
        self.patience = patience
        self.command_sim_time = -math.inf
        self.command_wall_time = -math.inf
        self.waited_wall = 0.0  # wall seconds the simulation was held for a command
        self.releases = 0  # times the pacer let go for lack of commands
        self._was_free = True

    @property
    def enabled(self) -> bool:
        """False when `lead` is 0 (the simulation runs at its real-time factor)."""
        return self.lead > 0.0

    def reset(self) -> None:
        """Forget the commands (a new episode starts at sim time 0)."""
        self.command_sim_time = -math.inf
        self.command_wall_time = -math.inf
        self._was_free = True

    def command(self, sim_time: float, wall_time: float) -> None:
        """A command arrived at `sim_time` (sim s) and `wall_time` (monotonic wall s)."""
        self.command_sim_time = sim_time
        self.command_wall_time = wall_time

    def free(self, wall_now: float) -> bool:
        """True while the simulation runs freely: disabled, no command yet, or none lately."""
        if not self.enabled or self.command_wall_time == -math.inf:
            return True
        return wall_now - self.command_wall_time > self.patience

    def limit(self, target: float, wall_now: float) -> float:
        """The sim time the simulation may advance to now, given its real-time `target`.

        Counts a release each time the pacer lets go after having been in lockstep.
        """
        free = self.free(wall_now)
        if free and not self._was_free:
            self.releases += 1
        self._was_free = free
        if free:
            return target
        return min(target, self.command_sim_time + self.lead)

    def waited(self, wall_seconds: float) -> None:
        """Book `wall_seconds` during which the simulation was held for a command."""
        if wall_seconds > 0.0:
            self.waited_wall += wall_seconds


def world_point_in_odom(
    point: tuple[float, float],
    true_pose: tuple[float, float, float],
    odom_pose: tuple[float, float, float],
) -> tuple[float, float]:
    """A world-frame point in the odom frame, given the base's pose in both frames.

    The simulator knows both poses exactly, so it can do what localization does for a
    real robot: hand out a goal given in the world (map) in the frame the stack drives in.
    """
    tx, ty, tyaw = true_pose
    ox, oy, oyaw = odom_pose
    dx, dy = point[0] - tx, point[1] - ty
    # The point in the base frame, then from the base's odometry pose into odom.
    bx = math.cos(tyaw) * dx + math.sin(tyaw) * dy
    by = -math.sin(tyaw) * dx + math.cos(tyaw) * dy
    return (
        ox + math.cos(oyaw) * bx - math.sin(oyaw) * by,
        oy + math.sin(oyaw) * bx + math.cos(oyaw) * by,
    )


def goal_in_odom(
    issued: tuple[float, float] | None, current: tuple[float, float], drift: float
) -> tuple[float, float]:
    """The odom-frame coordinates to send for a goal.

    The goal keeps the coordinates it was issued with (re-sends are the same goal to the
    stack), until odometry has drifted more than `drift` from where the goal really is
    (`current`, from ground truth): then, like a localization correction, the corrected
    coordinates go out. Without it a leg that ends inside the stack's own tolerance in odom
    but outside the world's on the ground would never end.
    """
    if issued is None or math.dist(issued, current) > drift:
        return current
    return issued


class GoalSequencer:
    """The world's goals in order: the next one becomes current when the robot reaches it."""

    def __init__(
        self, goals: tuple[tuple[float, float], ...], tolerance: float, loop: bool = False
    ) -> None:
        self.goals = goals
        self.tolerance = tolerance
        self.loop = loop
        self.index = 0
        self.reached = 0

    @property
    def current(self) -> tuple[float, float] | None:
        """The goal to drive to, or None when all are reached."""
        return self.goals[self.index] if self.index < len(self.goals) else None

    def update(self, x: float, y: float) -> tuple[float, float] | None:
        """Advance when (x, y) is within tolerance; returns the new goal if it changed."""
        goal = self.current
        if goal is None or math.hypot(goal[0] - x, goal[1] - y) > self.tolerance:
            return None
        self.reached += 1
        self.index += 1
        if self.index >= len(self.goals) and self.loop:
            self.index = 0
        return self.current


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
