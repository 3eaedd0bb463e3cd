"""Benchmark: DWA compute time per control cycle for 360- and 1081-beam scans.

Scans are ray-cast analytically in a cluttered room (walls, boxes, round posts) from a
set of robot poses, so the point count and layout look like a real indoor scan. Timed per
cycle: scan -> points (`scan_to_points`) plus `DwaPlanner.compute` (the local planner,
single thread) in the room and in a 1 m wide corridor (the densest case: both walls within
reach), and separately the guided controller (`FallbackController.compute`,
which adds the obstacle-memory update and, once per replan period, the cost-to-goal field).
Also timed: the mover tracker's update per scan (`MoverTracker.update`) with the robot
driving through the room while a cylinder walks across it.
"""

from __future__ import annotations

import math
import time

import numpy as np

from hybrid_fallback.dwa import DwaPlanner
from hybrid_fallback.fallback import FallbackController
from hybrid_fallback.mover_tracker import MoverTracker
from rlguard_tools.benchlib import bench_arguments, summarize, write_results
from safety_controller.scan_geometry import scan_to_points

CYCLES = 400
RANGE_MAX = 12.0


def circle_segments(cx: float, cy: float, radius: float, sides: int = 16) -> list[tuple]:
    """A round post's outline as segments."""
    angles = np.linspace(0.0, 2 * math.pi, sides + 1)
    pts = np.column_stack((cx + radius * np.cos(angles), cy + radius * np.sin(angles)))
    return [(*a, *b) for a, b in zip(pts[:-1], pts[1:], strict=True)]


def segments_of_world() -> np.ndarray:
    """Obstacle outlines as segments (x0, y0, x1, y1): a 6 x 4 m room with clutter."""
    segments = []

    def box(cx: float, cy: float, sx: float, sy: float) -> None:
        corners = [
            (cx - sx / 2, cy - sy / 2),
            (cx + sx / 2, cy - sy / 2),
            (cx + sx / 2, cy + sy / 2),
            (cx - sx / 2, cy + sy / 2),
        ]
        for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
            segments.append((*a, *b))

    box(0.0, 0.0, 6.0, 4.0)
    box(-1.0, 0.9, 1.5, 0.4)
    box(1.2, -0.8, 0.6, 0.6)
    box(2.0, 1.2, 0.3, 1.2)
    for cx, cy in ((-1.8, -1.0), (0.3, 0.2), (-0.2, -1.3)):
        segments.extend(circle_segments(cx, cy, 0.12))
    return np.array(segments)


def ray_cast(pose: tuple[float, float, float], beams: int, segments: np.ndarray) -> np.ndarray:
    """Ranges of a 360 degree scan from `pose` (first beam at -pi) against the segments."""
    x, y, yaw = pose
    angles = yaw - math.pi + 2 * math.pi * np.arange(beams) / beams
    d = np.column_stack((np.cos(angles), np.sin(angles)))[:, None, :]
    p0 = segments[None, :, :2] - (x, y)
    e = segments[None, :, 2:] - segments[None, :, :2]
    denominator = d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (p0[..., 0] * e[..., 1] - p0[..., 1] * e[..., 0]) / denominator
        u = (p0[..., 0] * d[..., 1] - p0[..., 1] * d[..., 0]) / denominator
    hit = (t > 0) & (u >= 0) & (u <= 1)
    ranges = np.where(hit, t, np.inf).min(axis=1)
    return np.where(ranges <= RANGE_MAX, ranges, np.inf)


