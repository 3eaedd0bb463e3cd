"""The fallback controller: DWA guided by the navigation grid, in the odom frame (no rclpy)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from hybrid_fallback.dwa import DwaConfig, DwaPlanner, DwaResult, ObservedSector
from hybrid_fallback.mover_tracker import MoverTracker, TrackerConfig
from hybrid_fallback.nav_grid import NavGridConfig, NavigationGrid
from rlguard_common.geometry import base_to_odom, odom_to_base


@dataclass(frozen=True)
class GuidanceConfig:
    """How the navigation grid guides the DWA."""

    enabled: bool = True  # False: plain DWA toward the goal (no obstacle memory)
    lookahead: float = 0.8  # m along the grid path that the heading score aims at
    replan_period: float = 1.0  # s between cost-to-goal recomputations for the same goal
    stuck_time: float = 4.0  # s without moving stuck_distance -> recovery
    stuck_distance: float = 0.05  # m
    recovery_time: float = 2.0  # s of backing or turning toward open space
    recovery_speed: float = 0.1  # m/s, largest speed (either way) while recovering
    # Score weight, while recovering with part of the surroundings unobserved, of facing away
    # from the nearest obstacle (a turn on the spot then picks that way, not an arbitrary one).
    recovery_turn_weight: float = 0.2

    def validate(self) -> None:
        """Raise ValueError naming the first invalid value."""
        for name in ("stuck_time", "stuck_distance", "recovery_time", "recovery_speed"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be finite and > 0")
        if not (math.isfinite(self.lookahead) and self.lookahead > 0.0):
            raise ValueError("lookahead must be finite and > 0")
        if not (math.isfinite(self.replan_period) and self.replan_period > 0.0):
            raise ValueError("replan_period must be finite and > 0")
        if not (math.isfinite(self.recovery_turn_weight) and self.recovery_turn_weight >= 0.0):
            raise ValueError("recovery_turn_weight must be finite and >= 0")


class FallbackController:
    """DWA toward an odom-frame goal, scored by the grid's cost-to-goal to escape traps.

    When the robot has not moved for `stuck_time` (typically wedged at a corner that the
    path passes more tightly than the DWA's margin allows), it spends `recovery_time`
    moving slowly, forward or backward, to where the rollout ends with the most clearance,
    then approaches again. Unseen is not free: with part of the surroundings unobserved
    (`observed_sector`, `unobserved_edges`: e.g. the back of a robot with a 270-degree
    front lidar) neither the recovery nor normal driving moves the footprint into it, so
    with a trap ahead the recovery turns on the spot, away from the nearest obstacle,
    instead of reversing blind (with a front lidar the space behind is never in view, so it
    never reverses; it turns until forward motion is free).

    Every scan it maps also goes to a `MoverTracker` (unless `tracker.enabled` is false):
    obstacles seen moving are handed to the DWA with their velocity, so it keeps out of
    where they are going (see `DwaPlanner.compute`), unless the caller passes its own; and
    the grid forgets what it remembered where they walked, so a walker's path does not
    become a wall the route must go round.
    """

    def __init__(
        self,
        dwa: DwaConfig | None = None,
        grid: NavGridConfig | None = None,
        guidance: GuidanceConfig | None = None,
        tracker: TrackerConfig | None = None,
    ) -> None:
        self.guidance = guidance or GuidanceConfig()
        self.guidance.validate()
        self.planner = DwaPlanner(dwa)
        self.grid = NavigationGrid(grid)
        self.tracker = MoverTracker(tracker)
        self._planned_at = -math.inf
        self._planned_goal: tuple[float, float] | None = None
        self._anchor: tuple[float, float, float] | None = None  # (time, x, y) of last motion
        self._recovering_until = -math.inf
        self._last_call = -math.inf
        self.recoveries = 0
        self._route_recoveries = 0  # recoveries when the route was last chosen
        self._mapped_scan: object | None = None  # `scan_id` of the scan last put on the grid
        self._tracked_scan: object | None = None  # `scan_id` of the scan last tracked

    @property
    def planner(self) -> DwaPlanner:
        """The DWA used for normal driving."""
        return self._planner

    @planner.setter
    def planner(self, planner: DwaPlanner) -> None:
        self._planner = planner
        speed = self.guidance.recovery_speed
        recovery = replace(
            planner.config,
            max_linear_velocity=min(speed, planner.config.max_linear_velocity),
            min_linear_velocity=-speed,
            heading_weight=0.0,
            goal_distance_weight=0.0,
            speed_weight=0.0,
            clearance_weight=1.0,
            clearance_at_end=True,
        )
        self._recovery_planner = DwaPlanner(recovery)
        # Partly blind: turns on the spot all end with the same clearance, so a heading
        # term (aimed away from the nearest obstacle) chooses the way to turn.
        self._blind_recovery_planner = DwaPlanner(
            replace(recovery, heading_weight=self.guidance.recovery_turn_weight)
        )

    def _stuck(self, x: float, y: float, now: float) -> bool:
        """Track motion; True when the robot should start (or is in) a recovery."""
        cfg = self.guidance
        if now < self._recovering_until:
            return True
        if self._anchor is None or math.hypot(x - self._anchor[1], y - self._anchor[2]) > (
            cfg.stuck_distance
        ):
            self._anchor = (now, x, y)
            return False
        if now - self._anchor[0] >= cfg.stuck_time:
            self._recovering_until = now + cfg.recovery_time
            self._anchor = (now + cfg.recovery_time, x, y)
            self.recoveries += 1
            return True
        return False

    def hold(self) -> None:
        """The robot stands still on purpose (it is yielding): restart the stuck timer."""
        self._anchor = None

    def reset(self) -> None:
        """Forget the obstacle memory, the tracked movers and the plan."""
        self.grid.reset()
        self.tracker.reset()
        self._planned_at = -math.inf
        self._planned_goal = None
        self._anchor = None
        self._recovering_until = -math.inf
        self._mapped_scan = None
        self._tracked_scan = None

    def compute(
        self,
        points: np.ndarray,
        pose: tuple[float, float, float],
        goal: tuple[float, float],
        velocity: tuple[float, float],
        now: float,
        moving: np.ndarray | None = None,
        observed_sector: ObservedSector | None = None,
        unobserved_edges: np.ndarray | None = None,
        scan_id: object | None = None,
        scan_pose: tuple[float, float, float] | None = None,
    ) -> DwaResult:
        """Command for the robot at `pose` (odom) with scan `points` (base frame).

        `scan_id` and `scan_pose`: see `observe`.

        `moving`: tracked moving obstacles for the DWA (see `DwaPlanner.compute`).
        `observed_sector`: the scan's angular coverage (`ObservedSector.from_scan`; None for
        a full circle) and `unobserved_edges`: points on other edges of unobserved space
        (base frame); motion into unobserved space is refused, recovery included.
        """
        x, y, yaw = (float(value) for value in pose)
        cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
        dx, dy = goal[0] - x, goal[1] - y
        goal_base = (cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy)
        unseen = {"observed_sector": observed_sector, "unobserved_edges": unobserved_edges}
        if not self.guidance.enabled:
            self.track(points, scan_pose or pose, now, scan_id, observed_sector is None)
            if moving is None:
                moving = self._moving_in_base(pose, now)
            return self.planner.compute(points, goal_base, velocity, moving=moving, **unseen)

        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        goal_key = (float(goal[0]), float(goal[1]))
        if now < self._last_call:
            # The clock went back: timers set on the old clock would wait it out.
            self._recovering_until = -math.inf
            self._anchor = None
        if goal_key != self._planned_goal or now - self._last_call > 1.0:
            # A new goal, or the fallback was not driving: motion history says nothing.
            self._anchor = None
            self._recovering_until = -math.inf
        self._last_call = now
        self.observe(pts, pose, goal_key, now, scan_id, scan_pose, observed_sector is None)
        if moving is None:
            moving = self._moving_in_base(pose, now)

        if self._stuck(x, y, now):
            return self._recover(pts, goal_base, velocity, moving, **unseen)

        carrot = self.grid.carrot((x, y), self.guidance.lookahead)
        heading_target = None
        if carrot is not None:
            cx, cy = carrot[0] - x, carrot[1] - y
            heading_target = (cos_yaw * cx + sin_yaw * cy, -sin_yaw * cx + cos_yaw * cy)

        def cost_to_goal(bx: np.ndarray, by: np.ndarray) -> np.ndarray:
            ox = x + cos_yaw * bx - sin_yaw * by
            oy = y + sin_yaw * bx + cos_yaw * by
            return self.grid.cost_at(np.column_stack((ox, oy)))

        return self.planner.compute(
            pts,
            goal_base,
            velocity,
            heading_target=heading_target,
            cost_to_goal=cost_to_goal,
            moving=moving,
            **unseen,
        )

    def observe(
        self,
        points: np.ndarray,
        pose: tuple[float, float, float],
        goal: tuple[float, float],
        now: float,
        scan_id: object | None = None,
        scan_pose: tuple[float, float, float] | None = None,
        full_circle: bool = True,
    ) -> None:
        """Remember the scan `points` (base frame) and replan the route from `pose` (odom)
        to `goal` when it is new or `replan_period` old; `compute` does this itself, and the
        supervisor calls it while another source drives, so the route stays current.
        `full_circle`: the scan's beams cover a full turn (see `MoverTracker.update`).

        The points are put on the grid as seen from `scan_pose` (default `pose`), the pose
        the robot had when the scan was taken. With `scan_id` (any value naming the scan) a
        scan already on the grid is not put there again: the scan comes at the lidar's rate,
        slower than the control ticks, and the same points placed from a later pose land
        off their obstacles (0.1 m at 2.5 m after a 2-degree turn), drawing phantom
        obstacles into doors and corridors.
        """
        taken_at = scan_pose or pose
        new_for_grid = scan_id is None or scan_id != self._mapped_scan
        if new_for_grid or self._new_for_tracker(scan_id):
            odom_points = base_to_odom(points, taken_at)  # once for both
            origin = (float(taken_at[0]), float(taken_at[1]))
            self._track_odom(odom_points, origin, now, scan_id, full_circle)
            if new_for_grid:
                self._mapped_scan = scan_id
                if self.tracker.config.enabled:
                    # A mover stays on the map where it is now, not where it walked: its
                    # remembered path would be a wall the route goes round (or out through
                    # the arena's wall, unseen space counting as free).
                    self.grid.forget(self.tracker.moving_discs())
                self.grid.update(odom_points, origin)
        x, y = float(pose[0]), float(pose[1])
        goal_key = (float(goal[0]), float(goal[1]))
        if now < self._planned_at:
            self._planned_at = -math.inf  # the clock went back
        if goal_key != self._planned_goal or now - self._planned_at >= self.guidance.replan_period:
            # After a recovery the route it was stuck on is not kept for its own sake.
            keep_route = self._route_recoveries == self.recoveries
            self.grid.compute_field(goal_key, (x, y), keep_route=keep_route)
            self._planned_goal, self._planned_at = goal_key, now
            self._route_recoveries = self.recoveries

    def track(
        self,
        points: np.ndarray,
        scan_pose: tuple[float, float, float],
        now: float,
        scan_id: object | None = None,
        full_circle: bool = True,
    ) -> None:
        """Give the mover tracker the scan `points` (base frame) taken at odom `scan_pose`;
        with `scan_id`, a scan already tracked is not taken again (`observe` and `compute`
        call this themselves). `full_circle`: see `observe`."""
        if self._new_for_tracker(scan_id):
            origin = (float(scan_pose[0]), float(scan_pose[1]))
            self._track_odom(base_to_odom(points, scan_pose), origin, now, scan_id, full_circle)

    def _new_for_tracker(self, scan_id: object | None) -> bool:
        """True when tracking is on and the scan `scan_id` names is not tracked yet."""
        enabled = self.tracker.config.enabled
        return enabled and (scan_id is None or scan_id != self._tracked_scan)

    def _track_odom(
        self,
        odom_points: np.ndarray,
        origin: tuple[float, float],
        now: float,
        scan_id: object,
        full_circle: bool,
    ) -> None:
        """Track a new scan's odom-frame points (see `track`)."""
        if self._new_for_tracker(scan_id):
            self._tracked_scan = scan_id
            self.tracker.update(odom_points, origin, now, full_circle)

    def moving_threat(
        self, command: tuple[float, float], pose: tuple[float, float, float], now: float
    ) -> float:
        """When (s from now) a tracked moving obstacle meets the robot at odom `pose`
        driving `command` (linear, angular) as the DWA rolls it out, held at its end up to
        the DWA's `moving_horizon`; inf when none does."""
        moving = self._moving_in_base(pose, now)
        if moving is None:
            return math.inf
        return self.planner.meeting_time(command[0], command[1], moving)

    def _moving_in_base(self, pose: tuple[float, float, float], now: float) -> np.ndarray | None:
        """The tracked moving obstacles as (x, y, vx, vy, radius) rows in the base frame."""
        if not self.tracker.config.enabled:
            return None
        rows = self.tracker.moving_obstacles(now)
        if rows.shape[0] == 0:
            return None
        base = rows.copy()
        base[:, 0:2] = odom_to_base(rows[:, 0:2], pose)
        base[:, 2:4] = odom_to_base(rows[:, 2:4], (0.0, 0.0, pose[2]))
        return base

    def route_distance(self, goal: tuple[float, float], xy: tuple[float, float]) -> float:
        """Cost-to-goal (m along the current route, dearer near obstacles) at odom `xy`;
        NaN without grid guidance, without a route to `goal` or outside its field."""
        if not self.guidance.enabled or self.grid.field_goal != (float(goal[0]), float(goal[1])):
            return math.nan
        return float(self.grid.cost_at(np.array([xy], dtype=np.float64))[0])

    def _recover(
        self,
        pts: np.ndarray,
        goal_base: tuple[float, float],
        velocity: tuple[float, float],
        moving: np.ndarray | None,
        observed_sector: ObservedSector | None,
        unobserved_edges: np.ndarray | None,
    ) -> DwaResult:
        """One recovery command: toward clearance, never into unobserved space."""
        partly_blind = observed_sector is not None or (
            unobserved_edges is not None and np.asarray(unobserved_edges).size > 0
        )
        if not partly_blind:
            result = self._recovery_planner.compute(pts, goal_base, velocity, moving=moving)
        else:
            away = None  # a far point opposite the nearest obstacle (the goal without one)
            if pts.shape[0]:
                nearest = pts[int(np.argmin(np.einsum("ij,ij->i", pts, pts)))]
                scale = -10.0 / max(math.hypot(nearest[0], nearest[1]), 1e-9)
                away = (scale * float(nearest[0]), scale * float(nearest[1]))
            result = self._blind_recovery_planner.compute(
                pts,
                goal_base,
                velocity,
                heading_target=away,
                moving=moving,
                observed_sector=observed_sector,
                unobserved_edges=unobserved_edges,
            )
        return replace(result, reason=f"recovery: {result.reason}")
