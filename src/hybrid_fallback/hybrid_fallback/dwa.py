"""Dynamic Window Approach controller for a circular differential-drive robot (no rclpy).

Every cycle the planner samples (v, w) pairs in the dynamic window (velocities reachable
within one control period under the acceleration limits, clipped to the velocity limits),
rolls each out as a unicycle arc for `sim_time` (vectorized over samples x time steps x
points), rejects rollouts that bring the circular footprint (+ margin) into contact with a
scan point, and scores the rest on heading to the goal (or a look-ahead point), progress
in cost-to-goal, clearance and speed. With no safe sample it stops, turning toward the goal
on the spot unless something touches the footprint.

Safety of the collision check (all distances in the base frame of the current pose):
- rollout poses are `rollout_dt` apart, so every point of the continuous arc lies within
  half a step (`max |v| * rollout_dt / 2`) of a checked pose; the check radius is inflated
  by that half step;
- obstacle points a rollout can reach are reduced to the centres of occupied grid cells of
  `point_resolution`, which moves a point by at most `point_resolution / sqrt(2)`; the
  check radius is inflated by that too. Points beyond the reach of every rollout only
  score clearance (coarser grid) and points beyond that are dropped.
So a selected rollout keeps the footprint + margin off every scan point along the whole arc.
Tracked moving obstacles (position, velocity, radius) are checked at the time of each
rollout pose instead, with the same radius, and beyond the rollout up to `moving_horizon`
with the robot held at the rollout's end: a rollout is only safe if the robot could stop
where it ends and not be run into there. When a tracked obstacle leaves no such rollout,
the planner evades: of the rollouts clear of the scan points, those that meet the obstacle
latest and keep farthest from it, the best scored.
A point already inside that radius at the start (robot too close already) only rejects the
rollouts that get closer to it, so the robot can back or turn away instead of freezing.

Unseen is not free: space the scan did not observe (outside the lidar's field of view, e.g.
behind a robot with a 270-degree front lidar) is not driven into. The caller passes the
scan's angular coverage (`ObservedSector`) and/or points on the edges of unobserved space;
the two edge rays of the sector, from the lidar out past the rollouts' reach, are checked
like obstacle points (same radius, same "inside at the start" rule) but do not score
clearance. So no selected rollout sweeps the footprint across them into the unobserved
wedge; turning on the spot (which sweeps no new area) stays possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

from rlguard_common.geometry import wrap_angle

# Below this |w| (rad/s) a rollout is integrated as a straight line.
_STRAIGHT_EPS = 1e-6


@dataclass(frozen=True)
class DwaConfig:
    """Limits, sampling and scoring weights of the DWA controller."""

    max_linear_velocity: float = 0.26  # m/s
    min_linear_velocity: float = 0.0  # m/s, negative allows reversing
    max_angular_velocity: float = 1.8  # rad/s, counter-clockwise
    min_angular_velocity: float = -1.8  # rad/s, clockwise (negative)
    max_linear_accel: float = 1.0  # m/s^2
    max_angular_accel: float = 3.2  # rad/s^2
    control_period: float = 0.05  # s, the window is what is reachable within this
    sim_time: float = 1.5  # s, rollout horizon
    rollout_dt: float = 0.1  # s, spacing of rollout poses
    linear_samples: int = 7
    angular_samples: int = 15
    footprint_radius: float = 0.11  # m
    safety_margin: float = 0.03  # m, kept between footprint and obstacles
    point_resolution: float = 0.02  # m, grid cell for reducing points that can be hit
    clearance_resolution: float = 0.1  # m, coarser grid for points that only score clearance
    clearance_cap: float = 0.5  # m, clearance beyond this scores the same
    heading_weight: float = 0.5
    goal_distance_weight: float = 1.5
    clearance_weight: float = 0.4
    speed_weight: float = 0.3
    goal_slowdown_gain: float = 0.8  # 1/s, v <= gain * distance to goal near the goal
    clearance_at_end: bool = False  # score clearance at the rollout end (recovery) not its minimum
    # s: tracked moving obstacles are checked against the rollout's end pose until this time
    # (at most sim_time: the rollout alone)
    moving_horizon: float = 0.0

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent value."""
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"{item.name} must be finite")
        positive = (
            "max_linear_velocity",
            "max_angular_velocity",
            "max_linear_accel",
            "max_angular_accel",
            "control_period",
            "sim_time",
            "rollout_dt",
            "footprint_radius",
            "point_resolution",
            "clearance_resolution",
            "clearance_cap",
            "goal_slowdown_gain",
        )
        for name in positive:
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be > 0")
        if self.min_linear_velocity > self.max_linear_velocity:
            raise ValueError("min_linear_velocity must be <= max_linear_velocity")
        if self.min_angular_velocity >= 0.0:
            raise ValueError("min_angular_velocity must be < 0")
        if self.rollout_dt > self.sim_time:
            raise ValueError("rollout_dt must be <= sim_time")
        if self.linear_samples < 2 or self.angular_samples < 3:
            raise ValueError("linear_samples must be >= 2 and angular_samples >= 3")
        if self.safety_margin < 0.0:
            raise ValueError("safety_margin must be >= 0")
        if self.moving_horizon < 0.0:
            raise ValueError("moving_horizon must be >= 0")
        for name in ("heading_weight", "goal_distance_weight", "clearance_weight", "speed_weight"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def collision_radius(self) -> float:
        """Footprint radius plus margin: no scan point may come closer to the centre."""
        return self.footprint_radius + self.safety_margin

    @property
    def check_radius(self) -> float:
        """The radius checked at rollout poses: collision radius + step and grid slack."""
        top_speed = max(abs(self.max_linear_velocity), abs(self.min_linear_velocity))
        return (
            self.collision_radius
            + 0.5 * top_speed * self.rollout_dt
            + self.point_resolution / math.sqrt(2.0)
        )


@dataclass(frozen=True)
class ObservedSector:
    """The bearings a scan observes, in the base frame, seen from the lidar at `origin`.

    The beams cover `start` counter-clockwise through `start + span` (rad); every other
    direction from the lidar is unobserved. A full-circle scan has no sector (use None).
    """

    start: float  # rad, base-frame bearing of the first beam
    span: float  # rad, counter-clockwise from the first to the last beam, in [0, 2 pi)
    origin: tuple[float, float] = (0.0, 0.0)  # m, lidar position in the base frame

    def __post_init__(self) -> None:
        """Reject non-finite values and spans outside [0, 2 pi)."""
        values = (self.start, self.span, *self.origin)
        if not all(math.isfinite(value) for value in values):
            raise ValueError("ObservedSector values must be finite")
        if not 0.0 <= self.span < 2.0 * math.pi:
            raise ValueError(f"span must be in [0, 2 pi), got {self.span}")

    @classmethod
    def from_scan(
        cls,
        angle_min: float,
        angle_increment: float,
        count: int,
        mount_x: float = 0.0,
        mount_y: float = 0.0,
        mount_yaw: float = 0.0,
    ) -> ObservedSector | None:
        """The sector of a scan (LaserScan angle_min, angle_increment, len(ranges), lidar mount).

        None when the beams cover the full circle (at most one increment between the last
        beam and the first), so a 360-degree lidar gives the same plans as before.
        """
        if not (math.isfinite(angle_min) and math.isfinite(angle_increment)):
            raise ValueError("angle_min and angle_increment must be finite")
        if angle_increment <= 0.0 or count < 1:
            raise ValueError("need angle_increment > 0 and at least one beam")
        if angle_increment * count >= 2.0 * math.pi - 1e-6:
            return None
        return cls(
            start=angle_min + mount_yaw,
            span=angle_increment * (count - 1),
            origin=(float(mount_x), float(mount_y)),
        )

    def contains(self, bearing: float) -> bool:
        """True when the base-frame `bearing` (from the lidar) is inside the sector."""
        return (bearing - self.start) % (2.0 * math.pi) <= self.span + 1e-9

    def boundary_points(self, reach: float, spacing: float, body: float = 0.0) -> np.ndarray:
        """Points (N, 2), base frame, `spacing` m apart on the edges of the unobserved space.

        Both edge rays run from the lidar out to `reach`. When the unobserved space is wider
        than a half-plane (span < pi) it is not convex and a body could enter it without
        crossing either ray, so an arc of radius `body` (about the base centre) closes it
        off across the unobserved bearings.
        """
        steps = np.arange(0.0, reach + spacing, spacing)
        rows = []
        for angle in (self.start, self.start + self.span):
            ray = np.column_stack((steps * math.cos(angle), steps * math.sin(angle)))
            rows.append(ray + self.origin)
        if self.span < math.pi and body > 0.0:
            count = max(8, int(math.ceil(2.0 * math.pi * body / spacing)))
            phi = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False)
            arc = body * np.column_stack((np.cos(phi), np.sin(phi)))
            bearing = np.arctan2(arc[:, 1] - self.origin[1], arc[:, 0] - self.origin[0])
            unseen = np.mod(bearing - self.start, 2.0 * math.pi) > self.span
            rows.append(arc[unseen])
        return np.concatenate(rows)


