"""Adversarial reliability campaign: hostile inputs through the real safety filter, per class.

Runs the safety filter core in-process against the embedded MuJoCo simulator core (no DDS,
no rclpy), with randomized physics (friction, payload, wheel radius, actuator delay, lidar
noise and dropout drawn per episode from the robot profile). Each control step the lidar
(10 Hz, on simulated time) goes through the node's scan path (the ground-floor validator
`rlguard_common.scan_validity.validate_scan`, then `SafetyFilter.reject_scan` or
`scan_to_points` + `SafetyFilter.set_scan`), wheel odometry and a command stream's request
go into the filter, and the simulator executes the output. The base is modelled as the
contract requires (ARCHITECTURE.md, "the guarantee"): it executes a command for at most
`base_command_timeout` (whose default equals `reaction_time`) and stops (command zero) on
an older one; an output the filter marks `hold` is not published, like the node does. The
filter is configured from config/safety_controller.yaml plus the robot-profile overrides
(rlguard_common.robot_parameters) by the node's own builder (`node_config.build_safety_config`).

Each **class** is one kind of hostility, run and reported on its own (CLASSES):

- command streams in the static worlds: ``random`` (piecewise-constant requests up to 1.5x
  the limits), ``full_speed``, ``aim_nearest`` (full speed at the nearest obstacle, front or
  rear), ``oscillating`` (bang-bang or sinusoidal, 0.2-10 Hz), ``jitter`` (control periods
  of 10-120 ms), ``alternating`` (full forward / full reverse requests, flipped every
  0.05-0.5 s, closed loop), ``nonfinite_commands`` (requests laced with NaN, +-inf, huge and
  denormal values);
- malformed scans (``scan_<kind>``, SCAN_FAULTS): bursts of 0.3-3 s in which every scan is
  malformed in one way (angle_increment zero / negative / NaN, 720 ranges on a 360-beam
  geometry, range_min > range_max, range_max <= 0 or non-finite, empty ranges, non-finite
  stamp, intensities of another length, every range +inf, every range NaN), between good
  stretches, while a ``drive`` stream aims at obstacles; ``nonfinite_scans``: bursts of
  NaN/+-inf in beams and header fields;
- time sequences for the filter's `now` (``clock_<kind>``): a stalled clock (with two
  filter steps at one stamp), backward jumps, forward jumps, gaps of 1-5 control periods
  between filter steps (the base horizon stops the wheels meanwhile), non-finite `now`;
- ``lidar270_reverse``: a forward-facing 270-degree lidar robot (config/robots/lidar270.yaml)
  reversing at full speed into walls;
- moving obstacles (``movers_<world>``): the shipped `dynamic` world and generated scenes
  (crossing, head-on in a corridor, overtaking, several movers); the robot cruises from
  the world's start, chases where the nearest mover will be, aims at the nearest obstacle,
  drives randomly or stands still.

Counted per class (and per class and world):

- ``collisions``, split into ``at_fault`` (contact while the robot's velocity has a
  positive component toward the contact point: `Simulator.at_fault_collision_count`) and
  not at fault (hit while still or moving away);
- ``non_finite``: outputs with a NaN or infinite component; ``exceptions``: filter calls
  that raised (the node would publish zero);
- ``limit_violations`` by kind, judged between consecutive outputs over the filter's
  elapsed time max(0, now - previous now) (the contract: "time cannot make it faster").
  ``velocity``: outside [min_velocity, max_velocity]. ``accel``: a step without a safety
  reason outside the box max_accel / max_decel allow around the previous output.
  ``brake``: a safety step (collision, blind, blind direction, stale input) outside the box
  emergency_decel allows around the previous output (only a safety stop may brake harder
  than max_decel, and no harder than emergency_decel). ``hard_stop``: an e-stop or
  invalid-input step whose output is not exactly zero. ``invalid_now``: a step at a
  non-finite `now` whose output is not exactly zero;
- ``stuck``: an episode in which, for more than STUCK_SECONDS of simulated time in a row
  and with no injected fault in the last FAULT_SETTLE seconds, (1) the request was finite
  and asked for at least MIN_ASK of the limits, (2) the requested motion was an escape on
  ground truth (`is_escape`), (3) the output was below BLOCKED_FRACTION of the limits, and
  (4) every probe motion (`probe_commands`, tried on a copy of the filter) was blocked too;
- ``blocked_escapes`` (information): stretches in which (1)-(3) held but a probe passed;
- the named reasons seen: the validator's rejection reasons and the filter's reasons
  (steps with each), its states, guard and hard-stop steps, the smallest ground-truth gap
  and the closest approach (the smallest gap once the gap had been at least the margin).

Run ``python -m rlguard_tools.reliability_campaign --steps 100000 --out bench/results``
(steps per class). Seeds are fixed per class: the same budget and seed give the same counts.
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
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlguard_common.profile_yaml import workspace_root
from rlguard_common.robot_parameters import robot_parameter_overrides
from rlguard_common.robot_profile import RobotProfile, load_robot_profile
from rlguard_common.scan_validity import validate_scan
from rlguard_common.world import World, load_world, world_from_dict
from safety_controller.limits import (
    TINY,
    Velocity,
    VelocityLimits,
    clamp_velocity,
    in_box,
    reachable_box,
)
from safety_controller.node_config import build_safety_config, load_parameters
from safety_controller.safety_filter import (
    HARD_STOP_REASONS,
    SAFETY_REASONS,
    FilterOutput,
    SafetyConfig,
    SafetyFilter,
)
from safety_controller.scan_geometry import LidarMount, ScanPoints
from safety_controller.scan_input import CONVERSION_FAILED
from safety_controller.scan_input import feed_scan as feed_scan_to
from sim_bringup.sim_core import ObstacleGeometry, Simulator

STATIC_WORLDS = ("empty", "corridor", "warehouse")
CONTROL_PERIOD = 0.05  # s: the node's 20 Hz publish rate
JITTER_PERIOD = (0.01, 0.12)  # s: control periods of the jitter stream
MAX_GAP_PERIODS = 5.0  # clock_gaps: up to this many control periods between filter steps
EPISODE_STEPS = 300  # control steps per episode (15 s at 20 Hz)
DEFAULT_STEPS = 100_000  # per class
DEFAULT_SEED = 20261122
STUCK_SECONDS = 1.0  # s of blocked escape requests that make an episode stuck
MIN_ASK = 0.1  # the request must ask for this fraction of the limits to count as "moving"
BLOCKED_FRACTION = 0.01  # outputs below this fraction of the limits count as "blocked"
ESCAPE_HORIZON = 0.5  # s of the requested motion checked on ground truth by is_escape
ESCAPE_SLACK = 0.08  # m beyond the safety margin that makes a path clearly free (lidar noise)
ESCAPE_GAIN = 0.01  # m of clearance an escape must gain when it stays within the margin
FAULT_SETTLE = 1.0  # s after an injected fault before blocked time counts towards stuck
LIMIT_TOLERANCE = 1e-9
MAX_EVENTS = 20  # violation records kept per episode for investigation
MAX_SUMMARY_EVENTS = 200  # and in the report
BLIND_DIRECTION = "blind_direction"  # the filter's reason for unseen directions (new core)
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
NON_FINITE = (math.nan, math.inf, -math.inf)


# --------------------------------------------------------------------------- classes


@dataclass(frozen=True)
class CampaignClass:
    """One kind of hostility: a command stream, worlds, robot, and the faults injected."""

    name: str
    description: str
    stream: str  # a STREAM_TYPES key
    worlds: tuple[str, ...] = STATIC_WORLDS  # names in worlds/ or MOVER_WORLDS keys
    robot: str = "default"  # a robot profile name (LIDAR270: the 270-degree lidar robot)
    scan_fault: str = ""  # a SCAN_FAULTS key, "" for none
    clock: str = ""  # a CLOCK_FAULTS key, "" for the true clock
    # At least one of these reasons (validator or filter) must be seen in the class.
    expected_reasons: tuple[str, ...] = ()


# kind -> (description, validator reasons any of which names it correctly)
SCAN_FAULTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "angle_increment_zero": ("angle_increment = 0", ("angle_increment_not_positive",)),
    "angle_increment_negative": (
        "angle_increment < 0 (a mirrored, self-consistent geometry)",
        ("angle_increment_not_positive",),
    ),
    "angle_increment_nan": ("angle_increment = NaN", ("angle_increment_not_finite",)),
    "beam_count_mismatch": (
        "720 ranges on a 360-beam geometry",
        ("beam_count_mismatch",),
    ),
    "range_min_above_range_max": (
        "range_min and range_max swapped",
        ("range_min_above_range_max",),
    ),
    "range_max_nonpositive": (
        "range_max 0 or negative",
        ("range_max_not_positive", "range_min_above_range_max"),
    ),
    "range_max_nonfinite": (
        "range_max NaN or +-inf",
        ("range_max_not_finite", "range_max_not_positive"),
    ),
    "empty_ranges": ("no ranges at all", ("empty_ranges", "beam_count_mismatch")),
    "stamp_nonfinite": ("header stamp NaN or +-inf", ("stamp_not_finite",)),
    "intensities_mismatch": (
        "intensities of another length than ranges",
        ("intensities_length_mismatch",),
    ),
    "all_inf": ("every range +inf (well-formed: 'nothing anywhere')", ("blind",)),
    "all_nan": ("every range NaN (well-formed: no measurement)", ("blind",)),
    "nonfinite": (
        "NaN/+-inf bursts in beams and in header fields",
        ("blind", "angle_not_finite", "range_max_not_finite", "range_min_not_finite"),
    ),
}

CLOCK_FAULTS: dict[str, str] = {
    "stall": "now stalls for 0.1-3 s (steps repeat one stamp, some twice), then catches up or lags",
    "backward": "now jumps back by 0.05-3 s (or to 0) every 0.5-3 s",
    "forward": "now jumps forward by 0.05-5 s every 0.5-3 s",
    "gaps": "1-5 control periods between filter steps; the base stops after reaction_time",
    "nonfinite": "bursts of NaN / +-inf now",
}

LIDAR270 = "lidar270"

MOVER_WORLDS = ("dynamic", "crossing", "headon", "overtaking", "crowd")


def _classes() -> tuple[CampaignClass, ...]:
    streams = [
        CampaignClass("random", "random requests up to 1.5x the limits", "random"),
        CampaignClass("full_speed", "one constant full-speed request", "full_speed"),
        CampaignClass("aim_nearest", "full speed at the nearest obstacle", "aim_nearest"),
        CampaignClass("oscillating", "bang-bang / sinusoidal requests", "oscillating"),
        CampaignClass("jitter", "control periods of 10-120 ms", "jitter"),
        CampaignClass(
            "alternating", "full forward / full reverse requests, closed loop", "alternating"
        ),
        CampaignClass(
            "nonfinite_commands",
            "requests laced with NaN, +-inf, huge values",
            "nonfinite",
            expected_reasons=("invalid_input",),
        ),
    ]
    scans = [
        CampaignClass(
            "nonfinite_scans" if kind == "nonfinite" else f"scan_{kind}",
            description,
            "drive",
            scan_fault=kind,
            expected_reasons=reasons,
        )
        for kind, (description, reasons) in SCAN_FAULTS.items()
    ]
    clocks = [
        CampaignClass(
            f"clock_{kind}",
            description,
            "drive",
            clock=kind,
            expected_reasons=("invalid_input",) if kind == "nonfinite" else (),
        )
        for kind, description in CLOCK_FAULTS.items()
    ]
    others = [
        CampaignClass(
            "lidar270_reverse",
            "270-degree forward lidar reversing at full speed into walls",
            "reverse",
            robot=LIDAR270,
            expected_reasons=(BLIND_DIRECTION,),
        ),
        *(
            CampaignClass(f"movers_{world}", MOVER_DESCRIPTIONS[world], "movers", worlds=(world,))
            for world in MOVER_WORLDS
        ),
    ]
    return (*streams, *scans, *clocks, *others)


MOVER_DESCRIPTIONS = {
    "dynamic": "the shipped dynamic world (three movers, 0.2-0.3 m/s)",
    "crossing": "movers crossing the robot's path at 0.3-0.45 m/s",
    "headon": "a mover coming head-on in a 1.2 m corridor at 0.35 m/s",
    "overtaking": "a 0.45 m/s mover catching up from behind in a corridor",
    "crowd": "five movers at 0.25-0.45 m/s in an open hall",
}
CLASSES = _classes()
CLASS_BY_NAME = {c.name: c for c in CLASSES}


# --------------------------------------------------------------------------- configuration


def safety_config_path() -> Path:
    """config/safety_controller.yaml of the workspace, else the installed share copy."""
    candidates = []
    root = workspace_root()
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


def robot_profile(name: str) -> RobotProfile:
    """The robot profile of a class (a name in config/robots)."""
    return load_robot_profile(name)


def safety_parameters(
    robot: str | RobotProfile = "default", path: Path | None = None
) -> dict[str, Any]:
    """The node's parameters: the YAML over the defaults, the robot-profile overrides on top."""
    values = load_parameters(path or safety_config_path())
    profile = robot if isinstance(robot, RobotProfile) else robot_profile(robot)
    values.update(robot_parameter_overrides(profile)["safety_controller"])
    return values


