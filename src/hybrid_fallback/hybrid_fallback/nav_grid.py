"""Obstacle memory and a cost-to-goal field that keep the DWA out of local minima (no rclpy).

A pure DWA that scores heading to the goal stops in front of a wall tip or under a shelf
when the goal lies behind it. Like the "global dynamic window approach" (Brock & Khatib,
1999), the fallback therefore scores rollouts by a navigation function: the shortest-path
distance to the goal over a grid of remembered obstacles, with cells inside the robot's
footprint + margin of an obstacle made very expensive (not forbidden, so every cell keeps a
finite value and the robot can always leave a tight spot). Unknown space counts as free
for the path cost only (so a path may lead through space not yet seen); it is never a
licence to move: the DWA refuses motion into space the current scan did not observe.

The grid lives in the odom frame. Each scan marks its hit cells and clears the cells along
its beams before the hit, so obstacles that moved away are forgotten: an occupied cell is
cleared only by a beam passing within `clear_radius` of the obstacle point remembered there
(the beam went through where the obstacle was) while no point of the same scan lies within a
cell of it, not by one grazing the cell's free part past an obstacle's edge, which would
open phantom gaps that close again from the next viewpoint.
Only beams with a return clear anything: a beam without one (NaN, +inf) and directions
outside the field of view leave the grid as it was. So in open space, with nothing within
range behind it, a walking obstacle's path would stay on the grid as a wall: `forget`
clears where a tracked mover has been (see `FallbackController`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_NEIGHBOURS = (
    (-1, -1, math.sqrt(2.0)),
    (-1, 0, 1.0),
    (-1, 1, math.sqrt(2.0)),
    (0, -1, 1.0),
    (0, 1, 1.0),
    (1, -1, math.sqrt(2.0)),
    (1, 0, 1.0),
    (1, 1, math.sqrt(2.0)),
)


def _lines(shape: tuple[int, int], family: str) -> np.ndarray:
    """Flat indices of the grid lines of one direction family, padded with -1: (lines, len)."""
    height, width = shape
    flat = np.arange(height * width).reshape(height, width)
    if family == "rows":
        return flat
    if family == "cols":
        return flat.T.copy()
    grid = flat if family == "diag" else flat[:, ::-1]
    diagonals = [np.diagonal(grid, offset) for offset in range(-(height - 1), width)]
    out = np.full((len(diagonals), min(height, width)), -1, dtype=np.int64)
    for row, diagonal in enumerate(diagonals):
        out[row, : diagonal.size] = diagonal
    return out


def cost_field(
    step_cost: np.ndarray, goal_cell: tuple[int, int], max_sweeps: int = 200
) -> np.ndarray:
    """Shortest 8-connected path cost from every cell to `goal_cell`.

    `step_cost[i, j]` is the cost of crossing cell (i, j) per cell length; an edge between
    neighbours costs its length (1 or sqrt 2 cells) times the mean of their two costs. Solved
    by line sweeps: along one line, the relaxation D[m] = min_k D[k] + S[m] - S[k] (S the
    running edge cost) is a cumulative minimum, so each sweep is a few vectorized numpy
    operations; sweeping rows, columns and both diagonals both ways until nothing changes
    gives the same result as Dijkstra's algorithm on the 8-connected grid.
    """
    costs = np.asarray(step_cost, dtype=np.float64)
    shape = costs.shape
    flat_cost = np.append(costs.ravel(), 0.0)  # index -1 (padding) costs nothing
    dist = np.full(costs.size + 1, np.inf)  # padding stays unreachable
    dist[goal_cell[0] * shape[1] + goal_cell[1]] = 0.0
    sweeps = []
    for family, length in (("rows", 1.0), ("cols", 1.0), ("diag", 2**0.5), ("anti", 2**0.5)):
        lines = _lines(shape, family)
        if lines.shape[1] < 2:
            continue
        c = flat_cost[lines]
        edge = 0.5 * length * (c[:, 1:] + c[:, :-1])
        running = np.concatenate((np.zeros((lines.shape[0], 1)), np.cumsum(edge, axis=1)), axis=1)
        sweeps.append((lines, running))
    for _ in range(max_sweeps):
        changed = False
        for lines, running in sweeps:
            d = dist[lines]
            forward = running + np.minimum.accumulate(d - running, axis=1)
            backward = -running + np.minimum.accumulate((d + running)[:, ::-1], axis=1)[:, ::-1]
            best = np.minimum(d, np.minimum(forward, backward))
            improved = (best < d - 1e-12) & (lines >= 0)
            if improved.any():
                changed = True
                dist[lines[improved]] = best[improved]
        if not changed:
            break
    return dist[:-1].reshape(shape)


@dataclass(frozen=True)
class NavGridConfig:
    """Resolution, extent and costs of the navigation grid."""

    resolution: float = 0.1  # m per cell
    size: float = 40.0  # m, side of the square map centred on the first pose
    inflation_radius: float = 0.19  # m, lethal below this (DWA collision radius + 0.05)
    lethal_cost: float = 100.0  # cost multiplier of a lethal cell (finite: escape possible)
    proximity_radius: float = 0.45  # m, cells closer than this cost extra (paths stay central)
    proximity_cost: float = 3.0  # cost multiplier at the lethal border, falling to 1
    search_margin: float = 2.5  # m around robot and goal that the search covers
    clear_step: float = 0.05  # m between free-space samples along a beam
    clear_range: float = 4.0  # m, beams clear free space up to this distance
    clear_beams: int = 360  # at most this many beams (evenly picked) clear free space
    # A replan keeps the current route (the descent of the previous field) while it costs at
    # most this fraction more than the new best route and keeps `inflation_radius` minus
    # `route_tolerance` (m) from every obstacle: a passage whose measured width wavers by a
    # few cm around the lethal line, as the scan sees its edges from another angle, does
    # not swap the route at every replan.
    route_hysteresis: float = 0.1
    route_tolerance: float = 0.02
    # m: a beam sample this close to an occupied cell's remembered point clears the cell
    # (>= resolution * sqrt(2): any beam through the cell clears it).
    clear_radius: float = 0.04

    def validate(self) -> None:
        """Raise ValueError naming the first invalid value."""
        if self.clear_beams < 1:
            raise ValueError("clear_beams must be >= 1")
        names = (
            "resolution",
            "size",
            "lethal_cost",
            "search_margin",
            "clear_step",
            "clear_range",
            "clear_radius",
        )
        for name in names:
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0.0:
                raise ValueError(f"{name} must be finite and > 0")
        if self.inflation_radius < 0.0 or self.proximity_radius < self.inflation_radius:
            raise ValueError("need 0 <= inflation_radius <= proximity_radius")
        if self.proximity_cost < 1.0 or self.lethal_cost < self.proximity_cost:
            raise ValueError("need 1 <= proximity_cost <= lethal_cost")
        for name in ("route_hysteresis", "route_tolerance"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"{name} must be finite and >= 0")


class NavigationGrid:
    """Remembered obstacles (odom frame) and the cost-to-goal field computed from them."""

    def __init__(self, config: NavGridConfig | None = None) -> None:
        self.config = config or NavGridConfig()
        self.config.validate()
        self.cells = int(math.ceil(self.config.size / self.config.resolution))
        self.occupied = np.zeros((self.cells, self.cells), dtype=bool)
        # The last obstacle point seen in each occupied cell: clearances are measured to it,
        # not to the cell centre, so a passage keeps its true width on a coarse grid.
        self.hit_x = np.zeros((self.cells, self.cells), dtype=np.float64)
        self.hit_y = np.zeros((self.cells, self.cells), dtype=np.float64)
        self.origin: np.ndarray | None = None  # odom position of cell (0, 0)'s corner
        self.field: np.ndarray | None = None  # cost-to-goal in metres, NaN outside the search
        self.field_goal: tuple[float, float] | None = None
        self._offsets = self._disk_offsets(self.config.proximity_radius)

    def _disk_offsets(self, radius: float) -> list[tuple[int, int]]:
        """Cell offsets whose cells can hold a point within `radius` of a cell centre."""
        res = self.config.resolution
        reach = int(math.ceil(radius / res + 0.5))
        return [
            (di, dj)
            for di in range(-reach, reach + 1)
            for dj in range(-reach, reach + 1)
            if max(0.0, math.hypot(di, dj) - math.sqrt(0.5)) * res <= radius
        ]

    def reset(self) -> None:
        """Forget every obstacle and the field."""
        self.occupied[:] = False
        self.origin = None
        self.field = None
        self.field_goal = None

    def to_cell(self, xy: np.ndarray, origin: np.ndarray | None = None) -> np.ndarray:
        """Integer cell indices (i along x, j along y) of odom points, shape (N, 2)
        (from `origin` when given, else the grid's)."""
        origin = self.origin if origin is None else origin
        assert origin is not None
        scaled = (np.asarray(xy, dtype=np.float64) - origin) / self.config.resolution
        return np.floor(scaled).astype(np.int64)

    def _inside(self, cells: np.ndarray) -> np.ndarray:
        return np.all((cells >= 0) & (cells < self.cells), axis=1)

    def update(self, points_odom: np.ndarray, sensor_xy: tuple[float, float]) -> None:
        """Clear the cells along each beam from the sensor, then mark the hit cells."""
        cfg = self.config
        if self.origin is None:
            self.origin = np.asarray(sensor_xy, dtype=np.float64) - cfg.size / 2.0
        pts = np.asarray(points_odom, dtype=np.float64).reshape(-1, 2)
        if pts.shape[0] == 0:
            return
        sensor = np.asarray(sensor_xy, dtype=np.float64)
        stride = max(1, math.ceil(pts.shape[0] / cfg.clear_beams))
        rel = pts[::stride] - sensor
        lengths = np.hypot(rel[:, 0], rel[:, 1])
        steps = np.arange(0.0, min(float(lengths.max()), cfg.clear_range), cfg.clear_step)
        if steps.size:
            # Free samples stop a cell short of the hit so the hit cell itself stays marked.
            keep = steps[None, :] < (lengths[:, None] - cfg.resolution)
            unit = rel / np.maximum(lengths, 1e-9)[:, None]
            samples = (sensor + unit[:, None, :] * steps[None, :, None])[keep]
            free = self.to_cell(samples)
            inside = self._inside(free)
            free, samples = free[inside], samples[inside]
            i, j = free[:, 0], free[:, 1]
            near_hit = np.hypot(samples[:, 0] - self.hit_x[i, j], samples[:, 1] - self.hit_y[i, j])
            passed = self.occupied[i, j] & (near_hit <= cfg.clear_radius)
            if passed.any():
                # A point this scan still sees an obstacle beside is kept: a beam grazing an
                # edge passes close to the edge points remembered from other viewpoints.
                remembered = np.column_stack((self.hit_x[i, j], self.hit_y[i, j]))[passed]
                seen = np.hypot(*(remembered[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
                passed[np.flatnonzero(passed)] = seen.min(axis=1) > cfg.resolution
            free = free[~self.occupied[i, j] | passed]
            self.occupied[free[:, 0], free[:, 1]] = False
        hits = self.to_cell(pts)
        inside = self._inside(hits)
        hits = hits[inside]
        self.occupied[hits[:, 0], hits[:, 1]] = True
        self.hit_x[hits[:, 0], hits[:, 1]] = pts[inside, 0]
        self.hit_y[hits[:, 0], hits[:, 1]] = pts[inside, 1]

    def forget(self, discs: np.ndarray) -> None:
        """Clear the occupied cells whose remembered point lies within a disc's radius
        plus `clear_radius` of its centre: rows (x, y, radius), odom frame, where a
        moving obstacle was (`MoverTracker.moving_discs`)."""
        cfg = self.config
        rows = np.asarray(discs, dtype=np.float64).reshape(-1, 3)
        if self.origin is None or rows.shape[0] == 0:
            return
        for x, y, radius in rows:
            reach = radius + cfg.clear_radius
            low = self.to_cell(np.array([[x - reach, y - reach]]))[0]
            high = self.to_cell(np.array([[x + reach, y + reach]]))[0] + 1
            i0, j0 = np.maximum(low, 0)
            i1, j1 = np.minimum(high, self.cells)
            if i0 >= i1 or j0 >= j1:
                continue
            window = (slice(i0, i1), slice(j0, j1))
            near = np.hypot(self.hit_x[window] - x, self.hit_y[window] - y) <= reach
            self.occupied[window] &= ~near

    def _cost_multiplier(self, gap: np.ndarray) -> np.ndarray:
        """Per-cell traversal cost factor from the cells' clearances `gap` (m)."""
        cfg = self.config
        span = max(cfg.proximity_radius - cfg.inflation_radius, 1e-9)
        near = np.clip((cfg.proximity_radius - gap) / span, 0.0, 1.0)
        factor = 1.0 + (cfg.proximity_cost - 1.0) * near
        return np.where(gap < cfg.inflation_radius, cfg.lethal_cost, factor)

    def _clearance(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Distance (m, inf beyond `proximity_radius`) from each cell centre of the window
        [i0, i1) x [j0, j1) to the nearest remembered obstacle point."""
        cfg = self.config
        assert self.origin is not None
        pad = int(math.ceil(cfg.proximity_radius / cfg.resolution + 0.5)) + 1
        height, width = i1 - i0, j1 - j0
        occ = np.zeros((height + 2 * pad, width + 2 * pad), dtype=bool)
        hx = np.zeros_like(occ, dtype=np.float64)
        hy = np.zeros_like(occ, dtype=np.float64)
        a0, a1 = max(i0 - pad, 0), min(i1 + pad, self.cells)
        b0, b1 = max(j0 - pad, 0), min(j1 + pad, self.cells)
        window = (slice(a0 - (i0 - pad), a1 - (i0 - pad)), slice(b0 - (j0 - pad), b1 - (j0 - pad)))
        occ[window] = self.occupied[a0:a1, b0:b1]
        hx[window] = self.hit_x[a0:a1, b0:b1]
        hy[window] = self.hit_y[a0:a1, b0:b1]
        centre_x = self.origin[0] + (np.arange(i0, i1) + 0.5)[:, None] * cfg.resolution
        centre_y = self.origin[1] + (np.arange(j0, j1) + 0.5)[None, :] * cfg.resolution
        gap = np.full((height, width), np.inf)
        for di, dj in self._offsets:
            rows = slice(pad + di, pad + di + height)
            cols = slice(pad + dj, pad + dj + width)
            distance = np.hypot(hx[rows, cols] - centre_x, hy[rows, cols] - centre_y)
            gap = np.where(occ[rows, cols] & (distance < gap), distance, gap)
        return gap

    def compute_field(
        self,
        goal_xy: tuple[float, float],
        robot_xy: tuple[float, float],
        keep_route: bool = True,
    ) -> bool:
        """Dijkstra from the goal over the window around robot and goal.

        For the same goal, the previous field stays (and with it the route the robot
        follows) while its route from the robot is still clear and at most
        `route_hysteresis` dearer than the new best one: two routes of nearly equal cost
        would otherwise swap at every replan as the scan refines the obstacles, and the
        robot would turn back and forth between them. `keep_route` False adopts the new
        field regardless. Returns True when the new field was adopted.
        """
        cfg = self.config
        if self.origin is None:
            self.origin = np.asarray(robot_xy, dtype=np.float64) - cfg.size / 2.0
        goal = (float(goal_xy[0]), float(goal_xy[1]))
        previous = self.field if keep_route and self.field_goal == goal else None
        ends = self.to_cell(np.array([goal_xy, robot_xy]))
        margin = int(math.ceil(cfg.search_margin / cfg.resolution))
        i0 = int(max(ends[:, 0].min() - margin, 0))
        i1 = int(min(ends[:, 0].max() + margin + 1, self.cells))
        j0 = int(max(ends[:, 1].min() - margin, 0))
        j1 = int(min(ends[:, 1].max() + margin + 1, self.cells))
        # The new field is filled before it replaces the old one: a reader on another
        # thread (the policy node's control tick) only ever sees a complete field.
        field = np.full((self.cells, self.cells), np.nan)
        if i0 >= i1 or j0 >= j1:
            self.field, self.field_goal = field, goal
            return True
        gap = self._clearance(i0, i1, j0, j1)
        factor = self._cost_multiplier(gap)
        gi, gj = int(ends[0, 0]) - i0, int(ends[0, 1]) - j0
        if not (0 <= gi < i1 - i0 and 0 <= gj < j1 - j0):
            self.field, self.field_goal = field, goal
            return True
        field[i0:i1, j0:j1] = cost_field(factor * cfg.resolution, (gi, gj))
        if previous is not None and cfg.route_hysteresis > 0.0:
            # Both routes are costed alike: the descent from the robot's cell under today's
            # clearances (a descent is a little dearer than the field's value at its start).
            robot_cell = (int(ends[1, 0]), int(ends[1, 1]))
            best = self._route_cost(field, robot_cell, gap, (i0, j0))
            kept = self._route_cost(previous, robot_cell, gap, (i0, j0))
            if kept is not None and (best is None or kept <= best * (1.0 + cfg.route_hysteresis)):
                self.field, self.field_goal = previous, goal
                return False
        self.field, self.field_goal = field, goal
        return True

    def _route_cost(
        self,
        field: np.ndarray,
        start: tuple[int, int],
        gap: np.ndarray,
        corner: tuple[int, int],
    ) -> float | None:
        """Cost (m) of `field`'s descent from cell `start` to its goal under today's cell
        clearances `gap` (window from `corner`), cells within `route_tolerance` of the
        lethal line costed as just outside it; None when that route leaves the window,
        ends short of the goal or comes closer to an obstacle than that."""
        cfg = self.config
        cells = self._descent(field, start, math.inf)
        if cells is None or not cells[1]:
            return None
        index = np.asarray(cells[0], dtype=np.int64) - np.asarray(corner, dtype=np.int64)
        height, width = gap.shape
        if np.any(index < 0) or np.any(index[:, 0] >= height) or np.any(index[:, 1] >= width):
            return None
        clearance = gap[index[:, 0], index[:, 1]]
        # The robot's own cells are not judged: squeezing through a passage must not make
        # it give up the route it is on.
        ahead = np.hypot(*(index - index[0]).T) * cfg.resolution > cfg.inflation_radius
        if np.any(clearance[ahead] < cfg.inflation_radius - cfg.route_tolerance):
            return None
        costs = self._cost_multiplier(np.maximum(clearance, cfg.inflation_radius))
        res = cfg.resolution
        steps = np.hypot(*np.diff(index, axis=0).T)
        return float(np.sum(steps * 0.5 * (costs[1:] + costs[:-1])) * res)

    def cost_at(self, xy: np.ndarray) -> np.ndarray:
        """Cost-to-goal (m) at odom points, bilinear; NaN where the field is undefined."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if self.field is None or self.origin is None:
            return np.full(pts.shape[0], np.nan)
        res = self.config.resolution
        u = (pts - self.origin) / res - 0.5  # cell-centre coordinates
        base = np.floor(u).astype(np.int64)
        frac = u - base
        i = np.clip(base[:, 0], 0, self.cells - 2)
        j = np.clip(base[:, 1], 0, self.cells - 2)
        fx = np.clip(frac[:, 0], 0.0, 1.0)
        fy = np.clip(frac[:, 1], 0.0, 1.0)
        f = self.field
        return (
            f[i, j] * (1 - fx) * (1 - fy)
            + f[i + 1, j] * fx * (1 - fy)
            + f[i, j + 1] * (1 - fx) * fy
            + f[i + 1, j + 1] * fx * fy
        )

    def plan(self) -> tuple[np.ndarray, tuple[float, float]] | None:
        """The field and the goal it leads to, read together (None before a field)."""
        field, goal = self.field, self.field_goal
        if field is None or goal is None:
            return None
        return field, goal

    def carrot(
        self,
        robot_xy: tuple[float, float],
        lookahead: float,
        plan: tuple[np.ndarray, tuple[float, float]] | None = None,
    ) -> tuple[float, float] | None:
        """The point `lookahead` m down the steepest-descent path from the robot, if any
        (on `plan`, a `plan()` taken earlier, else on the current field)."""
        path = self.path(robot_xy, lookahead, plan)
        if path is None:
            return None
        return float(path[-1, 0]), float(path[-1, 1])

    def path(
        self,
        robot_xy: tuple[float, float],
        length: float,
        plan: tuple[np.ndarray, tuple[float, float]] | None = None,
    ) -> np.ndarray | None:
        """Odom points (K, 2) of the steepest-descent path from the robot's cell, `length` m long.

        The first row is the robot's cell centre; the path ends early at the goal (its last
        row is then the goal itself). None where the field is undefined at the robot. On
        `plan` (field, goal) when given, else on the current field.
        """
        plan = plan if plan is not None else self.plan()
        origin = self.origin
        if plan is None or origin is None:
            return None
        field, field_goal = plan
        cell = self.to_cell(np.array([robot_xy]), origin)[0]
        descent = self._descent(field, (int(cell[0]), int(cell[1])), length)
        if descent is None:
            return None
        cells, reached_goal = descent
        points = origin + (np.asarray(cells, dtype=np.float64) + 0.5) * self.config.resolution
        if reached_goal:
            points = np.vstack((points, np.asarray(field_goal, dtype=np.float64)))
        return points

    def _descent(
        self, field: np.ndarray, start: tuple[int, int], length: float
    ) -> tuple[list[tuple[int, int]], bool] | None:
        """Cells of the steepest descent of `field` from `start`, up to `length` m, and
        whether it ended at the field's minimum (the goal); None where `field` is undefined
        at `start`."""
        i, j = start
        if not (0 <= i < self.cells and 0 <= j < self.cells) or not np.isfinite(field[i, j]):
            return None
        res = self.config.resolution
        cells = [(i, j)]
        travelled = 0.0
        while travelled < length:
            best, best_value = None, field[i, j]
            for di, dj, step in _NEIGHBOURS:
                ni, nj = i + di, j + dj
                if 0 <= ni < self.cells and 0 <= nj < self.cells:
                    value = field[ni, nj]
                    if np.isfinite(value) and value < best_value:
                        best, best_value = (ni, nj, step), value
            if best is None:
                return cells, True
            i, j = best[0], best[1]
            cells.append((i, j))
            travelled += best[2] * res
        return cells, False
