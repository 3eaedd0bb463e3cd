"""The DAgger expert: the evaluation's DWA baseline with its own clearance (no rclpy).

The expert is `controllers.DwaController` (the hybrid fallback's DWA guided by its
navigation grid, configured from the deployed YAML) on the same scan and odometry the
policy sees, with a safety margin of its own; optionally privileged (it knows the moving
obstacles' true motion, which the student never sees). Its (v, w) becomes the learner's
label through `expert_label`.
"""

from __future__ import annotations

import math

import numpy as np

from rl_policy_node.action_scaling import velocity_to_action
from rl_policy_node.policy_card import ActionSpec
from rl_training.controllers import DwaController, scan_points
from rl_training.nav_env import NavEnv


def expert_label(linear: float, angular: float, spec: ActionSpec) -> np.ndarray:
    """The [-1, 1] action standing for the expert's (v, w), clipped to the card's range."""
    return velocity_to_action(linear, angular, spec).astype(np.float32)


def moving_in_base_frame(moving: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    """World-frame moving obstacles (x, y, vx, vy, radius) in the frame of a base at `pose`."""
    rows = np.asarray(moving, dtype=np.float64).reshape(-1, 5)
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = rows[:, 0] - x, rows[:, 1] - y
    return np.column_stack(
        (
            c * dx + s * dy,
            -s * dx + c * dy,
            c * rows[:, 2] + s * rows[:, 3],
            -s * rows[:, 2] + c * rows[:, 3],
            rows[:, 4],
        )
    )


def without_moving_points(points: np.ndarray, moving: np.ndarray, margin: float) -> np.ndarray:
    """Scan points (base frame) that are not on a moving obstacle (within radius + margin)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(moving) or not len(pts):
        return pts
    dist = np.hypot(pts[:, None, 0] - moving[None, :, 0], pts[:, None, 1] - moving[None, :, 1])
    return pts[(dist > moving[None, :, 4] + margin).all(axis=1)]


class ExpertDwa(DwaController):
    """The evaluation's DWA baseline with its own clearance to obstacles (the expert).

    A margin at least the safety filter's keeps the demonstrated paths outside the zone where
    the deployed filter brakes (the hybrid fallback's ``safety_margin`` parameter, over the
    deployed YAML). With `privileged` the expert also knows where the moving obstacles are
    and how they move (simulator ground truth, which the student never sees): it plans
    against their predicted positions instead of their scan points.
    """

    name = "expert_dwa"
    MOVING_POINT_MARGIN = 0.06  # m around a moving obstacle whose scan points are its own
    # m/s^2, rad/s^2 that reach any velocity in one control period (PretrainConfig's
    # expert_free_window): top speed 0.22 m/s and +-2 rad/s within 0.05 s
    FREE_WINDOW_ACCEL = [10.0, 100.0]

    def __init__(
        self, safety_margin: float, privileged: bool = False, free_window: bool = False
    ) -> None:
        overrides: dict[str, object] = {"safety_margin": safety_margin}
        if free_window:
            overrides["max_accel"] = list(self.FREE_WINDOW_ACCEL)
        super().__init__(overrides=overrides)
        self.safety_margin = safety_margin
        self.privileged = privileged
        self.free_window = free_window

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The DWA's (v, w); when privileged, planned against the movers' true motion."""
        movers = env.sim.moving_obstacles() if self.privileged else np.zeros((0, 5))
        if not len(movers):
            return super().command(env, observation)
        if self.guided is None:
            raise RuntimeError("ExpertDwa.reset(env) first")
        odom = env.sim.odometry()
        moving = moving_in_base_frame(movers, env.sim.pose)
        points = without_moving_points(scan_points(env).points, moving, self.MOVING_POINT_MARGIN)
        pose = (odom.x, odom.y, odom.yaw)
        result = self.guided.compute(
            points,
            pose,
            env.task.goal,
            (odom.v, odom.w),
            env.sim.time,
            moving=moving,
            **self.scan_origin(env, pose),
        )
        return result.linear, result.angular, False
