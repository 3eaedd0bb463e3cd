"""The mover tracker: clusters, matching, velocity, and what must not count as moving."""

import math

import numpy as np
import pytest

from hybrid_fallback.dwa import DwaConfig, ObservedSector
from hybrid_fallback.fallback import FallbackController
from hybrid_fallback.mover_tracker import MoverTracker, TrackerConfig, detect_objects

BEAMS = 360
MAX_RANGE = 3.5
ROOM = 4.0  # m: half side of the square room the scans see


def scan(
    origin: tuple[float, float],
    circles: list[tuple[float, float, float]],
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
    dropout: float = 0.0,
    room: float = ROOM,
) -> np.ndarray:
    """Odom-frame points (beam order) of a 360-beam lidar at `origin` in a square room of
    half side `room`; beams without a return within MAX_RANGE give no point."""
    angles = np.arange(BEAMS) * 2.0 * math.pi / BEAMS
    dx, dy = np.cos(angles), np.sin(angles)
    ox, oy = origin
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(dx != 0.0, (np.sign(dx) * room - ox) / dx, np.inf)
        ty = np.where(dy != 0.0, (np.sign(dy) * room - oy) / dy, np.inf)
    t = np.minimum(np.abs(tx), np.abs(ty))
    for cx, cy, r in circles:
        fx, fy = ox - cx, oy - cy
        b = fx * dx + fy * dy
        disc = b * b - (fx * fx + fy * fy - r * r)
        hit = disc >= 0.0
        near = -b - np.sqrt(np.where(hit, disc, 0.0))
        t = np.where(hit & (near > 0.0), np.minimum(t, near), t)
    if rng is not None and noise > 0.0:
        t = t + rng.normal(0.0, noise, t.shape)
    keep = t <= MAX_RANGE
    if rng is not None and dropout > 0.0:
        keep &= rng.random(t.shape) >= dropout
    return np.column_stack((ox + t * dx, oy + t * dy))[keep]


def run(tracker, frames, dt=0.1):
    """Feed (origin, circles) frames at 10 Hz; the time of the last one."""
    now = 0.0
    for i, (origin, circles, *rest) in enumerate(frames):
        now = i * dt
        tracker.update(scan(origin, circles, *rest), origin, now)
    return now


def test_a_walking_cylinder_is_tracked_with_its_velocity_and_size():
    tracker = MoverTracker()
    frames = [((0.0, 0.0), [(-1.5 + 0.35 * i * 0.1, 1.0, 0.2)]) for i in range(10)]
    now = run(tracker, frames)
    movers = tracker.moving_obstacles(now)
    assert movers.shape == (1, 5)
    x, y, vx, vy, radius = movers[0]
    assert math.hypot(x - (-1.5 + 0.35 * now), y - 1.0) < 0.05
    assert vx == pytest.approx(0.35, abs=0.04) and vy == pytest.approx(0.0, abs=0.04)
    assert 0.17 <= radius <= 0.26


def test_a_post_seen_from_a_passing_robot_is_not_moving():
    tracker = MoverTracker()
    frames = [((-1.5 + 0.26 * i * 0.1, 0.0), [(0.0, 0.5, 0.2)]) for i in range(30)]
    now = run(tracker, frames)
    assert tracker.track_count >= 1  # it is tracked ...
    assert tracker.moving_obstacles(now).shape == (0, 5)  # ... but not as moving


def test_noise_and_dropout_make_no_mover_but_keep_a_real_one():
    rng = np.random.default_rng(3)
    still = MoverTracker()
    walking = MoverTracker()
    for i in range(40):
        now = 0.1 * i
        origin = (0.0, 0.0)
        points = scan(origin, [(1.0, 1.0, 0.15), (-1.0, 0.5, 0.25)], rng, 0.03, 0.3)
        still.update(points, origin, now)
        walker = [(1.0, -1.2 + 0.3 * now, 0.2)]
        walking.update(scan(origin, walker, rng, 0.03, 0.3), origin, now)
        if i >= 10:
            assert still.moving_obstacles(now).shape == (0, 5), f"phantom mover at {now:.1f} s"
    movers = walking.moving_obstacles(now)
    assert movers.shape[0] == 1
    assert movers[0, 3] == pytest.approx(0.3, abs=0.08)


