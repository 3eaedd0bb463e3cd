"""Adversarial reliability campaign: hostile command streams through the real safety filter.

Runs the safety filter core in-process against the embedded MuJoCo simulator core (no DDS,
no rclpy) in the static worlds, with randomized physics (friction, payload, wheel radius,
actuator delay, lidar noise and dropout drawn per episode from the robot profile). Each
control step the lidar (10 Hz, on simulated time) and wheel odometry go into the filter,
a command stream's request goes through it, and the simulator executes the output for the
control period. The filter is configured from config/safety_controller.yaml plus the
robot-profile overrides (sim_bringup.stack_config), like the node in the stack.

Command streams (one per episode):

- ``random``: piecewise-constant requests up to 1.5x the limits, held 0.05-1 s;
- ``full_speed``: a constant full-speed request (forward or reverse, straight or curving);
- ``aim_nearest``: full speed towards the nearest obstacle (ground truth), front or rear;
- ``oscillating``: bang-bang or sinusoidal requests up to 1.5x the limits, 0.2-10 Hz;
- ``nonfinite``: random or aimed requests laced with NaN, +-inf and huge/denormal values;
- ``jitter``: random or aimed requests at irregular control periods of 10-120 ms (the
  filter sees the true elapsed simulated time).

Counted per step, and reported per stream and world (all must be 0):

- ``collisions``: collision episodes the simulator reports (ground-truth contacts);
- ``non_finite``: outputs with a NaN or infinite component;
- ``limit_violations``, by kind. The reference velocity of a step is what the filter
  documents its limits against: the odometry just fed in closed loop, the previous output
  in open loop (then the check is literally between consecutive outputs), both over the
  true elapsed time. ``velocity``: an output outside [min_velocity, max_velocity].
  ``accel``: a step the filter reports no safety reason for (collision, blind, stale input,
  e-stop, invalid input) whose output lies outside the box max_accel / max_decel allow from
  the reference. ``brake``: a safety-braking step (collision, blind, stale input) outside
  the box emergency_decel allows from the reference. ``hard_stop``: an e-stop or
  invalid-input step whose output is not exactly zero.
- ``stuck``: an episode in which, for more than STUCK_SECONDS of simulated time in a row,
  at every step (1) the request was finite and asked for at least MIN_ASK of the limits,
  (2) the requested motion was an escape on ground truth (`is_escape`: clearly free, or
  never closer to anything and gaining clearance or turning in place), (3) the output was
  below BLOCKED_FRACTION of the limits, and (4) the filter would have blocked every probe
  motion too (`probe_commands`: turns in place, straight and curved motions both ways, each
  tried on a copy of the filter at the next control time): the robot is trapped.

Reported for information (not failures): ``blocked_escapes``, stretches of more than
STUCK_SECONDS in which (1)-(3) held but some probe would have passed (the guard refused the
requested escape, typically a shallow-angle move along a wall inside the margin, while a
turn in place was free); ``output_jumps``, steps whose output left the normal acceleration
box around the previous output (in closed loop the filter ramps from odometry, so outputs
may jump when the base lags its command), with the largest excess; ``guard_steps``,
``hard_stop_steps``, the smallest ground-truth robot-obstacle gap and the closest approach
(the smallest gap once the gap had been at least the safety margin, so starts inside the
margin, which the campaign uses on purpose, do not count).

Run ``python -m safety_controller.reliability_campaign --steps 100000 --out bench/results``.
Seeds are fixed: the same budget and seed give the same counts.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from safety_controller.footprint import Footprint
from safety_controller.limits import (
    TINY,
    Velocity,
    VelocityLimits,
    clamp_velocity,
    in_box,
    reachable_box,
)
from safety_controller.safety_filter import (
    HARD_STOP_REASONS,
    SAFETY_REASONS,
    FilterOutput,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import LidarMount, ScanPoints, scan_to_points
from sim_bringup import profiles
from sim_bringup.sim_core import ObstacleGeometry, Simulator
from sim_bringup.stack_config import robot_parameter_overrides

STATIC_WORLDS = ("empty", "corridor", "warehouse")
STREAMS = ("random", "full_speed", "aim_nearest", "oscillating", "nonfinite", "jitter")
CONTROL_PERIOD = 0.05  # s: the node's 20 Hz publish rate
JITTER_PERIOD = (0.01, 0.12)  # s: control periods of the jitter stream
EPISODE_STEPS = 300  # control steps per episode (15 s at 20 Hz)
DEFAULT_STEPS = 100_000
DEFAULT_SEED = 20261122
STUCK_SECONDS = 1.0  # s of blocked escape requests that make an episode stuck
MIN_ASK = 0.1  # the request must ask for this fraction of the limits to count as "moving"
BLOCKED_FRACTION = 0.01  # outputs below this fraction of the limits count as "blocked"
ESCAPE_HORIZON = 0.5  # s of the requested motion checked on ground truth by is_escape
ESCAPE_SLACK = 0.08  # m beyond the safety margin that makes a path clearly free (lidar noise)
ESCAPE_GAIN = 0.01  # m of clearance an escape must gain when it stays within the margin
LIMIT_TOLERANCE = 1e-9
MAX_EVENTS = 20  # violation records kept per episode for investigation
MAX_SUMMARY_EVENTS = 200  # and in the report
CORRUPT_VALUES = (
    math.nan,
    math.inf,
    -math.inf,
    1e300,
    -1e300,
    1e12,
    -1e12,
    sys.float_info.max,
    5e-324,
    -0.0,
)


# --------------------------------------------------------------------------- configuration


def safety_config_path() -> Path:
    """config/safety_controller.yaml of the workspace, else the installed share copy."""
    candidates = []
    root = profiles.workspace_root()
    if root is not None:
        candidates.append(root / "config" / "safety_controller.yaml")
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("safety_controller"))
        candidates.append(share / "config" / "safety_controller.yaml")
    except (ImportError, LookupError, ValueError, OSError):
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"safety_controller.yaml not found (searched {candidates})")


def safety_parameters(robot: str = "default", path: Path | None = None) -> dict[str, Any]:
    """The node's parameters: the YAML defaults with the robot-profile overrides on top."""
    data = yaml.safe_load((path or safety_config_path()).read_text())
    values = dict(data["safety_controller"]["ros__parameters"])
    values.update(robot_parameter_overrides(robot)["safety_controller"])
    return values


