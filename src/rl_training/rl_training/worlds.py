"""Navigation tasks: shipped worlds' legs and procedurally generated worlds (no rclpy).

A `Task` is one episode's problem: a world, a start pose, one goal, the goal tolerance
and a time limit. Shipped worlds give one task per leg of their goal sequence (world
start -> goal 0, goal 0 -> goal 1, ...) with a jittered start pose and a random heading.
Generated worlds follow the curriculum stages (empty, a few obstacles, clutter with
walls, moving obstacles); their start and goal are checked to be connected on a grid of
the free space inflated by the robot's footprint, so no task is impossible by
construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlguard_common.world import Box, Cylinder, MovingCylinder, Wall, World

STAGE_NAMES = ("empty", "sparse", "clutter", "dynamic")
GRID_RESOLUTION = 0.1  # m, cell of the free-space grid used for connectivity


@dataclass(frozen=True)
class Task:
    """One navigation episode: reach `goal` from `start` in `world` within `time_limit` s."""

    world: World
    start: tuple[float, float, float]
    goal: tuple[float, float]
    tolerance: float
    time_limit: float
    path_length: float  # estimated shortest path length (m) on the free-space grid
    label: str  # e.g. "warehouse/leg2" or "generated/clutter"


def static_geometry(world: World) -> tuple[np.ndarray, np.ndarray]:
    """Static obstacles as boxes [cx, cy, sx, sy, yaw] (walls included) and cylinders."""
    boxes = []
    for wall in world.all_walls():
        (x0, y0), (x1, y1) = wall.start, wall.end
        boxes.append(
            (
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0,
                math.hypot(x1 - x0, y1 - y0),
                wall.thickness,
                math.atan2(y1 - y0, x1 - x0),
            )
        )
    boxes += [(*b.center, *b.size, b.yaw) for b in world.boxes]
    cylinders = [(*c.center, c.radius) for c in world.cylinders]
    return (
        np.asarray(boxes, dtype=np.float64).reshape(-1, 5),
        np.asarray(cylinders, dtype=np.float64).reshape(-1, 3),
    )


def _box_distance(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Signed distance of each point (N, 2) to the nearest box (negative inside)."""
    if boxes.shape[0] == 0:
        return np.full(points.shape[0], np.inf)
    dx = points[:, None, 0] - boxes[None, :, 0]
    dy = points[:, None, 1] - boxes[None, :, 1]
    c, s = np.cos(boxes[:, 4])[None, :], np.sin(boxes[:, 4])[None, :]
    local_x = np.abs(c * dx + s * dy) - boxes[None, :, 2] / 2.0
    local_y = np.abs(-s * dx + c * dy) - boxes[None, :, 3] / 2.0
    outside = np.hypot(np.maximum(local_x, 0.0), np.maximum(local_y, 0.0))
    inside = np.minimum(np.maximum(local_x, local_y), 0.0)
    return (outside + inside).min(axis=1)


