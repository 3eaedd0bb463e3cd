"""Procedural static world families: doorway, clutter, dead end, open space, rooms (no rclpy).

Each family is a function of a random generator that draws every parameter from a range
(arena size, wall placement and tilt, door and corridor widths, obstacle count and size) and
returns a `Task`, or None when the draw fails a check; `static_task` retries the draws.
Door and corridor widths are in robot widths (2 * `TaskSettings.footprint_radius`), so
the worlds follow the robot they are made for. Every task is checked before it is
returned: start and goal keep `start_clearance` from every obstacle and the start reaches
the goal on the free-space grid inflated by the footprint and `path_inflation`.
`static_family_task(family, seed)` makes one task of a family from a seed alone, so a
(family, seed) pair names a world for training, evaluation and reproduction.

Families:

- ``doorway``: a wall (vertical or horizontal, tilted up to `WALL_TILT`) splits the
  arena into two rooms joined by one door `DOOR_WIDTH` robot widths wide; start in
  one room, goal in the other;
- ``clutter``: `CLUTTER_COUNT` boxes and cylinders of varied sizes packed into a small
  arena; some route from start to goal passes no gap narrower than `CLUTTER_ROUTE_GAP`
  robot widths (the narrowest door of ``doorway``), the other gaps may be narrower;
- ``dead_end``: a U of three walls between start and goal, open toward the start and
  closed toward the goal; the start stands inside the U or in front of its mouth facing
  in, so the straight line runs into the back wall and the route goes around the U (at
  least `MIN_DETOUR` times the straight distance);
- ``open``: a long arena (`OPEN_LENGTH`) with a few sparse obstacles, start and goal
  near opposite ends;
- ``rooms``: two or three rooms in a row, each pair joined by a corridor
  `CORRIDOR_WIDTH` robot widths wide through a solid block; start and goal in different
  rooms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from rl_training.mover_scenes import checked_task, first_checked_task, scene_world
from rl_training.worlds import FreeSpaceGrid, Task, TaskSettings, clear_points, random_obstacles
from rlguard_common.world import Box, Cylinder, Wall, World

STATIC_FAMILIES = ("doorway", "clutter", "dead_end", "open", "rooms")

WALL_THICKNESS = 0.1  # m, interior walls (as the boundary walls of generated worlds)
DOOR_WIDTH = (1.8, 3.0)  # robot widths: clear width of a door
CORRIDOR_WIDTH = (2.4, 3.0)  # robot widths: corridor between rooms (see `rooms`)
ATTEMPTS = 50

DOORWAY_SIZE = ((5.0, 8.0), (4.0, 7.0))  # m: arena across the wall, along the wall
WALL_OFFSET = 0.2  # fraction of the arena the wall may sit off centre
WALL_TILT = math.radians(20.0)
DOOR_JAMB = 0.5  # m: shortest wall piece between the door and the arena boundary
ROOM_DEPTH = 0.7  # m: start and goal keep this from the dividing wall

CLUTTER_SIZE = (5.0, 8.0)  # m, each side of the arena
CLUTTER_COUNT = (20, 35)
CLUTTER_DISTANCE = 3.0  # m, shortest straight start-goal distance
# Robot widths: the narrowest gap on the widest route. Connectivity on the grid inflated by
# `path_inflation` alone admits gaps the deployed safety filter's margin does not let the
# robot through, and a family must stay drivable for the stack it judges.
CLUTTER_ROUTE_GAP = DOOR_WIDTH[0]
CLUTTER_ROUTE_RESOLUTION = 0.05  # m, grid of that check: fine enough not to narrow the gap much

U_MOUTH = (1.2, 2.0)  # m, clear width inside the U
U_DEPTH = (1.0, 1.8)  # m, clear depth inside the U (mouth to back wall)
U_START_OUTSIDE = (0.3, 1.0)  # m in front of the mouth (start facing in)
U_GOAL_BEHIND = (0.6, 1.5)  # m behind the back wall
U_MARGIN = (1.0, 2.0)  # m of arena around the U, start and goal
MIN_DETOUR = 1.3  # a dead end's path is at least this times the straight distance

OPEN_LENGTH = (10.0, 16.0)  # m
OPEN_WIDTH = (4.0, 7.0)  # m
OPEN_OBSTACLES = (2, 6)
OPEN_END = (0.5, 1.5)  # m from the end wall to start and goal

ROOM_COUNT = (2, 3)
ROOM_LENGTH = (2.5, 4.0)  # m along the row
ROOM_WIDTH = (3.0, 5.0)  # m across the row (the arena's short side)
CORRIDOR_LENGTH = (0.6, 1.5)  # m, thickness of the block a corridor runs through
CORRIDOR_SIDE = 0.4  # m: shortest block piece beside a corridor
FURNITURE = (0, 2)  # obstacles per room
FURNITURE_CLEARANCE = 0.8  # m between furniture and a corridor mouth


def robot_width(settings: TaskSettings) -> float:
    """The robot's width (m): twice its footprint radius."""
    return 2.0 * settings.footprint_radius


