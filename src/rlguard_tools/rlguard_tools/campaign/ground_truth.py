"""Ground truth of the campaign: clearances, nearest obstacle points, starts, escapes."""

from __future__ import annotations

import math

import numpy as np

from safety_controller.limits import TINY, Velocity
from sim_bringup.sim_core import ObstacleGeometry, Simulator

ESCAPE_HORIZON = 0.5  # s of the requested motion checked on ground truth by is_escape
ESCAPE_SLACK = 0.08  # m beyond the safety margin that makes a path clearly free (lidar noise)
ESCAPE_GAIN = 0.01  # m of clearance an escape must gain when it stays within the margin


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
