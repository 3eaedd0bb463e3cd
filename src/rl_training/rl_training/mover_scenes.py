"""Procedural moving-obstacle scenes: crossing, head-on, overtaking, several movers (no rclpy).

Each family is a function of a random generator that draws every parameter from a range
(arena size, corridor width, mover radius, speed, lane, timing and phase) and returns a
`Task` whose world carries the movers as `MovingCylinder` loops. Nothing is tuned to a
shipped world. Every scene is checked before it is returned: start and goal keep their
clearance to static obstacles and to the movers' paths (the overtaking mover starts
behind the robot instead), the start reaches the goal on the free-space grid of the
static world, and in the corridors a robot still fits past a mover standing anywhere in
its lane. `scene_task(family, seed)` makes one scene of a family from a seed alone, so a
(family, seed) pair names a scene for training, evaluation and reproduction.

Families:

- ``crossing``: an open room; a mover walks back and forth across the straight route at
  60-120 degrees, at 0.2-0.45 m/s, timed to reach the crossing point when a robot
  driving at 0.12-0.22 m/s would (+- 1.5 s);
- ``headon``: a corridor 1.2-2.0 m wide; a mover walks toward the robot along a lane
  that leaves a passing gap of at least `PASSING_GAP`;
- ``overtaking``: the same kind of corridor; a mover faster than the robot's top speed
  starts behind the robot and catches up with it within the first 70 % of the route;
- ``movers``: an open room with static boxes and cylinders and 2-4 movers on random
  loops, at least one of them passing near the straight route.

Movers do not all start at their first waypoint at t = 0: `phased_loop` rewrites a loop so
it starts any distance along itself, which is how each scene sets a mover's phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from rl_training.worlds import (
    FreeSpaceGrid,
    Task,
    TaskSettings,
    clear_points,
    moving_clearance,
    random_obstacles,
    static_clearance,
    time_limit_for,
)
from rlguard_common.world import Box, Cylinder, MovingCylinder, World

FAMILIES = ("crossing", "headon", "overtaking", "movers")

MOVER_SPEED = (0.2, 0.45)  # m/s, walking pace of a person or a cart
OVERTAKING_SPEED = (0.32, 0.45)  # m/s, above the robot's top speed so it catches up
MOVER_RADIUS = (0.15, 0.25)  # m
CORRIDOR_WIDTH = (1.2, 2.0)  # m
ROBOT_SPEED = (0.12, 0.22)  # m/s assumed when timing a crossing
CROSSING_ANGLE = (math.radians(60.0), math.radians(120.0))
CROSSING_JITTER = 1.5  # s, +- on the crossing mover's arrival
MOVER_COUNT = (2, 4)
# m: lateral room left beside a corridor mover, two inflated robot radii and some slack.
PASSING_GAP = 0.45
WALL_GAP = 0.05  # m: smallest gap between a corridor mover and the wall on its side
ATTEMPTS = 50


def loop_length(waypoints: Sequence[tuple[float, float]]) -> float:
    """Perimeter (m) of the closed loop through `waypoints` (back to the first)."""
    points = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    edges = np.roll(points, -1, axis=0) - points
    return float(np.sum(np.hypot(edges[:, 0], edges[:, 1])))


def phased_loop(
    waypoints: Sequence[tuple[float, float]], offset: float
) -> tuple[tuple[float, float], ...]:
    """The same closed loop, starting `offset` metres along it from its first waypoint.

    A mover on the result is at time t where a mover on `waypoints` is at
    t + offset / speed: its phase. The offset wraps around the perimeter.
    """
    points = [(float(x), float(y)) for x, y in waypoints]
    if len(points) < 2:
        raise ValueError("a loop needs at least two waypoints")
    perimeter = loop_length(points)
    if not math.isfinite(offset) or perimeter <= 0.0:
        raise ValueError(f"cannot phase a loop of length {perimeter} by {offset}")
    s = offset % perimeter
    travelled = 0.0
    count = len(points)
    for i in range(count):
        (x0, y0), (x1, y1) = points[i], points[(i + 1) % count]
        length = math.hypot(x1 - x0, y1 - y0)
        if s < travelled + length or i == count - 1:
            fraction = min(max((s - travelled) / length, 0.0), 1.0) if length > 0.0 else 0.0
            first = (x0 + fraction * (x1 - x0), y0 + fraction * (y1 - y0))
            rest = [points[(i + 1 + k) % count] for k in range(count)]
            if fraction <= 1e-9:
                rest = rest[:-1]  # `first` is waypoint i itself
                return (first, *rest)
            if fraction >= 1.0 - 1e-9:
                return tuple(rest)  # starts on waypoint i + 1
            return (first, *rest)
        travelled += length
    return tuple(points)  # unreachable: the last segment always matches


def scene_world(
    name: str,
    size: tuple[float, float],
    movers: Sequence[MovingCylinder],
    start: tuple[float, float],
    goal: tuple[float, float],
    settings: TaskSettings,
    boxes: Sequence[Box] = (),
    cylinders: Sequence[Cylinder] = (),
) -> World:
    """A generated world: an arena of `size` with these obstacles, one start and one goal."""
    return World(
        name=name,
        arena_size=(float(size[0]), float(size[1])),
        wall_thickness=0.1,
        obstacle_height=0.5,
        walls=(),
        boxes=tuple(boxes),
        cylinders=tuple(cylinders),
        moving_cylinders=tuple(movers),
        start=(float(start[0]), float(start[1]), 0.0),
        goals=((float(goal[0]), float(goal[1])),),
        goal_tolerance=settings.generated_tolerance,
        source="generated",
    )


def checked_task(
    world: World,
    start: tuple[float, float],
    yaw: float,
    goal: tuple[float, float],
    settings: TaskSettings,
    check_movers_at_start: bool = True,
) -> Task | None:
    """A task when start and goal are clear and connected, else None."""
    ends = np.array([start, goal], dtype=np.float64)
    needed = settings.footprint_radius + settings.start_clearance
    if np.any(static_clearance(world, ends) <= needed):
        return None
    to_movers = moving_clearance(world, ends)
    mover_needed = settings.footprint_radius + settings.moving_clearance
    if to_movers[1] <= mover_needed or (check_movers_at_start and to_movers[0] <= mover_needed):
        return None
    grid = FreeSpaceGrid(world, settings.footprint_radius + settings.path_inflation)
    length = grid.path_length(start, goal)
    if not math.isfinite(length):
        return None
    return Task(
        world=world,
        start=(float(start[0]), float(start[1]), float(math.remainder(yaw, 2.0 * math.pi))),
        goal=(float(goal[0]), float(goal[1])),
        tolerance=settings.generated_tolerance,
        time_limit=time_limit_for(
            length, settings.max_speed, settings.time_slack, settings.time_extra
        ),
        path_length=length,
        label=world.name,
    )


def _passable(
    world: World, lane: Sequence[tuple[float, float]], radius: float, settings: TaskSettings
) -> bool:
    """True when the robot gets from start to goal past a mover standing anywhere on `lane`.

    The mover is placed as a static cylinder at a few points of its lane in turn (ends
    and middle); each time the start must still reach the goal on the free-space grid.
    """
    a, b = np.asarray(lane[0], dtype=np.float64), np.asarray(lane[1], dtype=np.float64)
    for fraction in (0.15, 0.5, 0.85):
        centre = a + fraction * (b - a)
        blocked = replace(
            world,
            cylinders=(*world.cylinders, Cylinder((float(centre[0]), float(centre[1])), radius)),
            moving_cylinders=(),
        )
        grid = FreeSpaceGrid(blocked, settings.footprint_radius + settings.path_inflation)
        if not math.isfinite(grid.path_length(world.start[:2], world.goals[0])):
            return False
    return True


def _corridor_lane(rng: np.random.Generator, width: float, radius: float) -> float:
    """A mover lane's y in a corridor of `width` centred on y = 0, leaving `PASSING_GAP`."""
    spare = width - 2.0 * radius - PASSING_GAP  # room to share between the two side gaps
    wall_gap = float(rng.uniform(WALL_GAP, max(WALL_GAP, spare)))
    side = 1.0 if rng.random() < 0.5 else -1.0
    return side * (width / 2.0 - wall_gap - radius)