def _static_world(
    name: str,
    size: tuple[float, float],
    start: Sequence[float],
    goal: Sequence[float],
    settings: TaskSettings,
    walls: Sequence[Wall] = (),
    boxes: Sequence[Box] = (),
    cylinders: Sequence[Cylinder] = (),
) -> World:
    world = scene_world(name, size, [], (start[0], start[1]), (goal[0], goal[1]), settings)
    return replace(world, walls=tuple(walls), boxes=tuple(boxes), cylinders=tuple(cylinders))


def _swap(point: Sequence[float]) -> tuple[float, float]:
    return (float(point[1]), float(point[0]))


def _with_ends(world: World, start: Sequence[float], goal: Sequence[float]) -> World:
    """The world with its start (yaw 0) and single goal set."""
    return replace(
        world,
        start=(float(start[0]), float(start[1]), 0.0),
        goals=((float(goal[0]), float(goal[1])),),
    )


def _transposed(world: World) -> World:
    """The world mirrored about the line y = x (a row along x becomes a row along y)."""
    return replace(
        world,
        arena_size=_swap(world.arena_size),
        walls=tuple(Wall(_swap(w.start), _swap(w.end), w.thickness) for w in world.walls),
        boxes=tuple(Box(_swap(b.center), _swap(b.size), float(-b.yaw)) for b in world.boxes),
        cylinders=tuple(Cylinder(_swap(c.center), c.radius) for c in world.cylinders),
        start=(*_swap(world.start), math.pi / 2.0 - world.start[2]),
        goals=tuple(_swap(g) for g in world.goals),
    )


def _line_in_arena(
    point: np.ndarray, direction: np.ndarray, half: tuple[float, float]
) -> tuple[float, float]:
    """The parameters (t0, t1) where the line point + t * direction leaves the arena."""
    low, high = -math.inf, math.inf
    for axis in (0, 1):
        if abs(direction[axis]) < 1e-12:
            continue
        a = (-half[axis] - point[axis]) / direction[axis]
        b = (half[axis] - point[axis]) / direction[axis]
        low, high = max(low, min(a, b)), min(high, max(a, b))
    return low, high


