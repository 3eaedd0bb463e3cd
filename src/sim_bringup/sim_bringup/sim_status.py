"""What the simulator node reports besides sensors (no rclpy): collision counts, diagnostics.

`CollisionReport` says when the running collision counts go out (on every change, and
every `every`-th odometry event for late joiners); `simulator_status` is the content of
the node's diagnostic status: a warning flag, a message and the key/value pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_bringup.goal_schedule import GoalSchedule
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_pacing import RealTimePacing
from sim_bringup.sim_runner import CommandLatch

# Odometry events between two re-sends of unchanged collision counts (5 Hz at 50 Hz odom).
COUNTS_EVERY = 10


class CollisionReport:
    """When to publish the collision counts: on a change and every `every`-th event."""

    def __init__(self, every: int = COUNTS_EVERY) -> None:
        self.every = every
        self.published: tuple[int, int] = (-1, -1)
        self.events = 0

    def due(self, counts: tuple[int, int]) -> bool:
        """Count an odometry event; True when `counts` (all, at fault) should go out now."""
        self.events += 1
        if counts != self.published or self.events % self.every == 0:
            self.published = counts
            return True
        return False


@dataclass(frozen=True)
class SimulatorStatus:
    """The node's diagnostic status: WARN when `warn`, a message, key/value pairs."""

    warn: bool
    message: str
    values: dict[str, str]


def simulator_status(
    sim: Simulator,
    pacing: RealTimePacing,
    goals: GoalSchedule,
    latch: CommandLatch,
    clock_offset: float,
    wall_now: float,
) -> SimulatorStatus:
    """The simulator's state for /diagnostics: time, pacing, collisions, goals, commands."""
    commands = pacing.commands
    goal = goals.current
    values = {
        "sim_time": f"{sim.time:.3f}",
        "clock_offset": f"{clock_offset:.3f}",
        "real_time_factor_achieved": f"{pacing.achieved_rtf:.2f}",
        "pacing": pacing.mode(wall_now),
        "max_command_lead": f"{commands.lead:.3f}",
        "waiting_for_cmd_vel_fraction": f"{pacing.waiting_fraction:.2f}",
        "waiting_for_cmd_vel_wall_s": f"{commands.waited_wall:.2f}",
        "pacing_releases": str(commands.releases),
        "world": sim.world.name,
        "collisions": str(sim.collision_count),
        "at_fault_collisions": str(sim.at_fault_collision_count),
        "in_collision": str(sim.in_collision),
        "goals_reached": str(goals.reached),
        "current_goal": "none" if goal is None else f"{goal[0]:.2f},{goal[1]:.2f}",
        "cmd_vel_timed_out": str(latch.timed_out),
        "cmd_vel_timeouts": str(latch.timeouts),
        "cmd_vel_non_finite": str(latch.non_finite_count),
    }
    return SimulatorStatus(warn=pacing.lagging, message=pacing.status_message(), values=values)
