"""Laser scan geometry shared by the safety filter and the DWA fallback (no rclpy).

Converts a LaserScan's ranges into obstacle points in the robot base frame, with the
REP-117 meaning of special values: NaN and readings outside [range_min, range_max] are
invalid and dropped; +inf means "nothing within range" and gives no point; -inf means
"too close to measure" and is placed at range_min, i.e. an obstacle right at the sensor.

It also says what the scan did *not* see, for the safety filter: `Visibility` is the
region the beams swept free (a star around the lidar), and `frontier` points mark the
edges of unobserved space near the robot (outside the field of view, and across long
runs of beams without a measurement). Along a -inf beam something sits anywhere between
the sensor and range_min, so `near_field` holds points along that whole stretch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Frontier and near-field points are laid this far apart (m) ...
FRONTIER_SPACING = 0.01
# ... out to this distance from the lidar (m): beyond any stop the guard plans for.
FRONTIER_RANGE = 1.5
# Runs of beams without a measurement up to this angle (rad) count as seen, at the
# shorter reach of their neighbours (dropout); longer runs are unobserved.
MAX_INTERPOLATED_GAP = math.radians(5.0)


@dataclass(frozen=True)
class LidarMount:
    """Pose of the lidar in the base frame: position (m) and yaw (rad)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