def build_config(values: dict[str, Any]) -> tuple[SafetyConfig, LidarMount]:
    """SafetyConfig and lidar mount from parameter values: the node's own builder."""
    return build_safety_config(values)


def base_horizon(values: dict[str, Any]) -> float:
    """How long the modelled base executes a command without a newer one (s).

    The base's command watchdog the node is told about (`base_command_timeout`, whose
    default equals `reaction_time`); `reaction_time` when the parameter is not there.
    """
    return float(values.get("base_command_timeout", values["reaction_time"]))


# --------------------------------------------------------------------------- worlds


def _mover(radius: float, speed: float, *waypoints: tuple[float, float]) -> dict[str, Any]:
    return {"radius": radius, "speed": speed, "waypoints": [list(p) for p in waypoints]}


def mover_world_data(name: str) -> dict[str, Any]:
    """The world mapping of a generated moving-obstacle scene (see MOVER_DESCRIPTIONS)."""
    base: dict[str, Any] = {
        "name": name,
        "arena": {"size": [8.0, 4.0], "wall_thickness": 0.1},
        "obstacle_height": 0.5,
        "start": {"x": -3.0, "y": 0.0, "yaw": 0.0},
        "goals": [[3.0, 0.0]],
        "goal_tolerance": 0.25,
    }
    if name == "crossing":
        base["moving_cylinders"] = [
            _mover(0.2, 0.3, (-1.0, -1.7), (-1.0, 1.7)),
            _mover(0.25, 0.45, (0.8, 1.7), (0.8, -1.7)),
            _mover(0.2, 0.4, (2.2, -1.7), (2.2, 1.7)),
        ]
    elif name == "headon":
        base["arena"]["size"] = [8.0, 1.2]
        base["start"] = {"x": -3.4, "y": 0.0, "yaw": 0.0}
        base["goals"] = [[3.4, 0.0]]
        base["moving_cylinders"] = [_mover(0.2, 0.35, (3.6, 0.05), (-3.6, -0.05))]
    elif name == "overtaking":
        base["arena"]["size"] = [8.0, 2.0]
        base["start"] = {"x": -2.0, "y": 0.0, "yaw": 0.0}
        base["moving_cylinders"] = [
            _mover(0.2, 0.45, (-3.6, 0.0), (3.6, 0.0), (3.6, 0.7), (-3.6, 0.7)),
        ]
    elif name == "crowd":
        base["arena"]["size"] = [6.0, 6.0]
        base["start"] = {"x": 0.0, "y": 0.0, "yaw": 0.0}
        base["goals"] = [[2.5, 2.5]]
        base["moving_cylinders"] = [
            _mover(0.2, 0.25, (-2.5, -2.0), (2.5, -2.0), (2.5, 2.0), (-2.5, 2.0)),
            _mover(0.2, 0.45, (-2.5, 0.5), (2.5, -0.5)),
            _mover(0.25, 0.35, (0.5, 2.5), (-0.5, -2.5)),
            _mover(0.15, 0.4, (-2.0, 2.5), (2.0, -2.5), (2.0, 2.5)),
            _mover(0.2, 0.3, (1.5, 1.5), (-1.5, 1.5), (-1.5, -1.5), (1.5, -1.5)),
        ]
    else:
        raise ValueError(f"unknown generated mover world {name!r}")
    return base


