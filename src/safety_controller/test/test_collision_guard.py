import math

import numpy as np
import pytest

from safety_controller.collision_guard import free_path, guard_command, safe_scale
from safety_controller.footprint import Footprint, parse_polygon

CIRCLE = Footprint(radius=0.11, margin=0.05)
RECTANGLE = Footprint(
    polygon=parse_polygon("[[0.25, 0.12], [-0.1, 0.12], [-0.1, -0.12], [0.25, -0.12]]"),
    margin=0.03,
)
DECEL = (3.0, 4.0)


def moved(points, v, w, p):
    """Independent closed-form unicycle motion: points in the frames reached after each p."""
    p = np.atleast_1d(np.asarray(p, dtype=float))[:, None]
    theta = w * p
    if w == 0.0:
        x, y = v * p, np.zeros_like(p)
    else:
        x, y = v / w * np.sin(theta), v / w * (1.0 - np.cos(theta))
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = points[None, :, 0] - x, points[None, :, 1] - y
    return np.stack((c * dx + s * dy, -s * dx + c * dy), axis=-1)  # (P, N, 2)


def brute_force_contact(points, footprint, v, w, horizon, step):
    ps = np.arange(0.0, horizon, step)
    frames = moved(points, v, w, ps)
    clearance = footprint.clearance(frames.reshape(-1, 2)).reshape(len(ps), -1).min(axis=1)
    hits = np.flatnonzero(clearance <= 0.0)
    return ps[hits[0]] if hits.size else math.inf


def test_straight_at_a_wall_matches_the_braking_formula():
    wall = np.column_stack((np.full(41, 1.0), np.linspace(-1, 1, 41)))
    v, tau, a = 0.26, 0.15, 3.0
    d = 1.0 - 0.16  # free travel before the inflated circle touches the wall
    assert free_path(wall, CIRCLE, v, 0.0) == pytest.approx(d / v)
    result = guard_command(wall, CIRCLE, v, 0.0, tau, DECEL)
    v_max = -a * tau + math.sqrt((a * tau) ** 2 + 2 * a * d)
    assert result.scale == pytest.approx(min(1.0, v_max / v))
    near = wall - [0.81, 0.0]  # 3 cm of free travel left
    d = 0.03
    v_max = -a * tau + math.sqrt((a * tau) ** 2 + 2 * a * d)
    assert v_max < v
    assert guard_command(near, CIRCLE, v, 0.0, tau, DECEL).scale * v == pytest.approx(v_max)


def test_safe_scale_edge_cases():
    assert safe_scale(0.0, 10.0, 0.1) == 0.0
    assert safe_scale(math.inf, 10.0, 0.1) == 1.0
    assert 0.0 < safe_scale(0.05, 10.0, 0.1) < 1.0


@pytest.mark.parametrize("footprint", [CIRCLE, RECTANGLE], ids=["circle", "rectangle"])
def test_first_contact_agrees_with_brute_force_search(footprint):
    rng = np.random.default_rng(3)
    checked = 0
    for trial in range(60):
        points = rng.uniform(-0.8, 0.8, size=(12, 2))
        points = points[footprint.clearance(points) > 0.02]
        v = 0.0 if trial % 5 == 0 else float(rng.uniform(-0.3, 0.3))
        w = 0.0 if trial % 5 == 1 else float(rng.uniform(-2.0, 2.0))
        if (v == 0.0 and w == 0.0) or points.shape[0] == 0:
            continue
        horizon, step = 4.0, 4e-3
        expected = brute_force_contact(points, footprint, v, w, horizon, step)
        got = free_path(points, footprint, v, w)
        if math.isinf(expected):
            assert got >= horizon - step
        else:
            assert got == pytest.approx(expected, abs=step)
            checked += 1
    assert checked > 20


def test_rotation_in_place_checks_the_swept_polygon_not_only_translation():
    # A point beside the front corner: no translation hits it, but turning left does.
    point = np.array([[0.2, 0.2]])
    assert RECTANGLE.clearance(point)[0] > 0
    assert free_path(point, RECTANGLE, 0.0, 1.0) < 0.5
    assert guard_command(point, RECTANGLE, 0.0, 1.5, 0.15, DECEL).scale < 1.0
    # Outside the swept disc nothing can be hit.
    far = np.array([[0.0, RECTANGLE.bounding_radius + 0.01]])
    assert free_path(far, RECTANGLE, 0.0, 1.0) == math.inf
    # A centred circle sweeps nothing when turning on the spot.
    assert free_path(np.array([[0.0, 0.17]]), CIRCLE, 0.0, 2.0) == math.inf


@pytest.mark.parametrize("footprint", [CIRCLE, RECTANGLE], ids=["circle", "rectangle"])
def test_not_trapped_next_to_a_wall(footprint):
    # A wall in front, already inside the margin: forward is blocked, backing off passes.
    front = footprint.clearance(np.array([[1.0, 0.0]]))[0] - 1.0  # -(front extent)
    x_wall = -front - 0.01
    wall = np.column_stack((np.full(61, x_wall), np.linspace(-0.6, 0.6, 61)))
    assert footprint.clearance(wall).min() < 0
    assert guard_command(wall, footprint, 0.2, 0.0, 0.15, DECEL).scale == 0.0
    assert guard_command(wall, footprint, 0.2, 0.5, 0.15, DECEL).scale == 0.0
    assert guard_command(wall, footprint, -0.2, 0.0, 0.15, DECEL).scale == 1.0
    assert guard_command(wall, footprint, -0.2, 0.4, 0.15, DECEL).scale == 1.0


def test_command_parallel_to_a_far_wall_is_untouched():
    wall = np.column_stack((np.linspace(-2, 2, 81), np.full(81, 0.3)))
    assert guard_command(wall, CIRCLE, 0.26, 0.0, 0.15, DECEL).scale == 1.0


def test_guard_does_not_block_what_it_cannot_reach():
    points = np.array([[0.5, 0.0]])
    # Braking from 0.05 m/s takes well under the 0.34 m that are free.
    assert guard_command(points, CIRCLE, 0.05, 0.0, 0.15, DECEL).scale == 1.0
    assert guard_command(np.zeros((0, 2)), CIRCLE, 0.26, 1.0, 0.15, DECEL).scale == 1.0
