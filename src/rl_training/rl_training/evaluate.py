"""Evaluate a policy file against the deployment gate, beside the DWA baseline (no rclpy).

Each world gets `episodes` held-out tasks (seeds disjoint from training's, randomization
on); every task is run by each controller mode on the same seed, so the numbers compare:

- ``policy``: the exported policy alone (its [-1, 1] output scaled by the card);
- ``policy_safety``: the policy's command through the safety filter core
  (`safety_controller.safety_filter.SafetyFilter`), as deployed;
- ``dwa``: the DWA core of `hybrid_fallback` on the same scan and odometry;
- ``dwa_safety``: the DWA's command through the same safety filter core.

The filter is configured as the safety node is: `config/safety_controller.yaml` (or the
file given) with the robot profile's overrides, built by the node's own
`safety_controller.node_config.build_safety_config`; only the velocity limits are the
policy card's action range.

Worlds are shipped world names, ``generated`` (clutter and moving-obstacle stages),
``generated_<stage>`` (one curriculum stage, e.g. ``generated_clutter``) and the
moving-obstacle families of `rl_training.mover_scenes` (``crossing``, ``headon``,
``overtaking``, ``movers``; held-out scene seeds `seed + episode`).

Per world and mode: success (with its Wilson 95 % interval), collision and timeout rates,
collisions split into at fault (the robot's own velocity had a component toward the
contact: `Simulator.at_fault_collision_count`) and not (hit while still or moving away),
mean time-to-goal and path length over successful episodes, command smoothness (mean
change of the normalized command per step), and the safety intervention rate (steps where
the filter overrode the request for safety). The gate: success >= the world's threshold
and no collision behind the safety filter, on every world.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.policy_loader import LoadedPolicy, load_policy, save_policy
from rl_training import workspace_root
from rl_training.mover_scenes import FAMILIES, scene_task
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.worlds import STAGE_NAMES, Task, TaskSettings, generated_task, shipped_task
from rlguard_common.robot_parameters import robot_parameter_overrides
from rlguard_common.robot_profile import RobotProfile
from rlguard_common.world import load_world
from safety_controller.footprint import Footprint
from safety_controller.limits import VelocityLimits
from safety_controller.safety_filter import SAFETY_REASONS, SafetyConfig, SafetyFilter
from safety_controller.scan_geometry import LidarMount, scan_to_points

MODES = ("policy", "policy_safety", "dwa", "dwa_safety")  # every mode there is
DEFAULT_MODES = ("policy", "policy_safety", "dwa")  # what runs unless asked for
DEFAULT_WORLDS = ("empty", "corridor", "warehouse", "dynamic", "generated")
DEFAULT_THRESHOLDS = {"dynamic": 0.85}
DEFAULT_SUCCESS_THRESHOLD = 0.95
STILL_SPEED = 0.02  # m/s: below this a collision counts as "hit while still"
CONTACT_STEPS = 6  # control steps before a collision kept in its episode's record
# Held-out evaluation seeds start here; training draws its seeds from its config seed.
EVALUATION_SEED = 900_000


@dataclass
class EpisodeResult:
    """One episode of one mode."""

    world: str
    task: str
    mode: str
    seed: int
    outcome: str  # success, collision, timeout
    time: float  # s of simulated time
    path_length: float  # m travelled (ground truth)
    smoothness: float  # mean |change of the normalized command| per step
    interventions: int  # steps the safety filter overrode for safety
    collision_speed: float  # m/s the robot was moving at when it collided (0: hit while still)
    steps: int
    min_time: float = 0.0  # s: the task's shortest path at top speed, a bound no mode can beat
    trajectory: list[tuple[float, float]] = field(default_factory=list)
    at_fault: bool = False  # a collision the robot drove into (see `Simulator`)
    # For a collision: the last control steps before it (time, request, output, filter
    # state and reasons, measured speed), to reproduce and explain it.
    contact: list[dict[str, Any]] = field(default_factory=list)


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


def robot_limits(env: NavEnv) -> VelocityLimits:
    """The safety filter's velocity limits for the env's action range."""
    action = env.card.action
    top_v = max(abs(v) for v in action.linear)
    top_w = max(abs(w) for w in action.angular)
    return VelocityLimits(max_velocity=(top_v, top_w), min_velocity=(-top_v, -top_w))


def default_safety_yaml() -> Path | None:
    """config/safety_controller.yaml of the workspace, or None when there is none."""
    path = workspace_root() / "config" / "safety_controller.yaml"
    return path if path.is_file() else None


def safety_parameters(robot: RobotProfile, path: str | Path | None = None) -> dict[str, Any]:
    """The safety node's parameters: the YAML's (`path`, default the workspace's) over its
    defaults, with the robot profile's overrides on top, as the stack launches it."""
    import yaml

    source = Path(path) if path is not None else default_safety_yaml()
    values: dict[str, Any] = {}
    if source is not None:
        data = yaml.safe_load(source.read_text())
        try:
            values = dict(data["safety_controller"]["ros__parameters"])
        except (TypeError, KeyError) as exc:
            raise ValueError(f"{source}: no 'safety_controller: ros__parameters:' mapping") from exc
    values.update(robot_parameter_overrides(robot)["safety_controller"])
    return values


def deployed_safety_config(env: NavEnv, path: str | Path | None = None) -> SafetyConfig:
    """The filter config the deployed safety node builds, with the card's velocity limits.

    Built by `safety_controller.node_config.build_safety_config` from `safety_parameters`;
    a safety_controller without that module (an older tree) gets the same values through
    the fields its `SafetyConfig` has.
    """
    values = safety_parameters(env.robot, path)
    card = robot_limits(env)
    values["max_velocity"] = list(card.max_velocity)
    values["min_velocity"] = list(card.min_velocity)
    try:
        from safety_controller.node_config import build_safety_config
    except ImportError:
        return _legacy_safety_config(values)
    return build_safety_config(values)[0]


def _legacy_safety_config(values: Mapping[str, Any]) -> SafetyConfig:
    """SafetyConfig from node parameters for a safety_controller without node_config."""
    pair_names = ("max_velocity", "min_velocity", "max_accel", "max_decel", "emergency_decel")
    limits = VelocityLimits(
        **{name: tuple(float(v) for v in values[name]) for name in pair_names if name in values}
    )
    footprint = Footprint(
        radius=float(values.get("robot_radius", 0.11)),
        margin=float(values.get("safety_margin", 0.05)),
    )
    period = 1.0 / float(values.get("publish_rate", 20.0))
    candidates = {
        "reaction_time": values.get("reaction_time"),
        "velocity_timeout": values.get("velocity_timeout"),
        "source_timeout": values.get("source_timeout"),
        "odom_timeout": values.get("odom_timeout"),
        "closed_loop": values.get("feedback", "CLOSED_LOOP") == "CLOSED_LOOP",
        "intervention_window": values.get("intervention_window"),
        "max_step": max(0.25, 2.0 * period),
        "allow_empty_scans": values.get("allow_empty_scans"),
        "memory_time": values.get("memory_time"),
        "max_obstacle_speed": values.get("max_obstacle_speed"),
    }
    known = {f.name for f in fields(SafetyConfig)}
    extra = {k: v for k, v in candidates.items() if k in known and v is not None}
    return SafetyConfig(limits=limits, footprint=footprint, **extra)


def lidar_mount(robot: RobotProfile) -> LidarMount:
    """Where the lidar sits on the base (for scan points in the base frame)."""
    return LidarMount(robot.lidar.mount_x, robot.lidar.mount_y, robot.lidar.mount_yaw)


def scan_points(env: NavEnv):  # noqa: ANN201 - safety_controller's ScanPoints
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


class PolicyController(Controller):
    """The policy alone."""

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
        self._deployed: dict[str, SafetyConfig] = {}  # per robot profile
        self.filter: SafetyFilter | None = None

    def reset(self, env: NavEnv) -> None:
        """A fresh filter per episode (limits from the env's action range)."""
        self.inner.reset(env)
        config = self.config
        if config is None:
            key = env.robot.name
            if key not in self._deployed:
                self._deployed[key] = deployed_safety_config(env, self.safety_yaml)
            config = self._deployed[key]
        self.filter = SafetyFilter(config)
        self._scan_stamp: float | None = None

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The filtered command and whether the filter intervened for safety."""
        v, w, _ = self.inner.command(env, observation)
        self.last_action = self.inner.last_action
        return self.filtered(env, v, w)

    def filtered(self, env: NavEnv, v: float, w: float) -> tuple[float, float, bool]:
        """A (v, w) request through the filter now, with the env's scan and odometry."""
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

    Uses `hybrid_fallback.fallback.FallbackController` when it is there, else the plain
    `DwaPlanner`; either way on the same scan and odometry as the policy.
    """

    name = "dwa"

    def __init__(self) -> None:
        self.planner = None
        self.guided = None

    def reset(self, env: NavEnv) -> None:
        """A planner with the robot's footprint and the policy's velocity range."""
        from hybrid_fallback.dwa import DwaConfig, DwaPlanner

        action = env.card.action
        config = DwaConfig(
            max_linear_velocity=max(action.linear),
            min_linear_velocity=max(min(action.linear), 0.0),
            max_angular_velocity=max(abs(w) for w in action.angular),
            control_period=env.dt,
            footprint_radius=env.robot.footprint_radius,
        )
        try:
            from hybrid_fallback.fallback import FallbackController
        except ImportError:
            self.guided = None
            self.planner = DwaPlanner(config)
            return
        self.guided = FallbackController(dwa=config)
        self.guided.reset()

    @property
    def kind(self) -> str:
        """Which baseline ran: "dwa+grid" (the hybrid fallback) or "dwa"."""
        return "dwa+grid" if self.guided is not None else "dwa"

    @staticmethod
    def kind_available() -> str:
        """The baseline `reset` will build: "dwa+grid" when the fallback module is there."""
        try:
            import hybrid_fallback.fallback  # noqa: F401
        except ImportError:
            return "dwa"
        return "dwa+grid"

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The baseline's choice toward the goal (goal taken in the odometry frame)."""
        odom = env.sim.odometry()
        points = scan_points(env).points
        if self.guided is not None:
            result = self.guided.compute(
                points, (odom.x, odom.y, odom.yaw), env.task.goal, (odom.v, odom.w), env.sim.time
            )
            return result.linear, result.angular, False
        dx, dy = env.task.goal[0] - odom.x, env.task.goal[1] - odom.y
        c, s = math.cos(odom.yaw), math.sin(odom.yaw)
        goal = (c * dx + s * dy, -s * dx + c * dy)
        result = self.planner.compute(points, goal, (odom.v, odom.w))
        return result.linear, result.angular, False


def run_episode(
    env: NavEnv, controller: Controller, task: Task, seed: int, mode: str, world: str
) -> EpisodeResult:
    """One episode of `task` with `controller`; the env's randomization is seeded by `seed`."""
    observation, _ = env.reset(seed=seed, options={"task": task})
    controller.reset(env)
    trajectory = [env.sim.pose[:2]]
    previous = np.zeros(2)
    change = 0.0
    interventions = 0
    steps = 0
    info: dict[str, Any] = {}
    recent: deque[dict[str, Any]] = deque(maxlen=CONTACT_STEPS)
    while True:
        controller.last_step = None
        measured = env.sim.velocity
        v, w, intervened = controller.command(env, observation)
        record = {"time": round(env.sim.time, 3), "command": [float(v), float(w)]}
        record["measured"] = [float(measured[0]), float(measured[1])]
        record.update(controller.last_step or {})
        recent.append(record)
        observation, _, terminated, truncated, info = env.step_velocity(
            v, w, controller.last_action
        )
        applied = velocity_to_action(v, w, env.card.action)
        change += float(np.linalg.norm(applied - previous)) if steps else 0.0
        previous = applied
        interventions += int(intervened)
        steps += 1
        trajectory.append(env.sim.pose[:2])
        if terminated or truncated:
            break
    path = np.asarray(trajectory)
    length = float(np.sum(np.hypot(np.diff(path[:, 0]), np.diff(path[:, 1]))))
    outcome = "success" if info["is_success"] else "collision" if info["collision"] else "timeout"
    at_fault = outcome == "collision" and env.sim.at_fault_collision_count > 0
    contact: list[dict[str, Any]] = []
    if outcome == "collision":
        x, y, yaw = env.sim.pose
        contact = [*recent, {"time": round(env.sim.time, 3), "pose": [x, y, yaw]}]
        contact[-1]["measured"] = list(env.sim.velocity)
        contact[-1]["movers"] = [list(p) for p in mover_positions(env)]
    return EpisodeResult(
        world=world,
        task=task.label,
        mode=mode,
        seed=seed,
        outcome=outcome,
        time=float(info["time"]),
        path_length=length,
        smoothness=change / max(steps - 1, 1),
        interventions=interventions,
        collision_speed=abs(env.sim.velocity[0]) if outcome == "collision" else 0.0,
        steps=steps,
        min_time=task.path_length / max(abs(v) for v in env.card.action.linear),
        trajectory=[(float(x), float(y)) for x, y in trajectory[:: max(1, len(trajectory) // 400)]],
        at_fault=at_fault,
        contact=contact,
    )


def mover_positions(env: NavEnv) -> list[tuple[float, float]]:
    """Where the world's moving cylinders are now (world frame)."""
    from sim_bringup.sim_core import WaypointLoop

    t = env.sim.time
    return [WaypointLoop(m.waypoints, m.speed).position(t) for m in env.task.world.moving_cylinders]


def evaluation_tasks(
    world: str, episodes: int, settings: TaskSettings, seed: int, max_time: float | None = None
) -> list[Task]:
    """Held-out tasks for a world name.

    "generated": clutter and moving-obstacle worlds in turn; "generated_<stage>": one
    curriculum stage (e.g. "generated_clutter"); a `mover_scenes` family name: its scenes
    of seeds `seed + episode`; anything else: a shipped world's legs. `max_time` caps each
    task's time limit (s), for quick checks.
    """
    tasks = []
    stage = None
    if world.startswith("generated_"):
        name = world.removeprefix("generated_")
        if name not in STAGE_NAMES:
            raise ValueError(f"unknown generated stage {name!r}; known: {', '.join(STAGE_NAMES)}")
        stage = STAGE_NAMES.index(name)
    shipped = None
    if world != "generated" and stage is None and world not in FAMILIES:
        shipped = load_world(world)
    for episode in range(episodes):
        rng = np.random.default_rng([seed, episode, len(world)])
        if world in FAMILIES:
            tasks.append(scene_task(world, seed + episode, settings))
        elif stage is not None:
            tasks.append(generated_task(stage, rng, settings))
        elif shipped is None:
            tasks.append(generated_task(2 + episode % 2, rng, settings))
        else:
            tasks.append(shipped_task(shipped, episode, rng, settings))
    if max_time is not None:
        tasks = [replace(t, time_limit=min(t.time_limit, max_time)) for t in tasks]
    return tasks


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Rates and means over a set of episodes of one world and mode."""
    count = len(results)
    if count == 0:
        return {"episodes": 0}
    successes = [r for r in results if r.outcome == "success"]
    steps = sum(r.steps for r in results)
    collided = [r for r in results if r.outcome == "collision"]

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "episodes": count,
        "success_rate": len(successes) / count,
        "collision_rate": sum(r.outcome == "collision" for r in results) / count,
        "timeout_rate": sum(r.outcome == "timeout" for r in results) / count,
        "successes": len(successes),
        "success_ci95": list(wilson_interval(len(successes), count)),
        "timeouts": sum(r.outcome == "timeout" for r in results),
        "collisions": len(collided),
        # Of those, the ones the robot drove into, and the others (hit while still or
        # while moving away: a moving obstacle ran into it).
        "collisions_at_fault": sum(r.at_fault for r in collided),
        "collisions_not_at_fault": sum(not r.at_fault for r in collided),
        # Contacts where the robot was (nearly) still (the older, speed-only split).
        "collisions_while_still": sum(r.collision_speed < STILL_SPEED for r in collided),
        "mean_time_to_goal": mean([r.time for r in successes]),
        # Shortest path at top speed over the same episodes: how much faster any mode
        # could be at all (a ratio to the baseline below this bound's is unreachable).
        "mean_min_time": mean([r.min_time for r in successes]),
        "mean_path_length": mean([r.path_length for r in successes]),
        "smoothness": mean([r.smoothness for r in results]),
        "intervention_rate": sum(r.interventions for r in results) / max(steps, 1),
    }


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (default 95 %); (0, 1) without trials."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2.0 * trials)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def time_ratio(results: Sequence[EpisodeResult], mode: str, baseline: str = "dwa") -> float | None:
    """Mean of mode's time / baseline's time over episodes both completed successfully."""
    by_key = {(r.world, r.seed, r.mode): r for r in results}
    ratios = []
    for r in results:
        if r.mode != mode or r.outcome != "success":
            continue
        other = by_key.get((r.world, r.seed, baseline))
        if other is not None and other.outcome == "success" and other.time > 0:
            ratios.append(r.time / other.time)
    return float(np.mean(ratios)) if ratios else None


@dataclass
class EvaluationReport:
    """Per world and mode summaries, the gate verdict and all episodes."""

    model: str
    worlds: list[str]
    modes: list[str]
    episodes_per_world: int
    seed: int
    summary: dict[str, dict[str, dict[str, Any]]]
    time_ratio_vs_dwa: dict[str, float | None]
    gate: dict[str, Any]
    baseline: str  # "dwa+grid" (hybrid_fallback's FallbackController) or "dwa"
    wall_time_s: float
    episodes: list[EpisodeResult]

    def to_dict(self, with_trajectories: bool = False) -> dict[str, Any]:
        """JSON-ready data (trajectories left out unless asked for)."""
        data = asdict(self)
        if not with_trajectories:
            for episode in data["episodes"]:
                episode.pop("trajectory", None)
        return data


def gate_verdict(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
    thresholds: Mapping[str, float],
    default_threshold: float = DEFAULT_SUCCESS_THRESHOLD,
    mode: str = "policy_safety",
) -> dict[str, Any]:
    """Pass when, on every world, `mode` succeeds often enough and never collides."""
    failures = []
    for world, modes in summary.items():
        stats = modes.get(mode)
        if stats is None or not stats.get("episodes"):
            failures.append(f"{world}: no {mode} episodes")
            continue
        needed = thresholds.get(world, default_threshold)
        if stats["success_rate"] < needed:
            failures.append(f"{world}: success {stats['success_rate']:.2f} < {needed:.2f}")
        if stats["collisions"] > 0:
            failures.append(f"{world}: {stats['collisions']} collision(s) in mode {mode}")
    return {"passed": not failures, "mode": mode, "failures": failures}


def evaluate(
    model_path: str | Path,
    worlds: Sequence[str] = DEFAULT_WORLDS,
    episodes: int = 10,
    modes: Sequence[str] = DEFAULT_MODES,
    seed: int = EVALUATION_SEED,
    thresholds: Mapping[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
    max_time: float | None = None,
    workers: int = 1,
    safety_yaml: str | Path | None = None,
) -> EvaluationReport:
    """Run every mode on the same held-out tasks of every world.

    `workers` > 1 runs the tasks in that many processes (results in the same order and
    the same as with one); `safety_yaml` is the safety node's YAML the filter is built
    from (default the workspace's config/safety_controller.yaml).
    """
    started = time.monotonic()
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown mode(s): {', '.join(unknown)}")
    policy = load_policy(model_path)
    settings = NavEnv(env_config_for(policy)).task_settings
    jobs = []
    for world in worlds:
        for index, task in enumerate(evaluation_tasks(world, episodes, settings, seed, max_time)):
            jobs.append((world, index, task, seed + 1000 * index + len(world)))
    setup = (str(model_path), tuple(modes), None if safety_yaml is None else str(safety_yaml))
    results: list[EpisodeResult] = []

    def collect(job: tuple[str, int, Task, int], outcome: list[EpisodeResult]) -> None:
        results.extend(outcome)
        if progress is not None:
            for result in outcome:
                progress(
                    f"{job[0]} {job[1] + 1}/{episodes} {result.mode}: {result.outcome}"
                    f"{' (at fault)' if result.at_fault else ''} in {result.time:.1f} s "
                    f"({job[2].label})"
                )

    if workers <= 1 or len(jobs) <= 1:
        _init_worker(*setup)
        for job in jobs:
            collect(job, _run_job(job))
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(jobs)), _init_worker, setup) as pool:
            for job, outcome in zip(jobs, pool.imap(_run_job, jobs), strict=True):
                collect(job, outcome)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for world in worlds:
        summary[world] = {
            mode: summarize([r for r in results if r.world == world and r.mode == mode])
            for mode in modes
        }
    ratios = {mode: time_ratio(results, mode) for mode in modes if mode != "dwa"}
    merged = dict(DEFAULT_THRESHOLDS)
    merged.update(thresholds or {})
    gate_mode = "policy_safety" if "policy_safety" in modes else modes[0]
    return EvaluationReport(
        model=str(model_path),
        worlds=list(worlds),
        modes=list(modes),
        episodes_per_world=episodes,
        seed=seed,
        summary=summary,
        time_ratio_vs_dwa=ratios,
        gate=gate_verdict(summary, merged, mode=gate_mode),
        baseline=DwaController().kind_available()
        if {"dwa", "dwa_safety"} & set(modes)
        else "not run",
        wall_time_s=round(time.monotonic() - started, 1),
        episodes=results,
    )


# One evaluation's env and controllers per process (built by `_init_worker`).
_WORKER: dict[str, Any] = {}


def _init_worker(model_path: str, modes: tuple[str, ...], safety_yaml: str | None) -> None:
    """Load the policy and build the env and the controllers of `modes` in this process."""
    if multiprocessing.parent_process() is not None:
        import torch

        torch.set_num_threads(1)  # one core per worker process
    policy = load_policy(model_path)
    env = NavEnv(env_config_for(policy))
    builders: dict[str, Callable[[], Controller]] = {
        "policy": lambda: PolicyController(policy),
        "policy_safety": lambda: SafetyFilteredController(
            PolicyController(policy), safety_yaml=safety_yaml
        ),
        "dwa": DwaController,
        "dwa_safety": lambda: SafetyFilteredController(DwaController(), safety_yaml=safety_yaml),
    }
    _WORKER.clear()
    _WORKER.update(env=env, modes=modes, controllers={m: builders[m]() for m in modes})


def _run_job(job: tuple[str, int, Task, int]) -> list[EpisodeResult]:
    """Every mode of this process on one task (world, index, task, episode seed)."""
    world, _, task, episode_seed = job
    env, controllers = _WORKER["env"], _WORKER["controllers"]
    return [
        run_episode(env, controllers[mode], task, episode_seed, mode, world)
        for mode in _WORKER["modes"]
    ]


def env_config_for(policy: LoadedPolicy) -> EnvConfig:
    """The env config a policy was trained with (from its card), randomization on."""
    training = dict(policy.card.training)
    config = dict(training.get("config", {}) or {})
    env = EnvConfig.from_mapping(config.get("env"))
    spec = env.card(env_robot(env)).observation
    if spec != policy.card.observation or env.action_spec() != policy.card.action:
        raise ValueError(
            f"{policy.path}: the card's observation/action do not match its training config"
        )
    return EnvConfig.from_mapping({**(config.get("env") or {}), "randomize": True})


def env_robot(env: EnvConfig) -> RobotProfile:
    """The robot profile of an env config."""
    from rlguard_common.robot_profile import load_robot_profile

    return load_robot_profile(env.robot)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(report: EvaluationReport) -> str:
    """The evaluation table (one row per world and mode) as Markdown."""
    lines = [
        "| world | mode | episodes | success (95 % CI) | collisions at fault / other | "
        "timeout | time-to-goal (s) | bound (s) | path (m) | smoothness | interventions |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for world, modes in report.summary.items():
        for mode, stats in modes.items():
            interval = stats.get("success_ci95")
            ci = f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else ""
            lines.append(
                f"| {world} | {mode} | {stats.get('episodes', 0)} | "
                f"{_fmt(stats.get('success_rate'))}{ci} | "
                f"{stats.get('collisions_at_fault', 0)} / "
                f"{stats.get('collisions_not_at_fault', 0)} | "
                f"{_fmt(stats.get('timeout_rate'))} | {_fmt(stats.get('mean_time_to_goal'), 1)} | "
                f"{_fmt(stats.get('mean_min_time'), 1)} | "
                f"{_fmt(stats.get('mean_path_length'), 1)} | {_fmt(stats.get('smoothness'), 3)} | "
                f"{_fmt(stats.get('intervention_rate'), 3)} |"
            )
    ratio_text = ", ".join(
        f"{mode}: {_fmt(value)}" for mode, value in report.time_ratio_vs_dwa.items()
    )
    verdict = "PASSED" if report.gate["passed"] else "FAILED: " + "; ".join(report.gate["failures"])
    lines += ["", f"Baseline: {report.baseline}. Time-to-goal / baseline's on episodes both "]
    lines[-1] += f"reached: {ratio_text or '-'}"
    lines += [
        "Bound: the task's shortest path (free-space grid) at the top speed, over the "
        "successful episodes; no controller can be faster."
    ]
    lines += [f"Gate ({report.gate['mode']}): {verdict}"]
    return "\n".join(lines)


def write_outputs(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write evaluation.json, evaluation.md and the PNG plots into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "table": out / "evaluation.md"}
    paths["json"].write_text(json.dumps(report.to_dict(with_trajectories=True), indent=1) + "\n")
    paths["table"].write_text(markdown_table(report) + "\n")
    paths.update(plot_report(report, out))
    return paths


def plot_report(report: EvaluationReport, out: Path) -> dict[str, Path]:
    """Trajectories per world and success/time bars as PNG files (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle
    from matplotlib.transforms import Affine2D

    from rl_training.worlds import static_geometry

    colours = {
        "policy": "tab:blue",
        "policy_safety": "tab:green",
        "dwa": "tab:orange",
        "dwa_safety": "tab:red",
    }
    paths: dict[str, Path] = {}
    shipped = [w for w in report.worlds if not w.startswith("generated") and w not in FAMILIES]
    if shipped:
        fig, axes = plt.subplots(1, len(shipped), figsize=(5 * len(shipped), 4.5), squeeze=False)
        for ax, world_name in zip(axes[0], shipped, strict=True):
            world = load_world(world_name)
            boxes, cylinders = static_geometry(world)
            for cx, cy, sx, sy, yaw in boxes:
                patch = Rectangle((cx - sx / 2, cy - sy / 2), sx, sy, color="0.4")
                patch.set_transform(Affine2D().rotate_around(cx, cy, yaw) + ax.transData)
                ax.add_patch(patch)
            for cx, cy, r in cylinders:
                ax.add_patch(Circle((cx, cy), r, color="0.4"))
            for mover in world.moving_cylinders:
                loop = np.asarray([*mover.waypoints, mover.waypoints[0]])
                ax.plot(loop[:, 0], loop[:, 1], ":", color="tab:red", linewidth=1)
            for episode in report.episodes:
                if episode.world != world_name or not episode.trajectory:
                    continue
                xy = np.asarray(episode.trajectory)
                ax.plot(xy[:, 0], xy[:, 1], color=colours.get(episode.mode, "k"), alpha=0.6, lw=1)
                marker = {"success": "o", "collision": "x", "timeout": "s"}[episode.outcome]
                ax.plot(xy[-1, 0], xy[-1, 1], marker, color=colours.get(episode.mode, "k"), ms=4)
            ax.set_title(world_name)
            ax.set_aspect("equal")
            half = (world.arena_size[0] / 2 + 0.2, world.arena_size[1] / 2 + 0.2)
            ax.set_xlim(-half[0], half[0])
            ax.set_ylim(-half[1], half[1])
        handles = [plt.Line2D([], [], color=c, label=m) for m, c in colours.items()]
        fig.legend(handles=handles, loc="upper right")
        fig.tight_layout()
        paths["trajectories"] = out / "trajectories.png"
        fig.savefig(paths["trajectories"], dpi=90)
        plt.close(fig)

    fig, (ax_success, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    worlds = report.worlds
    width = 0.8 / max(len(report.modes), 1)
    for k, mode in enumerate(report.modes):
        x = np.arange(len(worlds)) + k * width
        success = [report.summary[w][mode].get("success_rate", 0.0) for w in worlds]
        times = [report.summary[w][mode].get("mean_time_to_goal") or 0.0 for w in worlds]
        ax_success.bar(x, success, width, label=mode, color=colours.get(mode))
        ax_time.bar(x, times, width, label=mode, color=colours.get(mode))
    for ax, title in ((ax_success, "success rate"), (ax_time, "mean time-to-goal (s)")):
        ax.set_xticks(np.arange(len(worlds)) + 0.4 - width / 2, worlds)
        ax.set_title(title)
    ax_success.axhline(DEFAULT_SUCCESS_THRESHOLD, color="k", linestyle="--", linewidth=0.8)
    ax_success.legend(fontsize=8)
    fig.tight_layout()
    paths["bars"] = out / "success_time.png"
    fig.savefig(paths["bars"], dpi=90)
    plt.close(fig)
    return paths


def record_in_card(model_path: str | Path, report: EvaluationReport) -> None:
    """Store the evaluation summary and gate verdict in the policy file's card."""
    policy = load_policy(model_path)
    evaluation = {
        "worlds": report.worlds,
        "episodes_per_world": report.episodes_per_world,
        "seed": report.seed,
        "summary": report.summary,
        "time_ratio_vs_dwa": report.time_ratio_vs_dwa,
        "baseline": report.baseline,
        "gate": report.gate,
    }
    card = policy.card.with_updates(evaluation=evaluation)
    save_policy(policy.module, model_path, card)