def load_campaign_world(name: str) -> World:
    """A world of the campaign: a shipped one by name, or a generated mover scene."""
    if name in MOVER_WORLDS and name != "dynamic":
        return world_from_dict(mover_world_data(name), f"<campaign:{name}>")
    return load_world(name)


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


# --------------------------------------------------------------------------- scans


@dataclass
class ScanMessage:
    """The fields of a sensor_msgs/LaserScan the safety node reads (no message types here)."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray
    intensities: np.ndarray
    stamp: float


def scan_message(sim: Simulator) -> ScanMessage:
    """Ray-cast the simulator's lidar as the sim node would publish it."""
    scan = sim.scan()
    count = len(scan.ranges)
    return ScanMessage(
        angle_min=float(scan.angle_min),
        angle_max=float(scan.angle_min + scan.angle_increment * (count - 1)),
        angle_increment=float(scan.angle_increment),
        range_min=float(scan.range_min),
        range_max=float(scan.range_max),
        ranges=np.asarray(scan.ranges, dtype=np.float64),
        intensities=np.zeros(0),
        stamp=float(scan.stamp),
    )


def corrupt_scan(msg: ScanMessage, kind: str, rng: np.random.Generator) -> ScanMessage:
    """A copy of `msg` made malformed in the way SCAN_FAULTS[kind] describes."""
    bad = copy.copy(msg)
    if kind == "angle_increment_zero":
        bad.angle_increment = 0.0
    elif kind == "angle_increment_negative":
        bad.angle_min, bad.angle_max = msg.angle_max, msg.angle_min
        bad.angle_increment = -msg.angle_increment
    elif kind == "angle_increment_nan":
        bad.angle_increment = math.nan
    elif kind == "beam_count_mismatch":
        bad.ranges = np.repeat(msg.ranges, 2)
    elif kind == "range_min_above_range_max":
        bad.range_min, bad.range_max = msg.range_max, msg.range_min
    elif kind == "range_max_nonpositive":
        bad.range_max = float(rng.choice([0.0, -1.0, -msg.range_max]))
    elif kind == "range_max_nonfinite":
        bad.range_max = float(rng.choice(NON_FINITE))
    elif kind == "empty_ranges":
        bad.ranges = np.zeros(0)
    elif kind == "stamp_nonfinite":
        bad.stamp = float(rng.choice(NON_FINITE))
    elif kind == "intensities_mismatch":
        count = len(msg.ranges) + int(rng.choice([-180, -1, 1, 360]))
        bad.intensities = np.full(max(count, 1), 100.0)
    elif kind == "all_inf":
        bad.ranges = np.full(len(msg.ranges), math.inf)
    elif kind == "all_nan":
        bad.ranges = np.full(len(msg.ranges), math.nan)
    elif kind == "nonfinite":
        if rng.random() < 0.6:
            ranges = msg.ranges.copy()
            hit = rng.random(len(ranges)) < rng.uniform(0.05, 1.0)
            ranges[hit] = rng.choice(NON_FINITE, size=int(hit.sum()))
            bad.ranges = ranges
        else:
            name = str(rng.choice(["angle_min", "angle_max", "range_min", "range_max"]))
            setattr(bad, name, float(rng.choice(NON_FINITE)))
    else:
        raise ValueError(f"unknown scan fault {kind!r}")
    return bad


UNHANDLED_REJECTION = "reject_scan_missing"  # the filter has no reject_scan: scan dropped
SCAN_PATH = "safety_controller.scan_input.feed_scan"  # the node's own scan path


