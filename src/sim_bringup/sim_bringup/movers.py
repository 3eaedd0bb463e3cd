"""Moving obstacles' motion (no rclpy): constant speed along a closed waypoint polyline.

The `Simulator` moves its mocap cylinders with `WaypointLoop`; training scenes and the
evaluation use the same class, so a mover is where the physics has it.
"""

from __future__ import annotations

import bisect
import math

import numpy as np


class WaypointLoop:
    """Position along a closed polyline (waypoints, back to the first) at constant speed."""

    def __init__(self, waypoints: tuple[tuple[float, float], ...], speed: float) -> None:
        points = [(float(x), float(y)) for x, y in waypoints]
        self.segments = []  # (start x, start y, dx, dy, length, distance along the loop)
        travelled = 0.0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
            length = math.hypot(x1 - x0, y1 - y0)
            self.segments.append((x0, y0, x1 - x0, y1 - y0, length, travelled))
            travelled += length
        self.starts = [segment[5] for segment in self.segments]
        self.perimeter = travelled
        self.speed = speed

    def _segment(self, time: float) -> tuple[tuple[float, ...], float]:
        s = (self.speed * time) % self.perimeter
        index = max(bisect.bisect_right(self.starts, s) - 1, 0)
        return self.segments[index], s

    def position(self, time: float) -> tuple[float, float]:
        """Where the obstacle is at `time` (s); it starts at the first waypoint."""
        x0, y0 = self.segments[0][0], self.segments[0][1]
        if self.perimeter <= 0.0 or self.speed <= 0.0:
            return (x0, y0)
        (x0, y0, dx, dy, length, start), s = self._segment(time)
        fraction = (s - start) / length if length > 0.0 else 0.0
        return (x0 + fraction * dx, y0 + fraction * dy)

    def positions(self, times: np.ndarray) -> np.ndarray:
        """`position` at many times at once: (T, 2), the same arithmetic element-wise."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        x0, y0 = self.segments[0][0], self.segments[0][1]
        if self.perimeter <= 0.0 or self.speed <= 0.0:
            return np.tile((x0, y0), (len(t), 1)).astype(np.float64)
        table = np.asarray(self.segments, dtype=np.float64)
        s = np.mod(self.speed * t, self.perimeter)
        index = np.maximum(np.searchsorted(self.starts, s, side="right") - 1, 0)
        start_x, start_y, dx, dy, length, start = table[index].T
        safe = np.where(length > 0.0, length, 1.0)
        fraction = np.where(length > 0.0, (s - start) / safe, 0.0)
        return np.column_stack((start_x + fraction * dx, start_y + fraction * dy))

    def velocity(self, time: float) -> tuple[float, float]:
        """The obstacle's velocity (m/s) at `time`: along its current segment."""
        if self.perimeter <= 0.0 or self.speed <= 0.0:
            return (0.0, 0.0)
        (_, _, dx, dy, length, _), _ = self._segment(time)
        if length <= 0.0:
            return (0.0, 0.0)
        return (self.speed * dx / length, self.speed * dy / length)