@dataclass(frozen=True)
class DwaResult:
    """The selected command and why it was chosen."""

    linear: float
    angular: float
    reason: str  # "best_sample", "no_safe_sample_rotate", "no_safe_sample_stop"
    safe_samples: int
    total_samples: int
    score: float  # best total score, NaN when no safe sample
    min_clearance: float  # m from footprint edge along the chosen rollout, inf if no points
    points_used: int  # obstacle points after reach filtering and grid reduction
    blind_samples: int = 0  # samples refused only because they enter unobserved space
    moving_samples: int = 0  # samples refused only because a tracked moving obstacle meets them


def rollout_poses(
    linear: np.ndarray, angular: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unicycle arcs from the origin: x, y, yaw of shape (samples, len(times))."""
    v = np.asarray(linear, dtype=np.float64)[:, None]
    w = np.asarray(angular, dtype=np.float64)[:, None]
    t = np.asarray(times, dtype=np.float64)[None, :]
    yaw = w * t
    straight = np.abs(w) < _STRAIGHT_EPS
    safe_w = np.where(straight, 1.0, w)
    x = np.where(straight, v * t, v * np.sin(yaw) / safe_w)
    y = np.where(straight, 0.5 * v * w * t * t, v * (1.0 - np.cos(yaw)) / safe_w)
    return x, y, yaw


def grid_reduce(points: np.ndarray, resolution: float) -> np.ndarray:
    """The centres of the grid cells (side `resolution`) that hold at least one point."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return pts
    cells = np.floor(pts / resolution).astype(np.int64)
    # One integer key per cell makes the de-duplication a fast 1-D unique.
    low = cells.min(axis=0)
    span = int(cells[:, 1].max() - low[1]) + 1
    keys = np.unique((cells[:, 0] - low[0]) * span + (cells[:, 1] - low[1]))
    unique_cells = np.column_stack((keys // span + low[0], keys % span + low[1]))
    return (unique_cells.astype(np.float64) + 0.5) * resolution


def split_points(
    points: np.ndarray,
    collision_reach: float,
    clearance_reach: float,
    resolution: float,
    clearance_resolution: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reduced obstacle points: (those a rollout can hit, those that only score clearance).

    Points within `collision_reach` of the origin are kept on the fine grid; points between
    the two reaches on the coarse grid; points farther away cannot matter and are dropped.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    dist2 = np.einsum("ij,ij->i", pts, pts)
    near = dist2 <= collision_reach * collision_reach
    band = ~near & (dist2 <= clearance_reach * clearance_reach)
    return grid_reduce(pts[near], resolution), grid_reduce(pts[band], clearance_resolution)


def _distances2(xs: np.ndarray, ys: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Squared distances (float32) of every rollout pose to every point: (samples, steps, N)."""
    dx = xs.astype(np.float32)[:, :, None] - points[:, 0].astype(np.float32)
    dy = ys.astype(np.float32)[:, :, None] - points[:, 1].astype(np.float32)
    return dx * dx + dy * dy


def _hits(
    dist2: np.ndarray, points: np.ndarray, radius: float, closest2: np.ndarray | None = None
) -> np.ndarray:
    """Per rollout: True when it brings a point within `radius` of the centre.

    `closest2` is `dist2.min(axis=1)` when the caller has it already.
    A point already inside the radius at the start rejects only the rollouts that get
    closer to it, so the robot can back or turn away instead of freezing.
    """
    px = points[:, 0].astype(np.float32)
    py = points[:, 1].astype(np.float32)
    start2 = px * px + py * py
    radius2 = np.float32(radius * radius)
    clear_start = start2 >= radius2
    if closest2 is None:
        closest2 = dist2.min(axis=1)
    colliding = (closest2[:, clear_start] < radius2).any(axis=1)
    if not clear_start.all():
        inside = np.flatnonzero(~clear_start)
        near2 = dist2[:, :, inside]
        approaching = (near2 < radius2) & (near2 < start2[inside] * (1.0 - 1e-6))
        colliding |= approaching.any(axis=(1, 2))
    return colliding


class DwaPlanner:
    """Dynamic Window Approach: choose (v, w) from obstacle points and a goal, both base frame."""

    def __init__(self, config: DwaConfig | None = None) -> None:
        self.config = config or DwaConfig()
        self.config.validate()
        steps = int(math.ceil(self.config.sim_time / self.config.rollout_dt - 1e-9))
        self._times = np.arange(steps + 1, dtype=np.float64) * self.config.rollout_dt
        held = int(math.ceil(self.config.moving_horizon / self.config.rollout_dt - 1e-9)) - steps
        # Times at which tracked moving obstacles meet the robot held at the rollout's end.
        self._held_times = self._times[-1] + np.arange(1, max(held, 0) + 1) * self.config.rollout_dt

    def window(self, linear: float, angular: float) -> tuple[np.ndarray, np.ndarray]:
        """The sampled (v, w) pairs (flattened grid) reachable within one control period."""
        cfg = self.config
        dv = cfg.max_linear_accel * cfg.control_period
        dw = cfg.max_angular_accel * cfg.control_period
        v_lo = max(cfg.min_linear_velocity, linear - dv)
        v_hi = min(cfg.max_linear_velocity, linear + dv)
        if v_lo > v_hi:  # current speed outside the limits: take the reachable edge
            v_lo = v_hi = min(max(linear, cfg.min_linear_velocity), cfg.max_linear_velocity)
        w_lo = max(cfg.min_angular_velocity, angular - dw)
        w_hi = min(cfg.max_angular_velocity, angular + dw)
        if w_lo > w_hi:
            w_lo = w_hi = min(max(angular, cfg.min_angular_velocity), cfg.max_angular_velocity)
        v_values = np.linspace(v_lo, v_hi, cfg.linear_samples)
        w_values = np.linspace(w_lo, w_hi, cfg.angular_samples)
        # Rounding leaves -1e-17 where the grid crosses zero: that sample is standing still.
        v_values[np.abs(v_values) < 1e-12] = 0.0
        w_values[np.abs(w_values) < 1e-12] = 0.0
        # Standing still and pure rotation must be candidates whenever they are reachable.
        if v_lo <= 0.0 <= v_hi:
            v_values = np.unique(np.append(v_values, 0.0))
        if w_lo <= 0.0 <= w_hi:
            w_values = np.unique(np.append(w_values, 0.0))
        v_grid, w_grid = np.meshgrid(v_values, w_values, indexing="ij")
        return v_grid.ravel(), w_grid.ravel()

    def compute(
        self,
        points: np.ndarray,
        goal: tuple[float, float],
        velocity: tuple[float, float],
        heading_target: tuple[float, float] | None = None,
        cost_to_goal: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        moving: np.ndarray | None = None,
        observed_sector: ObservedSector | None = None,
        unobserved_edges: np.ndarray | None = None,
    ) -> DwaResult:
        """Best (v, w) toward `goal` (x, y in the base frame) given the current (v, w).

        `heading_target` (base frame) is what the heading score aims at, the goal by default
        (a path follower passes a look-ahead point). `cost_to_goal(x, y)` maps base-frame
        positions to the remaining path length; the straight-line distance by default.
        `moving` holds tracked moving obstacles as rows (x, y, vx, vy, radius) in the base
        frame; each rollout pose is checked against where they will be at that time
        (constant velocity), and their points should then be left out of `points`.
        `observed_sector` is the scan's coverage (None: full circle) and `unobserved_edges`
        (base frame, optional) are more points on edges of unobserved space, such as the
        edges of a long run of beams without a measurement: rollouts that would carry the
        footprint across either are refused, as into an obstacle.
        """
        cfg = self.config
        goal_x, goal_y = float(goal[0]), float(goal[1])
        aim_x, aim_y = (goal_x, goal_y) if heading_target is None else heading_target
        goal_distance = math.hypot(goal_x, goal_y)
        linear_now, angular_now = float(velocity[0]), float(velocity[1])
        v_samples, w_samples = self.window(linear_now, angular_now)
        total = int(v_samples.size)

        top_speed = max(abs(cfg.max_linear_velocity), abs(cfg.min_linear_velocity))
        check_radius = cfg.check_radius
        collision_reach = top_speed * self._times[-1] + check_radius
        hittable, far = split_points(
            points,
            collision_reach,
            collision_reach + cfg.clearance_cap,
            cfg.point_resolution,
            cfg.clearance_resolution,
        )
        obstacles = np.concatenate((hittable, far))

        xs, ys, yaws = rollout_poses(v_samples, w_samples, self._times)

        if obstacles.shape[0] > 0:
            # Squared distances of every rollout pose to every point: (samples, steps, points).
            # float32 keeps the arrays small; its error (~1e-7 m) is far below the slack.
            dist2 = _distances2(xs, ys, obstacles)
            closest2 = dist2.min(axis=1)  # (samples, points)
            scored2 = dist2[:, -1, :] if cfg.clearance_at_end else closest2
            min_dist = np.sqrt(scored2.min(axis=1).astype(np.float64))
            n_hit = hittable.shape[0]
            colliding = _hits(dist2[:, :, :n_hit], hittable, check_radius, closest2[:, :n_hit])
        else:
            colliding = np.zeros(total, dtype=bool)
            min_dist = np.full(total, np.inf)
        meets_moving = np.zeros(total, dtype=bool)
        meeting_time = np.full(total, np.inf)
        moving_gap = np.full(total, np.inf)
        if moving is not None and len(moving):
            meeting_time, moving_dist, moving_gap = self._check_moving(xs, ys, moving, check_radius)
            meets_moving = np.isfinite(meeting_time)
            min_dist = np.minimum(min_dist, moving_dist)
        edges = []
        if observed_sector is not None:
            # The arc (wide unobserved space only) lies on the footprint, inside the checked
            # radius, so every rollout that moves the centre toward it is refused.
            edges.append(
                observed_sector.boundary_points(
                    collision_reach, cfg.point_resolution, cfg.footprint_radius
                )
            )
        if unobserved_edges is not None:
            edges.append(np.asarray(unobserved_edges, dtype=np.float64).reshape(-1, 2))
        blind_samples = 0
        if edges:
            blind, _ = split_points(
                np.concatenate(edges), collision_reach, collision_reach, cfg.point_resolution, 1.0
            )
            if blind.shape[0]:
                into_blind = _hits(_distances2(xs, ys, blind), blind, check_radius) & ~colliding
                blind_samples = int(np.count_nonzero(into_blind))
                colliding |= into_blind
        moving_samples = int(np.count_nonzero(meets_moving & ~colliding))
        safe = ~colliding & ~meets_moving
        reason = "best_sample"
        if not safe.any() and moving_samples:
            # Every rollout clear of the scan meets a moving obstacle: those that meet it
            # latest, of those the ones that stay farthest from it (within a centimetre:
            # turns on the spot tie), scored as usual.
            latest = float(np.max(np.where(colliding, -np.inf, meeting_time)))
            later = ~colliding & (meeting_time >= latest - 1e-9)
            farthest = float(np.max(np.where(later, moving_gap, -np.inf)))
            safe = later & (moving_gap >= farthest - 0.01)
            reason = "evade_moving"

        if not safe.any():
            result = self._no_safe_sample(obstacles, goal_x, goal_y, goal_distance, total)
            return replace(result, blind_samples=blind_samples)

        clearance = np.clip(min_dist - check_radius, 0.0, cfg.clearance_cap) / cfg.clearance_cap
        end_x, end_y, end_yaw = xs[:, -1], ys[:, -1], yaws[:, -1]
        bearing = np.arctan2(aim_y - end_y, aim_x - end_x)
        heading = 1.0 - np.abs(wrap_angle(bearing - end_yaw)) / np.pi
        if cost_to_goal is None:
            start_cost = goal_distance
            end_cost = np.hypot(goal_x - end_x, goal_y - end_y)
        else:
            costs = np.asarray(
                cost_to_goal(np.append(end_x, 0.0), np.append(end_y, 0.0)), dtype=np.float64
            )
            costs = np.where(np.isfinite(costs), costs, np.nan)
            worst = float(np.nanmax(costs)) if np.isfinite(costs).any() else 0.0
            costs = np.where(np.isnan(costs), worst, costs)
            start_cost, end_cost = float(costs[-1]), costs[:-1]
        horizon = max(top_speed * self._times[-1], 1e-6)
        progress = np.clip((start_cost - end_cost) / horizon, -1.0, 1.0)
        speed = v_samples / max(cfg.max_linear_velocity, 1e-9)
        score = (
            cfg.heading_weight * heading
            + cfg.goal_distance_weight * progress
            + cfg.clearance_weight * clearance
            + cfg.speed_weight * speed
        )
        # Near the goal, faster than the approach speed is not admissible (no overshoot),
        # unless nothing slower is reachable in this window.
        approach_speed = cfg.goal_slowdown_gain * goal_distance
        slow_enough = v_samples <= max(approach_speed, float(v_samples.min())) + 1e-9
        candidates = safe & slow_enough
        if not candidates.any():
            candidates = safe
        score = np.where(candidates, score, -np.inf)
        best = int(np.argmax(score))
        min_clearance = float(min_dist[best] - cfg.collision_radius)
        return DwaResult(
            linear=float(v_samples[best]),
            angular=float(w_samples[best]),
            reason=reason,
            safe_samples=int(np.count_nonzero(safe)) if reason == "best_sample" else 0,
            total_samples=total,
            score=float(score[best]),
            min_clearance=min_clearance,
            points_used=int(obstacles.shape[0]),
            blind_samples=blind_samples,
            moving_samples=moving_samples,
        )

    def meeting_time(self, linear: float, angular: float, moving: np.ndarray) -> float:
        """When (s) the rollout of (`linear`, `angular`), held at its end up to
        `moving_horizon`, meets a moving obstacle of `moving` (rows as in `compute`); inf
        when it does not."""
        xs, ys, _ = rollout_poses(np.array([linear]), np.array([angular]), self._times)
        meeting, _, _ = self._check_moving(xs, ys, moving, self.config.check_radius)
        return float(meeting[0])

    def _check_moving(
        self, xs: np.ndarray, ys: np.ndarray, moving: np.ndarray, check_radius: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per rollout: the time it meets a moving obstacle (inf: never), the distance to the
        obstacles' surfaces over the rollout, and its closest approach minus the reach over
        the rollout and the held poses.

        Poses are checked at the rollout's times and, held at its end, up to
        `moving_horizon`. An obstacle already within reach at the start meets only the
        rollouts that get closer to it than they start, as for scan points.
        """
        obstacles = np.asarray(moving, dtype=np.float64).reshape(-1, 5)
        times = np.concatenate((self._times, self._held_times))
        held = self._held_times.size
        if held:
            xs = np.concatenate((xs, np.repeat(xs[:, -1:], held, axis=1)), axis=1)
            ys = np.concatenate((ys, np.repeat(ys[:, -1:], held, axis=1)), axis=1)
        t = times[None, :, None]
        ox = obstacles[None, None, :, 0] + obstacles[None, None, :, 2] * t
        oy = obstacles[None, None, :, 1] + obstacles[None, None, :, 3] * t
        dist = np.hypot(xs[:, :, None] - ox, ys[:, :, None] - oy)  # (samples, steps, K)
        # Between two checked poses the obstacle moves too: half a step of its own speed.
        drift = 0.5 * self.config.rollout_dt * np.hypot(obstacles[:, 2], obstacles[:, 3])
        reach = check_radius + obstacles[None, None, :, 4] + drift[None, None, :]
        start = dist[:, :1, :]
        blocking = ((dist < reach) & ((start >= reach) | (dist < start * (1.0 - 1e-6)))).any(axis=2)
        meeting = np.where(blocking.any(axis=1), times[np.argmax(blocking, axis=1)], np.inf)
        rollout = self._times.size
        surface = (dist[:, :rollout, :] - obstacles[None, None, :, 4]).min(axis=(1, 2))
        gap = (dist - reach).min(axis=(1, 2))  # over the held poses too
        return meeting, surface, gap

    def _no_safe_sample(
        self,
        obstacles: np.ndarray,
        goal_x: float,
        goal_y: float,
        goal_distance: float,
        total: int,
    ) -> DwaResult:
        """Stop; turn on the spot toward the goal when nothing touches the footprint."""
        cfg = self.config
        nearest = (
            float(np.min(np.hypot(obstacles[:, 0], obstacles[:, 1])))
            if obstacles.shape[0]
            else math.inf
        )
        # A circular footprint sweeps no new area while rotating: safe unless in contact.
        contact_radius = cfg.footprint_radius + cfg.point_resolution / math.sqrt(2.0)
        can_rotate = nearest > contact_radius and goal_distance > 0.0
        if can_rotate:
            direction = 1.0 if math.atan2(goal_y, goal_x) >= 0.0 else -1.0
            limit = cfg.max_angular_velocity if direction > 0 else -cfg.min_angular_velocity
            turn_rate = min(limit, cfg.max_angular_accel * cfg.control_period)
            angular, reason = direction * turn_rate, "no_safe_sample_rotate"
        else:
            angular, reason = 0.0, "no_safe_sample_stop"
        return DwaResult(
            linear=0.0,
            angular=angular,
            reason=reason,
            safe_samples=0,
            total_samples=total,
            score=math.nan,
            min_clearance=nearest - cfg.collision_radius,
            points_used=int(obstacles.shape[0]),
        )