class _DroppingSink:
    """A filter without `reject_scan` (the old core, stand-ins): a rejected scan is dropped."""

    def __init__(self, filt: FilterLike) -> None:
        self.filt = filt
        self.reason: str | None = None

    def set_scan(self, scan: ScanPoints, now: float, stamp: float | None = None) -> None:
        self.filt.set_scan(scan, now, stamp)

    def reject_scan(self, now: float, reason: str) -> None:
        self.reason = reason


def validate_scan_message(msg: ScanMessage) -> str | None:
    """The one validator's verdict on a scan (None: valid)."""
    return validate_scan(
        msg.angle_min,
        msg.angle_max,
        msg.angle_increment,
        msg.range_min,
        msg.range_max,
        len(msg.ranges),
        len(msg.intensities),
        msg.stamp,
    )


def feed_scan(filt: FilterLike, msg: ScanMessage, now: float, mount: LidarMount) -> str | None:
    """The safety node's scan path (`scan_input.feed_scan`); None when accepted.

    A filter without `reject_scan` only has a refused scan dropped, and
    UNHANDLED_REJECTION is added to the reason.
    """
    if hasattr(filt, "reject_scan"):
        return feed_scan_to(filt, msg, msg.stamp, now, mount)
    sink = _DroppingSink(filt)
    reason = feed_scan_to(sink, msg, msg.stamp, now, mount)
    return None if reason is None else f"{reason}+{UNHANDLED_REJECTION}"


@dataclass
class FaultSchedule:
    """Alternating good stretches and fault bursts on simulated time."""

    rng: np.random.Generator
    first_good: tuple[float, float] = (0.3, 2.0)
    burst: tuple[float, float] = (0.3, 3.0)
    good: tuple[float, float] = (0.3, 2.0)
    _until: float = field(default=-1.0, init=False)
    _active: bool = field(default=True, init=False)

    def active(self, time: float) -> bool:
        """Whether a fault burst covers `time` (call with non-decreasing times)."""
        if self._until < 0.0:
            self._until = float(self.rng.uniform(*self.first_good))
            self._active = False
        while time >= self._until:
            self._active = not self._active
            self._until += float(self.rng.uniform(*(self.burst if self._active else self.good)))
        return self._active


# --------------------------------------------------------------------------- clocks


class FilterClock:
    """The `now` values the filter sees at a control step, given the true time."""

    def __init__(self, kind: str, rng: np.random.Generator) -> None:
        self.kind = kind
        self.rng = rng
        self._offset = 0.0  # filter time - true time
        self._frozen: float | None = None
        self._event_at = float(rng.uniform(0.3, 2.0))
        self._event_end = -1.0
        self._burst = 0

    def nows(self, true_time: float) -> tuple[list[float], bool]:
        """The filter's `now` values at this step (one, or two at one stamp) and whether
        a fault was injected at this step."""
        rng, kind = self.rng, self.kind
        if kind in ("", "gaps"):
            return [true_time], False
        if kind == "nonfinite":
            if self._burst == 0 and rng.random() < 0.05:
                self._burst = int(rng.integers(1, 10))
            if self._burst > 0:
                self._burst -= 1
                return [float(rng.choice(NON_FINITE))], True
            return [true_time], False
        due = true_time >= self._event_at
        if kind == "stall":
            if self._frozen is None and due:
                self._frozen = true_time + self._offset
                self._event_end = true_time + float(rng.uniform(0.1, 3.0))
            if self._frozen is not None:
                now = self._frozen
                if true_time >= self._event_end:  # resume: catch up, or lag from here
                    if rng.random() < 0.5:
                        self._offset = 0.0
                    else:
                        self._offset = self._frozen - true_time
                    self._frozen = None
                    self._event_at = true_time + float(rng.uniform(0.5, 3.0))
                    now = true_time + self._offset
                twice = rng.random() < 0.3
                return ([now, now] if twice else [now]), True
            return [true_time + self._offset], False
        if due:
            self._event_at = true_time + float(rng.uniform(0.5, 3.0))
            now = true_time + self._offset
            if kind == "backward":
                back = now if rng.random() < 0.2 else float(rng.uniform(0.05, 3.0))
                self._offset -= back
            elif kind == "forward":
                self._offset += float(rng.uniform(0.05, 5.0))
            else:
                raise ValueError(f"unknown clock fault {kind!r}")
            return [true_time + self._offset], True
        return [true_time + self._offset], False

    def period(self, default: float) -> float:
        """The true time until the next filter step."""
        if self.kind == "gaps" and self.rng.random() < 0.4:
            return float(self.rng.uniform(1.0, MAX_GAP_PERIODS)) * CONTROL_PERIOD
        return default


# --------------------------------------------------------------------------- command streams


@dataclass(frozen=True)
class StreamInput:
    """What an adversarial stream may look at: ground truth included."""

    time: float
    pose: tuple[float, float, float]
    geometry: ObstacleGeometry
    max_velocity: tuple[float, float]
    movers: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # x, y, vx, vy, r


class CommandStream:
    """A source of requests and control periods for one episode."""

    name = "base"
    from_world_start = False  # start the episode at the world's start pose

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

    def __init__(self, rng: np.random.Generator, direction: float | None = None) -> None:
        super().__init__(rng)
        forward = rng.random() < 0.7
        self._direction = direction if direction is not None else (1.0 if forward else -1.0)
        self._turn = 0.0 if rng.random() < 0.5 else float(rng.uniform(-0.3, 0.3))

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._direction * obs.max_velocity[0], self._turn * obs.max_velocity[1]


class AimNearestStream(CommandStream):
    """Full speed at the nearest obstacle (ground truth), with the front or the rear."""

    name = "aim_nearest"

    def __init__(self, rng: np.random.Generator, direction: float | None = None) -> None:
        super().__init__(rng)
        forward = rng.random() < 0.7
        self._direction = direction if direction is not None else (1.0 if forward else -1.0)
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


class DriveStream(CommandStream):
    """Driving into things: aim_nearest (half), full_speed or random requests."""

    name = "drive"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        pick = rng.random()
        base = AimNearestStream if pick < 0.5 else FullSpeedStream if pick < 0.75 else RandomStream
        self._base = base(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)


class ReverseStream(CommandStream):
    """Reversing into walls: the rear aimed at the nearest obstacle, full reverse, random."""

    name = "reverse"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        pick = rng.random()
        if pick < 0.5:
            self._base: CommandStream = AimNearestStream(rng, direction=-1.0)
        elif pick < 0.8:
            self._base = FullSpeedStream(rng, direction=-1.0)
        else:
            self._base = RandomStream(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)