def filter_config(values: dict[str, Any]) -> tuple[SafetyConfig, LidarMount]:
    """SafetyConfig and lidar mount from node parameter values (as the node builds them)."""
    pair = lambda name: tuple(float(v) for v in values[name])  # noqa: E731
    period = 1.0 / float(values["publish_rate"])
    limits = VelocityLimits(
        max_velocity=pair("max_velocity"),
        min_velocity=pair("min_velocity"),
        max_accel=pair("max_accel"),
        max_decel=pair("max_decel"),
        emergency_decel=pair("emergency_decel"),
    )
    footprint = Footprint.from_parameters(
        str(values["footprint"]), float(values["robot_radius"]), float(values["safety_margin"])
    )
    config = SafetyConfig(
        limits=limits,
        footprint=footprint,
        reaction_time=float(values["reaction_time"]),
        velocity_timeout=float(values["velocity_timeout"]),
        source_timeout=float(values["source_timeout"]),
        odom_timeout=float(values["odom_timeout"]),
        closed_loop=str(values["feedback"]) == "CLOSED_LOOP",
        intervention_window=float(values["intervention_window"]),
        max_step=max(0.25, 2.0 * period),
    )
    mount = LidarMount(
        x=float(values["lidar_x"]), y=float(values["lidar_y"]), yaw=float(values["lidar_yaw"])
    )
    return config, mount


# --------------------------------------------------------------------------- ground truth