def test_walls_are_structure_not_objects():
    points = scan((0.5, -0.3), [])
    assert detect_objects(points, (0.5, -0.3), TrackerConfig()) == []


def test_a_cluster_beside_a_nearer_one_is_only_partly_seen():
    # A post right in front of a larger cylinder hides part of it.
    origin = (0.0, 0.0)
    points = scan(origin, [(1.0, 0.0, 0.1), (1.6, 0.15, 0.3)])
    detections = detect_objects(points, origin, TrackerConfig())
    far = [d for d in detections if d.center()[0] > 1.3]
    near = [d for d in detections if d.center()[0] < 1.3]
    assert len(far) == 1 and far[0].partial
    assert len(near) == 1 and not near[0].partial


def test_a_nearer_return_across_beams_that_saw_nothing_hides_no_part_of_a_cluster():
    # In open space only the two cylinders return: in the point array each one's
    # neighbours are the other's points, half the circle round, not the beams beside it.
    origin = (0.0, 0.0)
    points = scan(origin, [(2.0, 0.0, 0.2), (0.0, -1.0, 0.1)], room=20.0)
    detections = detect_objects(points, origin, TrackerConfig())
    assert len(detections) == 2
    assert not any(d.partial for d in detections)


def test_a_cluster_at_the_edge_of_a_partial_field_of_view_is_only_partly_seen():
    # A 270-degree lidar: a cylinder at 135 degrees is cut by the edge of the view.
    origin = (0.0, 0.0)
    points = scan(origin, [(-1.0, 1.0, 0.2)], room=20.0)
    bearing = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    in_view = points[np.abs(bearing) <= 135.0]
    in_view = in_view[np.argsort(np.arctan2(in_view[:, 1], in_view[:, 0]))]  # beam order
    (cut,) = detect_objects(in_view, origin, TrackerConfig(), full_circle=False)
    assert cut.partial
    (whole,) = detect_objects(in_view, origin, TrackerConfig(), full_circle=True)
    assert not whole.partial


def test_the_discs_of_a_mover_lie_where_it_has_walked():
    tracker = MoverTracker()
    path = [(-1.5 + 0.35 * i * 0.1, 1.0) for i in range(10)]
    for i, (x, y) in enumerate(path):
        tracker.update(scan((0.0, 0.0), [(x, y, 0.2)]), (0.0, 0.0), i * 0.1)
        if i == 0:
            assert tracker.moving_discs().shape == (0, 3)  # one sighting is no motion
    discs = tracker.moving_discs()
    assert discs.shape[0] >= 5
    # One disc per recent sighting, each over the cylinder where it then was.
    for x, y, radius in discs:
        nearest = min(math.hypot(x - px, y - py) for px, py in path)
        assert nearest < 0.05 and 0.2 <= radius <= 0.3


def test_the_clock_going_back_starts_over():
    tracker = MoverTracker()
    frames = [((0.0, 0.0), [(-1.5 + 0.35 * i * 0.1, 1.0, 0.2)]) for i in range(10)]
    run(tracker, frames)
    assert tracker.moving_obstacles(0.9).shape[0] == 1
    tracker.update(scan((0.0, 0.0), [(-1.5, 1.0, 0.2)]), (0.0, 0.0), 0.0)
    assert tracker.moving_obstacles(0.0).shape == (0, 5)


def test_a_stale_track_is_dropped():
    tracker = MoverTracker()
    frames = [((0.0, 0.0), [(-1.5 + 0.35 * i * 0.1, 1.0, 0.2)]) for i in range(10)]
    now = run(tracker, frames)
    later = now + TrackerConfig().max_age + 0.1
    assert tracker.moving_obstacles(later).shape == (0, 5)


