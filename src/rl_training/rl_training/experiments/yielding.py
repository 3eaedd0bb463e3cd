"""Experiment: yielding to moving obstacles whose motion is known ahead (an expert's rule).

Used only by the `nav_yield` training experiment (config/training/experiments/
nav_yield.yaml, ``pretrain: yield_to_moving: true``); the shipped policy's run does not
use it.

The DWA looks 1.5 s ahead and assumes constant velocities, so it drives into a crossing
lane just as a cylinder that is faster than the robot arrives there. An expert that knows
the simulator's moving obstacles (their closed waypoint loops) can do better: it predicts
where the robot will be if it follows its planned path, and where every moving obstacle
will be at the same instants. If the two meet within the horizon, it waits where it
stands (turning toward its path), provided nothing reaches it there; otherwise it leaves
the command to the DWA. These functions are pure (no rclpy, no simulator state);
`YieldingExpert` is the DAgger expert that applies them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rl_training.controllers import scan_points
from rl_training.expert import ExpertDwa
from rl_training.nav_env import NavEnv
from rlguard_common.world import MovingCylinder
from sim_bringup.movers import WaypointLoop


@dataclass(frozen=True)
class YieldConfig:
    """How far ahead and how cautiously the expert yields to moving obstacles."""

    horizon: float = 6.0  # s of look-ahead along the planned path
    wait_horizon: float = 10.0  # s a waiting spot must stay clear for
    time_step: float = 0.1  # s between the instants checked
    clearance: float = 0.1  # m kept between the footprint and a moving obstacle's surface
    cruise_speed: float = 0.2  # m/s assumed along the planned path
    turn_rate: float = 1.5  # rad/s assumed while turning onto the path
    wait_turn_gain: float = 2.0  # rad/s per rad of heading error while waiting or moving aside
    aside_distances: tuple[float, ...] = (0.35, 0.7)  # m, spots to move aside to
    aside_directions: int = 12  # spots per distance, evenly around the robot
    static_clearance: float = 0.05  # m between footprint and scan points on the way aside

    def instants(self, horizon: float) -> np.ndarray:
        """The look-ahead times (s from now) up to `horizon` that are checked."""
        count = int(math.floor(horizon / self.time_step + 1e-9)) + 1
        return np.arange(count, dtype=np.float64) * self.time_step


class MoverForecast:
    """Positions of a world's moving cylinders at any time (they loop from t = 0)."""

    def __init__(self, movers: Sequence[MovingCylinder]) -> None:
        self.loops = [WaypointLoop(m.waypoints, m.speed) for m in movers]
        self.radii = np.asarray([m.radius for m in movers], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.loops)

    def positions(self, times: np.ndarray) -> np.ndarray:
        """(M, T, 2) positions of the M movers at the T absolute times."""
        if not self.loops:
            return np.zeros((0, len(times), 2))
        return np.stack([loop.positions(times) for loop in self.loops])


def point_ahead(points: np.ndarray, origin: np.ndarray, distance: float = 0.05) -> np.ndarray:
    """The first of `points` (K, 2) farther than `distance` from `origin`, else the last."""
    far = np.hypot(points[:, 0] - origin[0], points[:, 1] - origin[1]) > distance
    return points[int(np.argmax(far))] if far.any() else points[-1]


def _turn_toward(
    pose: tuple[float, float, float], target: np.ndarray, config: YieldConfig, max_angular: float
) -> tuple[float, float]:
    """(heading error to `target`, the turn rate that closes it) for a robot at `pose`."""
    error = math.remainder(math.atan2(target[1] - pose[1], target[0] - pose[0]) - pose[2], math.tau)
    return error, float(np.clip(config.wait_turn_gain * error, -max_angular, max_angular))


def path_schedule(
    path: np.ndarray, yaw: float, instants: np.ndarray, config: YieldConfig
) -> np.ndarray:
    """Where the robot is at each instant if it turns onto `path` and follows it.

    `path` (K, 2) starts at the robot; the robot first turns in place toward the first
    path point at least 5 cm away (at `turn_rate`), then moves along the polyline at
    `cruise_speed`, and stays at the path's end once there.
    """
    pts = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 2:
        return np.repeat(pts[:1], len(instants), axis=0)
    dx, dy = point_ahead(pts, pts[0]) - pts[0]
    error = abs(math.remainder(math.atan2(dy, dx) - yaw, math.tau))
    turn_time = error / config.turn_rate
    arc = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))))
    travelled = np.clip((instants - turn_time) * config.cruise_speed, 0.0, arc[-1])
    return np.column_stack(
        (np.interp(travelled, arc, pts[:, 0]), np.interp(travelled, arc, pts[:, 1]))
    )


