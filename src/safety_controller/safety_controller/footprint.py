"""Robot footprint (circle or polygon) plus a safety margin, as used by the collision guard.

A footprint inflated by the margin is described by the boundary pieces a moving obstacle
point can cross first: straight segments (polygon edges pushed out by the margin) and
circles (the circle footprint itself, or the rounded corners of an inflated polygon).
No rclpy in here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np


class FootprintError(ValueError):
    """A footprint description that cannot be used (with the reason in the message)."""


def parse_polygon(text: str) -> np.ndarray:
    """Parse a Nav2-style footprint string ``"[[x, y], [x, y], ...]"`` into an (N, 2) array.

    Raises FootprintError with a reason when the text is not a list of at least three
    finite [x, y] pairs enclosing a non-zero area without crossing itself.
    """
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise FootprintError(f"footprint {text!r} is not a list like [[x, y], ...]: {exc}") from exc
    if not isinstance(raw, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
        for p in raw
    ):
        raise FootprintError(f"footprint {text!r} must be a list of [x, y] number pairs")
    polygon = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    validate_polygon(polygon)
    return polygon


def validate_polygon(polygon: np.ndarray) -> None:
    """Raise FootprintError unless `polygon` is a simple polygon of >= 3 finite vertices."""
    if polygon.ndim != 2 or polygon.shape[1] != 2 or polygon.shape[0] < 3:
        raise FootprintError("footprint polygon needs at least 3 [x, y] vertices")
    if not np.all(np.isfinite(polygon)):
        raise FootprintError("footprint polygon has a non-finite coordinate")
    if abs(polygon_area(polygon)) < 1e-6:
        raise FootprintError("footprint polygon encloses no area")
    count = polygon.shape[0]
    for i in range(count):
        a, b = polygon[i], polygon[(i + 1) % count]
        for j in range(i + 2, count):
            if i == 0 and j == count - 1:
                continue  # adjacent through the closing edge
            c, d = polygon[j], polygon[(j + 1) % count]
            if _segments_cross(a, b, c, d):
                raise FootprintError(f"footprint polygon edges {i} and {j} cross each other")


def polygon_area(polygon: np.ndarray) -> float:
    """Signed area (positive when the vertices run counter-clockwise)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> float:
        return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    return (o1 * o2 < 0) and (o3 * o4 < 0)


@dataclass(frozen=True)
class Footprint:
    """The robot outline in the base frame plus `margin`: a circle or a simple polygon."""

    radius: float = 0.0  # used when polygon is None
    polygon: np.ndarray | None = None
    margin: float = 0.0
    segments: np.ndarray = field(init=False, repr=False)  # (S, 2, 2) boundary segments
    circles: np.ndarray = field(init=False, repr=False)  # (C, 3) centre x, y and radius
    bounding_radius: float = field(init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin >= 0.0):
            raise FootprintError(f"safety margin must be finite and >= 0, got {self.margin}")
        if self.polygon is None:
            if not (math.isfinite(self.radius) and self.radius > 0.0):
                raise FootprintError(f"robot radius must be finite and > 0, got {self.radius}")
            segments = np.zeros((0, 2, 2))
            circles = np.array([[0.0, 0.0, self.radius + self.margin]])
            bound = self.radius + self.margin
        else:
            polygon = np.asarray(self.polygon, dtype=np.float64)
            validate_polygon(polygon)
            if polygon_area(polygon) < 0:
                polygon = polygon[::-1].copy()
            object.__setattr__(self, "polygon", polygon)
            starts, ends = polygon, np.roll(polygon, -1, axis=0)
            if self.margin > 0.0:
                edge = ends - starts
                normal = np.column_stack((edge[:, 1], -edge[:, 0]))
                normal /= np.linalg.norm(normal, axis=1, keepdims=True)
                offset = normal * self.margin
                # Both sides of each edge: together with the corner circles they bound the
                # union of edge capsules, whose boundary contains the inflated outline.
                segments = np.concatenate(
                    (
                        np.stack((starts + offset, ends + offset), axis=1),
                        np.stack((starts - offset, ends - offset), axis=1),
                    )
                )
                circles = np.column_stack((polygon, np.full(len(polygon), self.margin)))
            else:
                segments = np.stack((starts, ends), axis=1)
                circles = np.zeros((0, 3))
            bound = float(np.max(np.linalg.norm(polygon, axis=1))) + self.margin
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "circles", circles)
        object.__setattr__(self, "bounding_radius", bound)

    @classmethod
    def from_parameters(cls, footprint: str, robot_radius: float, margin: float) -> Footprint:
        """Nav2 convention: a non-empty `footprint` polygon string wins over `robot_radius`."""
        if footprint.strip() and footprint.strip() != "[]":
            return cls(polygon=parse_polygon(footprint), margin=margin)
        return cls(radius=robot_radius, margin=margin)

    def with_margin(self, margin: float) -> Footprint:
        """The same outline with another margin."""
        return Footprint(radius=self.radius, polygon=self.polygon, margin=margin)

    def min_clearance(self, points: np.ndarray) -> float:
        """Smallest clearance over `points` (inf for none), computed for candidates only."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if pts.shape[0] == 0:
            return math.inf
        norm = np.hypot(pts[:, 0], pts[:, 1])
        if self.polygon is None:
            return float(norm.min()) - self.radius - self.margin
        # Each point's clearance lies within +-(outline radius) of its distance to the
        # origin (minus the margin), so only points near the closest one can be the minimum.
        outline = self.bounding_radius - self.margin
        candidates = pts[norm <= norm.min() + 2.0 * outline]
        return float(self.clearance(candidates).min())

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance of each point to the inflated footprint (negative inside)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if self.polygon is None:
            return np.hypot(pts[:, 0], pts[:, 1]) - self.radius - self.margin
        return polygon_signed_distance(self.polygon, pts) - self.margin


def polygon_signed_distance(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of each point to the polygon outline, negative for points inside it."""
    px, py = points[:, 0], points[:, 1]
    nearest_sq = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    # One pass per edge: footprints have few edges and many scan points.
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        dx, dy = x1 - x0, y1 - y0
        rx, ry = px - x0, py - y0
        u = np.clip((rx * dx + ry * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        ex, ey = rx - u * dx, ry - u * dy
        np.minimum(nearest_sq, ex * ex + ey * ey, out=nearest_sq)
        if dy != 0.0:  # even-odd rule: does a ray from the point towards +x cross the edge?
            inside ^= ((y0 > py) != (y1 > py)) & (px < x0 + ry * dx / dy)
    distance = np.sqrt(nearest_sq)
    return np.where(inside, -distance, distance)
