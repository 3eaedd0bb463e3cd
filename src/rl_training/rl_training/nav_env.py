"""Gymnasium environment: goal navigation on the embedded simulator core (no rclpy).

The observation is the vector `rl_policy_node.observation.ObservationBuilder` builds for
the training card, from the simulated scan (refreshed at the lidar's rate, as the live
topic is) and the wheel odometry (as the deployed node sees `odom`); the action is the
policy's [-1, 1]^2 output, turned into (v, w) by the shared `action_to_velocity`. So an
observation is computed by the same function here and on the robot.

With `goal_source: grid_waypoint` the goal terms describe a waypoint on the deployed hybrid
fallback's navigation grid (`rl_policy_node.goal_source.GridWaypointSource`, fed each new
scan once with the odometry pose, as the policy node feeds it); reward, success and the
episode's end stay on the true goal.

Every episode is one `Task` (worlds.py): a curriculum-stage generated world, or a leg of
a shipped world, with domain randomization of the simulator on. Episodes end on reaching
the goal (success), on a collision (terminated), or at the task's time limit (truncated).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import gymnasium as gym
import numpy as np

from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.goal_source import goal_input, goal_source_for
from rl_policy_node.observation import ObservationBuilder, ScanInput
from rl_policy_node.policy_card import (
    GOAL_SOURCE_GRID_WAYPOINT,
    GOAL_SOURCES,
    ActionSpec,
    GoalSpec,
    ObservationSpec,
    PolicyCard,
    ScanSpec,
    VelocitySpec,
)
from rl_policy_node.transition_record import closest_return
from rl_training.deployed_cores import deployed_navigation
from rl_training.mover_scenes import FAMILIES as MOVER_FAMILIES
from rl_training.mover_scenes import family_task
from rl_training.reward import RewardConfig, StepOutcome, reward_terms
from rl_training.world_families import STATIC_FAMILIES, static_task
from rl_training.worlds import STAGE_NAMES, Task, TaskSettings, generated_task, shipped_task
from rlguard_common.profile_yaml import ProfileError
from rlguard_common.robot_profile import RobotProfile, load_robot_profile
from rlguard_common.scan_validity import validate_scan
from rlguard_common.world import World, load_world
from safety_controller.scan_geometry import LidarMount
from sim_bringup.sim_core import ScanData, Simulator

SHIPPED_TRAINING_WORLDS = ("corridor", "warehouse", "dynamic")


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines the environment (and the card of a policy trained in it)."""

    robot: str = "default"
    control_rate_hz: float = 20.0
    scan_sectors: int = 36
    scan_field_of_view_deg: float = 360.0
    scan_range_cap: float = 3.5
    goal_distance_cap: float = 5.0
    # What the goal terms describe: "goal" (the goal itself) or "grid_waypoint" (a point
    # down the deployed fallback's grid path, the grid built from the robot's profile).
    goal_source: str = "goal"
    waypoint_lookahead: float | None = None  # m; None: the deployed fallback's lookahead
    waypoint_replan_period: float | None = None  # s; None: the fallback's replan_period
    previous_action: bool = True
    velocity: bool = True  # measured linear and angular velocity are part of each frame
    history_length: int = 1
    history_stride: int = 1  # control steps between stacked frames
    linear_velocity: tuple[float, float] = (0.0, 0.22)  # m/s at action -1 and +1
    angular_velocity: tuple[float, float] = (-2.0, 2.0)  # rad/s at action -1 and +1
    randomize: bool = True
    stage: int = 0  # curriculum stage; the training callback raises it
    shipped_worlds: tuple[str, ...] = SHIPPED_TRAINING_WORLDS
    shipped_fraction: float = 0.3  # chance of a shipped-world leg once stage >= 2
    lower_stage_fraction: float = 0.3  # chance of an easier stage's world (no forgetting)
    # Procedural families (`world_families`, `mover_scenes`) drawn from stage 2 on (moving
    # ones from stage 3), each episode with this chance; evaluation uses other seeds.
    families: tuple[str, ...] = ()
    family_fraction: float = 0.0
    reward: RewardConfig = field(default_factory=RewardConfig)
    tasks: TaskSettings = field(default_factory=TaskSettings)

    def __post_init__(self) -> None:
        if self.goal_source not in GOAL_SOURCES:
            raise ValueError(
                f"goal_source must be one of {', '.join(GOAL_SOURCES)}, got {self.goal_source!r}"
            )
        waypoint = (self.waypoint_lookahead, self.waypoint_replan_period)
        if self.goal_source != GOAL_SOURCE_GRID_WAYPOINT and waypoint != (None, None):
            raise ValueError(f"waypoint settings need goal_source {GOAL_SOURCE_GRID_WAYPOINT!r}")
        unknown = sorted(set(self.families) - set(STATIC_FAMILIES) - set(MOVER_FAMILIES))
        if unknown:
            raise ValueError(f"unknown families: {', '.join(unknown)}")
        if not 0.0 <= self.family_fraction <= 1.0:
            raise ValueError("family_fraction must be in [0, 1]")

    @staticmethod
    def from_mapping(data: Mapping[str, Any] | None) -> EnvConfig:
        """An env config from YAML data (nested `reward` and `tasks` sections)."""
        data = dict(data or {})
        known = {f.name for f in fields(EnvConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown env setting(s): {', '.join(unknown)}")
        reward = RewardConfig.from_mapping(data.pop("reward", None))
        task_data = dict(data.pop("tasks", None) or {})
        task_known = {f.name for f in fields(TaskSettings)}
        bad = sorted(set(task_data) - task_known)
        if bad:
            raise ValueError(f"unknown task setting(s): {', '.join(bad)}")
        tasks = TaskSettings(**{k: float(v) for k, v in task_data.items()})
        for key in ("linear_velocity", "angular_velocity"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        for key in ("shipped_worlds", "families"):
            if key in data:
                data[key] = tuple(data[key])
        return EnvConfig(**data, reward=reward, tasks=tasks)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the card and the run directory)."""
        data = asdict(self)
        data["linear_velocity"] = list(self.linear_velocity)
        data["angular_velocity"] = list(self.angular_velocity)
        data["shipped_worlds"] = list(self.shipped_worlds)
        data["families"] = list(self.families)
        return data

    def goal_spec(self, robot: RobotProfile) -> GoalSpec:
        """The card's goal encoding; a grid waypoint's grid and defaults are the deployed
        hybrid fallback's for `robot` (`deployed_cores.deployed_navigation`)."""
        if self.goal_source != GOAL_SOURCE_GRID_WAYPOINT:
            return GoalSpec(distance_cap=self.goal_distance_cap)
        grid, guidance = deployed_navigation(robot)
        lookahead, period = self.waypoint_lookahead, self.waypoint_replan_period
        return GoalSpec(
            distance_cap=self.goal_distance_cap,
            source=self.goal_source,
            lookahead=guidance.lookahead if lookahead is None else float(lookahead),
            replan_period=guidance.replan_period if period is None else float(period),
            grid=grid,
        )

    def observation_spec(self, robot: RobotProfile) -> ObservationSpec:
        """The card's observation layout for this config."""
        return ObservationSpec(
            scan=ScanSpec(
                sectors=self.scan_sectors,
                field_of_view_deg=self.scan_field_of_view_deg,
                range_cap=self.scan_range_cap,
                reduction="min",
            ),
            goal=self.goal_spec(robot),
            velocity=VelocitySpec(
                linear_scale=robot.max_linear_velocity, angular_scale=robot.max_angular_velocity
            )
            if self.velocity
            else None,
            previous_action=self.previous_action,
            history_length=self.history_length,
            history_stride=self.history_stride,
        )

    def action_spec(self) -> ActionSpec:
        """The velocities the policy's -1 and +1 stand for."""
        return ActionSpec(linear=self.linear_velocity, angular=self.angular_velocity)

    def card(self, robot: RobotProfile, name: str = "nav_policy", version: str = "0") -> PolicyCard:
        """A policy card (without weights hash, training or evaluation data yet)."""
        return PolicyCard(
            name=name,
            version=version,
            observation=self.observation_spec(robot),
            action=self.action_spec(),
            control_rate_hz=self.control_rate_hz,
        )


def load_world_patiently(name: str, attempts: int = 5, wait: float = 1.0) -> World:
    """`load_world`, retried a few times: a long run must survive a world file mid-save."""
    for attempt in range(attempts):
        try:
            return load_world(name)
        except ProfileError:
            if attempt == attempts - 1:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")


def observation_bounds(spec: ObservationSpec) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of every value the builder can produce for `spec` (velocity terms: +-5)."""
    low = [np.zeros(spec.scan.sectors)]
    high = [np.ones(spec.scan.sectors)]
    capped = spec.goal.distance_cap is not None
    low.append(np.array([0.0, -1.0, -1.0]))
    high.append(np.array([1.0 if capped else np.inf, 1.0, 1.0]))
    if spec.velocity is not None:
        low.append(np.full(2, -5.0))
        high.append(np.full(2, 5.0))
    if spec.previous_action:
        low.append(-np.ones(2))
        high.append(np.ones(2))
    frame_low, frame_high = np.concatenate(low), np.concatenate(high)
    return (
        np.tile(frame_low, spec.history_length).astype(np.float32),
        np.tile(frame_high, spec.history_length).astype(np.float32),
    )


def scan_input(scan: ScanData) -> ScanInput:
    """The shared builder's scan input for a simulator scan."""
    return ScanInput(
        ranges=scan.ranges,
        angle_min=scan.angle_min,
        angle_increment=scan.angle_increment,
        range_min=scan.range_min,
        range_max=scan.range_max,
    )


def checked_scan(scan: ScanData, angle_max: float) -> ScanData:
    """`scan` if the one scan validator accepts it, else ValueError naming the broken rule.

    `angle_max` is what the sim node publishes with it (the lidar profile's last beam), so
    training sees exactly the scans the deployed nodes accept; a robot profile whose lidar
    gives scans the nodes would reject fails here, at once, instead of training on them.
    """
    reason = validate_scan(
        angle_min=float(scan.angle_min),
        angle_max=float(angle_max),
        angle_increment=float(scan.angle_increment),
        range_min=float(scan.range_min),
        range_max=float(scan.range_max),
        ranges_count=int(scan.ranges.size),
        stamp=float(scan.stamp),
    )
    if reason is not None:
        raise ValueError(f"the simulator's scan is invalid ({reason}): check the lidar profile")
    return scan


class NavEnv(gym.Env):
    """Goal navigation with the shared observation builder and action scaling."""

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None) -> None:
        super().__init__()
        self.config = config or EnvConfig()
        self.robot = load_robot_profile(self.config.robot)
        self.card = self.config.card(self.robot)
        self.dt = 1.0 / self.config.control_rate_hz
        self.builder = ObservationBuilder(self.card.observation)
        # The policy's grid waypoint source (None: its goal terms describe the goal).
        self.goal_source = goal_source_for(self.card.observation.goal)
        lidar = self.robot.lidar
        self.lidar_mount = LidarMount(lidar.mount_x, lidar.mount_y, lidar.mount_yaw)
        low, high = observation_bounds(self.card.observation)
        self.observation_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32)
        self.stage = int(self.config.stage)
        tasks = self.config.tasks
        if tasks.max_speed != max(abs(v) for v in self.config.linear_velocity):
            tasks = replace(tasks, max_speed=max(abs(v) for v in self.config.linear_velocity))
        self.task_settings = replace(tasks, footprint_radius=self.robot.footprint_radius)
        # Shipped worlds are read once, up front, so a file edited later cannot change a run.
        self._shipped: dict[str, World] = {
            name: load_world_patiently(name) for name in self.config.shipped_worlds
        }
        self._simulators: dict[str, Simulator] = {}
        self.sim: Simulator | None = None
        self.task: Task | None = None
        self._scan: ScanData | None = None
        self._scan_period = 1.0 / self.robot.lidar.rate_hz
        self._previous_action = np.zeros(2)
        self._distance = 0.0
        self._steps = 0

    # ------------------------------------------------------------------ curriculum

    def set_stage(self, stage: int) -> None:
        """Set the curriculum stage used for the next generated tasks."""
        self.stage = int(min(max(stage, 0), len(STAGE_NAMES) - 1))

    def _shipped_world(self, name: str) -> World:
        if name not in self._shipped:
            self._shipped[name] = load_world_patiently(name)
        return self._shipped[name]

    def sample_task(self) -> Task:
        """A task for the current stage (generated, or from stage 2 on a shipped leg or a
        procedural family's task)."""
        rng = self.np_random
        cfg = self.config
        families = [f for f in cfg.families if f in STATIC_FAMILIES or self.stage >= 3]
        if self.stage >= 2 and families and rng.random() < cfg.family_fraction:
            family = families[int(rng.integers(len(families)))]
            if family in STATIC_FAMILIES:
                return static_task(family, rng, self.task_settings)
            return family_task(family, rng, self.task_settings)
        shipped = [n for n in cfg.shipped_worlds if n != "dynamic" or self.stage >= 3]
        if self.stage >= 2 and shipped and rng.random() < cfg.shipped_fraction:
            world = self._shipped_world(shipped[int(rng.integers(len(shipped)))])
            return shipped_task(world, int(rng.integers(len(world.goals))), rng, self.task_settings)
        stage = self.stage
        if stage > 0 and rng.random() < cfg.lower_stage_fraction:
            stage = int(rng.integers(0, stage))
        return generated_task(stage, rng, self.task_settings)

    # ------------------------------------------------------------------ gym API

    def _simulator_for(self, world: World) -> Simulator:
        if world.source == "generated":
            return Simulator(self.robot, world, seed=0, randomize=self.config.randomize)
        key = world.source or world.name
        if key not in self._simulators:
            self._simulators[key] = Simulator(
                self.robot, world, seed=0, randomize=self.config.randomize
            )
        return self._simulators[key]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; `options={"task": Task}` runs that task instead of sampling."""
        super().reset(seed=seed)
        options = options or {}
        task = options.get("task") or self.sample_task()
        self.task = task
        self.sim = self._simulator_for(task.world)
        self.sim.reset(seed=int(self.np_random.integers(0, 2**31 - 1)), start=task.start)
        self.builder.reset()
        if self.goal_source is not None:
            self.goal_source.reset()
        self._previous_action = np.zeros(2)
        self._steps = 0
        self._scan = checked_scan(self.sim.scan(), self.robot.lidar.angle_max)
        self._distance = self.goal_distance()
        return self._observation(), self._info(False, False, False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a [-1, 1]^2 action for one control period."""
        applied = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        v, w = action_to_velocity(applied, self.card.action)
        return self._advance(v, w, applied)

    def step_velocity(
        self, v: float, w: float, policy_action: np.ndarray | None = None
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a (v, w) command directly (for the safety filter and the DWA baseline).

        `policy_action` is what the policy output this step (the previous action of the
        next observation, as the deployed node feeds back its own output even when the
        safety filter changed the command); by default the command's own action.
        """
        if policy_action is None:
            applied = velocity_to_action(v, w, self.card.action)
        else:
            applied = np.clip(np.asarray(policy_action, dtype=np.float64).reshape(2), -1.0, 1.0)
        return self._advance(v, w, applied)

    def _advance(
        self, v: float, w: float, applied: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.sim is not None and self.task is not None, "call reset() first"
        sim = self.sim
        sim.step(v, w, self.dt)
        self._steps += 1
        if sim.time + 1e-9 >= self._scan.stamp + self._scan_period:
            self._scan = checked_scan(sim.scan(), self.robot.lidar.angle_max)
        distance = self.goal_distance()
        collided = sim.collision_count > 0
        reached = distance <= self.task.tolerance and not collided
        timeout = sim.time >= self.task.time_limit - 1e-9
        outcome = StepOutcome(
            previous_distance=self._distance,
            distance=distance,
            action=tuple(applied),
            previous_action=tuple(self._previous_action),
            collided=collided,
            reached=reached,
            clearance=closest_return(self._scan.ranges, self._scan.range_min)
            - self.robot.footprint_radius,
        )
        terms = reward_terms(outcome, self.config.reward)
        self._distance = distance
        self._previous_action = applied.copy()
        terminated = collided or reached
        truncated = timeout and not terminated
        info = self._info(reached, collided, truncated)
        info["reward_terms"] = terms
        info["command"] = (float(v), float(w))
        return self._observation(), float(sum(terms.values())), terminated, truncated, info

    # ------------------------------------------------------------------ helpers

    def goal_distance(self) -> float:
        """True distance (m) from the robot to the goal."""
        x, y, _ = self.sim.pose
        return math.hypot(self.task.goal[0] - x, self.task.goal[1] - y)

    @property
    def scan(self) -> ScanData:
        """The latest scan the policy has seen."""
        return self._scan

    @property
    def previous_action(self) -> np.ndarray:
        """The last applied [-1, 1] action."""
        return self._previous_action.copy()

    def goal_point(self) -> tuple[float, float]:
        """The point the observation's goal terms describe now (odom frame): the goal, or
        the grid waypoint after feeding the source the latest scan (once per scan)."""
        odom = self.sim.odometry()
        pose = (odom.x, odom.y, odom.yaw)
        source = self.goal_source
        if source is not None:
            scan = self._scan
            source.feed_scan(scan_input(scan), scan.stamp, self.lidar_mount, pose, self.sim.time)
        return goal_input(source, self.task.goal, pose, self.sim.time)

    def _observation(self) -> np.ndarray:
        target = self.goal_point()
        odom = self.sim.odometry()
        return self.builder.build(
            scan_input(self._scan),
            (odom.x, odom.y, odom.yaw),
            (odom.v, odom.w),
            target,
            self._previous_action,
        )

    def _info(self, reached: bool, collided: bool, timeout: bool) -> dict[str, Any]:
        return {
            "is_success": bool(reached),
            "collision": bool(collided),
            "timeout": bool(timeout),
            "distance": float(self._distance),
            "time": float(self.sim.time),
            "task": self.task.label,
            "stage": self.stage,
        }


def make_env(
    config: EnvConfig | Mapping[str, Any] | None = None, seed: int | None = None
) -> NavEnv:
    """A `NavEnv` from a config (or its mapping), seeded when `seed` is given."""
    env_config = config if isinstance(config, EnvConfig) else EnvConfig.from_mapping(config)
    env = NavEnv(env_config)
    if seed is not None:
        env.reset(seed=seed)
    return env


def tasks_for_world(
    name: str, episodes: int, seed: int, settings: TaskSettings, stage: int = 3
) -> list[Task]:
    """`episodes` reproducible tasks on a shipped world (its legs in turn) or generated ones.

    `name` "generated" makes generated worlds of `stage`; anything else is a shipped world.
    """
    tasks = []
    world = None if name == "generated" else load_world(name)
    for episode in range(episodes):
        rng = np.random.default_rng([seed, episode])
        if world is None:
            tasks.append(generated_task(stage, rng, settings))
        else:
            tasks.append(shipped_task(world, episode, rng, settings))
    return tasks