def crossing(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """An open room; a mover crosses the straight route, timed to meet the robot there."""
    size = (float(rng.uniform(6.0, 9.0)), float(rng.uniform(4.5, 7.0)))
    half = (size[0] / 2.0, size[1] / 2.0)
    start = np.array([-half[0] + rng.uniform(0.5, 1.0), rng.uniform(-half[1] + 0.8, half[1] - 0.8)])
    goal = np.array(
        [
            half[0] - rng.uniform(0.5, 1.0),
            np.clip(start[1] + rng.uniform(-1.5, 1.5), -half[1] + 0.8, half[1] - 0.8),
        ]
    )
    route = goal - start
    heading = math.atan2(route[1], route[0])
    meet = start + float(rng.uniform(0.35, 0.65)) * route
    angle = heading + float(rng.uniform(*CROSSING_ANGLE)) * (1.0 if rng.random() < 0.5 else -1.0)
    direction = np.array([math.cos(angle), math.sin(angle)])
    # The mover's line through the meeting point, clipped to 0.4 m inside the arena.
    reach = []
    for sign in (-1.0, 1.0):
        limits = []
        for axis in (0, 1):
            d = sign * direction[axis]
            if abs(d) > 1e-9:
                bound = (half[axis] - 0.4) if d > 0 else -(half[axis] - 0.4)
                limits.append((bound - meet[axis]) / d)
        reach.append(min(limits))
    if min(reach) < 1.0:
        return None
    a = meet - reach[0] * direction
    b = meet + reach[1] * direction
    radius = float(rng.uniform(*MOVER_RADIUS))
    speed = float(rng.uniform(*MOVER_SPEED))
    # Arrival: when a robot at a typical speed would be at the meeting point, +- jitter.
    robot_speed = float(rng.uniform(*ROBOT_SPEED))
    arrival = float(np.hypot(*(meet - start))) / robot_speed
    arrival = max(arrival + float(rng.uniform(-CROSSING_JITTER, CROSSING_JITTER)), 0.5)
    leg = float(np.hypot(*(b - a)))
    along = float(np.hypot(*(meet - a)))
    at_meet = along if rng.random() < 0.5 else 2.0 * leg - along  # going a->b or coming back
    offset = (at_meet - speed * arrival) % (2.0 * leg)
    waypoints = phased_loop(((float(a[0]), float(a[1])), (float(b[0]), float(b[1]))), offset)
    mover = MovingCylinder(radius=radius, speed=speed, waypoints=waypoints)
    boxes, cylinders = _clear_of_route(
        *random_obstacles(rng, half, int(rng.integers(0, 4))), start, goal, (a, b), radius
    )
    world = scene_world("crossing", size, [mover], start, goal, settings, boxes, cylinders)
    yaw = heading + float(rng.uniform(-math.pi / 2.0, math.pi / 2.0))
    return checked_task(world, (start[0], start[1]), yaw, (goal[0], goal[1]), settings)


def _clear_of_route(
    boxes: list[Box],
    cylinders: list[Cylinder],
    start: np.ndarray,
    goal: np.ndarray,
    lane: tuple[np.ndarray, np.ndarray],
    radius: float,
) -> tuple[list[Box], list[Cylinder]]:
    """The static obstacles that keep 0.6 m from the straight route and from the lane."""

    def distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        ab = b - a
        u = float(np.clip(np.dot(point - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
        return float(np.hypot(*(point - (a + u * ab))))

    def keeps_off(centre: tuple[float, float], extent: float) -> bool:
        c = np.asarray(centre, dtype=np.float64)
        return (
            distance(c, start, goal) - extent > 0.6
            and distance(c, lane[0], lane[1]) - extent - radius > 0.2
        )

    kept_boxes = [b for b in boxes if keeps_off(b.center, math.hypot(*b.size) / 2.0)]
    kept_cylinders = [c for c in cylinders if keeps_off(c.center, c.radius)]
    return kept_boxes, kept_cylinders


def _corridor(
    rng: np.random.Generator, length_range: tuple[float, float]
) -> tuple[tuple[float, float], float, float]:
    width = float(rng.uniform(*CORRIDOR_WIDTH))
    length = float(rng.uniform(*length_range))
    return (length, width), width, length


def _lateral(rng: np.random.Generator, width: float, settings: TaskSettings) -> float:
    room = width / 2.0 - settings.footprint_radius - settings.start_clearance - 0.01
    return float(rng.uniform(-room, room)) if room > 0.0 else 0.0


def head_on(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """A corridor 1.2-2.0 m wide; a mover walks toward the robot, leaving a passing gap."""
    size, width, length = _corridor(rng, (7.0, 10.0))
    start = (-length / 2.0 + 0.5, _lateral(rng, width, settings))
    goal = (length / 2.0 - 0.5, _lateral(rng, width, settings))
    radius = float(rng.uniform(*MOVER_RADIUS))
    lane_y = _corridor_lane(rng, width, radius)
    near = start[0] + float(rng.uniform(1.2, 2.0))
    far = goal[0] - float(rng.uniform(0.8, 1.5))
    if far - near < 2.0:
        return None
    # First leg far -> near: toward the robot; it starts 0-60 % of the way along it.
    lane = ((far, lane_y), (near, lane_y))
    offset = float(rng.uniform(0.0, 0.6)) * (far - near)
    mover = MovingCylinder(
        float(radius), float(rng.uniform(*MOVER_SPEED)), phased_loop(lane, offset)
    )
    world = scene_world("headon", size, [mover], start, goal, settings)
    if not _passable(world, lane, radius, settings):
        return None
    yaw = float(rng.uniform(-math.pi / 3.0, math.pi / 3.0))
    return checked_task(world, start, yaw, goal, settings)


def overtaking(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """A corridor 1.2-2.0 m wide; a mover faster than the robot comes from behind.

    The mover walks its lane from behind the start toward the goal and back; it starts
    0.7 m or more behind the robot (centre to centre) and, were the robot driving at its
    top speed, catches up within the first 70 % of the route. Its lane may run through
    the robot's start: the robot has to let it pass or keep ahead of it.
    """
    size, width, length = _corridor(rng, (8.0, 11.0))
    radius = float(rng.uniform(*MOVER_RADIUS))
    speed = float(rng.uniform(*OVERTAKING_SPEED))
    lane_y = _corridor_lane(rng, width, radius)
    back = -length / 2.0 + 0.4
    goal = (length / 2.0 - 0.5, _lateral(rng, width, settings))
    front = goal[0] - float(rng.uniform(0.8, 1.5))
    phase = float(rng.uniform(0.0, 0.5))  # mover's start along its first leg
    # A robot at top speed is caught after gap * top / (speed - top) m, which must stay
    # within 70 % of its route (goal - mover start - gap): the largest gap that does.
    room = goal[0] - (back + phase)
    lag = settings.max_speed / (speed - settings.max_speed)
    gap_max = 0.7 * room / (lag + 0.7)
    if gap_max < 0.7:
        return None
    gap = float(rng.uniform(0.7, min(gap_max, 2.5)))
    start = (back + phase + gap, _lateral(rng, width, settings))
    if front - start[0] < 2.0:
        return None
    lane = ((back, lane_y), (front, lane_y))
    mover = MovingCylinder(radius, speed, phased_loop(lane, phase))
    world = scene_world("overtaking", size, [mover], start, goal, settings)
    if not _passable(world, lane, radius, settings):
        return None
    yaw = float(rng.uniform(-math.pi / 4.0, math.pi / 4.0))
    return checked_task(world, start, yaw, goal, settings, check_movers_at_start=False)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    u = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    nearest = a + u[:, None] * ab
    return np.hypot(points[:, 0] - nearest[:, 0], points[:, 1] - nearest[:, 1])


def several_movers(rng: np.random.Generator, settings: TaskSettings) -> Task | None:
    """An open room with static boxes and 2-4 movers on random loops, one near the route."""
    size = (float(rng.uniform(6.0, 9.0)), float(rng.uniform(6.0, 9.0)))
    half = (size[0] / 2.0, size[1] / 2.0)
    boxes, cylinders = random_obstacles(rng, half, int(rng.integers(2, 6)))
    statics = scene_world("movers", size, [], (0.0, 0.0), (0.0, 0.0), settings, boxes, cylinders)
    movers: list[MovingCylinder] = []
    for _ in range(int(rng.integers(MOVER_COUNT[0], MOVER_COUNT[1] + 1))):
        radius = float(rng.uniform(*MOVER_RADIUS))
        for _ in range(20):  # a loop that does not run through a static obstacle
            points = _loop_points(rng, half)
            samples = _loop_samples(points)
            if np.all(static_clearance(statics, samples) > radius + 0.05):
                waypoints = tuple((float(x), float(y)) for x, y in points)
                offset = float(rng.uniform(0.0, loop_length(waypoints)))
                speed = float(rng.uniform(*MOVER_SPEED))
                movers.append(MovingCylinder(radius, speed, phased_loop(waypoints, offset)))
                break
    if len(movers) < MOVER_COUNT[0]:
        return None
    world = replace(statics, moving_cylinders=tuple(movers))
    points = clear_points(world, half, rng, settings)
    if points.shape[0] < 2:
        return None
    start = points[0]
    far = np.flatnonzero(np.hypot(*(points[1:] - start).T) >= 3.0)
    if far.size == 0:
        return None
    goal = points[1 + far[0]]
    near_route = [
        float(np.min(_segment_distance(_loop_samples(np.asarray(m.waypoints)), start, goal)))
        for m in movers
    ]
    if min(near_route) > 0.5:
        return None
    world = replace(
        world,
        start=(float(start[0]), float(start[1]), 0.0),
        goals=((float(goal[0]), float(goal[1])),),
    )
    yaw = float(rng.uniform(-math.pi, math.pi))
    return checked_task(world, (start[0], start[1]), yaw, (goal[0], goal[1]), settings)


def _loop_points(rng: np.random.Generator, half: tuple[float, float]) -> np.ndarray:
    count = int(rng.integers(2, 5))
    return np.column_stack(
        (
            rng.uniform(-half[0] + 0.5, half[0] - 0.5, count),
            rng.uniform(-half[1] + 0.5, half[1] - 0.5, count),
        )
    )


def _loop_samples(points: np.ndarray, spacing: float = 0.1) -> np.ndarray:
    """Points every `spacing` m along the closed loop through `points`."""
    samples = []
    for a, b in zip(points, np.roll(points, -1, axis=0), strict=True):
        count = max(int(math.ceil(float(np.hypot(*(b - a))) / spacing)), 1)
        u = np.arange(count)[:, None] / count
        samples.append(a + u * (b - a))
    return np.concatenate(samples, axis=0)


FAMILY_BUILDERS: dict[str, Callable[[np.random.Generator, TaskSettings], Task | None]] = {
    "crossing": crossing,
    "headon": head_on,
    "overtaking": overtaking,
    "movers": several_movers,
}


def family_task(
    family: str, rng: np.random.Generator, settings: TaskSettings, attempts: int = ATTEMPTS
) -> Task:
    """A checked scene of `family` drawn from `rng` (retries rejected draws)."""
    if family not in FAMILY_BUILDERS:
        raise ValueError(f"unknown mover family {family!r}; known: {', '.join(FAMILIES)}")
    return first_checked_task(FAMILY_BUILDERS[family], rng, settings, attempts, family)


def first_checked_task(
    builder: Callable[[np.random.Generator, TaskSettings], Task | None],
    rng: np.random.Generator,
    settings: TaskSettings,
    attempts: int,
    family: str,
) -> Task:
    """The first task `builder` accepts in `attempts` draws from `rng` (it rejects a draw
    by returning None); RuntimeError naming `family` when none is accepted."""
    for _ in range(attempts):
        task = builder(rng, settings)
        if task is not None:
            return task
    raise RuntimeError(f"could not make a checked {family} task in {attempts} draws")


def scene_task(family: str, seed: int, settings: TaskSettings | None = None) -> Task:
    """The scene of `family` for `seed` (a function of the two alone), labelled family/seed."""
    if family not in FAMILY_BUILDERS:
        raise ValueError(f"unknown mover family {family!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([int(seed), FAMILIES.index(family), 0x6D6F76])
    task = family_task(family, rng, settings or TaskSettings())
    return replace(task, label=f"{family}/{int(seed)}")
