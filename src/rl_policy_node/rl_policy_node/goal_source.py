"""The point a policy's goal terms describe: the goal, or a waypoint on the grid path (no rclpy).

Nav2 splits navigation into a global path and a local controller that follows a point at
a lookahead along it. A policy whose card says ``observation.goal.source: grid_waypoint``
is that local controller: its goal terms describe the point `lookahead` m down the
shortest path to the goal over the hybrid fallback's navigation grid (obstacles
remembered from the scans, in the odom frame), so it is led around walls and out of
U-traps instead of straight at a goal behind them.

Training (rl_training's NavEnv) and deployment (the policy node's controller) use the same
`GridWaypointSource`: each scan is fed once (`feed_scan`, identified by its stamp) with the
odometry pose at the time, and `goal_input` gives the point the observation is built for.

Mapping a scan and replanning cost milliseconds to a hundred (a long route on a busy
machine): more than a 20 Hz control tick may spend. The node therefore maps and replans on
another thread (`feed_scan` and `plan`), and its control tick only walks the last plan down
to the waypoint (`waypoint(..., replan=False)`, well under a millisecond). Mapping and
planning hold the source's lock; the walk reads the plan, which is replaced whole.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from hybrid_fallback.nav_grid import NavGridConfig, NavigationGrid
from rl_policy_node.observation import ScanInput
from rl_policy_node.policy_card import GOAL_SOURCE_GRID_WAYPOINT, GoalSpec
from rlguard_common.geometry import base_to_odom
from safety_controller.scan_geometry import LidarMount, scan_to_points


class GridWaypointSource:
    """Navigation grid fed by scans, and the waypoint on its path to the goal (odom frame)."""

    def __init__(self, lookahead: float, replan_period: float, grid: NavGridConfig) -> None:
        if not (math.isfinite(lookahead) and lookahead > 0.0):
            raise ValueError(f"lookahead must be finite and > 0, got {lookahead!r}")
        if not (math.isfinite(replan_period) and replan_period > 0.0):
            raise ValueError(f"replan_period must be finite and > 0, got {replan_period!r}")
        self.lookahead = lookahead
        self.replan_period = replan_period
        self.grid = NavigationGrid(grid)
        self._planned_goal: tuple[float, float] | None = None
        self._planned_at = -math.inf
        self._last_now = -math.inf
        self._scan_stamp: float | None = None
        self._lock = threading.Lock()  # mapping and planning (grid and plan bookkeeping)

    @staticmethod
    def from_spec(spec: GoalSpec) -> GridWaypointSource:
        """The source a grid_waypoint goal spec describes."""
        if spec.source != GOAL_SOURCE_GRID_WAYPOINT:
            raise ValueError(f"goal source {spec.source!r} has no grid waypoint")
        assert spec.lookahead is not None and spec.replan_period is not None
        assert spec.grid is not None
        return GridWaypointSource(spec.lookahead, spec.replan_period, spec.grid)

    def reset(self) -> None:
        """Forget the obstacle memory, the plan and the last scan (a new episode)."""
        with self._lock:
            self.grid.reset()
            self._planned_goal = None
            self._planned_at = -math.inf
            self._last_now = -math.inf
            self._scan_stamp = None

    def _note_time(self, now: float) -> None:
        if now < self._last_now:
            # The clock went back: a plan timed on the old clock would never be renewed.
            self._planned_at = -math.inf
        self._last_now = now

    def update(self, points_base: np.ndarray, pose: Sequence[float], now: float) -> None:
        """Mark obstacle points (base frame, (N, 2)) seen from `pose` (x, y, yaw in odom)."""
        odom = base_to_odom(points_base, (pose[0], pose[1], pose[2]))
        with self._lock:
            self._note_time(now)
            self.grid.update(odom, (float(pose[0]), float(pose[1])))

    def feed_scan(
        self,
        scan: ScanInput,
        stamp: float,
        mount: LidarMount,
        pose: Sequence[float],
        now: float,
    ) -> bool:
        """`update` with a scan's points (lidar `mount` in the base frame), once per `stamp`.

        Returns False (nothing done) when this scan was fed already.
        """
        with self._lock:
            if stamp == self._scan_stamp:
                return False
            self._scan_stamp = stamp
        points = scan_to_points(
            scan.ranges,
            scan.angle_min,
            scan.angle_increment,
            scan.range_min,
            scan.range_max,
            mount=mount,
        ).points
        self.update(points, pose, now)
        return True

    def plan(self, goal: Sequence[float], pose: Sequence[float], now: float) -> bool:
        """Recompute the path to `goal` from `pose` when due: for a new goal, every
        `replan_period` s, and at once when the clock went back. Returns True when it
        replanned (never when the goal lies within the lookahead)."""
        x, y = float(pose[0]), float(pose[1])
        target = (float(goal[0]), float(goal[1]))
        with self._lock:
            self._note_time(now)
            if math.hypot(target[0] - x, target[1] - y) <= self.lookahead:
                return False
            if target == self._planned_goal and now - self._planned_at < self.replan_period:
                return False
            self.grid.compute_field(target, (x, y))
            self._planned_goal, self._planned_at = target, now
            return True

    def waypoint(
        self, goal: Sequence[float], pose: Sequence[float], now: float, replan: bool = True
    ) -> tuple[float, float]:
        """The point `lookahead` m down the grid path to `goal` (odom), or the goal itself.

        The goal itself when it lies within the lookahead, or the grid has no path from the
        robot (e.g. the goal lies off the grid). With `replan` the path is first recomputed
        when due (`plan`); without, the last plan is walked as it is (another thread
        replans), and only a goal without any plan yet is planned here.
        """
        x, y = float(pose[0]), float(pose[1])
        target = (float(goal[0]), float(goal[1]))
        if replan:
            self.plan(target, (x, y), now)
        if math.hypot(target[0] - x, target[1] - y) <= self.lookahead:
            return target
        plan = self.grid.plan()
        if plan is None or plan[1] != target:
            self.plan(target, (x, y), now)
            plan = self.grid.plan()
        carrot = self.grid.carrot((x, y), self.lookahead, plan)
        return target if carrot is None else carrot


def goal_source_for(spec: GoalSpec) -> GridWaypointSource | None:
    """A fresh source for a card's goal spec; None when the terms describe the goal itself."""
    if spec.source == GOAL_SOURCE_GRID_WAYPOINT:
        return GridWaypointSource.from_spec(spec)
    return None


def goal_input(
    source: GridWaypointSource | None,
    goal: Sequence[float],
    pose: Sequence[float],
    now: float,
    replan: bool = True,
) -> tuple[float, float]:
    """The point the observation's goal terms describe: the waypoint, or the goal itself
    (`replan` as in `GridWaypointSource.waypoint`)."""
    if source is None:
        return float(goal[0]), float(goal[1])
    return source.waypoint(goal, pose, now, replan=replan)
