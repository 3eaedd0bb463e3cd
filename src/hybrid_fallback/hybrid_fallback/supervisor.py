"""The hybrid fallback's supervisor: latched inputs, fallback health, the command (no rclpy).

The node hands every input over as plain numbers with the time `now` it arrived
(`receive_*`); the supervisor keeps the latest valid one of each, counts what it drops,
and on `step(now)` judges the fallback's health, measures the distance to the goal, caps
input times when the clock went back and updates the `Arbiter`. `command(decision, now)`
then picks the command of the decision's source: the latest policy or teleop command, the
DWA fallback's, or zero.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np

from hybrid_fallback.arbiter import Arbiter, ArbiterInputs, CommandSource, Decision
from hybrid_fallback.dwa import DwaPlanner, ObservedSector
from hybrid_fallback.hybrid_config import HybridConfig, fallback_controller
from hybrid_fallback.mover_tracker import MoverTracker
from hybrid_fallback.nav_grid import NavigationGrid
from rlguard_common import topics
from rlguard_common.geometry import yaw_from_quaternion
from rlguard_common.scan_validity import REASONS as SCAN_REASONS
from safety_controller.scan_geometry import ScanPoints, scan_to_points

Velocity = tuple[float, float]  # (linear m/s, angular rad/s)


class GoalUpdate(StrEnum):
    """What a received goal did."""

    DROPPED = "dropped"  # wrong frame or not finite: ignored
    REPEATED = "repeated"  # the current goal sent again (for late joiners): handed on, no change
    MOVED = "moved"  # the current goal's coordinates corrected (same goal id): handed on
    NEW = "new"  # a new goal (new goal id)


# A goal closer than this to the current one is the same goal with corrected coordinates
# (a localization update; the simulator re-expresses its goal in the drifting odom frame),
# not a new task: the policy's failures for it keep counting, so a policy that failed it
# is not retried on every correction.
GOAL_CORRECTION_DISTANCE = 0.3  # m


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


class HybridSupervisor:
    """Latest inputs of the hybrid fallback, the arbiter over them and the command it picks.

    `perf_counter` times the DWA for diagnostics (a wall clock; injectable for tests).
    """

    def __init__(
        self,
        config: HybridConfig,
        now: float,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.arbiter = Arbiter(config.arbiter, now=now)
        self.controller = fallback_controller(config)
        self._perf_counter = perf_counter
        self.policy_cmd: Velocity | None = None
        self.policy_cmd_time: float | None = None
        self.policy_active = False
        self.teleop_cmd: Velocity | None = None
        self.teleop_time: float | None = None
        self.goal: tuple[float, float] | None = None
        self.goal_id: int | None = None
        self.scan: ScanPoints | None = None
        self.observed_sector: ObservedSector | None = None  # None: the full circle
        self.scan_time: float | None = None
        self.scan_count = 0  # valid scans received: names the latest one for the grid
        self.scan_pose: tuple[float, float, float] | None = None  # odometry at its arrival
        self.pose: tuple[float, float, float] | None = None  # x, y, yaw in odom
        self.velocity: Velocity = (0.0, 0.0)
        self.odom_time: float | None = None
        self.dropped: Counter[str] = Counter()  # invalid inputs per topic
        self.rejected_scans: dict[str, int] = dict.fromkeys(SCAN_REASONS, 0)
        self.decision: Decision | None = None
        self.fallback_status = "no scan"
        self.last_dwa_reason = "not run"
        self.dwa_time_last = 0.0  # s
        self.dwa_time_max = 0.0  # s
        self._last_step_time = now

    # ------------------------------------------------------------------ configuration

    def configure(self, config: HybridConfig) -> None:
        """Run with a new (validated) config; the obstacle memory survives unless the grid
        changes (the inflation follows the footprint), in which case it refills."""
        self.config = config
        self.arbiter.config = config.arbiter
        self.controller.guidance = config.guidance
        self.controller.planner = DwaPlanner(config.dwa)
        if config.tracker != self.controller.tracker.config:
            self.controller.tracker = MoverTracker(config.tracker)
        if config.grid != self.controller.grid.config:
            self.controller.grid = NavigationGrid(config.grid)
            self.controller.reset()

    # ------------------------------------------------------------------ inputs

    @property
    def policy_driving(self) -> bool:
        """True when the last decision forwards the policy's command."""
        return self.decision is not None and self.decision.source is CommandSource.POLICY

    def receive_policy_cmd(self, linear: float, angular: float, now: float) -> bool:
        """Latch a policy command; False (dropped and counted) when not finite."""
        if not _finite(linear, angular):
            self.dropped[topics.POLICY_CMD_VEL] += 1
            return False
        self.policy_cmd, self.policy_cmd_time = (float(linear), float(angular)), now
        return True

    def receive_policy_active(self, active: bool) -> bool:
        """Latch policy/active; True when it changed."""
        changed = bool(active) != self.policy_active
        self.policy_active = bool(active)
        return changed

    def receive_teleop(self, linear: float, angular: float, now: float) -> bool:
        """Latch a teleop command; False (dropped and counted) when not finite."""
        if not _finite(linear, angular):
            self.dropped[topics.TELEOP_CMD_VEL] += 1
            return False
        self.teleop_cmd, self.teleop_time = (float(linear), float(angular)), now
        return True

    def receive_goal(self, frame_id: str, x: float, y: float) -> GoalUpdate:
        """Take a goal in `frame_id` ('' counts as the odom frame)."""
        if frame_id not in ("", self.config.odom_frame_id) or not _finite(x, y):
            self.dropped[topics.GOAL_POSE] += 1
            return GoalUpdate.DROPPED
        goal = (float(x), float(y))
        if self.goal == goal:
            return GoalUpdate.REPEATED
        if self.goal is not None and math.dist(self.goal, goal) < GOAL_CORRECTION_DISTANCE:
            self.goal = goal
            self.arbiter.goal_moved()
            return GoalUpdate.MOVED
        self.goal = goal
        self.goal_id = 1 if self.goal_id is None else self.goal_id + 1
        return GoalUpdate.NEW

    def reject_scan(self, reason: str) -> None:
        """Count a scan the validator refused; the last valid scan ages out meanwhile (after
        source_timeout the fallback is unhealthy: it cannot see)."""
        self.dropped[topics.SCAN] += 1
        self.rejected_scans[reason] = self.rejected_scans.get(reason, 0) + 1

    def receive_scan(
        self,
        ranges: Sequence[float] | np.ndarray,
        angle_min: float,
        angle_increment: float,
        range_min: float,
        range_max: float,
        now: float,
    ) -> None:
        """Latch a valid scan (LaserScan fields) as obstacle points in the base frame, and
        the latest odometry as the pose it was taken from."""
        mount = self.config.lidar_mount
        beams = np.asarray(ranges, dtype=np.float64)
        self.scan = scan_to_points(
            beams, angle_min, angle_increment, range_min, range_max, mount=mount
        )
        self.observed_sector = ObservedSector.from_scan(
            angle_min, angle_increment, len(beams), mount.x, mount.y, mount.yaw
        )
        self.scan_time = now
        self.scan_count += 1
        self.scan_pose = self.pose

    def receive_odom(
        self,
        position: tuple[float, float],
        orientation: tuple[float, float, float, float],
        velocity: Velocity,
        now: float,
    ) -> bool:
        """Latch odometry: (x, y), quaternion (x, y, z, w), (linear, angular) velocity.

        False (dropped and counted) when any value is not finite.
        """
        if not _finite(*position, *orientation, *velocity):
            self.dropped[topics.ODOM] += 1
            return False
        self.pose = (float(position[0]), float(position[1]), yaw_from_quaternion(*orientation))
        self.velocity = (float(velocity[0]), float(velocity[1]))
        self.odom_time = now
        return True

    def receive_safety_scale(self, scale: float, now: float) -> bool:
        """Record a safety/scale sample; False (dropped and counted) when not finite."""
        if not math.isfinite(scale):
            self.dropped[topics.SAFETY_SCALE] += 1
            return False
        self.arbiter.record_safety_scale(float(scale), now)
        return True

    # ------------------------------------------------------------------ control

    def fallback_health(self, now: float) -> tuple[bool, str]:
        """Whether the DWA can drive (fresh usable scan, fresh odometry), and why not."""
        if self.scan is None or self.scan_time is None:
            return False, "no scan"
        if now - self.scan_time > self.config.source_timeout:
            return False, f"scan stale ({now - self.scan_time:.2f} s)"
        if self.scan.blind:
            return False, "scan blind (no usable beam)"
        if self.pose is None or self.odom_time is None:
            return False, "no odom"
        if now - self.odom_time > self.config.odom_timeout:
            return False, f"odom stale ({now - self.odom_time:.2f} s)"
        return True, "ok"

    def goal_distance(self) -> float:
        """Metres from the robot to the goal; NaN without a goal or a pose."""
        if self.goal is None or self.pose is None:
            return math.nan
        return math.hypot(self.goal[0] - self.pose[0], self.goal[1] - self.pose[1])

    def cap_input_times(self, now: float) -> None:
        """The clock went back: inputs received "after" `now` count as received at `now`.

        Their timeouts then run on the new clock (a policy that died at the jump is
        silent after policy_timeout), instead of reading as fresh until it catches up.
        """
        if self.policy_cmd_time is not None and self.policy_cmd_time > now:
            self.policy_cmd_time = now
        if self.teleop_time is not None and self.teleop_time > now:
            self.teleop_time = now
        if self.scan_time is not None and self.scan_time > now:
            self.scan_time = now
        if self.odom_time is not None and self.odom_time > now:
            self.odom_time = now

    def step(self, now: float) -> Decision:
        """Update the arbiter on the latest inputs at `now`; the decision is kept too."""
        if now < self._last_step_time:
            self.cap_input_times(now)
        self._last_step_time = now
        healthy, status = self.fallback_health(now)
        self.fallback_status = status
        route_distance = None
        if self.arbiter.config.stall_along_route and self.goal is not None:
            route_distance = functools.partial(self.controller.route_distance, self.goal)
        inputs = ArbiterInputs(
            goal_id=self.goal_id,
            goal_distance=self.goal_distance(),
            policy_active=self.policy_active,
            last_policy_cmd_time=self.policy_cmd_time,
            last_teleop_time=self.teleop_time,
            fallback_healthy=healthy,
            fallback_status=status,
            position=None if self.pose is None else (self.pose[0], self.pose[1]),
            route_distance=route_distance,
            moving_threat=self.moving_threat(now),
        )
        self.decision = self.arbiter.update(inputs, now)
        return self.decision

    def moving_threat(self, now: float) -> str:
        """Why the policy's latest command would meet a tracked moving obstacle ("": it
        would not, the take-over is off, or there is no command, pose or tracked mover)."""
        if not self.arbiter.config.fallback_for_movers:
            return ""
        if self.policy_cmd is None or self.pose is None:
            return ""
        meeting = self.controller.moving_threat(self.policy_cmd, self.pose, now)
        if not math.isfinite(meeting):
            return ""
        return f"the policy's command meets one in {meeting:.1f} s"

    def update_route(self, now: float) -> None:
        """While another source drives, let the fallback map the latest scan and replan its
        route (`stall_along_route`): the stall check measures along it and a take-over
        starts from it; and track moving obstacles in it (the mover take-over checks the
        policy's command against them). Call it after the command went out: a replan takes
        milliseconds."""
        if self.goal is None or self.scan is None or self.pose is None:
            return
        tracking = self.controller.tracker.config.enabled
        if not (self.arbiter.config.stall_along_route or tracking):
            return
        if not self.fallback_health(now)[0]:
            return
        if self.decision is not None and self.decision.source is CommandSource.FALLBACK:
            return  # the fallback's own command did it
        full_circle = self.observed_sector is None
        if self.arbiter.config.stall_along_route:
            self.controller.observe(
                self.scan.points,
                self.pose,
                self.goal,
                now,
                self.scan_count,
                self.scan_pose,
                full_circle,
            )
        else:
            # The mover tracker still needs every scan (`fallback_for_movers`).
            self.controller.track(
                self.scan.points, self.scan_pose or self.pose, now, self.scan_count, full_circle
            )

    def command(self, decision: Decision, now: float) -> Velocity:
        """The command of the decision's source: policy, teleop, the DWA, or zero."""
        if decision.source is CommandSource.POLICY and self.policy_cmd is not None:
            return self.policy_cmd
        if decision.source is CommandSource.TELEOP and self.teleop_cmd is not None:
            return self.teleop_cmd
        if decision.source is CommandSource.FALLBACK:
            return self.fallback_command(now)
        return 0.0, 0.0

    def fallback_command(self, now: float) -> Velocity:
        """The DWA fallback's command (zero without scan, pose or goal, or if not finite)."""
        if self.scan is None or self.pose is None or self.goal is None:
            return 0.0, 0.0
        started = self._perf_counter()
        result = self.controller.compute(
            self.scan.points,
            self.pose,
            self.goal,
            self.velocity,
            now,
            observed_sector=self.observed_sector,
            unobserved_edges=self.scan.frontier,
            scan_id=self.scan_count,
            scan_pose=self.scan_pose,
        )
        elapsed = self._perf_counter() - started
        self.dwa_time_last = elapsed
        self.dwa_time_max = max(self.dwa_time_max, elapsed)
        self.last_dwa_reason = result.reason
        if not _finite(result.linear, result.angular):
            return 0.0, 0.0
        return result.linear, result.angular

    # ------------------------------------------------------------------ diagnostics

    @property
    def reason(self) -> str:
        """Why the current mode was entered ("no update yet" before the first step)."""
        return self.decision.reason if self.decision is not None else "no update yet"

    def diagnostic_values(self, now: float) -> dict[str, str]:
        """The diagnostics key/value pairs at `now`, in the order they are reported."""
        arbiter = self.arbiter
        goal = self.goal
        values = {
            "mode": arbiter.mode.value,
            "reason": self.reason,
            "goal": "none" if goal is None else f"{goal[0]:.3f}, {goal[1]:.3f}",
            "policy_failures": str(arbiter.failures),
            "retries_exhausted": str(arbiter.retries_exhausted),
            "next_retry_delay_s": f"{arbiter.retry_delay():.2f}",
            "intervention_rate": f"{arbiter.intervention_rate(now)[0]:.3f}",
            "fallback_status": self.fallback_status,
            "dwa_last_reason": self.last_dwa_reason,
            "dwa_time_last_ms": f"{self.dwa_time_last * 1e3:.2f}",
            "dwa_time_max_ms": f"{self.dwa_time_max * 1e3:.2f}",
            "moving_obstacles": str(self.controller.tracker.moving_obstacles(now).shape[0]),
            "switches_total": str(sum(arbiter.switch_counts.values())),
        }
        for key, count in sorted(arbiter.switch_counts.items()):
            values[f"switches {key}"] = str(count)
        for mode, seconds in arbiter.time_in_mode.items():
            values[f"time_in {mode.value}_s"] = f"{seconds:.1f}"
        for index, record in enumerate(reversed(arbiter.history)):
            values[f"last_switch_{index}"] = (
                f"t={record.time:.2f} {record.from_mode.value}->{record.to_mode.value}: "
                f"{record.reason}"
            )
        for topic, count in sorted(self.dropped.items()):
            values[f"dropped {topic}"] = str(count)
        for rejection, count in self.rejected_scans.items():
            values[f"rejected_scan_{rejection}"] = str(count)
        return values