def clearance_margin(
    robot_xy: np.ndarray,
    mover_xy: np.ndarray,
    mover_radii: np.ndarray,
    footprint_radius: float,
    clearance: float,
) -> float:
    """Smallest (distance - radii - clearance) between the robot and any mover (m).

    `robot_xy` (T, 2) and `mover_xy` (M, T, 2) at the same T instants; negative means the
    two come closer than `clearance` at some instant; +inf without movers.
    """
    if mover_xy.size == 0:
        return math.inf
    gap = np.hypot(mover_xy[..., 0] - robot_xy[None, :, 0], mover_xy[..., 1] - robot_xy[None, :, 1])
    needed = mover_radii[:, None] + footprint_radius + clearance
    return float((gap - needed).min())


@dataclass(frozen=True)
class YieldDecision:
    """What the rule says: go on with the planner, or wait/move aside with this command."""

    wait: bool
    linear: float = 0.0
    angular: float = 0.0
    go_margin: float = math.inf  # m, of following the path
    wait_margin: float = math.inf  # m, of the chosen waiting spot


def straight_schedule(
    pose: tuple[float, float, float], target: np.ndarray, instants: np.ndarray, config: YieldConfig
) -> np.ndarray:
    """Where the robot is if it turns toward `target`, drives there and stays."""
    path = np.array([[pose[0], pose[1]], target], dtype=np.float64)
    return path_schedule(path, pose[2], instants, config)


def aside_spots(pose: tuple[float, float, float], config: YieldConfig) -> np.ndarray:
    """Candidate waiting spots (N, 2): the robot's own position first, then spots around it."""
    spots = [(pose[0], pose[1])]
    for distance in config.aside_distances:
        for k in range(config.aside_directions):
            angle = pose[2] + math.tau * k / config.aside_directions
            spots.append(
                (pose[0] + distance * math.cos(angle), pose[1] + distance * math.sin(angle))
            )
    return np.asarray(spots, dtype=np.float64)


def segment_clear(start: np.ndarray, end: np.ndarray, obstacles: np.ndarray, radius: float) -> bool:
    """True when no obstacle point (N, 2) lies within `radius` of the segment start-end."""
    if not len(obstacles):
        return True
    d = end - start
    length_sq = float(d @ d)
    rel = obstacles - start
    u = np.clip(rel @ d / length_sq, 0.0, 1.0) if length_sq > 0.0 else np.zeros(len(rel))
    nearest = rel - u[:, None] * d
    return bool((np.hypot(nearest[:, 0], nearest[:, 1]) > radius).all())


def _steer(
    pose: tuple[float, float, float], target: np.ndarray, config: YieldConfig, max_angular: float
) -> tuple[float, float]:
    """Turn toward `target`; drive at cruise speed once roughly facing it."""
    if math.hypot(target[0] - pose[0], target[1] - pose[1]) < 0.05:
        return 0.0, 0.0
    error, angular = _turn_toward(pose, target, config, max_angular)
    linear = config.cruise_speed if abs(error) < 0.3 else 0.0
    return linear, angular


