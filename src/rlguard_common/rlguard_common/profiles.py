"""Robot profiles and world descriptions loaded from YAML (no rclpy).

One description drives both simulators: the embedded MuJoCo core (`sim_core`) and the
generated Gazebo Harmonic files (`gazebo_gen`). Every field is checked at load time; a
missing or wrong field raises `ProfileError` naming the file, the field and the reason.

Names resolve as: ``load_robot_profile("default")`` -> ``config/robots/default.yaml`` under
the workspace root (or the installed ``share/sim_bringup/config/robots``), and
``load_world("warehouse")`` -> ``worlds/warehouse.yaml`` of the sim_bringup package, which
ships the world descriptions (its source tree, or its installed share directory; a data
lookup by package name, not an import). Anything containing a path separator or ending in
``.yaml`` is a path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The package that installs the robot profiles and world descriptions (share/<it>/...).
DATA_PACKAGE = "sim_bringup"
# src/sim_bringup/worlds in the source tree (symlink installs resolve to it).
WORLDS_DIR = Path(__file__).resolve().parents[2] / DATA_PACKAGE / "worlds"


class ProfileError(ValueError):
    """A robot profile or world file is missing, unreadable or has a wrong field."""

    def __init__(self, file: str | Path, field_name: str, reason: str) -> None:
        self.file = str(file)
        self.field = field_name
        self.reason = reason
        super().__init__(f"{self.file}: field '{field_name}': {reason}")


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class LidarProfile:
    """A planar lidar: beams, field of view (rad), range limits (m), rate, noise, mount pose."""

    beams: int
    fov: float
    range_min: float
    range_max: float
    rate_hz: float
    noise_std: float
    dropout: float
    mount_x: float
    mount_y: float
    mount_z: float
    mount_yaw: float

    @property
    def angle_min(self) -> float:
        """Angle of the first beam in the sensor frame (rad)."""
        return -self.fov / 2.0 if not self.full_circle else -math.pi

    @property
    def full_circle(self) -> bool:
        """True for a 360 degree lidar (the last beam must not repeat the first)."""
        return self.fov >= 2.0 * math.pi - 1e-9

    @property
    def angle_increment(self) -> float:
        """Angle between beams (rad)."""
        if self.full_circle:
            return self.fov / self.beams
        return self.fov / max(self.beams - 1, 1)

    @property
    def angle_max(self) -> float:
        """Angle of the last beam (rad)."""
        return self.angle_min + self.angle_increment * (self.beams - 1)


@dataclass(frozen=True)
class RandomizationRanges:
    """Closed [low, high] ranges domain randomization samples from (absolute values)."""

    friction: tuple[float, float]
    mass: tuple[float, float]
    wheel_radius: tuple[float, float]
    actuator_delay: tuple[float, float]
    lidar_noise: tuple[float, float]
    lidar_dropout: tuple[float, float]


@dataclass(frozen=True)
class RobotProfile:
    """A differential-drive base: geometry, mass, wheel limits, lidar and randomization."""

    name: str
    footprint_radius: float
    base_height: float
    wheel_radius: float
    wheel_width: float
    wheel_separation: float
    wheel_mass: float
    mass: float
    max_wheel_speed: float
    max_wheel_torque: float
    wheel_friction: float
    actuator_delay: float
    caster_x: float
    lidar: LidarProfile
    randomization: RandomizationRanges
    source: str = ""

    @property
    def max_linear_velocity(self) -> float:
        """Top speed straight ahead (m/s): both wheels at their speed limit."""
        return self.max_wheel_speed * self.wheel_radius

    @property
    def max_angular_velocity(self) -> float:
        """Top turn rate on the spot (rad/s): wheels at opposite speed limits."""
        return 2.0 * self.max_wheel_speed * self.wheel_radius / self.wheel_separation


@dataclass(frozen=True)
class Wall:
    """A straight wall segment from `start` to `end` (m) with a thickness."""

    start: tuple[float, float]
    end: tuple[float, float]
    thickness: float


@dataclass(frozen=True)
class Box:
    """A static box: centre (m), full size x/y (m), yaw (rad)."""

    center: tuple[float, float]
    size: tuple[float, float]
    yaw: float


@dataclass(frozen=True)
class Cylinder:
    """A static upright cylinder: centre and radius (m)."""

    center: tuple[float, float]
    radius: float


@dataclass(frozen=True)
class MovingCylinder:
    """A cylinder moving at `speed` (m/s) along a closed loop through `waypoints`."""

    radius: float
    speed: float
    waypoints: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class World:
    """A planar world: arena with boundary walls, obstacles, start pose and goal sequence."""

    name: str
    arena_size: tuple[float, float]
    wall_thickness: float
    obstacle_height: float
    walls: tuple[Wall, ...]
    boxes: tuple[Box, ...]
    cylinders: tuple[Cylinder, ...]
    moving_cylinders: tuple[MovingCylinder, ...]
    start: tuple[float, float, float]
    goals: tuple[tuple[float, float], ...]
    goal_tolerance: float
    source: str = ""

    def boundary_walls(self) -> tuple[Wall, ...]:
        """The four arena walls (inner faces on the arena border, centred on the origin)."""
        half_x, half_y = self.arena_size[0] / 2.0, self.arena_size[1] / 2.0
        t = self.wall_thickness
        ox, oy = half_x + t / 2.0, half_y + t / 2.0
        return (
            Wall((-ox - t / 2, -oy), (ox + t / 2, -oy), t),
            Wall((-ox - t / 2, oy), (ox + t / 2, oy), t),
            Wall((-ox, -oy), (-ox, oy), t),
            Wall((ox, -oy), (ox, oy), t),
        )

    def all_walls(self) -> tuple[Wall, ...]:
        """Boundary walls followed by the interior walls."""
        return self.boundary_walls() + self.walls


# --------------------------------------------------------------------------- validation


class _Reader:
    """Typed access to a YAML mapping that reports errors with file and dotted field path."""

    def __init__(self, file: str | Path, data: Any, prefix: str = "") -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise ProfileError(file, prefix or "<root>", "expected a mapping")
        self.data = data

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, reason: str) -> ProfileError:
        return ProfileError(self.file, self._name(key), reason)

    def raw(self, key: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        return self.data[key]

    def number(
        self,
        key: str,
        default: Any = ...,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        value = self.raw(key, default)
        return self.check_number(key, value, minimum, maximum, positive)

    def check_number(
        self,
        key: str,
        value: Any,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise self.error(key, f"must be finite, got {number}")
        if positive and number <= 0.0:
            raise self.error(key, f"must be > 0, got {number}")
        if minimum is not None and number < minimum:
            raise self.error(key, f"must be >= {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise self.error(key, f"must be <= {maximum}, got {number}")
        return number

    def integer(self, key: str, minimum: int = 1) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def string(self, key: str, default: Any = ...) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def pair(self, key: str, value: Any = ..., positive: bool = False) -> tuple[float, float]:
        if value is ...:
            value = self.raw(key)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise self.error(key, f"expected a list of 2 numbers, got {value!r}")
        first = self.check_number(key, value[0], positive=positive)
        second = self.check_number(key, value[1], positive=positive)
        return (first, second)

    def range(self, key: str, minimum: float | None = None) -> tuple[float, float]:
        low, high = self.pair(key)
        if minimum is not None and low < minimum:
            raise self.error(key, f"lower bound must be >= {minimum}, got {low}")
        if low > high:
            raise self.error(key, f"lower bound {low} is above upper bound {high}")
        return (low, high)

    def sub(self, key: str) -> _Reader:
        return _Reader(self.file, self.raw(key), self._name(key))

    def items(self, key: str) -> list[_Reader]:
        value = self.raw(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {type(value).__name__}")
        return [_Reader(self.file, item, f"{self._name(key)}[{i}]") for i, item in enumerate(value)]

    def point_list(self, key: str, min_count: int) -> tuple[tuple[float, float], ...]:
        value = self.raw(key)
        if not isinstance(value, list) or len(value) < min_count:
            raise self.error(key, f"expected a list of at least {min_count} [x, y] points")
        return tuple(self.pair(f"{key}[{i}]", point) for i, point in enumerate(value))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(path, "<file>", f"cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(path, "<file>", f"invalid YAML: {exc}") from exc


# --------------------------------------------------------------------------- resolution


def workspace_root() -> Path | None:
    """The workspace root: $RLGUARD_WORKSPACE, else the source tree this file lives in."""
    explicit = os.environ.get("RLGUARD_WORKSPACE")
    if explicit and (Path(explicit) / "config" / "robots").is_dir():
        return Path(explicit)
    for parent in Path(__file__).resolve().parents:
        if (parent / "config" / "robots").is_dir() and (parent / "src").is_dir():
            return parent
    return None


def _share_dir() -> Path | None:
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(DATA_PACKAGE))
    except (PackageNotFoundError, ValueError, LookupError, OSError):
        return None


def _is_path(name: str | Path) -> bool:
    text = str(name)
    return isinstance(name, Path) or os.sep in text or "/" in text or text.endswith(".yaml")


def resolve_robot_path(path_or_name: str | Path) -> Path:
    """The file a robot profile name or path refers to (first existing candidate)."""
    if _is_path(path_or_name):
        return Path(path_or_name)
    candidates = []
    root = workspace_root()
    if root is not None:
        candidates.append(root / "config" / "robots" / f"{path_or_name}.yaml")
    share = _share_dir()
    if share is not None:
        candidates.append(share / "config" / "robots" / f"{path_or_name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates) or "no search directory found"
    raise ProfileError(f"{path_or_name}.yaml", "<file>", f"robot profile not found ({searched})")


def resolve_world_path(path_or_name: str | Path) -> Path:
    """The file a world name or path refers to (first existing candidate)."""
    if _is_path(path_or_name):
        return Path(path_or_name)
    candidates = [WORLDS_DIR / f"{path_or_name}.yaml"]
    share = _share_dir()
    if share is not None:
        candidates.append(share / "worlds" / f"{path_or_name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise ProfileError(f"{path_or_name}.yaml", "<file>", f"world not found ({searched})")


def world_names() -> list[str]:
    """Names of the worlds shipped with this package."""
    return sorted(p.stem for p in WORLDS_DIR.glob("*.yaml"))


# --------------------------------------------------------------------------- loaders


def load_robot_profile(path_or_name: str | Path) -> RobotProfile:
    """Load and validate a robot profile (a name in config/robots or a path)."""
    path = resolve_robot_path(path_or_name)
    return robot_profile_from_dict(_read_yaml(path), path)


def robot_profile_from_dict(data: Any, source: str | Path = "<dict>") -> RobotProfile:
    """Validate a robot profile mapping; `source` names it in errors."""
    r = _Reader(source, data)
    lidar_r = r.sub("lidar")
    range_min = lidar_r.number("range_min", positive=True)
    range_max = lidar_r.number("range_max", positive=True)
    if range_max <= range_min:
        raise lidar_r.error("range_max", f"must be above range_min ({range_min}), got {range_max}")
    lidar = LidarProfile(
        beams=lidar_r.integer("beams", minimum=1),
        fov=lidar_r.number("fov", positive=True, maximum=2.0 * math.pi + 1e-9),
        range_min=range_min,
        range_max=range_max,
        rate_hz=lidar_r.number("rate_hz", positive=True, maximum=1000.0),
        noise_std=lidar_r.number("noise_std", minimum=0.0),
        dropout=lidar_r.number("dropout", minimum=0.0, maximum=1.0),
        mount_x=lidar_r.number("mount_x"),
        mount_y=lidar_r.number("mount_y"),
        mount_z=lidar_r.number("mount_z", positive=True),
        mount_yaw=lidar_r.number("mount_yaw"),
    )
    rand_r = r.sub("randomization")
    randomization = RandomizationRanges(
        friction=rand_r.range("friction", minimum=0.0),
        mass=rand_r.range("mass", minimum=1e-3),
        wheel_radius=rand_r.range("wheel_radius", minimum=1e-3),
        actuator_delay=rand_r.range("actuator_delay", minimum=0.0),
        lidar_noise=rand_r.range("lidar_noise", minimum=0.0),
        lidar_dropout=rand_r.range("lidar_dropout", minimum=0.0),
    )
    if randomization.lidar_dropout[1] > 1.0:
        raise rand_r.error("lidar_dropout", "upper bound must be <= 1")
    footprint = r.number("footprint_radius", positive=True)
    separation = r.number("wheel_separation", positive=True)
    wheel_width = r.number("wheel_width", positive=True)
    if separation / 2.0 + wheel_width / 2.0 > footprint + 1e-9:
        raise r.error("wheel_separation", "wheels stick out of the footprint circle")
    caster_x = r.number("caster_x")
    if abs(caster_x) >= footprint:
        raise r.error("caster_x", f"must lie inside the footprint (|x| < {footprint})")
    return RobotProfile(
        name=r.string("name"),
        footprint_radius=footprint,
        base_height=r.number("base_height", positive=True),
        wheel_radius=r.number("wheel_radius", positive=True),
        wheel_width=wheel_width,
        wheel_separation=separation,
        wheel_mass=r.number("wheel_mass", positive=True),
        mass=r.number("mass", positive=True),
        max_wheel_speed=r.number("max_wheel_speed", positive=True),
        max_wheel_torque=r.number("max_wheel_torque", positive=True),
        wheel_friction=r.number("wheel_friction", positive=True),
        actuator_delay=r.number("actuator_delay", minimum=0.0, maximum=1.0),
        caster_x=caster_x,
        lidar=lidar,
        randomization=randomization,
        source=str(source),
    )


def load_world(path_or_name: str | Path) -> World:
    """Load and validate a world (a name in worlds/ or a path)."""
    path = resolve_world_path(path_or_name)
    return world_from_dict(_read_yaml(path), path)


def world_from_dict(data: Any, source: str | Path = "<dict>") -> World:
    """Validate a world mapping; `source` names it in errors."""
    r = _Reader(source, data)
    arena = r.sub("arena")
    size = arena.pair("size", positive=True)
    half = (size[0] / 2.0, size[1] / 2.0)

    def inside(reader: _Reader, key: str, point: tuple[float, float]) -> None:
        if abs(point[0]) > half[0] or abs(point[1]) > half[1]:
            raise reader.error(key, f"{point} lies outside the arena {size}")

    walls = []
    for w in r.items("walls"):
        walls.append(Wall(w.pair("start"), w.pair("end"), w.number("thickness", positive=True)))
        if walls[-1].start == walls[-1].end:
            raise w.error("end", "wall has zero length")
    boxes = []
    for b in r.items("boxes"):
        boxes.append(Box(b.pair("center"), b.pair("size", positive=True), b.number("yaw", 0.0)))
        inside(b, "center", boxes[-1].center)
    cylinders = []
    for c in r.items("cylinders"):
        cylinders.append(Cylinder(c.pair("center"), c.number("radius", positive=True)))
        inside(c, "center", cylinders[-1].center)
    moving = []
    for m in r.items("moving_cylinders"):
        waypoints = m.point_list("waypoints", min_count=2)
        for i, point in enumerate(waypoints):
            inside(m, f"waypoints[{i}]", point)
        moving.append(
            MovingCylinder(
                radius=m.number("radius", positive=True),
                speed=m.number("speed", minimum=0.0),
                waypoints=waypoints,
            )
        )
    start_r = r.sub("start")
    start = (start_r.number("x"), start_r.number("y"), start_r.number("yaw", 0.0))
    inside(start_r, "x", start[:2])
    goals = r.point_list("goals", min_count=1)
    for i, goal in enumerate(goals):
        inside(r, f"goals[{i}]", goal)
    return World(
        name=r.string("name"),
        arena_size=size,
        wall_thickness=arena.number("wall_thickness", 0.1, positive=True),
        obstacle_height=r.number("obstacle_height", 0.5, positive=True),
        walls=tuple(walls),
        boxes=tuple(boxes),
        cylinders=tuple(cylinders),
        moving_cylinders=tuple(moving),
        start=start,
        goals=goals,
        goal_tolerance=r.number("goal_tolerance", positive=True),
        source=str(source),
    )