def _box_local(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Points (K, 2) in each box's frame: (K, N, 2)."""
    c, s = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
    dx = points[:, None, 0] - boxes[None, :, 0]
    dy = points[:, None, 1] - boxes[None, :, 1]
    return np.stack((c * dx + s * dy, -s * dx + c * dy), axis=-1)


def _box_distances(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distance of each point to each box (0 inside): (K, N)."""
    local = _box_local(points, boxes)
    outside = np.maximum(np.abs(local) - boxes[None, :, 2:4] / 2.0, 0.0)
    return np.hypot(outside[..., 0], outside[..., 1])


def obstacle_clearances(points: np.ndarray, geometry: ObstacleGeometry) -> np.ndarray:
    """Distance from each point (K, 2) to the nearest obstacle surface (negative in a barrel)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    best = np.full(pts.shape[0], np.inf)
    if geometry.boxes.shape[0]:
        best = np.minimum(best, _box_distances(pts, geometry.boxes).min(axis=1))
    cyl = geometry.cylinders
    if cyl.shape[0]:
        d = np.hypot(pts[:, None, 0] - cyl[None, :, 0], pts[:, None, 1] - cyl[None, :, 1])
        best = np.minimum(best, (d - cyl[None, :, 2]).min(axis=1))
    return best


def clearance(point: np.ndarray, geometry: ObstacleGeometry) -> float:
    """Distance from a point to the nearest obstacle surface."""
    return float(obstacle_clearances(np.asarray(point).reshape(1, 2), geometry)[0])


def nearest_obstacle_point(point: np.ndarray, geometry: ObstacleGeometry) -> np.ndarray:
    """The obstacle surface point closest to `point` (world frame)."""
    p = np.asarray(point, dtype=np.float64).reshape(1, 2)
    candidates, distances = [], []
    boxes = geometry.boxes
    if boxes.shape[0]:
        local = _box_local(p, boxes)[0]
        near = np.clip(local, -boxes[:, 2:4] / 2.0, boxes[:, 2:4] / 2.0)
        c, s = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
        world = np.column_stack(
            (
                boxes[:, 0] + c * near[:, 0] - s * near[:, 1],
                boxes[:, 1] + s * near[:, 0] + c * near[:, 1],
            )
        )
        candidates.append(world)
        distances.append(np.hypot(*(world - p).T))
    cyl = geometry.cylinders
    if cyl.shape[0]:
        offset = p - cyl[:, :2]
        norm = np.maximum(np.hypot(offset[:, 0], offset[:, 1]), 1e-12)
        world = cyl[:, :2] + offset / norm[:, None] * cyl[:, 2:3]
        candidates.append(world)
        distances.append(np.abs(norm - cyl[:, 2]))
    all_points = np.concatenate(candidates)
    return all_points[int(np.argmin(np.concatenate(distances)))]


def random_start(
    sim: Simulator,
    geometry: ObstacleGeometry,
    rng: np.random.Generator,
    min_clearance: float = 0.35,
    max_clearance: float = math.inf,
    inset: float = 0.3,
) -> tuple[float, float, float]:
    """A random pose whose centre is between min and max clearance from every obstacle.

    Positions are drawn from the arena shrunk by `inset` on each side; raises RuntimeError
    when 100,000 draws found none (an impossible clearance band).
    """
    half = np.array(sim.world.arena_size) / 2.0
    for _ in range(100_000):
        point = rng.uniform(-half + inset, half - inset)
        gap = clearance(point, geometry)
        if min_clearance < gap < max_clearance:
            return float(point[0]), float(point[1]), float(rng.uniform(-math.pi, math.pi))
    raise RuntimeError(f"no start with clearance in ({min_clearance}, {max_clearance})")


def read_scan(sim: Simulator, mount: LidarMount) -> ScanPoints:
    """Ray-cast the simulator's lidar and turn it into base-frame obstacle points."""
    scan = sim.scan()
    return scan_to_points(
        scan.ranges, scan.angle_min, scan.angle_increment, scan.range_min, scan.range_max, mount
    )


def arc_poses(
    pose: tuple[float, float, float], v: float, w: float, duration: float, samples: int
) -> np.ndarray:
    """World positions (samples + 1, 2) along (v, w) held for `duration` from `pose`."""
    t = np.linspace(0.0, duration, samples + 1)
    x, y, yaw = pose
    if abs(w) < 1e-9:
        return np.column_stack((x + v * t * math.cos(yaw), y + v * t * math.sin(yaw)))
    heading = yaw + w * t
    radius = v / w
    return np.column_stack(
        (
            x + radius * (np.sin(heading) - math.sin(yaw)),
            y - radius * (np.cos(heading) - math.cos(yaw)),
        )
    )


def is_escape(
    pose: tuple[float, float, float],
    request: Velocity,
    geometry: ObstacleGeometry,
    robot_radius: float,
    margin: float,
) -> bool:
    """Whether holding `request` for ESCAPE_HORIZON is clearly harmless on ground truth.

    True when the robot's clearance along the motion never drops below the safety margin
    plus ESCAPE_SLACK (room for lidar noise), or when it never decreases along the motion
    and either grows by ESCAPE_GAIN or the motion is a turn in place (which cannot bring a
    circular robot closer to anything).
    """
    centres = arc_poses(pose, request[0], request[1], ESCAPE_HORIZON, 10)
    gaps = obstacle_clearances(centres, geometry) - robot_radius
    if float(gaps[1:].min()) >= margin + ESCAPE_SLACK:
        return True
    never_closer = bool(np.all(np.diff(gaps) >= -1e-9))
    turning_in_place = abs(request[0]) < TINY
    return never_closer and (turning_in_place or gaps[-1] >= gaps[0] + ESCAPE_GAIN)


# --------------------------------------------------------------------------- command streams


@dataclass(frozen=True)
class StreamInput:
    """What an adversarial stream may look at: ground truth included."""

    time: float
    pose: tuple[float, float, float]
    geometry: ObstacleGeometry
    max_velocity: tuple[float, float]


class CommandStream:
    """A source of requests and control periods for one episode."""

    name = "base"

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def command(self, obs: StreamInput) -> Velocity:
        """The request at this step."""
        raise NotImplementedError

    def period(self) -> float:
        """Time until the next control step (s)."""
        return CONTROL_PERIOD


class RandomStream(CommandStream):
    """Piecewise-constant random requests up to 1.5x the limits, some at the corners."""

    name = "random"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._until = -math.inf
        self._request: Velocity = (0.0, 0.0)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        if obs.time >= self._until:
            self._until = obs.time + float(self.rng.uniform(0.05, 1.0))
            vmax, wmax = obs.max_velocity
            if self.rng.random() < 0.3:
                v, w = self.rng.choice([-1.0, 0.0, 1.0], size=2)
                self._request = (float(v) * vmax, float(w) * wmax)
            else:
                self._request = (
                    float(self.rng.uniform(-1.5, 1.5)) * vmax,
                    float(self.rng.uniform(-1.5, 1.5)) * wmax,
                )
        return self._request


class FullSpeedStream(CommandStream):
    """One constant full-speed request: forward or reverse, straight or a gentle curve."""

    name = "full_speed"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._direction = 1.0 if rng.random() < 0.7 else -1.0
        self._turn = 0.0 if rng.random() < 0.5 else float(rng.uniform(-0.3, 0.3))

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._direction * obs.max_velocity[0], self._turn * obs.max_velocity[1]


class AimNearestStream(CommandStream):
    """Full speed at the nearest obstacle (ground truth), with the front or the rear."""

    name = "aim_nearest"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._direction = 1.0 if rng.random() < 0.7 else -1.0
        self._wobble = float(rng.uniform(-0.3, 0.3))

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        x, y, yaw = obs.pose
        target = nearest_obstacle_point(np.array([x, y]), obs.geometry)
        heading = yaw if self._direction > 0 else yaw + math.pi
        bearing = math.remainder(math.atan2(target[1] - y, target[0] - x) - heading, 2 * math.pi)
        wmax = obs.max_velocity[1]
        turn = float(np.clip(3.0 * bearing + self._wobble, -wmax, wmax))
        return self._direction * obs.max_velocity[0], turn


class OscillatingStream(CommandStream):
    """Bang-bang or sinusoidal requests up to 1.5x the limits (0.2-10 Hz)."""

    name = "oscillating"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._bang = bool(rng.random() < 0.5)
        self._amplitude = rng.uniform(0.4, 1.5, size=2) * rng.choice([0.0, 1.0, 1.0], size=2)
        if not np.any(self._amplitude):
            self._amplitude[0] = 1.0
        self._bias = rng.uniform(-0.5, 0.5, size=2)
        self._frequency = rng.uniform(0.2, 10.0 if self._bang else 4.0, size=2)
        self._phase = rng.uniform(0.0, 2.0 * math.pi, size=2)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        wave = np.sin(2.0 * math.pi * self._frequency * obs.time + self._phase)
        if self._bang:
            wave = np.where(wave >= 0.0, 1.0, -1.0)
        value = (self._bias + self._amplitude * wave) * np.asarray(obs.max_velocity)
        return float(value[0]), float(value[1])


class NonFiniteStream(CommandStream):
    """Random or aimed requests laced with NaN, +-inf and huge or denormal values."""

    name = "nonfinite"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        base = RandomStream if rng.random() < 0.5 else AimNearestStream
        self._base = base(rng)
        self._burst = 0

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        v, w = self._base.command(obs)
        rng = self.rng
        if self._burst == 0 and rng.random() < 0.15:
            self._burst = int(rng.integers(1, 20))
        if self._burst > 0:
            self._burst -= 1
            which = int(rng.integers(3))
            if which in (0, 2):
                v = float(CORRUPT_VALUES[int(rng.integers(len(CORRUPT_VALUES)))])
            if which in (1, 2):
                w = float(CORRUPT_VALUES[int(rng.integers(len(CORRUPT_VALUES)))])
        return v, w


class JitterStream(CommandStream):
    """Random or aimed requests at irregular control periods (JITTER_PERIOD)."""

    name = "jitter"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        base = RandomStream if rng.random() < 0.5 else AimNearestStream
        self._base = base(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)

    def period(self) -> float:
        """A control period drawn uniformly from JITTER_PERIOD."""
        return float(self.rng.uniform(*JITTER_PERIOD))


STREAM_TYPES: dict[str, type[CommandStream]] = {
    cls.name: cls
    for cls in (
        RandomStream,
        FullSpeedStream,
        AimNearestStream,
        OscillatingStream,
        NonFiniteStream,
        JitterStream,
    )
}


# --------------------------------------------------------------------------- episodes


class FilterLike(Protocol):
    """The part of SafetyFilter the campaign drives (so a broken filter can be swapped in)."""

    def set_command(self, linear: float, angular: float, now: float) -> bool: ...  # noqa: D102
    def set_scan(self, scan: ScanPoints, now: float) -> None: ...  # noqa: D102
    def set_odometry(self, linear: float, angular: float, now: float) -> bool: ...  # noqa: D102
    def step(self, now: float) -> FilterOutput: ...  # noqa: D102


FilterFactory = Callable[[SafetyConfig], FilterLike]


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: which world and stream, its seed and its length in control steps."""

    index: int
    world: str
    stream: str
    seed: int
    steps: int


@dataclass
class EpisodeResult:
    """Counters of one episode."""

    spec: EpisodeSpec
    steps: int = 0
    sim_seconds: float = 0.0
    collisions: int = 0
    non_finite: int = 0
    violations: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("velocity", "accel", "brake", "hard_stop"), 0)
    )
    stuck: bool = False
    stuck_events: int = 0
    blocked_escapes: int = 0  # informational: escapes refused while other motions passed
    longest_blocked_escape: float = 0.0
    guard_steps: int = 0
    hard_stop_steps: int = 0
    output_jumps: int = 0  # informational: see the module docstring
    max_jump_excess: float = 0.0  # m/s^2 or rad/s^2 beyond the limit, largest axis
    min_gap: float = math.inf  # m between the robot body and the nearest obstacle
    min_approach: float = math.inf  # m: smallest gap once the gap was >= the safety margin
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def limit_violations(self) -> int:
        """All limit violations of the episode."""
        return sum(self.violations.values())


def plan_episodes(
    total_steps: int,
    seed: int = DEFAULT_SEED,
    streams: Sequence[str] = STREAMS,
    worlds: Sequence[str] = STATIC_WORLDS,
    episode_steps: int = EPISODE_STEPS,
) -> list[EpisodeSpec]:
    """Episodes covering at least `total_steps`, cycling through every stream and world."""
    cells = [(stream, world) for stream in streams for world in worlds]
    count = max(len(cells), math.ceil(total_steps / episode_steps))
    return [
        EpisodeSpec(
            index=i,
            world=cells[i % len(cells)][1],
            stream=cells[i % len(cells)][0],
            seed=seed + i,
            steps=episode_steps,
        )
        for i in range(count)
    ]


_SIMULATORS: dict[str, Simulator] = {}


def _simulator(world: str) -> Simulator:
    """One simulator per world and process, reset per episode (model building is slow)."""
    if world not in _SIMULATORS:
        robot = profiles.load_robot_profile("default")
        _SIMULATORS[world] = Simulator(robot, profiles.load_world(world), randomize=True)
    return _SIMULATORS[world]


def _normalized(value: Velocity, limits: VelocityLimits) -> float:
    span_v = max(limits.max_velocity[0], -limits.min_velocity[0], 1e-9)
    span_w = max(limits.max_velocity[1], -limits.min_velocity[1], 1e-9)
    return abs(value[0]) / span_v + abs(value[1]) / span_w


def _within_velocity_limits(value: Velocity, limits: VelocityLimits) -> bool:
    return all(
        limits.min_velocity[i] - LIMIT_TOLERANCE
        <= value[i]
        <= limits.max_velocity[i] + LIMIT_TOLERANCE
        for i in range(2)
    )


@dataclass(frozen=True)
class _StepView:
    """What one control step saw and did, for violation records."""

    step: int
    time: float
    request: Velocity
    output: Velocity
    previous: Velocity
    odometry: Velocity
    out: FilterOutput

    def event(self, kind: str, **extra: Any) -> dict[str, Any]:
        """A JSON-ready record of this step."""
        pairs = {
            name: [float(x) for x in getattr(self, name)]
            for name in ("request", "output", "previous", "odometry")
        }
        return {
            "kind": kind,
            "step": self.step,
            "time": round(self.time, 6),
            **pairs,
            "reasons": sorted(self.out.reasons),
            "state": self.out.state,
            **extra,
        }


def probe_commands(limits: VelocityLimits) -> list[Velocity]:
    """Motions tried to see whether the filter would let the robot move at all."""
    v = max(limits.max_velocity[0], -limits.min_velocity[0])
    w = max(limits.max_velocity[1], -limits.min_velocity[1])
    probes = [(0.0, w), (0.0, -w), (v, 0.0), (-v, 0.0)]
    probes += [(sv * v / 2.0, sw * w / 2.0) for sv in (1.0, -1.0) for sw in (1.0, -1.0)]
    return [clamp_velocity(pv, pw, limits) for pv, pw in probes]


def _any_probe_passes(filt: FilterLike, limits: VelocityLimits, now: float) -> bool:
    """Whether a copy of the filter would pass some probe command at `now`."""
    for command in probe_commands(limits):
        probe = copy.deepcopy(filt)
        probe.set_command(command[0], command[1], now)
        out = probe.step(now)
        if _normalized((out.linear, out.angular), limits) >= BLOCKED_FRACTION:
            return True
    return False


def _box_excess(value: Velocity, box: tuple[np.ndarray, np.ndarray], elapsed: float) -> float:
    """How far (per second of `elapsed`) `value` lies outside `box`, largest axis; 0 inside."""
    lo, hi = box
    excess = max(max(lo[i] - value[i], value[i] - hi[i]) for i in range(2))
    if excess <= LIMIT_TOLERANCE:
        return 0.0
    return min(excess, 1e12) / max(elapsed, 1e-9)


def run_episode(
    spec: EpisodeSpec,
    parameters: dict[str, Any],
    filter_factory: FilterFactory | None = None,
) -> EpisodeResult:
    """Drive one episode and count collisions, non-finite outputs, violations, stuck time."""
    config, mount = filter_config(parameters)
    limits = config.limits
    filt = (filter_factory or SafetyFilter)(config)
    sim = _simulator(spec.world)
    rng = np.random.default_rng(spec.seed)
    geometry = sim.obstacles()
    band = rng.choice([0, 1, 2])  # start near a wall, in the open, or anywhere
    low, high = ((0.125, 0.2), (0.35, math.inf), (0.2, math.inf))[band]
    sim.reset(spec.seed, start=random_start(sim, geometry, rng, low, high, inset=0.1))
    stream = STREAM_TYPES[spec.stream](rng)
    radius, margin = sim.robot.footprint_radius, config.footprint.margin
    scan_period = 1.0 / sim.robot.lidar.rate_hz
    result = EpisodeResult(spec=spec)

    next_scan = 0.0
    previous: Velocity = (0.0, 0.0)
    previous_time: float | None = None
    blocked_escape, counted_blocked = 0.0, False
    trapped_time, counted_trap = 0.0, False
    left_margin = clearance(np.array(sim.pose[:2]), geometry) - radius >= margin
    for step in range(spec.steps):
        now = sim.time
        if now >= next_scan - 1e-9:
            filt.set_scan(read_scan(sim, mount), now)
            next_scan += scan_period
        odom = sim.odometry()
        filt.set_odometry(odom.v, odom.w, now)
        pose = sim.pose
        request = stream.command(StreamInput(now, pose, geometry, limits.max_velocity))
        filt.set_command(request[0], request[1], now)
        out = filt.step(now)
        output = (out.linear, out.angular)
        elapsed = 0.0 if previous_time is None else now - previous_time

        view = _StepView(step, now, request, output, previous, (odom.v, odom.w), out)

        def record(kind: str, view: _StepView = view, **extra: Any) -> None:
            if len(result.events) < MAX_EVENTS:
                result.events.append(view.event(kind, **extra))

        if not (math.isfinite(output[0]) and math.isfinite(output[1])):
            result.non_finite += 1
            record("non_finite")
            output = (0.0, 0.0)  # what the simulator does with it; keeps the checks defined
        if not _within_velocity_limits(output, limits):
            result.violations["velocity"] += 1
            record("velocity")
        if out.reasons & HARD_STOP_REASONS:
            result.hard_stop_steps += 1
            if output != (0.0, 0.0):
                result.violations["hard_stop"] += 1
                record("hard_stop")
        elif out.reasons & SAFETY_REASONS:
            result.guard_steps += 1
            reference = (odom.v, odom.w) if config.closed_loop else previous
            reference = tuple(x if abs(x) >= TINY else 0.0 for x in reference)
            box = reachable_box(reference, limits, elapsed, emergency=True)
            if previous_time is not None and not in_box(output, box, LIMIT_TOLERANCE):
                result.violations["brake"] += 1
                record("brake", elapsed=elapsed)
        elif previous_time is not None:
            reference = (odom.v, odom.w) if config.closed_loop else previous
            reference = tuple(x if abs(x) >= TINY else 0.0 for x in reference)
            if not in_box(output, reachable_box(reference, limits, elapsed), LIMIT_TOLERANCE):
                result.violations["accel"] += 1
                record("accel", elapsed=elapsed)
            jump = _box_excess(output, reachable_box(previous, limits, elapsed), elapsed)
            if jump > 0.0:
                result.output_jumps += 1
                result.max_jump_excess = max(result.max_jump_excess, jump)

        escape_blocked = (
            math.isfinite(request[0])
            and math.isfinite(request[1])
            and _normalized(output, limits) < BLOCKED_FRACTION
        )
        if escape_blocked:
            asked = clamp_velocity(request[0], request[1], limits)
            escape_blocked = _normalized(asked, limits) >= MIN_ASK and is_escape(
                pose, asked, geometry, radius, margin
            )
        period = stream.period()
        trapped = escape_blocked and not _any_probe_passes(filt, limits, now + period)
        if escape_blocked:
            blocked_escape += period
            result.longest_blocked_escape = max(result.longest_blocked_escape, blocked_escape)
            if blocked_escape > STUCK_SECONDS and not counted_blocked:
                counted_blocked = True
                result.blocked_escapes += 1
                record("blocked_escape", blocked_seconds=blocked_escape)
        else:
            blocked_escape, counted_blocked = 0.0, False
        if trapped:
            trapped_time += period
            if trapped_time > STUCK_SECONDS and not counted_trap:
                counted_trap = True
                result.stuck_events += 1
                result.stuck = True
                record("stuck", blocked_seconds=trapped_time)
        else:
            trapped_time, counted_trap = 0.0, False

        previous, previous_time = output, now
        before = sim.collision_count
        sim.step(out.linear, out.angular, period)
        if sim.collision_count > before:
            result.collisions += sim.collision_count - before
            record("collision", pose=list(sim.pose))
        gap = clearance(np.array(sim.pose[:2]), geometry) - radius
        left_margin = left_margin or gap >= margin
        if left_margin:
            result.min_approach = min(result.min_approach, gap)
        result.min_gap = min(result.min_gap, gap)
        result.steps += 1
    result.sim_seconds = sim.time
    return result


def _run_one(args: tuple[EpisodeSpec, dict[str, Any], FilterFactory | None]) -> EpisodeResult:
    return run_episode(*args)


def run_campaign(
    specs: Sequence[EpisodeSpec],
    parameters: dict[str, Any] | None = None,
    workers: int = 2,
    filter_factory: FilterFactory | None = None,
) -> list[EpisodeResult]:
    """Run every episode (in `workers` processes when > 1), results in episode order."""
    params = parameters if parameters is not None else safety_parameters()
    jobs = [(spec, params, filter_factory) for spec in specs]
    if workers <= 1:
        return [_run_one(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(pool.imap(_run_one, jobs, chunksize=1))


# --------------------------------------------------------------------------- reporting

COUNTERS = ("collisions", "non_finite", "limit_violations", "stuck_episodes")


def summarize(results: Iterable[EpisodeResult]) -> dict[str, Any]:
    """Totals and per stream/world cells of the campaign counters."""

    def empty() -> dict[str, Any]:
        return {
            "episodes": 0,
            "steps": 0,
            "sim_seconds": 0.0,
            "collisions": 0,
            "non_finite": 0,
            "limit_violations": 0,
            "violations": dict.fromkeys(("velocity", "accel", "brake", "hard_stop"), 0),
            "stuck_episodes": 0,
            "stuck_events": 0,
            "blocked_escapes": 0,
            "longest_blocked_escape_s": 0.0,
            "guard_steps": 0,
            "hard_stop_steps": 0,
            "output_jumps": 0,
            "max_jump_excess": 0.0,
            "min_gap_m": math.inf,
            "closest_approach_m": math.inf,
        }

    totals = empty()
    cells: dict[str, dict[str, Any]] = {}
    events = []
    for result in results:
        key = f"{result.spec.stream}/{result.spec.world}"
        for entry in (totals, cells.setdefault(key, empty())):
            entry["episodes"] += 1
            entry["steps"] += result.steps
            entry["sim_seconds"] += result.sim_seconds
            entry["collisions"] += result.collisions
            entry["non_finite"] += result.non_finite
            entry["limit_violations"] += result.limit_violations
            for kind, count in result.violations.items():
                entry["violations"][kind] += count
            entry["stuck_episodes"] += int(result.stuck)
            entry["stuck_events"] += result.stuck_events
            entry["blocked_escapes"] += result.blocked_escapes
            entry["longest_blocked_escape_s"] = max(
                entry["longest_blocked_escape_s"], result.longest_blocked_escape
            )
            entry["guard_steps"] += result.guard_steps
            entry["hard_stop_steps"] += result.hard_stop_steps
            entry["output_jumps"] += result.output_jumps
            entry["max_jump_excess"] = max(entry["max_jump_excess"], result.max_jump_excess)
            entry["min_gap_m"] = min(entry["min_gap_m"], result.min_gap)
            entry["closest_approach_m"] = min(entry["closest_approach_m"], result.min_approach)
        for event in result.events[: max(0, MAX_SUMMARY_EVENTS - len(events))]:
            events.append({**asdict(result.spec), **event})
    return {"totals": totals, "cells": cells, "events": events}


def markdown_table(summary: dict[str, Any]) -> str:
    """The per stream/world counters as a Markdown table, with a totals row."""
    header = (
        "| stream | world | episodes | steps | sim s | collisions | non-finite | "
        "limit violations | stuck | guard steps | min gap m | closest approach m |"
    )
    lines = [header, "|" + " --- |" * 12]
    rows = [(*key.split("/"), cell) for key, cell in summary["cells"].items()]
    rows.append(("**total**", "", summary["totals"]))
    for stream, world, cell in rows:
        lines.append(
            f"| {stream} | {world} | {cell['episodes']} | {cell['steps']} | "
            f"{cell['sim_seconds']:.0f} | {cell['collisions']} | {cell['non_finite']} | "
            f"{cell['limit_violations']} | {cell['stuck_episodes']} | {cell['guard_steps']} | "
            f"{cell['min_gap_m']:.3f} | {cell['closest_approach_m']:.3f} |"
        )
    return "\n".join(lines)


def machine_info() -> dict[str, object]:
    """Machine description from bench/benchlib.py (workspace checkout), else a minimal one."""
    bench_dir = Path(__file__).resolve().parents[3] / "bench"
    if (bench_dir / "benchlib.py").is_file():
        if str(bench_dir) not in sys.path:
            sys.path.insert(0, str(bench_dir))
        import benchlib

        return benchlib.machine_info()
    return {"cores": os.cpu_count(), "python": platform.python_version()}


def write_report(summary: dict[str, Any], settings: dict[str, Any], out_dir: Path) -> Path:
    """Write `<out_dir>/reliability_campaign-<date>.json` and a .md table beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    date = dt.date.today().isoformat()
    path = out_dir / f"reliability_campaign-{date}.json"
    payload = {
        "benchmark": "reliability_campaign",
        "date": date,
        "machine": machine_info(),
        "settings": settings,
        **summary,
    }
    text = json.dumps(payload, indent=2, default=_json_default, allow_nan=False)
    path.write_text(text + "\n")
    path.with_suffix(".md").write_text(markdown_table(summary) + "\n")
    return path


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {value!r}")


def _finite_for_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_for_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_for_json(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """Command line: run the campaign, print the table, write JSON; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="control steps in total")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="output dir")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base episode seed")
    parser.add_argument("--workers", type=int, default=2, help="processes (1: in-process)")
    parser.add_argument("--episode-steps", type=int, default=EPISODE_STEPS)
    parser.add_argument(
        "--feedback",
        choices=("CLOSED_LOOP", "OPEN_LOOP"),
        help="override the YAML's feedback mode (OPEN_LOOP: limits from the last output)",
    )
    args = parser.parse_args(argv)

    specs = plan_episodes(args.steps, args.seed, episode_steps=args.episode_steps)
    parameters = safety_parameters()
    if args.feedback:
        parameters["feedback"] = args.feedback
    start = time.perf_counter()
    results = run_campaign(specs, parameters, workers=args.workers)
    wall = time.perf_counter() - start
    summary = summarize(results)
    settings = {
        "command": "python -m safety_controller.reliability_campaign "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "steps_requested": args.steps,
        "episodes": len(specs),
        "episode_steps": args.episode_steps,
        "seed": args.seed,
        "workers": args.workers,
        "wall_seconds": round(wall, 2),
        "streams": list(STREAMS),
        "worlds": list(STATIC_WORLDS),
        "stuck_seconds": STUCK_SECONDS,
        "safety_parameters": parameters,
    }
    path = write_report(_finite_for_json(summary), settings, args.out)
    totals = summary["totals"]
    print(f"## reliability campaign\n\n{markdown_table(summary)}\n")
    print(
        f"{totals['steps']} control steps, {totals['sim_seconds']:.0f} s simulated, "
        f"{len(specs)} episodes, wall {wall:.1f} s with {args.workers} worker(s)"
    )
    print(f"violations by kind: {totals['violations']}")
    for event in summary["events"][:10]:
        print(f"event: {event}")
    print(f"written: {path}")
    failed = any(totals[name] for name in COUNTERS)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
