"""World descriptions: walls, boxes, cylinders and moving cylinders (no rclpy).

A world (sim_bringup/worlds/<world>.yaml) drives both simulators and training; every
field is checked at load time (`ProfileError` names file, field and reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlguard_common.profile_yaml import (
    ProfileReader,
    read_profile_yaml,
    resolve_world_path,
)


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


def load_world(path_or_name: str | Path) -> World:
    """Load and validate a world (a name in worlds/ or a path)."""
    path = resolve_world_path(path_or_name)
    return world_from_dict(read_profile_yaml(path), path)


def world_from_dict(data: Any, source: str | Path = "<dict>") -> World:
    """Validate a world mapping; `source` names it in errors."""
    r = ProfileReader(source, data)
    arena = r.sub("arena")
    size = arena.pair("size", positive=True)
    half = (size[0] / 2.0, size[1] / 2.0)

    def inside(reader: ProfileReader, key: str, point: tuple[float, float]) -> None:
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