def _polyline_distance(points: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Distance of each point to a closed polyline through `loop` (K, 2)."""
    starts = loop
    edges = np.roll(loop, -1, axis=0) - loop
    rel = points[:, None, :] - starts[None, :, :]
    length_sq = np.maximum(np.sum(edges * edges, axis=1), 1e-12)
    u = np.clip(np.sum(rel * edges[None], axis=2) / length_sq[None], 0.0, 1.0)
    nearest = rel - u[:, :, None] * edges[None]
    return np.sqrt(np.sum(nearest * nearest, axis=2)).min(axis=1)


def static_clearance(world: World, points: np.ndarray) -> np.ndarray:
    """Distance (m) of each point to the nearest static obstacle surface (negative inside)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    boxes, cylinders = static_geometry(world)
    distance = _box_distance(pts, boxes)
    if cylinders.shape[0]:
        to_cylinders = (
            np.hypot(
                pts[:, None, 0] - cylinders[None, :, 0], pts[:, None, 1] - cylinders[None, :, 1]
            )
            - cylinders[None, :, 2]
        )
        distance = np.minimum(distance, to_cylinders.min(axis=1))
    return distance


def moving_clearance(world: World, points: np.ndarray) -> np.ndarray:
    """Distance (m) of each point to the swept paths of the moving cylinders."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    distance = np.full(pts.shape[0], np.inf)
    for mover in world.moving_cylinders:
        loop = np.asarray(mover.waypoints, dtype=np.float64)
        distance = np.minimum(distance, _polyline_distance(pts, loop) - mover.radius)
    return distance


class FreeSpaceGrid:
    """Cells whose centre keeps `inflation` metres from every static obstacle."""

    def __init__(self, world: World, inflation: float, resolution: float = GRID_RESOLUTION) -> None:
        half_x, half_y = world.arena_size[0] / 2.0, world.arena_size[1] / 2.0
        self.resolution = resolution
        self.origin = (-half_x, -half_y)
        self.shape = (
            max(int(math.ceil(world.arena_size[0] / resolution)), 1),
            max(int(math.ceil(world.arena_size[1] / resolution)), 1),
        )
        xs = self.origin[0] + (np.arange(self.shape[0]) + 0.5) * resolution
        ys = self.origin[1] + (np.arange(self.shape[1]) + 0.5) * resolution
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        points = np.column_stack((gx.ravel(), gy.ravel()))
        self.free = (static_clearance(world, points) > inflation).reshape(self.shape)

    def cell(self, x: float, y: float) -> tuple[int, int]:
        """The grid cell holding (x, y), clipped into the grid."""
        i = int((x - self.origin[0]) / self.resolution)
        j = int((y - self.origin[1]) / self.resolution)
        return (min(max(i, 0), self.shape[0] - 1), min(max(j, 0), self.shape[1] - 1))

    def path_length(self, start: tuple[float, float], goal: tuple[float, float]) -> float:
        """Shortest free path length (m) from start to goal over 8-connected cells; inf if none.

        Octile distances relaxed over the whole grid until nothing changes (each pass
        extends every shortest path by one cell). A start or goal cell that is not free
        itself (e.g. within the inflation of a wall) still counts as an end point.
        """
        free = self.free.copy()
        si, sj = self.cell(*start)
        gi, gj = self.cell(*goal)
        free[si, sj] = True
        free[gi, gj] = True
        distance = np.full(free.shape, np.inf)
        distance[si, sj] = 0.0
        step, diagonal = self.resolution, self.resolution * math.sqrt(2.0)
        for _ in range(free.size):
            relaxed = distance.copy()
            relaxed[1:, :] = np.minimum(relaxed[1:, :], distance[:-1, :] + step)
            relaxed[:-1, :] = np.minimum(relaxed[:-1, :], distance[1:, :] + step)
            relaxed[:, 1:] = np.minimum(relaxed[:, 1:], distance[:, :-1] + step)
            relaxed[:, :-1] = np.minimum(relaxed[:, :-1], distance[:, 1:] + step)
            relaxed[1:, 1:] = np.minimum(relaxed[1:, 1:], distance[:-1, :-1] + diagonal)
            relaxed[:-1, :-1] = np.minimum(relaxed[:-1, :-1], distance[1:, 1:] + diagonal)
            relaxed[1:, :-1] = np.minimum(relaxed[1:, :-1], distance[:-1, 1:] + diagonal)
            relaxed[:-1, 1:] = np.minimum(relaxed[:-1, 1:], distance[1:, :-1] + diagonal)
            relaxed[~free] = np.inf
            if np.array_equal(relaxed, distance):
                break
            distance = relaxed
        straight = math.hypot(goal[0] - start[0], goal[1] - start[1])
        length = float(distance[gi, gj])
        return max(straight, length) if math.isfinite(length) else math.inf


def time_limit_for(path_length: float, max_speed: float, slack: float, extra: float) -> float:
    """Episode time limit (s): `slack` times the time at top speed, plus `extra` seconds."""
    return slack * path_length / max_speed + extra


@dataclass(frozen=True)
class TaskSettings:
    """How tasks are made: footprint, speeds, clearances and time limits."""

    footprint_radius: float = 0.11
    max_speed: float = 0.22  # m/s, top linear speed the policy may command
    start_clearance: float = 0.15  # m between footprint and obstacles at start and goal
    moving_clearance: float = 0.25  # m between footprint and a moving obstacle's path
    path_inflation: float = 0.04  # m added to the footprint for the connectivity grid
    start_jitter: float = 0.1  # m, position jitter of shipped-world starts
    time_slack: float = 2.0
    time_extra: float = 15.0  # s
    generated_tolerance: float = 0.25  # m


def shipped_legs(world: World) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The (from, to) legs of a shipped world's goal sequence, starting at its start."""
    points = [world.start[:2], *world.goals]
    return [(points[i], points[i + 1]) for i in range(len(points) - 1)]


def shipped_task(world: World, leg: int, rng: np.random.Generator, settings: TaskSettings) -> Task:
    """A task on leg `leg` of a shipped world: jittered start, random heading."""
    legs = shipped_legs(world)
    origin, goal = legs[leg % len(legs)]
    start_xy = origin
    needed = settings.footprint_radius + 0.05
    for _ in range(20):
        candidate = (
            origin[0] + rng.uniform(-settings.start_jitter, settings.start_jitter),
            origin[1] + rng.uniform(-settings.start_jitter, settings.start_jitter),
        )
        clear = static_clearance(world, np.array([candidate]))[0]
        if clear > needed and moving_clearance(world, np.array([candidate]))[0] > needed:
            start_xy = candidate
            break
    yaw = float(rng.uniform(-math.pi, math.pi))
    grid = FreeSpaceGrid(world, settings.footprint_radius + settings.path_inflation)
    length = grid.path_length(start_xy, goal)
    if not math.isfinite(length):  # the grid is conservative; fall back to the detour bound
        length = 2.0 * math.hypot(goal[0] - start_xy[0], goal[1] - start_xy[1])
    return Task(
        world=world,
        start=(float(start_xy[0]), float(start_xy[1]), yaw),
        goal=(float(goal[0]), float(goal[1])),
        tolerance=world.goal_tolerance,
        time_limit=time_limit_for(
            length, settings.max_speed, settings.time_slack, settings.time_extra
        ),
        path_length=length,
        label=f"{world.name}/leg{leg % len(legs)}",
    )


def random_obstacles(
    rng: np.random.Generator, half: tuple[float, float], count: int
) -> tuple[list[Box], list[Cylinder]]:
    """`count` boxes and cylinders of random size and pose inside the arena's half extents."""
    boxes: list[Box] = []
    cylinders: list[Cylinder] = []
    for _ in range(count):
        centre = (
            float(rng.uniform(-half[0] + 0.3, half[0] - 0.3)),
            float(rng.uniform(-half[1] + 0.3, half[1] - 0.3)),
        )
        if rng.random() < 0.55:
            size = (float(rng.uniform(0.2, 1.2)), float(rng.uniform(0.2, 0.8)))
            boxes.append(Box(centre, size, float(rng.uniform(-math.pi, math.pi))))
        else:
            cylinders.append(Cylinder(centre, float(rng.uniform(0.08, 0.3))))
    return boxes, cylinders


def _baffle_walls(rng: np.random.Generator, half: tuple[float, float], count: int) -> list[Wall]:
    """Interior walls across the arena, each leaving a gap of 0.5-1.2 m."""
    walls = []
    for _ in range(count):
        vertical = rng.random() < 0.5
        span = half[1] if vertical else half[0]
        across = half[0] if vertical else half[1]
        position = float(rng.uniform(-across + 1.0, across - 1.0))
        gap = float(rng.uniform(0.5, 1.2))
        gap_centre = float(rng.uniform(-span + gap / 2.0, span - gap / 2.0))
        pieces = [(-span, gap_centre - gap / 2.0), (gap_centre + gap / 2.0, span)]
        for low, high in pieces:
            if high - low < 0.2:
                continue
            if vertical:
                walls.append(Wall((position, low), (position, high), 0.1))
            else:
                walls.append(Wall((low, position), (high, position), 0.1))
    return walls


def _moving_cylinders(
    rng: np.random.Generator, half: tuple[float, float], count: int
) -> list[MovingCylinder]:
    movers = []
    for _ in range(count):
        points = [
            (
                float(rng.uniform(-half[0] + 0.4, half[0] - 0.4)),
                float(rng.uniform(-half[1] + 0.4, half[1] - 0.4)),
            )
            for _ in range(int(rng.integers(2, 4)))
        ]
        movers.append(
            MovingCylinder(
                radius=float(rng.uniform(0.15, 0.25)),
                speed=float(rng.uniform(0.1, 0.3)),
                waypoints=tuple(points),
            )
        )
    return movers


def generate_world(stage: int, rng: np.random.Generator) -> World:
    """A random world of curriculum `stage` (0 empty, 1 sparse, 2 clutter, 3 dynamic)."""
    stage = int(min(max(stage, 0), len(STAGE_NAMES) - 1))
    size = (float(rng.uniform(5.0, 9.0)), float(rng.uniform(5.0, 9.0)))
    half = (size[0] / 2.0, size[1] / 2.0)
    boxes: list[Box] = []
    cylinders: list[Cylinder] = []
    walls: list[Wall] = []
    movers: list[MovingCylinder] = []
    if stage == 1:
        boxes, cylinders = random_obstacles(rng, half, int(rng.integers(2, 6)))
    elif stage == 2:
        boxes, cylinders = random_obstacles(rng, half, int(rng.integers(6, 15)))
        walls = _baffle_walls(rng, half, int(rng.integers(0, 3)))
    elif stage == 3:
        boxes, cylinders = random_obstacles(rng, half, int(rng.integers(3, 9)))
        walls = _baffle_walls(rng, half, int(rng.integers(0, 2)))
        movers = _moving_cylinders(rng, half, int(rng.integers(1, 4)))
    return World(
        name=f"generated_{STAGE_NAMES[stage]}",
        arena_size=size,
        wall_thickness=0.1,
        obstacle_height=0.5,
        walls=tuple(walls),
        boxes=tuple(boxes),
        cylinders=tuple(cylinders),
        moving_cylinders=tuple(movers),
        start=(0.0, 0.0, 0.0),
        goals=((0.0, 0.0),),
        goal_tolerance=0.25,
        source="generated",
    )


def generated_task(
    stage: int, rng: np.random.Generator, settings: TaskSettings, attempts: int = 50
) -> Task:
    """A generated world of `stage` with a connected start and goal (retries new worlds)."""
    for _ in range(attempts):
        world = generate_world(stage, rng)
        task = _place_task(world, stage, rng, settings)
        if task is not None:
            return task
    raise RuntimeError(f"could not generate a solvable task for stage {stage}")


def clear_points(
    world: World, half: tuple[float, float], rng: np.random.Generator, settings: TaskSettings
) -> np.ndarray:
    """Random points in the arena (64 drawn) where the robot stands clear of every obstacle."""
    margin = settings.footprint_radius + settings.start_clearance
    candidates = np.column_stack(
        (
            rng.uniform(-half[0] + margin, half[0] - margin, 64),
            rng.uniform(-half[1] + margin, half[1] - margin, 64),
        )
    )
    ok = static_clearance(world, candidates) > margin
    ok &= (
        moving_clearance(world, candidates) > settings.footprint_radius + settings.moving_clearance
    )
    return candidates[ok]


def _place_task(
    world: World, stage: int, rng: np.random.Generator, settings: TaskSettings
) -> Task | None:
    half = (world.arena_size[0] / 2.0, world.arena_size[1] / 2.0)
    points = clear_points(world, half, rng, settings)
    if points.shape[0] < 2:
        return None
    start = points[0]
    distances = np.hypot(points[1:, 0] - start[0], points[1:, 1] - start[1])
    min_distance = 1.0 if stage == 0 else 1.5
    far_enough = np.flatnonzero(distances >= min_distance)
    if far_enough.size == 0:
        return None
    goal = points[1 + far_enough[0]]
    grid = FreeSpaceGrid(world, settings.footprint_radius + settings.path_inflation)
    length = grid.path_length((start[0], start[1]), (goal[0], goal[1]))
    if not math.isfinite(length):
        return None
    world = World(
        name=world.name,
        arena_size=world.arena_size,
        wall_thickness=world.wall_thickness,
        obstacle_height=world.obstacle_height,
        walls=world.walls,
        boxes=world.boxes,
        cylinders=world.cylinders,
        moving_cylinders=world.moving_cylinders,
        start=(float(start[0]), float(start[1]), 0.0),
        goals=((float(goal[0]), float(goal[1])),),
        goal_tolerance=settings.generated_tolerance,
        source="generated",
    )
    return Task(
        world=world,
        start=(float(start[0]), float(start[1]), float(rng.uniform(-math.pi, math.pi))),
        goal=(float(goal[0]), float(goal[1])),
        tolerance=settings.generated_tolerance,
        time_limit=time_limit_for(
            length, settings.max_speed, settings.time_slack, settings.time_extra
        ),
        path_length=length,
        label=f"generated/{STAGE_NAMES[stage]}",
    )