def test_invalid_tracker_values_are_refused():
    with pytest.raises(ValueError, match="min_speed"):
        TrackerConfig(min_speed=2.0, max_speed=1.0).validate()
    with pytest.raises(ValueError, match="gate"):
        TrackerConfig(gate=0.0).validate()


def overtaking_frames(count: int) -> list[tuple[float, tuple[float, float], list]]:
    """A robot standing in a lane while a cylinder walks up behind it at 0.4 m/s."""
    return [(0.1 * i, (0.0, 0.0), [(-2.2 + 0.4 * 0.1 * i, 0.0, 0.2)]) for i in range(count)]


def drive(controller: FallbackController, frames) -> object:
    result = None
    for scan_id, (now, origin, circles) in enumerate(frames):
        points = scan(origin, circles)  # odom == base: the robot stands at the origin
        result = controller.compute(
            points, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), now, scan_id=scan_id
        )
    return result


def test_the_fallback_steps_out_of_the_way_of_a_mover_only_when_tracking():
    frames = overtaking_frames(12)
    dwa = DwaConfig(moving_horizon=4.0)
    tracking = FallbackController(dwa)
    blind = FallbackController(dwa, tracker=TrackerConfig(enabled=False))
    seen = drive(tracking, frames)
    unseen = drive(blind, frames)
    assert tracking.tracker.moving_obstacles(frames[-1][0]).shape[0] == 1
    assert seen.moving_samples > 0  # rollouts ending in the mover's way were refused
    assert unseen.moving_samples == 0


def walk_in_open_space(controller: FallbackController) -> tuple[float, float]:
    """A cylinder walks across 2.5 m in front of a robot standing in open space (nothing
    else within range): the lidar's beams behind it return nothing. Its last position."""
    position = (0.0, 0.0)
    for i in range(80):
        position = (-1.5 + 0.35 * 0.1 * i, 2.5)
        points = scan((0.0, 0.0), [(*position, 0.2)], room=20.0)
        controller.observe(points, (0.0, 0.0, 0.0), (0.0, -3.0), 0.1 * i, scan_id=i)
    return position


def occupied_cells(controller: FallbackController, last: tuple[float, float]) -> tuple[int, int]:
    """Occupied grid cells (farther than, within) 0.5 m of the mover's last position."""
    grid = controller.grid
    cells = np.argwhere(grid.occupied)
    centres = grid.origin + (cells + 0.5) * grid.config.resolution
    far = np.hypot(centres[:, 0] - last[0], centres[:, 1] - last[1]) > 0.5
    return int(far.sum()), int((~far).sum())


def test_a_tracked_walker_draws_no_wall_on_the_fallback_grid():
    tracking = FallbackController()
    blind = FallbackController(tracker=TrackerConfig(enabled=False))
    last = walk_in_open_space(tracking)
    walk_in_open_space(blind)
    # Without tracking, beams that return nothing clear nothing: its path stays a wall.
    assert occupied_cells(blind, last)[0] >= 10
    trail, where_it_is = occupied_cells(tracking, last)
    assert trail == 0
    assert where_it_is >= 2  # it is on the map where it stands, for the route to go round


def test_the_fallback_tells_the_tracker_when_the_scan_is_not_a_full_circle():
    sector = ObservedSector.from_scan(-0.75 * math.pi, math.radians(1.0), 271)
    told = []
    controller = FallbackController()
    update = controller.tracker.update
    controller.tracker.update = lambda *args: told.append(args[3]) or update(*args)
    points = scan((0.0, 0.0), [(1.0, 0.5, 0.2)])
    controller.compute(points, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), 0.0, scan_id=0)
    controller.compute(
        points, (0.0, 0.0, 0.0), (3.0, 0.0), (0.0, 0.0), 0.1, observed_sector=sector, scan_id=1
    )
    assert told == [True, False]
