"""Real-time pacing of the simulator node (no rclpy): how far sim time may run on each tick.

Sim time follows wall time at `real_time_factor` at most (`RealTimePacing`), and in
lockstep with the velocity commands (`CommandPacer`): never more than the lead past the
last command, unless none has come for `patience` wall seconds. A tick steps in slices
(`TickPlan`) and gives the executor back after a wall budget, so commands keep arriving;
a simulation that falls behind does not catch up, it runs on at the ceiling from where it
is. Times are explicit arguments: `wall_now` is monotonic wall time (s), `sim_time` sim s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WALL_TICK = 0.01  # s of wall time between stepping ticks
MAX_TICK_WALL_BUDGET = 0.05  # s of wall time one tick may spend stepping before yielding
STEP_SLICE = 0.1  # sim s stepped between two looks at the wall budget
MAX_LAG = 0.2  # sim s behind the real-time target after which pacing starts over from now
RATE_WINDOW = 1.0  # wall s over which the achieved real-time factor is measured
LAGGING_RATIO = 0.8  # an achieved factor below this share of the requested one is lagging
# Diagnostic states of the pacing.
PACING_OFF, PACING_FREE, PACING_LOCKSTEP = "off", "free (no cmd_vel)", "lockstep"


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


@dataclass(frozen=True)
class TickPlan:
    """One stepping tick: the real-time target, the sim time allowed now, the wall deadline."""

    target: float  # sim time real time asks for (s)
    limit: float  # sim time the commands allow (s), at most `target`
    deadline: float  # wall time after which the tick yields (s)

    def next_slice(self, sim_time: float, wall_now: float) -> float | None:
        """The sim time to step to next, or None when the tick is done.

        Done when the limit is reached or the wall budget is spent: a tick that cannot
        keep up gives the executor back instead of chasing an ever-growing target.
        """
        if sim_time < self.limit - 1e-9 and wall_now < self.deadline:
            return min(self.limit, sim_time + STEP_SLICE)
        return None

    @property
    def held_back(self) -> bool:
        """True when the commands, not real time, set the limit (lockstep holds the sim)."""
        return self.limit < self.target - 1e-9


class RealTimePacing:
    """Sim time against wall time: the real-time target, holds for commands, achieved rate.

    `start_tick` books the wall time a hold lasted and plans the tick; after stepping,
    `end_tick` notes a new hold (the limit was reached short of the target; a command
    resumes it) and starts over from now when the simulation is more than `MAX_LAG`
    behind. `measure` keeps the achieved real-time factor and the share of wall time
    spent waiting for commands over `RATE_WINDOW`.
    """

    def __init__(self, real_time_factor: float, commands: CommandPacer, wall_now: float) -> None:
        self.real_time_factor = real_time_factor
        self.commands = commands
        self.held_since: float | None = None  # wall time the simulation began to wait
        self.achieved_rtf = 0.0
        self.waiting_fraction = 0.0
        self._wall_start, self._sim_start = wall_now, 0.0
        self._window = (wall_now, 0.0, 0.0)  # (wall, sim, waited wall) at the window start

    def restart(self, wall_now: float) -> None:
        """A new episode starts at sim time 0: forget the commands and any hold."""
        self.commands.reset()
        self.held_since = None
        self.rebase(wall_now, 0.0)

    def rebase(self, wall_now: float, sim_time: float) -> None:
        """Run at the real-time factor from (`wall_now`, `sim_time`) on, without catching up."""
        self._wall_start, self._sim_start = wall_now, sim_time

    def set_real_time_factor(self, factor: float, sim_time: float, wall_now: float) -> None:
        """A new real-time factor, counted from now."""
        self.real_time_factor = factor
        self.rebase(wall_now, sim_time)

    @property
    def held(self) -> bool:
        """True while the simulation waits for a command (a command should step it at once)."""
        return self.held_since is not None

    def target(self, wall_now: float) -> float:
        """The sim time real time asks for at `wall_now`."""
        return self._sim_start + self.real_time_factor * (wall_now - self._wall_start)

    def start_tick(self, wall_now: float) -> TickPlan:
        """Plan a tick at `wall_now`; ends a hold and books how long it lasted."""
        if self.held_since is not None:
            self.commands.waited(wall_now - self.held_since)
            self.held_since = None
        target = self.target(wall_now)
        limit = self.commands.limit(target, wall_now)
        return TickPlan(target=target, limit=limit, deadline=wall_now + MAX_TICK_WALL_BUDGET)

    def end_tick(self, plan: TickPlan, sim_time: float, wall_now: float) -> None:
        """After stepping to `sim_time`: hold for a command, or start over when far behind."""
        if plan.held_back and sim_time >= plan.limit - 1e-9:
            self.held_since = wall_now  # waits for a command
        if sim_time < plan.target - MAX_LAG:
            # Behind (held, or too slow): from here on run at the ceiling again.
            self.rebase(wall_now, sim_time)

    def measure(self, sim_time: float, wall_now: float) -> None:
        """Update the achieved real-time factor and waiting share once a window is over."""
        wall_then, sim_then, waited_then = self._window
        span = wall_now - wall_then
        if span >= RATE_WINDOW:
            waited = self.commands.waited_wall
            self.achieved_rtf = (sim_time - sim_then) / span
            self.waiting_fraction = min(1.0, (waited - waited_then) / span)
            self._window = (wall_now, sim_time, waited)

    def mode(self, wall_now: float) -> str:
        """`PACING_OFF`, `PACING_FREE` (no recent command) or `PACING_LOCKSTEP`."""
        if not self.commands.enabled:
            return PACING_OFF
        if self.commands.free(wall_now):
            return PACING_FREE
        return PACING_LOCKSTEP

    @property
    def lagging(self) -> bool:
        """True when the achieved factor is well below the requested one."""
        return self.achieved_rtf < LAGGING_RATIO * self.real_time_factor

    def status_message(self) -> str:
        """One line on how the simulation keeps up with `real_time_factor`."""
        if not self.lagging:
            return "running"
        if self.waiting_fraction >= 0.5:
            return "slower than real_time_factor: waiting for cmd_vel (lockstep)"
        return "slower than real_time_factor"