class AlternatingStream(CommandStream):
    """Full forward / full reverse requests, flipped every 0.05-0.5 s (some with a turn)."""

    name = "alternating"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._half = float(rng.choice([0.05, 0.1, 0.15, 0.25, 0.5]))
        self._turn = float(rng.choice([0.0, 0.0, 1.0, -1.0]))
        self._turn_flips = bool(rng.random() < 0.5)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        sign = 1.0 if int(obs.time / self._half + 1e-9) % 2 == 0 else -1.0
        turn = self._turn * (sign if self._turn_flips else 1.0)
        return sign * obs.max_velocity[0], turn * obs.max_velocity[1]


class AimMoverStream(CommandStream):
    """Full speed at where the nearest mover will be (ground truth), front or rear."""

    name = "aim_mover"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._direction = 1.0 if rng.random() < 0.8 else -1.0
        self._lead = float(rng.uniform(0.0, 2.0))  # s of the mover's motion aimed ahead

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        x, y, yaw = obs.pose
        if not len(obs.movers):
            return self._direction * obs.max_velocity[0], 0.0
        distances = np.hypot(obs.movers[:, 0] - x, obs.movers[:, 1] - y)
        mover = obs.movers[int(np.argmin(distances))]
        target = mover[:2] + self._lead * mover[2:4]
        heading = yaw if self._direction > 0 else yaw + math.pi
        bearing = math.remainder(math.atan2(target[1] - y, target[0] - x) - heading, 2 * math.pi)
        wmax = obs.max_velocity[1]
        return self._direction * obs.max_velocity[0], float(np.clip(3.0 * bearing, -wmax, wmax))


class IdleStream(CommandStream):
    """Zero requests: a robot standing still (movers may still hit it)."""

    name = "idle"

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return 0.0, 0.0


class MoverStream(CommandStream):
    """Among movers: cruising from the world's start, chasing a mover, aiming, random, still."""

    name = "movers"

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        pick = rng.random()
        if pick < 0.3:
            self._base: CommandStream = FullSpeedStream(rng, direction=1.0)
            self.from_world_start = True
        elif pick < 0.6:
            self._base = AimMoverStream(rng)
        elif pick < 0.75:
            self._base = AimNearestStream(rng)
        elif pick < 0.9:
            self._base = RandomStream(rng)
        else:
            self._base = IdleStream(rng)

    def command(self, obs: StreamInput) -> Velocity:
        """See the class docstring."""
        return self._base.command(obs)


STREAM_TYPES: dict[str, type[CommandStream]] = {
    cls.name: cls
    for cls in (
        RandomStream,
        FullSpeedStream,
        AimNearestStream,
        OscillatingStream,
        NonFiniteStream,
        JitterStream,
        DriveStream,
        ReverseStream,
        AlternatingStream,
        AimMoverStream,
        IdleStream,
        MoverStream,
    )
}


# --------------------------------------------------------------------------- episodes


class FilterLike(Protocol):
    """The part of SafetyFilter the campaign drives (so a broken filter can be swapped in).

    `reject_scan(now, reason)` is used when the filter has it (see `feed_scan`).
    """

    def set_command(self, linear: float, angular: float, now: float) -> bool: ...  # noqa: D102
    def set_scan(  # noqa: D102
        self, scan: ScanPoints, now: float, stamp: float | None = None
    ) -> None: ...
    def set_odometry(self, linear: float, angular: float, now: float) -> bool: ...  # noqa: D102
    def step(self, now: float) -> FilterOutput: ...  # noqa: D102