@dataclass(frozen=True)
class Visibility:
    """The region a scan swept free: along each beam, from the lidar out to `reach`.

    Beam i points at `first_angle + i * increment` (base frame) from `origin`; a NaN
    reach means the beam observed nothing. `wraps` is True when the beams cover the full
    circle, so the last beam neighbours the first.
    """

    origin: tuple[float, float]
    first_angle: float
    increment: float
    reach: np.ndarray
    wraps: bool

    def proves_free(self, points: np.ndarray, tolerance: float = 0.02) -> np.ndarray:
        """Per point (base frame of this scan): True where both neighbouring beams saw past it."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        count = self.reach.size
        if pts.shape[0] == 0 or count == 0:
            return np.zeros(pts.shape[0], dtype=bool)
        dx, dy = pts[:, 0] - self.origin[0], pts[:, 1] - self.origin[1]
        distance = np.hypot(dx, dy)
        bearing = np.mod(np.arctan2(dy, dx) - self.first_angle, 2.0 * math.pi)
        index = bearing / self.increment
        low = np.floor(index).astype(np.int64)
        high = low + 1
        if self.wraps:
            low, high = low % count, high % count
            inside = np.ones(pts.shape[0], dtype=bool)
        else:
            inside = high <= count - 1
            # The last beam itself, hit within rounding.
            on_last = np.abs(index - (count - 1)) < 1e-9
            inside |= on_last
            high = np.where(on_last, count - 1, high)
            low = np.where(on_last, count - 1, low)
            low, high = np.clip(low, 0, count - 1), np.clip(high, 0, count - 1)
        reach = np.fmin(self.reach[low], self.reach[high])  # NaN only where both are NaN
        seen = ~np.isnan(self.reach[low]) & ~np.isnan(self.reach[high])
        return inside & seen & (distance < reach - tolerance)


@dataclass(frozen=True)
class ScanPoints:
    """Obstacle points of one scan in the base frame, and how many beams were valid."""

    points: np.ndarray  # shape (N, 2), metres, base frame
    valid_beams: int  # beams that returned a usable reading (including +inf "free")
    total_beams: int
    finite_returns: int = -1  # beams with an obstacle (finite or -inf); -1: as many as points
    near_field: np.ndarray | None = None  # (M, 2) along -inf beams, inside range_min
    frontier: np.ndarray | None = None  # (K, 2) edges of unobserved space near the robot
    visibility: Visibility | None = None  # None: no coverage information (all seen)

    @property
    def blind(self) -> bool:
        """True when no beam gave a usable reading: the sensor sees nothing at all."""
        return self.valid_beams == 0

    @property
    def sees_anything(self) -> bool:
        """True when at least one beam returned an obstacle (finite or too close)."""
        count = self.finite_returns if self.finite_returns >= 0 else self.points.shape[0]
        return count > 0


def beam_angles(angle_min: float, angle_increment: float, count: int) -> np.ndarray:
    """Angles (rad, sensor frame) of `count` beams."""
    return angle_min + angle_increment * np.arange(count, dtype=np.float64)


def _along(origin: np.ndarray, angles: np.ndarray, start: float, ends: np.ndarray) -> np.ndarray:
    """Points every FRONTIER_SPACING along rays from `origin`, from `start` to each end."""
    rows = []
    for angle, end in zip(angles, ends, strict=True):
        if end <= start:
            continue
        steps = np.arange(start, end + 1e-9, FRONTIER_SPACING)
        rows.append(origin + np.column_stack((steps * math.cos(angle), steps * math.sin(angle))))
    return np.concatenate(rows) if rows else np.zeros((0, 2))


def _reach(
    r: np.ndarray, range_min: float, range_max: float, increment: float, wraps: bool
) -> np.ndarray:
    """Free distance swept by each beam; NaN where the beam observed nothing."""
    reach = np.full(r.size, np.nan)
    finite = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    reach[finite] = r[finite]
    reach[np.isposinf(r)] = range_max
    reach[np.isneginf(r)] = 0.0
    missing = np.isnan(reach)
    if not missing.any() or missing.all():
        return reach
    # Short runs of missing beams (dropout) take the shorter reach of their neighbours.
    longest = max(0, int(MAX_INTERPOLATED_GAP / increment)) if increment > 0.0 else 0
    shift = int(np.argmin(missing)) if wraps else 0  # start the circle on a seen beam
    rolled = np.roll(reach, -shift)
    index = np.flatnonzero(np.isnan(rolled))
    for run in np.split(index, np.flatnonzero(np.diff(index) > 1) + 1):
        before, after = run[0] - 1, run[-1] + 1
        if len(run) > longest or before < 0:
            continue
        if after >= r.size:
            if not wraps:
                continue
            after = 0
        rolled[run] = min(rolled[before], rolled[after])
    return np.roll(rolled, shift)


def scan_to_points(
    ranges: np.ndarray,
    angle_min: float,
    angle_increment: float,
    range_min: float,
    range_max: float,
    mount: LidarMount = LidarMount(),
) -> ScanPoints:
    """Obstacle points (base frame) of a scan, following REP-117 for special values."""
    r = np.asarray(ranges, dtype=np.float64).ravel()
    angles = beam_angles(angle_min, angle_increment, r.size)
    too_close = np.isneginf(r)
    free = np.isposinf(r)
    in_range = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    hit = in_range | too_close
    dist = np.where(too_close, range_min, r)[hit]
    a = angles[hit] + mount.yaw
    origin = np.array([mount.x, mount.y])
    sensor_points = np.column_stack((dist * np.cos(a), dist * np.sin(a)))
    points = sensor_points + origin
    valid = int(np.count_nonzero(hit | free))

    base_angles = angles + mount.yaw
    near_field = _along(origin, base_angles[too_close], 0.0, np.full(too_close.sum(), range_min))
    wraps = r.size > 1 and angle_increment * r.size >= 2.0 * math.pi - 1e-6
    reach = _reach(r, range_min, range_max, angle_increment, wraps)
    # Unobserved space starts one beam beyond each seen beam whose neighbour saw nothing
    # (or that ends the field of view): frontier rays lie there, as far as that beam saw.
    seen = ~np.isnan(reach)
    edge_angles, edge_reach = [], []
    if r.size and seen.any():
        for side in (-1, 1):
            neighbour = np.roll(seen, -side)
            if not wraps:
                neighbour[0 if side < 0 else -1] = False
            edge = np.flatnonzero(seen & ~neighbour)
            edge_angles.append(base_angles[edge] + side * angle_increment)
            edge_reach.append(reach[edge])
    frontier = (
        _along(
            origin,
            np.concatenate(edge_angles),
            0.0,
            np.minimum(np.concatenate(edge_reach), FRONTIER_RANGE),
        )
        if edge_angles
        else np.zeros((0, 2))
    )
    # Beams whose free reach ends short of the frontier range without a return (a small
    # range_max) leave unobserved space right behind their end.
    short = free & (range_max < FRONTIER_RANGE)
    if short.any():
        ends = origin + range_max * np.column_stack(
            (np.cos(base_angles[short]), np.sin(base_angles[short]))
        )
        frontier = np.concatenate((frontier, ends))
    visibility = Visibility(
        origin=(float(mount.x), float(mount.y)),
        first_angle=float(angle_min + mount.yaw),
        increment=float(angle_increment),
        reach=reach,
        wraps=bool(wraps),
    )
    return ScanPoints(
        points=points,
        valid_beams=valid,
        total_beams=int(r.size),
        finite_returns=int(np.count_nonzero(hit)),
        near_field=near_field,
        frontier=frontier,
        visibility=visibility,
    )