def doorway(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """Two rooms split by a (tilted) wall with one door 1.8-3.0 robot widths wide."""
    across, along = float(rng.uniform(*DOORWAY_SIZE[0])), float(rng.uniform(*DOORWAY_SIZE[1]))
    vertical = rng.random() < 0.5  # the wall runs along y and splits the arena in x
    size = (across, along) if vertical else (along, across)
    half = (size[0] / 2.0, size[1] / 2.0)
    tilt = float(rng.uniform(-WALL_TILT, WALL_TILT))
    offset = float(rng.uniform(-WALL_OFFSET, WALL_OFFSET)) * across
    if vertical:
        point, angle = np.array([offset, 0.0]), math.pi / 2.0 + tilt
    else:
        point, angle = np.array([0.0, offset]), tilt
    direction = np.array([math.cos(angle), math.sin(angle)])
    t0, t1 = _line_in_arena(point, direction, half)
    # Run the wall ends into the boundary walls, so a tilted end leaves no notch.
    overrun = WALL_THICKNESS / 2.0 * abs(math.tan(tilt)) + 0.01
    width = float(rng.uniform(*DOOR_WIDTH)) * robot_width(settings)
    door = float(rng.uniform(t0 + DOOR_JAMB + width / 2.0, t1 - DOOR_JAMB - width / 2.0))
    ends = [t0 - overrun, door - width / 2.0, door + width / 2.0, t1 + overrun]
    corners = [tuple(float(v) for v in point + t * direction) for t in ends]
    walls = [
        Wall(corners[0], corners[1], WALL_THICKNESS),
        Wall(corners[2], corners[3], WALL_THICKNESS),
    ]
    plan = _static_world("doorway", size, (0.0, 0.0), (0.0, 0.0), settings, walls)
    points = clear_points(plan, half, rng, settings)
    normal = np.array([-direction[1], direction[0]])
    side = (points - point) @ normal  # signed distance to the wall's centre line
    start_side = 1.0 if rng.random() < 0.5 else -1.0
    starts = points[side * start_side > ROOM_DEPTH]
    goals = points[side * start_side < -ROOM_DEPTH]
    if starts.shape[0] == 0 or goals.shape[0] == 0:
        return None
    start, goal = starts[0], goals[0]
    world = _with_ends(plan, start, goal)
    yaw = float(rng.uniform(-math.pi, math.pi))
    return checked_task(world, (start[0], start[1]), yaw, (goal[0], goal[1]), settings)


def clutter(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """20-35 boxes and cylinders in a 5-8 m arena, start and goal far apart, a route between."""
    size = (float(rng.uniform(*CLUTTER_SIZE)), float(rng.uniform(*CLUTTER_SIZE)))
    half = (size[0] / 2.0, size[1] / 2.0)
    count = int(rng.integers(CLUTTER_COUNT[0], CLUTTER_COUNT[1] + 1))
    boxes, cylinders = random_obstacles(rng, half, count)
    plan = _static_world("clutter", size, (0.0, 0.0), (0.0, 0.0), settings, (), boxes, cylinders)
    points = clear_points(plan, half, rng, settings)
    if points.shape[0] < 2:
        return None
    start = points[0]
    far = np.flatnonzero(np.hypot(*(points[1:] - start).T) >= CLUTTER_DISTANCE)
    if far.size == 0:
        return None
    goal = points[1 + far[0]]
    world = _with_ends(plan, start, goal)
    route_clearance = CLUTTER_ROUTE_GAP * settings.footprint_radius  # half the gap
    if not math.isfinite(
        FreeSpaceGrid(world, route_clearance, CLUTTER_ROUTE_RESOLUTION).path_length(
            tuple(start), tuple(goal)
        )
    ):
        return None
    yaw = float(rng.uniform(-math.pi, math.pi))
    return checked_task(world, (start[0], start[1]), yaw, (goal[0], goal[1]), settings)


def dead_end(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """A U open toward the start, closed toward the goal; start inside it or facing into it.

    Built in a frame whose x axis runs from start to goal with the back wall's centre
    line on x = 0, then turned by a random heading and centred in an arena that leaves
    1-2 m around everything.
    """
    mouth, depth = float(rng.uniform(*U_MOUTH)), float(rng.uniform(*U_DEPTH))
    t = WALL_THICKNESS
    side_y = mouth / 2.0 + t / 2.0  # centre line of the side walls
    back_face = -t / 2.0  # x of the back wall's inner face
    local_walls = [
        ((0.0, -(mouth / 2.0 + t)), (0.0, mouth / 2.0 + t)),  # back, over the side walls' ends
        ((0.0, side_y), (back_face - depth, side_y)),
        ((0.0, -side_y), (back_face - depth, -side_y)),
    ]
    lateral = mouth / 2.0 - settings.footprint_radius - settings.start_clearance - 0.02
    inside = rng.random() < 0.5
    if inside:
        start_x = back_face - depth * float(rng.uniform(0.35, 0.75))
    else:
        start_x = back_face - depth - float(rng.uniform(*U_START_OUTSIDE))
    start = np.array([start_x, float(rng.uniform(-lateral, lateral))])
    goal = np.array([t / 2.0 + float(rng.uniform(*U_GOAL_BEHIND)), float(rng.uniform(-0.8, 0.8))])
    goal[1] *= mouth / 2.0  # behind the back wall: the straight line runs into it
    heading = float(rng.uniform(-math.pi, math.pi))
    turn = np.array(
        [[math.cos(heading), -math.sin(heading)], [math.sin(heading), math.cos(heading)]]
    )
    corners = np.array([p for wall in local_walls for p in wall]) @ turn.T
    ends = np.array([start, goal]) @ turn.T
    extent = np.vstack((corners, ends))
    low, high = extent.min(axis=0), extent.max(axis=0)
    shift = -(low + high) / 2.0
    size = tuple(float(v) for v in high - low + 2.0 * rng.uniform(*U_MARGIN, size=2))
    corners, ends = corners + shift, ends + shift
    walls = [
        Wall(
            (float(corners[2 * i, 0]), float(corners[2 * i, 1])),
            (float(corners[2 * i + 1, 0]), float(corners[2 * i + 1, 1])),
            t,
        )
        for i in range(len(local_walls))
    ]
    world = _static_world("dead_end", size, ends[0], ends[1], settings, walls)
    # Inside the U or in front of it the robot faces the back wall, give or take 45 deg.
    yaw = heading + float(rng.uniform(-math.pi / 4.0, math.pi / 4.0))
    task = checked_task(world, (ends[0, 0], ends[0, 1]), yaw, (ends[1, 0], ends[1, 1]), settings)
    if task is None:
        return None
    straight = float(np.hypot(*(ends[1] - ends[0])))
    return task if task.path_length >= MIN_DETOUR * straight else None


def open_space(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """A 10-16 m long arena with a few sparse obstacles; start and goal at opposite ends."""
    length, width = float(rng.uniform(*OPEN_LENGTH)), float(rng.uniform(*OPEN_WIDTH))
    half = (length / 2.0, width / 2.0)
    boxes, cylinders = random_obstacles(
        rng, half, int(rng.integers(OPEN_OBSTACLES[0], OPEN_OBSTACLES[1] + 1))
    )
    margin = settings.footprint_radius + settings.start_clearance + 0.05
    start = (
        -half[0] + float(rng.uniform(*OPEN_END)),
        float(rng.uniform(-half[1] + margin, half[1] - margin)),
    )
    goal = (
        half[0] - float(rng.uniform(*OPEN_END)),
        float(rng.uniform(-half[1] + margin, half[1] - margin)),
    )
    if rng.random() < 0.5:
        start, goal = goal, start
    world = _static_world("open", (length, width), start, goal, settings, (), boxes, cylinders)
    yaw = float(rng.uniform(-math.pi, math.pi))
    if rng.random() < 0.5:  # long along y instead
        world, start, goal, yaw = _transposed(world), _swap(start), _swap(goal), math.pi / 2 - yaw
    return checked_task(world, start, yaw, goal, settings)


def rooms(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """Two or three rooms in a row joined by corridors 2.4-3.0 robot widths wide.

    Between neighbouring rooms a solid block 0.6-1.5 m thick spans the arena across the
    row except for the corridor through it (two boxes, one each side). Rooms hold 0-2
    pieces of furniture kept off the corridor mouths. Start and goal lie in different
    rooms. Corridors are wider than doors: a gap of under ~2.3 robot widths that runs
    for a metre leaves the robot a few centimetres a side all along it, where a door's
    squeeze is over in one wall thickness (with corridors of 1.8-3.0 robot widths the
    DWA baseline failed 9 of 30 rooms tasks, mostly the narrow ones; 1 of 30 with these).
    """
    count = int(rng.integers(ROOM_COUNT[0], ROOM_COUNT[1] + 1))
    lengths = rng.uniform(*ROOM_LENGTH, size=count)
    blocks = rng.uniform(*CORRIDOR_LENGTH, size=count - 1)
    width = float(rng.uniform(*ROOM_WIDTH))
    size = (float(lengths.sum() + blocks.sum()), width)
    half = (size[0] / 2.0, size[1] / 2.0)
    room_spans: list[tuple[float, float]] = []
    boxes: list[Box] = []
    mouths: list[tuple[float, float]] = []
    x = -half[0]
    for k in range(count):
        room_spans.append((x, x + float(lengths[k])))
        x += float(lengths[k])
        if k == count - 1:
            break
        passage = float(rng.uniform(*CORRIDOR_WIDTH)) * robot_width(settings)
        reach = half[1] - CORRIDOR_SIDE - passage / 2.0
        corridor_y = float(rng.uniform(-reach, reach))
        block = float(blocks[k])
        low, high = corridor_y - passage / 2.0, corridor_y + passage / 2.0
        middle = x + block / 2.0
        boxes.append(Box((middle, (low - half[1]) / 2.0), (block, low + half[1]), 0.0))
        boxes.append(Box((middle, (high + half[1]) / 2.0), (block, half[1] - high), 0.0))
        mouths += [(x, corridor_y), (x + block, corridor_y)]
        x += block
    cylinders: list[Cylinder] = []
    for x0, x1 in room_spans:
        room_half = ((x1 - x0) / 2.0, half[1])
        extra_boxes, extra_cylinders = random_obstacles(
            rng, room_half, int(rng.integers(FURNITURE[0], FURNITURE[1] + 1))
        )
        shift = (x0 + x1) / 2.0
        for box in extra_boxes:
            moved = replace(box, center=(box.center[0] + shift, box.center[1]))
            if _off_mouths(moved.center, math.hypot(*box.size) / 2.0, mouths):
                boxes.append(moved)
        for cylinder in extra_cylinders:
            moved_cylinder = replace(
                cylinder, center=(cylinder.center[0] + shift, cylinder.center[1])
            )
            if _off_mouths(moved_cylinder.center, cylinder.radius, mouths):
                cylinders.append(moved_cylinder)
    start_room, goal_room = (int(k) for k in rng.choice(count, size=2, replace=False))
    margin = settings.footprint_radius + settings.start_clearance + 0.05

    def in_room(span: tuple[float, float]) -> tuple[float, float]:
        return (
            float(rng.uniform(span[0] + margin, span[1] - margin)),
            float(rng.uniform(-half[1] + margin, half[1] - margin)),
        )

    start, goal = in_room(room_spans[start_room]), in_room(room_spans[goal_room])
    world = _static_world("rooms", size, start, goal, settings, (), boxes, cylinders)
    yaw = float(rng.uniform(-math.pi, math.pi))
    if rng.random() < 0.5:  # a row along y instead
        world, start, goal, yaw = _transposed(world), _swap(start), _swap(goal), math.pi / 2 - yaw
    return checked_task(world, start, yaw, goal, settings)


def _off_mouths(
    centre: tuple[float, float], extent: float, mouths: Sequence[tuple[float, float]]
) -> bool:
    """True when an obstacle of `extent` (m) at `centre` keeps clear of every corridor mouth."""
    return all(
        math.hypot(centre[0] - x, centre[1] - y) - extent > FURNITURE_CLEARANCE for x, y in mouths
    )


STATIC_FAMILY_BUILDERS: dict[str, Callable[[np.random.Generator, TaskSettings], Task | None]] = {
    "doorway": doorway,
    "clutter": clutter,
    "dead_end": dead_end,
    "open": open_space,
    "rooms": rooms,
}


def _known(family: str) -> None:
    if family not in STATIC_FAMILY_BUILDERS:
        raise ValueError(f"unknown static family {family!r}; known: {', '.join(STATIC_FAMILIES)}")


def static_task(
    family: str, rng: np.random.Generator, settings: TaskSettings, attempts: int = ATTEMPTS
) -> Task:
    """A checked task of static `family` drawn from `rng` (retries rejected draws)."""
    _known(family)
    return first_checked_task(STATIC_FAMILY_BUILDERS[family], rng, settings, attempts, family)


def static_family_task(family: str, seed: int, settings: TaskSettings | None = None) -> Task:
    """The task of static `family` for `seed` (a function of the two alone), label family/seed."""
    _known(family)
    rng = np.random.default_rng([int(seed), STATIC_FAMILIES.index(family), 0x737461])
    task = static_task(family, rng, settings or TaskSettings())
    return replace(task, label=f"{family}/{int(seed)}")