FilterFactory = Callable[[SafetyConfig], FilterLike]
VIOLATION_KINDS = ("velocity", "accel", "brake", "hard_stop", "invalid_now")


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: its class, world, seed and length in control steps."""

    index: int
    class_name: str
    world: str
    seed: int
    steps: int


@dataclass
class EpisodeResult:
    """Counters of one episode."""

    spec: EpisodeSpec
    steps: int = 0
    filter_steps: int = 0
    sim_seconds: float = 0.0
    collisions: int = 0
    at_fault: int = 0
    non_finite: int = 0
    exceptions: int = 0
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIOLATION_KINDS, 0))
    stuck: bool = False
    stuck_events: int = 0
    blocked_escapes: int = 0  # informational: escapes refused while other motions passed
    longest_blocked_escape: float = 0.0
    guard_steps: int = 0
    hard_stop_steps: int = 0
    max_accel_excess: float = 0.0  # m/s^2 or rad/s^2 beyond the box, largest axis
    faults_injected: int = 0  # malformed scans sent, or clock faults
    held_outputs: int = 0  # outputs marked `hold` (not published by the node)
    min_gap: float = math.inf  # m between the robot body and the nearest obstacle
    min_approach: float = math.inf  # m: smallest gap once the gap was >= the safety margin
    reasons: dict[str, int] = field(default_factory=dict)  # filter reason -> steps
    states: dict[str, int] = field(default_factory=dict)  # filter state -> steps
    scan_rejections: dict[str, int] = field(default_factory=dict)  # validator reason -> scans
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def limit_violations(self) -> int:
        """All limit violations of the episode."""
        return sum(self.violations.values())

    @property
    def not_at_fault(self) -> int:
        """Collisions while the robot stood still or moved away."""
        return self.collisions - self.at_fault


def plan_episodes(
    steps_per_class: int,
    seed: int = DEFAULT_SEED,
    classes: Sequence[str] | None = None,
    episode_steps: int = EPISODE_STEPS,
) -> list[EpisodeSpec]:
    """Episodes covering at least `steps_per_class` for each class, cycling its worlds.

    A class's seeds depend on its name and the base seed only, so running a subset of the
    classes gives the same episodes for those classes.
    """
    names = list(classes) if classes is not None else [c.name for c in CLASSES]
    specs: list[EpisodeSpec] = []
    per_class = []
    for name in names:
        cls = CLASS_BY_NAME[name]
        count = max(len(cls.worlds), math.ceil(steps_per_class / episode_steps))
        base = seed + (zlib.crc32(name.encode()) % 100_000) * 10_000
        per_class.append([(name, cls.worlds[i % len(cls.worlds)], base + i) for i in range(count)])
    # Interleave the classes so that a worker pool shares the heavy ones.
    for round_ in range(max(len(p) for p in per_class)):
        for episodes in per_class:
            if round_ < len(episodes):
                name, world, episode_seed = episodes[round_]
                specs.append(EpisodeSpec(len(specs), name, world, episode_seed, episode_steps))
    return specs


_SIMULATORS: dict[tuple[str, str], Simulator] = {}


def _simulator(robot: str, world: str) -> Simulator:
    """One simulator per robot, world and process, reset per episode."""
    key = (robot, world)
    if key not in _SIMULATORS:
        _SIMULATORS[key] = Simulator(
            robot_profile(robot), load_campaign_world(world), randomize=True
        )
    return _SIMULATORS[key]


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
    excess = max(max(float(lo[i]) - value[i], value[i] - float(hi[i])) for i in range(2))
    if excess <= LIMIT_TOLERANCE:
        return 0.0
    return min(excess, 1e12) / max(elapsed, 1e-3)


_STOPPED = FilterOutput(0.0, 0.0, 0.0, frozenset(), math.inf, "EXCEPTION")


class _Episode:
    """The state of one running episode (see `run_episode`)."""

    def __init__(
        self,
        spec: EpisodeSpec,
        overrides: dict[str, Any] | None,
        filter_factory: FilterFactory | None,
    ) -> None:
        self.spec = spec
        self.cls = CLASS_BY_NAME[spec.class_name]
        profile = robot_profile(self.cls.robot)
        values = safety_parameters(profile)
        values.update(overrides or {})
        self.config, self.mount = build_config(values)
        self.limits = self.config.limits
        self.horizon = base_horizon(values)  # the base stops on older commands
        self.filt = (filter_factory or SafetyFilter)(self.config)
        self.sim = sim = _simulator(self.cls.robot, spec.world)
        self.rng = rng = np.random.default_rng(spec.seed)
        self.moving = bool(sim.world.moving_cylinders)
        self.stream = STREAM_TYPES[self.cls.stream](rng)
        sim.reset(spec.seed)
        geometry = sim.obstacles()
        start = sim.world.start
        if not (self.stream.from_world_start and clearance(np.array(start[:2]), geometry) > 0.3):
            band = rng.choice([0, 1, 2])  # start near a wall, in the open, or anywhere
            low, high = ((0.125, 0.2), (0.35, math.inf), (0.2, math.inf))[band]
            start = random_start(sim, geometry, rng, low, high, inset=0.1)
        sim.reset(spec.seed, start=start)
        self.geometry = sim.obstacles()
        self.clock = FilterClock(self.cls.clock, rng)
        self.schedule = FaultSchedule(rng) if self.cls.scan_fault else None
        self.radius = sim.robot.footprint_radius
        self.scan_period = 1.0 / sim.robot.lidar.rate_hz
        self.result = EpisodeResult(spec=spec)
        self.time = 0.0  # true (simulated) time, unrounded
        self.next_scan = 0.0
        self.pending: list[ScanMessage] = []
        self.base_command: Velocity = (0.0, 0.0)
        self.base_time = -math.inf
        self.previous: Velocity = (0.0, 0.0)
        self.previous_now: float | None = None
        self.last_fault = -math.inf

    # ---- helpers --------------------------------------------------------------------

    def record(self, kind: str, **extra: Any) -> None:
        if len(self.result.events) < MAX_EVENTS:
            self.result.events.append(
                {"kind": kind, "time": round(self.time, 6), **_json_ready(extra)}
            )

    def cast_scan(self) -> None:
        msg = scan_message(self.sim)
        msg.stamp = self.time
        if self.schedule is not None and self.schedule.active(self.time):
            msg = corrupt_scan(msg, self.cls.scan_fault, self.rng)
            self.result.faults_injected += 1
            self.last_fault = self.time
        self.pending.append(msg)

    def feed_scans(self, now: float) -> None:
        for msg in self.pending:
            try:
                reason = feed_scan(self.filt, msg, now, self.mount)
            except Exception as exc:  # noqa: BLE001 - a crash is what the campaign counts
                self.result.exceptions += 1
                self.record("exception", where="scan", error=repr(exc))
                continue
            if reason is not None:
                rejections = self.result.scan_rejections
                rejections[reason] = rejections.get(reason, 0) + 1
        self.pending.clear()

    def filter_step(self, now: float, request: Velocity) -> tuple[FilterOutput, Velocity]:
        """Odometry, request and one filter step at `now`; checks the output."""
        result, limits = self.result, self.limits
        odom = self.sim.odometry()
        try:
            self.filt.set_odometry(odom.v, odom.w, now)
            self.filt.set_command(request[0], request[1], now)
            out = self.filt.step(now)
        except Exception as exc:  # noqa: BLE001 - the node would publish zero
            result.exceptions += 1
            self.record("exception", where="step", now=now, error=repr(exc))
            out = _STOPPED
        result.filter_steps += 1
        for reason in out.reasons:
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
        result.states[out.state] = result.states.get(out.state, 0) + 1
        output = (out.linear, out.angular)
        seen = dict(
            now=now,
            request=request,
            output=output,
            previous=self.previous,
            odometry=(odom.v, odom.w),
            reasons=sorted(out.reasons),
            state=out.state,
        )
        if not (math.isfinite(output[0]) and math.isfinite(output[1])):
            result.non_finite += 1
            self.record("non_finite", **seen)
            output = (0.0, 0.0)  # what the simulator does with it; keeps the checks defined
        if not _within_velocity_limits(output, limits):
            result.violations["velocity"] += 1
            self.record("velocity", **seen)
        if not math.isfinite(now):
            if output != (0.0, 0.0):
                result.violations["invalid_now"] += 1
                self.record("invalid_now", **seen)
            self.previous = output
            return out, output
        if out.reasons & HARD_STOP_REASONS:
            result.hard_stop_steps += 1
            if output != (0.0, 0.0):
                result.violations["hard_stop"] += 1
                self.record("hard_stop", **seen)
        elif self.previous_now is not None:
            elapsed = max(0.0, now - self.previous_now)
            safety = bool(out.reasons & (SAFETY_REASONS | {BLIND_DIRECTION}))
            reference = tuple(x if abs(x) >= TINY else 0.0 for x in self.previous)
            box = reachable_box(reference, limits, elapsed, emergency=safety)
            if safety:
                result.guard_steps += 1
            if not in_box(output, box, LIMIT_TOLERANCE):
                kind = "brake" if safety else "accel"
                result.violations[kind] += 1
                excess = _box_excess(output, box, elapsed)
                result.max_accel_excess = max(result.max_accel_excess, excess)
                self.record(kind, elapsed=elapsed, **seen)
        self.previous, self.previous_now = output, now
        return out, output

    def advance(self, duration: float) -> None:
        """Run the base for `duration`: the last command until its horizon, then zero."""
        sim, result = self.sim, self.result
        target = self.time + duration
        while True:
            stops = [target]
            if self.next_scan < target - 1e-9:
                stops.append(self.next_scan)
            cutoff = self.base_time + self.horizon
            if self.time < cutoff < target - 1e-9:
                stops.append(cutoff)
            end = min(stops)
            command = self.base_command if self.time < cutoff - 1e-12 else (0.0, 0.0)
            before = (sim.collision_count, sim.at_fault_collision_count)
            sim.step(command[0], command[1], end - self.time)
            self.time = end
            new = sim.collision_count - before[0]
            if new > 0:
                fault = sim.at_fault_collision_count - before[1]
                result.collisions += new
                result.at_fault += fault
                self.record(
                    "collision" if fault else "collision_not_at_fault",
                    pose=sim.pose,
                    velocity=sim.velocity,
                    command=command,
                )
            if end >= target - 1e-9:
                return
            if abs(end - self.next_scan) <= 1e-9:
                self.cast_scan()
                self.next_scan += self.scan_period

    # ---- the loop -------------------------------------------------------------------

    def run(self) -> EpisodeResult:
        sim, result, limits, config = self.sim, self.result, self.limits, self.config
        margin = config.footprint.margin
        blocked_escape, counted_blocked = 0.0, False
        trapped_time, counted_trap = 0.0, False
        left_margin = clearance(np.array(sim.pose[:2]), self.geometry) - self.radius >= margin
        for _ in range(self.spec.steps):
            if self.time >= self.next_scan - 1e-9:
                self.cast_scan()
                self.next_scan += self.scan_period
            if self.moving:
                self.geometry = sim.obstacles()
            nows, clock_fault = self.clock.nows(self.time)
            if clock_fault:
                result.faults_injected += 1
                self.last_fault = self.time
            pose = sim.pose
            movers = sim.moving_obstacles() if self.moving else np.zeros((0, 5))
            request = self.stream.command(
                StreamInput(self.time, pose, self.geometry, limits.max_velocity, movers)
            )
            if not (math.isfinite(request[0]) and math.isfinite(request[1])):
                self.last_fault = self.time
            for k, now in enumerate(nows):
                if k == 0:
                    self.feed_scans(now)
                out, output = self.filter_step(now, request)
                if getattr(out, "hold", False):
                    # A repeat at no later time: the node does not publish it, so the
                    # base keeps its last command until that command's horizon.
                    result.held_outputs += 1
                else:
                    self.base_command, self.base_time = output, self.time
            output = self.base_command if self.time < self.base_time + self.horizon else (0.0, 0.0)

            nominal = self.stream.period()
            period = self.clock.period(nominal)
            if period > nominal:  # a gap between filter steps
                result.faults_injected += 1
                self.last_fault = self.time
            settled = self.time - self.last_fault > FAULT_SETTLE
            escape_blocked = settled and _normalized(output, limits) < BLOCKED_FRACTION
            if escape_blocked:
                asked = clamp_velocity(request[0], request[1], limits)
                escape_blocked = _normalized(asked, limits) >= MIN_ASK and is_escape(
                    pose, asked, self.geometry, self.radius, margin
                )
            trapped = escape_blocked and not _any_probe_passes(self.filt, limits, nows[-1] + period)
            if escape_blocked:
                blocked_escape += period
                result.longest_blocked_escape = max(result.longest_blocked_escape, blocked_escape)
                if blocked_escape > STUCK_SECONDS and not counted_blocked:
                    counted_blocked = True
                    result.blocked_escapes += 1
                    self.record("blocked_escape", blocked_seconds=blocked_escape, request=request)
            else:
                blocked_escape, counted_blocked = 0.0, False
            if trapped:
                trapped_time += period
                if trapped_time > STUCK_SECONDS and not counted_trap:
                    counted_trap = True
                    result.stuck_events += 1
                    result.stuck = True
                    self.record("stuck", blocked_seconds=trapped_time, request=request)
            else:
                trapped_time, counted_trap = 0.0, False

            self.advance(period)
            if self.moving:
                self.geometry = sim.obstacles()
            gap = clearance(np.array(sim.pose[:2]), self.geometry) - self.radius
            left_margin = left_margin or gap >= margin
            if left_margin:
                result.min_approach = min(result.min_approach, gap)
            result.min_gap = min(result.min_gap, gap)
            result.steps += 1
        result.sim_seconds = self.time
        return result


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def run_episode(
    spec: EpisodeSpec,
    overrides: dict[str, Any] | None = None,
    filter_factory: FilterFactory | None = None,
) -> EpisodeResult:
    """Drive one episode of its class; `overrides` replace safety parameter values."""
    return _Episode(spec, overrides, filter_factory).run()


Job = tuple[EpisodeSpec, dict[str, Any] | None, FilterFactory | None]


def _run_one(job: Job) -> EpisodeResult:
    return run_episode(*job)


def run_campaign(
    specs: Sequence[EpisodeSpec],
    overrides: dict[str, Any] | None = None,
    workers: int = 2,
    filter_factory: FilterFactory | None = None,
) -> list[EpisodeResult]:
    """Run every episode (in `workers` processes when > 1), results in episode order."""
    jobs = [(spec, overrides, filter_factory) for spec in specs]
    if workers <= 1:
        return [_run_one(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(pool.imap(_run_one, jobs, chunksize=1))


# --------------------------------------------------------------------------- reporting

FAILURES = ("at_fault", "non_finite", "limit_violations", "stuck_episodes", "exceptions")


def _empty_entry() -> dict[str, Any]:
    return {
        "episodes": 0,
        "steps": 0,
        "filter_steps": 0,
        "sim_seconds": 0.0,
        "collisions": 0,
        "at_fault": 0,
        "not_at_fault": 0,
        "non_finite": 0,
        "exceptions": 0,
        "limit_violations": 0,
        "violations": dict.fromkeys(VIOLATION_KINDS, 0),
        "max_accel_excess": 0.0,
        "stuck_episodes": 0,
        "stuck_events": 0,
        "blocked_escapes": 0,
        "longest_blocked_escape_s": 0.0,
        "guard_steps": 0,
        "hard_stop_steps": 0,
        "faults_injected": 0,
        "held_outputs": 0,
        "min_gap_m": math.inf,
        "closest_approach_m": math.inf,
        "reasons": {},
        "states": {},
        "scan_rejections": {},
    }


def _add(entry: dict[str, Any], result: EpisodeResult) -> None:
    entry["episodes"] += 1
    for name in (
        "steps",
        "filter_steps",
        "sim_seconds",
        "collisions",
        "at_fault",
        "not_at_fault",
        "non_finite",
        "exceptions",
        "limit_violations",
        "stuck_events",
        "blocked_escapes",
        "guard_steps",
        "hard_stop_steps",
        "faults_injected",
        "held_outputs",
    ):
        entry[name] += getattr(result, name)
    for kind, count in result.violations.items():
        entry["violations"][kind] += count
    for key in ("reasons", "states", "scan_rejections"):
        counter = Counter(entry[key])
        counter.update(getattr(result, key))
        entry[key] = dict(sorted(counter.items()))
    entry["stuck_episodes"] += int(result.stuck)
    entry["max_accel_excess"] = max(entry["max_accel_excess"], result.max_accel_excess)
    entry["longest_blocked_escape_s"] = max(
        entry["longest_blocked_escape_s"], result.longest_blocked_escape
    )
    entry["min_gap_m"] = min(entry["min_gap_m"], result.min_gap)
    entry["closest_approach_m"] = min(entry["closest_approach_m"], result.min_approach)


def expected_reason_seen(name: str, entry: dict[str, Any]) -> bool:
    """Whether a class's run named one of its expected reasons (validator or filter)."""
    expected = CLASS_BY_NAME[name].expected_reasons
    if not expected:
        return True
    seen = set(entry["reasons"]) | {r.split("+")[0] for r in entry["scan_rejections"]}
    return bool(seen & set(expected))