def corridor_cycle_times(beams: int, rng: np.random.Generator) -> list[float]:
    """DWA cycle times driving down a 1 m wide corridor (walls on both sides in reach)."""
    walls = np.array([(-20.0, -0.5, 20.0, -0.5), (-20.0, 0.5, 20.0, 0.5)])
    planner = DwaPlanner()
    times = []
    for _ in range(CYCLES):
        pose = (0.0, float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.4, 0.4)))
        noisy = ray_cast(pose, beams, walls) + rng.normal(0.0, 0.01, beams)
        velocity = (float(rng.uniform(0.0, 0.26)), float(rng.uniform(-1.0, 1.0)))
        started = time.perf_counter()
        points = scan_to_points(noisy, -math.pi, 2 * math.pi / beams, 0.12, RANGE_MAX).points
        planner.compute(points, (5.0, -pose[1]), velocity)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def tracker_update_times(beams: int, rng: np.random.Generator) -> list[float]:
    """Mover tracker update per scan (10 Hz): the robot drives along the room at 0.2 m/s
    while a 0.2 m cylinder walks across it at 0.35 m/s."""
    room = segments_of_world()
    tracker = MoverTracker()
    times = []
    for cycle in range(CYCLES):
        now = 0.1 * cycle
        x = -2.4 + (0.02 * cycle) % 4.8
        pose = (x, -0.4, 0.0)
        walker = circle_segments(0.5, 1.8 - (0.035 * cycle) % 3.6, 0.2)
        ranges = ray_cast(pose, beams, np.vstack((room, walker))) + rng.normal(0.0, 0.01, beams)
        points = scan_to_points(ranges, -math.pi, 2 * math.pi / beams, 0.12, RANGE_MAX).points
        started = time.perf_counter()
        tracker.update(points + pose[:2], pose[:2], now)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def main() -> None:
    """Time the DWA per cycle and write the results."""
    args = bench_arguments(__doc__.splitlines()[0])
    rng = np.random.default_rng(0)
    segments = segments_of_world()
    poses = [
        (-2.3, -1.5, 0.3),
        (-0.5, 0.3, 1.2),
        (0.9, 0.1, -0.7),
        (2.5, -1.4, 2.8),
        (-2.4, 1.5, -0.4),
        (-1.0, 0.45, 0.1),  # 0.25 m under a shelf
        (2.7, 1.7, 0.8),  # in a corner
        (1.7, 1.0, 1.5),  # 0.2 m beside a post
    ]
    goal = (2.5, 1.6)
    figures: dict[str, dict[str, object]] = {}
    for beams in (360, 1081):
        scans = [ray_cast(p, beams, segments) for p in poses]
        planner = DwaPlanner()
        controller = FallbackController()
        dwa_times, guided_times, points_used = [], [], []
        for cycle in range(CYCLES):
            index = cycle % len(poses)
            x, y, yaw = poses[index]
            noisy = scans[index] + rng.normal(0.0, 0.01, beams)
            velocity = (float(rng.uniform(0.0, 0.26)), float(rng.uniform(-1.0, 1.0)))
            dx, dy = goal[0] - x, goal[1] - y
            goal_base = (
                math.cos(yaw) * dx + math.sin(yaw) * dy,
                -math.sin(yaw) * dx + math.cos(yaw) * dy,
            )
            started = time.perf_counter()
            points = scan_to_points(noisy, -math.pi, 2 * math.pi / beams, 0.12, RANGE_MAX).points
            result = planner.compute(points, goal_base, velocity)
            dwa_times.append((time.perf_counter() - started) * 1e3)
            points_used.append(result.points_used)
            started = time.perf_counter()
            controller.compute(points, poses[index], goal, velocity, cycle * 0.05)
            guided_times.append((time.perf_counter() - started) * 1e3)
        figures[f"dwa_cycle_{beams}_beams"] = summarize(dwa_times, "ms")
        figures[f"dwa_cycle_{beams}_beams_1m_corridor"] = summarize(
            corridor_cycle_times(beams, rng), "ms"
        )
        figures[f"guided_cycle_{beams}_beams"] = summarize(guided_times, "ms")
        figures[f"points_used_{beams}_beams"] = summarize(points_used, "points")
        figures[f"tracker_update_{beams}_beams"] = summarize(tracker_update_times(beams, rng), "ms")
    write_results("dwa", figures, args.out)


if __name__ == "__main__":
    main()