def decide(
    pose: tuple[float, float, float],
    path: np.ndarray | None,
    now: float,
    forecast: MoverForecast,
    footprint_radius: float,
    config: YieldConfig,
    max_angular: float,
    obstacles: np.ndarray | None = None,
) -> YieldDecision:
    """Go on when following `path` stays clear of every mover; else wait in a clear spot.

    The spot is the robot's own position when it stays clear for `wait_horizon`; else the
    nearest spot aside (reachable in a straight line past the `obstacles`, world-frame
    scan points) that does, or, when none does, the one that keeps the most distance.
    Without a path or movers the planner decides.
    """
    if path is None or not len(forecast):
        return YieldDecision(wait=False)
    x, y, yaw = pose
    go_instants = config.instants(config.horizon)
    going = path_schedule(path, yaw, go_instants, config)
    go_margin = clearance_margin(
        going,
        forecast.positions(now + go_instants),
        forecast.radii,
        footprint_radius,
        config.clearance,
    )
    if go_margin >= 0.0:
        return YieldDecision(wait=False, go_margin=go_margin)
    instants = config.instants(config.wait_horizon)
    movers = forecast.positions(now + instants)
    points = np.zeros((0, 2)) if obstacles is None else np.asarray(obstacles).reshape(-1, 2)
    here = np.array([x, y])
    spots = aside_spots(pose, config)
    best, best_margin = None, -math.inf  # index into spots (0: stay here) and its margin
    for index, spot in enumerate(spots):
        if index and not segment_clear(
            here, spot, points, footprint_radius + config.static_clearance
        ):
            continue
        schedule = straight_schedule(pose, spot, instants, config)
        margin = clearance_margin(
            schedule, movers, forecast.radii, footprint_radius, config.clearance
        )
        if margin >= 0.0:
            best, best_margin = index, margin
            break  # spots come nearest first
        if margin > best_margin:
            best, best_margin = index, margin
    if best is None or (best_margin < 0.0 and best_margin <= go_margin):
        return YieldDecision(wait=False, go_margin=go_margin, wait_margin=best_margin)
    if best == 0:  # wait here, turned toward the path
        target = point_ahead(np.asarray(path, dtype=np.float64).reshape(-1, 2), here)
        _, angular = _turn_toward(pose, target, config, max_angular)
        return YieldDecision(True, 0.0, angular, go_margin, best_margin)
    linear, angular = _steer(pose, spots[best], config, max_angular)
    return YieldDecision(True, linear, angular, go_margin, best_margin)


def frame_to_world(
    points: np.ndarray,
    frame_pose: tuple[float, float, float],
    true_pose: tuple[float, float, float],
) -> np.ndarray:
    """Points (N, 2) of a frame (odom; or the base, where the robot is at (0, 0, 0)) in the
    world frame, given the robot's pose in that frame and in the world."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    turn = true_pose[2] - frame_pose[2]
    c, s = math.cos(turn), math.sin(turn)
    rel = pts - (frame_pose[0], frame_pose[1])
    return np.column_stack(
        (c * rel[:, 0] - s * rel[:, 1] + true_pose[0], s * rel[:, 0] + c * rel[:, 1] + true_pose[1])
    )


class YieldingExpert(ExpertDwa):
    """The privileged DWA expert that also knows the moving obstacles' loops and waits clear
    of a lane it would otherwise share with one (`decide`); `waiting_steps` counts the
    steps it yielded."""

    name = "yielding_expert_dwa"

    def __init__(self, safety_margin: float, config: YieldConfig | None = None) -> None:
        super().__init__(safety_margin, privileged=True)
        self.yielding = config or YieldConfig()
        self.forecast: MoverForecast | None = None
        self.waiting_steps = 0

    def reset(self, env: NavEnv) -> None:
        """The DWA expert for the env, and the forecast of this task's moving obstacles."""
        super().reset(env)
        movers = env.task.world.moving_cylinders if env.task is not None else ()
        self.forecast = MoverForecast(movers)

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The expert's (v, w): the DWA's, or the yielding rule's while it waits."""
        v, w, intervened = super().command(env, observation)
        if not self.forecast or self.guided is None:
            return v, w, intervened
        odom = env.sim.odometry()
        path = self.guided.grid.path(
            (odom.x, odom.y), self.yielding.cruise_speed * self.yielding.horizon
        )
        true_pose = env.sim.pose
        odom_pose = (odom.x, odom.y, odom.yaw)
        base_points = scan_points(env).points
        decision = decide(
            true_pose,
            None if path is None else frame_to_world(path, odom_pose, true_pose),
            env.sim.time,
            self.forecast,
            env.robot.footprint_radius,
            self.yielding,
            self.guided.planner.config.max_angular_velocity,
            obstacles=frame_to_world(base_points, (0.0, 0.0, 0.0), true_pose),
        )
        if not decision.wait:
            return v, w, intervened
        self.waiting_steps += 1
        self.guided.hold()
        return decision.linear, decision.angular, False