def class_failures(name: str, entry: dict[str, Any]) -> list[str]:
    """What a class's counters show wrong (empty: the class holds)."""
    failures = [f"{key}={entry[key]}" for key in FAILURES if entry[key]]
    if not expected_reason_seen(name, entry):
        expected = ", ".join(CLASS_BY_NAME[name].expected_reasons)
        failures.append(f"expected reason not seen ({expected})")
    rejections = entry["scan_rejections"]
    unhandled = sum(n for r, n in rejections.items() if UNHANDLED_REJECTION in r)
    if unhandled:
        failures.append(f"rejected scans not passed to the filter={unhandled}")
    failed = sum(n for r, n in rejections.items() if r.startswith(CONVERSION_FAILED))
    if failed:
        failures.append(f"valid scans whose conversion raised={failed}")
    return failures


def summarize(results: Iterable[EpisodeResult]) -> dict[str, Any]:
    """Totals, per-class entries and per class/world cells of the campaign counters."""
    totals = _empty_entry()
    classes: dict[str, dict[str, Any]] = {}
    cells: dict[str, dict[str, Any]] = {}
    events = []
    for result in results:
        spec = result.spec
        for entry in (
            totals,
            classes.setdefault(spec.class_name, _empty_entry()),
            cells.setdefault(f"{spec.class_name}/{spec.world}", _empty_entry()),
        ):
            _add(entry, result)
        for event in result.events[: max(0, MAX_SUMMARY_EVENTS - len(events))]:
            events.append({**asdict(spec), **event})
    for name, entry in classes.items():
        entry["description"] = CLASS_BY_NAME[name].description
        entry["expected_reasons"] = list(CLASS_BY_NAME[name].expected_reasons)
        entry["failures"] = class_failures(name, entry)
    return {"totals": totals, "classes": classes, "cells": cells, "events": events}


