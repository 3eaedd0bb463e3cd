"""The controllers evaluation runs: the learned policy, the safety filter, the DWA (no rclpy).

Each turns the env's current observation and sensors into a (v, w) command:

- `LearnedPolicyController`: the exported policy alone (its [-1, 1] output scaled by the
  card);
- `SafetyFilteredController`: another controller's command through the safety filter
  core (`safety_controller.safety_filter.SafetyFilter`), configured as deployed;
- `DwaController`: the hybrid fallback's controller (DWA guided by its navigation grid),
  configured as deployed, on the same scan and odometry;
- `StackController`: the deployed stack in-process: the policy, the hybrid arbiter
  (`hybrid_fallback.supervisor.HybridSupervisor`) with its DWA fallback, and the safety
  filter, wired as their nodes are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_fallback.arbiter import Decision, Mode
from hybrid_fallback.fallback import FallbackController
from hybrid_fallback.hybrid_config import HybridConfig, fallback_controller
from hybrid_fallback.supervisor import HybridSupervisor
from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.policy_loader import LoadedPolicy
from rl_training.deployed_cores import deployed_hybrid_config, deployed_safety_config
from rl_training.nav_env import NavEnv
from rlguard_common.geometry import quaternion_from_yaw
from safety_controller.safety_filter import (
    SAFETY_REASONS,
    FilterOutput,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import ScanPoints, scan_to_points
from sim_bringup.goal_schedule import GOAL_REISSUE_DRIFT, goal_in_odom, world_point_in_odom


@dataclass
class ModeAccount:
    """One episode of an arbiter: the seconds each mode drove and the hand-overs."""

    seconds: dict[str, float] = field(default_factory=dict)  # Mode value -> s it drove
    handovers: int = 0

    def fractions(self) -> dict[str, float]:
        """The fraction of the episode's time each mode drove (empty before any step)."""
        total = sum(self.seconds.values())
        if total <= 0.0:
            return {}
        return {mode: seconds / total for mode, seconds in self.seconds.items()}


class Controller:
    """Turns the env's current observation and sensors into a (v, w) command."""

    name = "controller"
    last_action: np.ndarray | None = None  # the policy output fed back as previous action
    last_step: dict[str, Any] | None = None  # what the last command was made of (optional)
    mode_account: ModeAccount | None = None  # the episode's arbiter modes (arbitrated only)

    def reset(self, env: NavEnv) -> None:
        """Start of an episode."""

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """(v, w, intervened) for this control step."""
        raise NotImplementedError


def env_key(env: NavEnv) -> tuple[Any, ...]:
    """What a deployed core config depends on: robot profile, card action range, period."""
    return (env.robot.name, env.card.action, env.dt)


