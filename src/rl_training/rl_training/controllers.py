"""The controllers evaluation runs: the learned policy, the safety filter, the DWA (no rclpy).

Each turns the env's current observation and sensors into a (v, w) command:

- `LearnedPolicyController`: the exported policy alone (its [-1, 1] output scaled by the
  card);
- `SafetyFilteredController`: another controller's command through the safety filter
  core (`safety_controller.safety_filter.SafetyFilter`), configured as deployed;
- `DwaController`: the hybrid fallback's controller (DWA guided by its navigation grid),
  configured as deployed, on the same scan and odometry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hybrid_fallback.fallback import FallbackController
from hybrid_fallback.hybrid_config import HybridConfig, fallback_controller
from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.policy_loader import LoadedPolicy
from rl_training.deployed_cores import deployed_hybrid_config, deployed_safety_config
from rl_training.nav_env import NavEnv
from rlguard_common.robot_profile import RobotProfile
from safety_controller.safety_filter import SAFETY_REASONS, SafetyConfig, SafetyFilter
from safety_controller.scan_geometry import LidarMount, ScanPoints, scan_to_points


class Controller:
    """Turns the env's current observation and sensors into a (v, w) command."""

    name = "controller"
    last_action: np.ndarray | None = None  # the policy output fed back as previous action
    last_step: dict[str, Any] | None = None  # what the last command was made of (optional)

    def reset(self, env: NavEnv) -> None:
        """Start of an episode."""

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """(v, w, intervened) for this control step."""
        raise NotImplementedError


def env_key(env: NavEnv) -> tuple[Any, ...]:
    """What a deployed core config depends on: robot profile, card action range, period."""
    return (env.robot.name, env.card.action, env.dt)


def lidar_mount(robot: RobotProfile) -> LidarMount:
    """Where the lidar sits on the base (for scan points in the base frame)."""
    return LidarMount(robot.lidar.mount_x, robot.lidar.mount_y, robot.lidar.mount_yaw)


def scan_points(env: NavEnv) -> ScanPoints:
    """The env's latest scan as obstacle points in the base frame."""
    scan = env.scan
    return scan_to_points(
        scan.ranges,
        scan.angle_min,
        scan.angle_increment,
        scan.range_min,
        scan.range_max,
        lidar_mount(env.robot),
    )


class LearnedPolicyController(Controller):
    """The learned policy alone."""

    name = "policy"

    def __init__(self, policy: LoadedPolicy) -> None:
        self.policy = policy

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The policy's command, scaled by its card."""
        action = self.policy(observation)
        v, w = action_to_velocity(action, self.policy.card.action)
        self.last_action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return v, w, False


class SafetyFilteredController(Controller):
    """Another controller's command through the safety filter core.

    Without an explicit `config` the filter is the deployed one (`deployed_safety_config`
    of `safety_yaml`, default the workspace's config/safety_controller.yaml).
    """

    name = "policy_safety"

    def __init__(
        self,
        inner: Controller,
        config: SafetyConfig | None = None,
        safety_yaml: str | Path | None = None,
    ) -> None:
        self.inner = inner
        self.config = config
        self.safety_yaml = safety_yaml
        self._deployed: dict[tuple[Any, ...], SafetyConfig] = {}  # per `env_key`
        self.filter: SafetyFilter | None = None
        self._scan_stamp: float | None = None

    def reset(self, env: NavEnv) -> None:
        """A fresh filter per episode (limits from the env's action range)."""
        self.inner.reset(env)
        config = self.config
        if config is None:
            key = env_key(env)
            if key not in self._deployed:
                self._deployed[key] = deployed_safety_config(env, self.safety_yaml)
            config = self._deployed[key]
        self.filter = SafetyFilter(config)
        self._scan_stamp = None

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The filtered command and whether the filter intervened for safety."""
        v, w, _ = self.inner.command(env, observation)
        self.last_action = self.inner.last_action
        return self.filtered(env, v, w)

    def filtered(self, env: NavEnv, v: float, w: float) -> tuple[float, float, bool]:
        """A (v, w) request through the filter now, with the env's scan and odometry."""
        if self.filter is None:
            raise RuntimeError("SafetyFilteredController.reset(env) first")
        now = env.sim.time
        odom = env.sim.odometry()
        if env.scan.stamp != self._scan_stamp:  # a new scan, as the node receives it
            self._scan_stamp = env.scan.stamp
            self.filter.set_scan(scan_points(env), now, env.scan.stamp)
        self.filter.set_odometry(odom.v, odom.w, now)
        self.filter.set_command(v, w, now)
        out = self.filter.step(now)
        self.last_step = {
            "request": [float(v), float(w)],
            "output": [float(out.linear), float(out.angular)],
            "state": out.state,
            "reasons": sorted(out.reasons),
            "min_clearance": float(out.min_clearance),
            "closing_speed": float(getattr(self.filter.status, "closing_speed", 0.0)),
        }
        return out.linear, out.angular, bool(out.reasons & SAFETY_REASONS)


class DwaController(Controller):
    """The hybrid fallback's controller (DWA guided by its navigation grid) as the baseline.

    Configured as deployed (`deployed_hybrid_config` of `hybrid_yaml`, default the
    workspace's config/hybrid_fallback.yaml, with `overrides` on top), on the same scan
    and odometry as the policy; a fresh controller per episode.
    """

    name = "dwa"

    def __init__(
        self,
        hybrid_yaml: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.hybrid_yaml = hybrid_yaml
        self.overrides = dict(overrides or {})
        self._deployed: dict[tuple[Any, ...], HybridConfig] = {}  # per `env_key`
        self.config: HybridConfig | None = None
        self.guided: FallbackController | None = None

    def reset(self, env: NavEnv) -> None:
        """A fresh fallback controller for the env's robot and velocity range."""
        key = env_key(env)
        if key not in self._deployed:
            self._deployed[key] = deployed_hybrid_config(env, self.hybrid_yaml, self.overrides)
        self.config = self._deployed[key]
        self.guided = fallback_controller(self.config)
        self.guided.reset()

    @property
    def kind(self) -> str:
        """Which baseline runs: "dwa+grid" (grid guidance on) or "dwa"."""
        if self.config is None:
            raise RuntimeError("DwaController.reset(env) first")
        return baseline_kind(self.config)

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The baseline's choice toward the goal (goal taken in the odometry frame)."""
        if self.guided is None:
            raise RuntimeError("DwaController.reset(env) first")
        odom = env.sim.odometry()
        result = self.guided.compute(
            scan_points(env).points,
            (odom.x, odom.y, odom.yaw),
            env.task.goal,
            (odom.v, odom.w),
            env.sim.time,
        )
        return result.linear, result.angular, False


def baseline_kind(config: HybridConfig) -> str:
    """The baseline's name: "dwa+grid" when the navigation grid guides the DWA, else "dwa"."""
    return "dwa+grid" if config.guidance.enabled else "dwa"