def _reasons_text(entry: dict[str, Any], limit: int = 4) -> str:
    scan = sorted(entry["scan_rejections"].items(), key=lambda kv: -kv[1])[:limit]
    filt = sorted(entry["reasons"].items(), key=lambda kv: -kv[1])[:limit]
    parts = []
    if scan:
        parts.append("scan: " + ", ".join(f"{k} {v}" for k, v in scan))
    if filt:
        parts.append("filter: " + ", ".join(f"{k} {v}" for k, v in filt))
    if entry["held_outputs"]:
        parts.append(f"hold {entry['held_outputs']}")
    return "; ".join(parts) or "-"


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per class: the counters that must be 0, the information, the reasons seen."""
    header = (
        "| class | episodes | steps | collisions at fault / not | non-finite | "
        "limit violations v/a/b/h/n | exceptions | stuck | blocked escapes | "
        "closest approach m | named reasons (steps or scans) | holds |"
    )
    lines = [header, "|" + " --- |" * 12]
    for name, entry in summary["classes"].items():
        v = entry["violations"]
        kinds = "/".join(str(v[k]) for k in VIOLATION_KINDS)
        approach = entry["closest_approach_m"]
        approach_text = f"{approach:.3f}" if isinstance(approach, float) else str(approach)
        holds = "yes" if not entry["failures"] else "**no**: " + "; ".join(entry["failures"])
        lines.append(
            f"| {name} | {entry['episodes']} | {entry['steps']} | "
            f"{entry['at_fault']} / {entry['not_at_fault']} | {entry['non_finite']} | "
            f"{entry['limit_violations']} ({kinds}) | {entry['exceptions']} | "
            f"{entry['stuck_episodes']} | {entry['blocked_escapes']} | {approach_text} | "
            f"{_reasons_text(entry)} | {holds} |"
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
    text = json.dumps(_json_ready(payload), indent=2, allow_nan=False)
    path.write_text(text + "\n")
    legend = (
        f"Steps per class: {settings['steps_per_class']} requested; scan path: "
        f"{settings['scan_path']}. Limit violations by kind: velocity / accel / brake / "
        "hard_stop / invalid_now.\n\n"
    )
    path.with_suffix(".md").write_text(legend + markdown_table(summary) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: run the campaign, print the table, write JSON; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="control steps per class")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="output dir")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base episode seed")
    parser.add_argument("--workers", type=int, default=2, help="processes (1: in-process)")
    parser.add_argument("--episode-steps", type=int, default=EPISODE_STEPS)
    parser.add_argument(
        "--classes", nargs="+", choices=sorted(CLASS_BY_NAME), help="only these classes"
    )
    parser.add_argument(
        "--feedback",
        choices=("CLOSED_LOOP", "OPEN_LOOP"),
        help="override the YAML's feedback mode",
    )
    args = parser.parse_args(argv)

    specs = plan_episodes(args.steps, args.seed, args.classes, episode_steps=args.episode_steps)
    overrides = {"feedback": args.feedback} if args.feedback else None
    start = time.perf_counter()
    results = run_campaign(specs, overrides, workers=args.workers)
    wall = time.perf_counter() - start
    summary = summarize(results)
    settings = {
        "command": "python -m rlguard_tools.reliability_campaign "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "steps_per_class": args.steps,
        "episodes": len(specs),
        "episode_steps": args.episode_steps,
        "seed": args.seed,
        "workers": args.workers,
        "wall_seconds": round(wall, 2),
        "classes": {c.name: asdict(c) for c in CLASSES if c.name in summary["classes"]},
        "scan_path": SCAN_PATH,
        "stuck_seconds": STUCK_SECONDS,
        "base_horizon": "reaction_time",
        "safety_parameters": safety_parameters(),
        "overrides": overrides,
    }
    path = write_report(summary, settings, args.out)
    totals = summary["totals"]
    print(f"## reliability campaign\n\n{markdown_table(summary)}\n")
    print(
        f"{totals['steps']} control steps, {totals['sim_seconds']:.0f} s simulated, "
        f"{len(specs)} episodes, wall {wall:.1f} s with {args.workers} worker(s)"
    )
    print(f"scan path: {SCAN_PATH}")
    for event in summary["events"][:10]:
        print(f"event: {event}")
    print(f"written: {path}")
    failed = any(entry["failures"] for entry in summary["classes"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