def scan_points(env: NavEnv) -> ScanPoints:
    """The env's latest scan as obstacle points in the base frame."""
    scan = env.scan
    return scan_to_points(
        scan.ranges,
        scan.angle_min,
        scan.angle_increment,
        scan.range_min,
        scan.range_max,
        env.lidar_mount,
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
        self.last_output: FilterOutput | None = None  # the filter's last step
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
        self.last_output = None
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
        self.last_output = out
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
        self._scan_stamp: float | None = None  # the env's scan last named to the fallback
        self._scan_pose: tuple[float, float, float] | None = None  # the odometry it came with

    def reset(self, env: NavEnv) -> None:
        """A fresh fallback controller for the env's robot and velocity range."""
        key = env_key(env)
        if key not in self._deployed:
            self._deployed[key] = deployed_hybrid_config(env, self.hybrid_yaml, self.overrides)
        self.config = self._deployed[key]
        self.guided = fallback_controller(self.config)
        self.guided.reset()
        self._scan_stamp = None
        self._scan_pose = None

    @property
    def kind(self) -> str:
        """Which baseline runs: "dwa+grid" (grid guidance on) or "dwa"."""
        if self.config is None:
            raise RuntimeError("DwaController.reset(env) first")
        return baseline_kind(self.config)

    def scan_origin(self, env: NavEnv, pose: tuple[float, float, float]) -> dict[str, Any]:
        """`scan_id` and `scan_pose` of the env's scan for `FallbackController.compute`: a
        scan is new at the step it was taken, so `pose` (this step's odometry) is its own."""
        if env.scan.stamp != self._scan_stamp:
            self._scan_stamp, self._scan_pose = env.scan.stamp, pose
        return {"scan_id": self._scan_stamp, "scan_pose": self._scan_pose}

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The baseline's choice toward the goal (goal taken in the odometry frame)."""
        if self.guided is None:
            raise RuntimeError("DwaController.reset(env) first")
        odom = env.sim.odometry()
        pose = (odom.x, odom.y, odom.yaw)
        result = self.guided.compute(
            scan_points(env).points,
            pose,
            env.task.goal,
            (odom.v, odom.w),
            env.sim.time,
            **self.scan_origin(env, pose),
        )
        return result.linear, result.angular, False


class StackController(Controller):
    """The deployed stack in-process: policy -> hybrid arbiter (+ DWA) -> safety filter.

    Every control step is wired as the nodes are: the policy (`policy`, e.g. a
    `LearnedPolicyController`) computes its command as the policy node does at its rate; a
    non-finite output is no command and `policy/active` false, otherwise it is active
    (it has the episode's goal; episodes end before its goal tolerance). The
    `HybridSupervisor` then receives the policy's command and activity, a new scan (its
    LaserScan fields), the odometry (pose with its yaw as a quaternion, velocities) and the
    filter's `safety/scale` of the previous step, steps, and its command goes through the
    safety filter (`SafetyFilteredController.filtered`). The policy's previous action is its
    own last output (zero after a tick without one), as the policy node feeds back.

    Configured as deployed: the supervisor from `deployed_hybrid_config` (of `hybrid_yaml`,
    default the workspace's config/hybrid_fallback.yaml), the filter from
    `deployed_safety_config` (of `safety_yaml`) unless `safety_config` is given; a fresh
    supervisor and filter per episode, the goal given in the odometry frame.

    `mode_account` holds the episode's seconds per arbiter mode (each step's mode for the
    control period its command drives) and its hand-overs: the mode switches into or out
    of POLICY after the episode's first decision (which only picks who starts).
    """

    name = "stack"

    def __init__(
        self,
        policy: Controller,
        hybrid_yaml: str | Path | None = None,
        safety_config: SafetyConfig | None = None,
        safety_yaml: str | Path | None = None,
    ) -> None:
        self.policy = policy
        self.hybrid_yaml = hybrid_yaml
        self.safety = SafetyFilteredController(
            policy, config=safety_config, safety_yaml=safety_yaml
        )
        self._deployed: dict[tuple[Any, ...], HybridConfig] = {}  # per `env_key`
        self.supervisor: HybridSupervisor | None = None
        self._scan_stamp: float | None = None
        self._scale: tuple[float, float] | None = None  # (time, scale) of the last filter step
        self._decisions = 0
        self._goal_sent: tuple[float, float] | None = None  # odom coordinates last sent

    def reset(self, env: NavEnv) -> None:
        """A fresh supervisor (with the episode's goal) and filter; the policy is reset."""
        self.safety.reset(env)
        key = env_key(env)
        if key not in self._deployed:
            self._deployed[key] = deployed_hybrid_config(env, self.hybrid_yaml)
        config = self._deployed[key]
        self.supervisor = HybridSupervisor(config, now=env.sim.time)
        self._goal_sent = None
        self._send_goal(env)
        self.mode_account = ModeAccount()
        self._scan_stamp = None
        self._scale = None
        self._decisions = 0

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The stack's command: the arbiter's pick through the filter, and whether the
        filter intervened for safety."""
        supervisor, account = self.supervisor, self.mode_account
        if supervisor is None or account is None:
            raise RuntimeError("StackController.reset(env) first")
        now = env.sim.time
        request = self._policy_tick(env, observation)
        if request is not None:
            supervisor.receive_policy_cmd(request[0], request[1], now)
        supervisor.receive_policy_active(request is not None)
        odom = env.sim.odometry()
        supervisor.receive_odom(
            (odom.x, odom.y), quaternion_from_yaw(odom.yaw), (odom.v, odom.w), now
        )
        scan = env.scan
        if scan.stamp != self._scan_stamp:  # a new scan, as the node receives it
            self._scan_stamp = scan.stamp
            supervisor.receive_scan(
                scan.ranges,
                scan.angle_min,
                scan.angle_increment,
                scan.range_min,
                scan.range_max,
                now,
            )
        self._send_goal(env)
        if self._scale is not None:  # published by the filter as it sent the last command
            supervisor.receive_safety_scale(self._scale[1], self._scale[0])
        decision = supervisor.step(now)
        self._count(decision, env.dt)
        v, w, intervened = self.safety.filtered(env, *supervisor.command(decision, now))
        supervisor.update_route(now)  # after the command, as the node does
        assert self.safety.last_output is not None
        self._scale = (now, self.safety.last_output.scale)
        self.last_step = {
            "mode": decision.mode.value,
            "policy": None if request is None else [float(request[0]), float(request[1])],
            **(self.safety.last_step or {}),
        }
        return v, w, intervened

    def _send_goal(self, env: NavEnv) -> None:
        """The task's goal in the odom frame, as the simulator node hands it to the stack:
        re-expressed (a correction of the same goal) once odometry has drifted more than
        `GOAL_REISSUE_DRIFT` from it, so an episode does not end idle at the odom goal
        while the true goal is outside its tolerance."""
        assert self.supervisor is not None
        odom = env.sim.odometry()
        in_odom = world_point_in_odom(env.task.goal, env.sim.pose, (odom.x, odom.y, odom.yaw))
        sent = goal_in_odom(self._goal_sent, in_odom, GOAL_REISSUE_DRIFT)
        if sent != self._goal_sent:
            self.supervisor.receive_goal(self.supervisor.config.odom_frame_id, *sent)
            self._goal_sent = sent

    def _policy_tick(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float] | None:
        """The policy node's tick: its command, or None when it publishes none (inactive)."""
        try:
            v, w, _ = self.policy.command(env, observation)
        except ValueError:  # a non-finite output (`action_to_velocity`): never a command
            v = w = math.nan
        if not (math.isfinite(v) and math.isfinite(w)):
            # No command, policy/active false; the next active tick starts from a zero
            # previous action.
            self.last_action = np.zeros(2)
            return None
        self.last_action = self.policy.last_action
        return v, w

    def _count(self, decision: Decision, period: float) -> None:
        """Book the control period to the decision's mode; count a hand-over."""
        account = self.mode_account
        assert account is not None
        mode = decision.mode.value
        account.seconds[mode] = account.seconds.get(mode, 0.0) + period
        if (
            decision.switched
            and self._decisions > 0
            and Mode.POLICY in (decision.mode, decision.previous)
        ):
            account.handovers += 1
        self._decisions += 1


def baseline_kind(config: HybridConfig) -> str:
    """The baseline's name: "dwa+grid" when the navigation grid guides the DWA, else "dwa"."""
    return "dwa+grid" if config.guidance.enabled else "dwa"
