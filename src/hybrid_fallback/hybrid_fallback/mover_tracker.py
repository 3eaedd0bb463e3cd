"""Moving obstacles tracked through successive scans: where, how fast, how big (no rclpy).

Each scan (odom-frame points in beam order, and where the lidar stood) is cut into
clusters wherever neighbouring points lie farther apart than `cluster_gap` (or a few
beam spacings at that range). Clusters wider than `max_size` are structure (walls, shelves)
and are not tracked. A small cluster is an object: a circle whose radius is half the
cluster's width, centred behind the cluster's mean point (a circle seen from one side shows
its near half; beams evenly spaced in bearing put their mean pi r / 4 in front of the
centre). A cluster with a nearer point right beside either end (the next beam, not the next
return after beams that saw nothing), or at either end of a scan that covers less than a
full circle, is partly hidden: its width and centre say nothing about
motion (an occlusion edge slides along whatever is behind it as the robot moves), so it
only keeps its track alive.

Detections are matched to the tracks' predicted positions (nearest first, within `gate`);
a track's velocity is the least-squares slope of its centres over the last `history`
seconds. A track counts as moving after `min_detections` detections spread over at
least `min_span` seconds, when its speed is at least `min_speed` and its centres lie
within `max_residual` of the fitted line: a static post seen from a passing robot, range
noise and dropouts do not make a mover. `moving_obstacles(now)` gives the moving tracks as
rows (x, y, vx, vy, radius), odom frame, predicted to `now` at constant velocity.

`moving_discs` says where the moving tracks have been over the last `history` seconds: an
obstacle map fed from the same scans forgets what it remembered there before it marks the
new scan, so a walker stays on the map where it is but does not draw a wall along its path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

# Range-proportional part of the cluster gap: about three beam spacings of a 1-degree lidar.
GAP_PER_METRE = 0.05
# Points this many (typical) beam spacings apart in bearing or less are neighbours.
ADJACENT_SPACINGS = 2.5


@dataclass(frozen=True)
class TrackerConfig:
    """Clustering, matching and motion thresholds of the mover tracker."""

    enabled: bool = True
    cluster_gap: float = 0.15  # m: neighbours farther apart (and > GAP_PER_METRE * range) split
    max_size: float = 0.8  # m: wider clusters are structure, not tracked
    min_points: int = 3  # a cluster needs this many points to be an object
    gate: float = 0.35  # m: largest distance between a track's prediction and its detection
    history: float = 0.8  # s of detections the velocity is fitted over
    min_detections: int = 5  # detections a track needs before it can count as moving
    min_span: float = 0.4  # s the detections must spread over
    # A detection whose radius differs from its track's by more than this fraction (and
    # 3 cm) is a fragment or a merge: it keeps the track alive but is not fitted.
    radius_change: float = 0.5
    min_speed: float = 0.12  # m/s: slower tracks are static (noise, a post seen while passing)
    max_speed: float = 1.5  # m/s: faster fits are mismatches, not movers
    max_residual: float = 0.05  # m: RMS distance of the centres from the fitted line
    max_age: float = 0.5  # s without a detection before a track is dropped
    radius_margin: float = 0.03  # m added to a mover's estimated radius

    def validate(self) -> None:
        """Raise ValueError naming the first invalid value."""
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"{item.name} must be finite and >= 0")
        for name in ("cluster_gap", "max_size", "gate", "history", "max_speed", "max_age"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be > 0")
        if self.min_points < 2 or self.min_detections < 2:
            raise ValueError("min_points and min_detections must be >= 2")
        if self.min_speed >= self.max_speed:
            raise ValueError("min_speed must be < max_speed")


@dataclass(frozen=True)
class Detection:
    """One small cluster of a scan (odom frame): its mean point, the unit vector from the
    lidar through it, and the radius of the circle it is taken for."""

    mean: tuple[float, float]
    away: tuple[float, float]
    radius: float
    partial: bool  # partly hidden behind something nearer: position only, not for motion

    def center(self, radius: float | None = None) -> tuple[float, float]:
        """The circle's centre: behind the mean point, for the detection's or this radius.

        Beams evenly spaced in bearing hit a far circle evenly across its width, so the
        mean point lies pi / 4 of a radius in front of the centre.
        """
        r = self.radius if radius is None else radius
        offset = 0.25 * math.pi * r
        return (self.mean[0] + offset * self.away[0], self.mean[1] + offset * self.away[1])


@dataclass
class _Track:
    times: list[float] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    radius: float = 0.0  # median radius of the recent detections
    velocity: tuple[float, float] = (0.0, 0.0)
    moving: bool = False
    last_seen: float = -math.inf
    last_center: tuple[float, float] = (0.0, 0.0)

    def predicted(self, now: float) -> tuple[float, float]:
        dt = now - self.last_seen
        return (
            self.last_center[0] + self.velocity[0] * dt,
            self.last_center[1] + self.velocity[1] * dt,
        )


def detect_objects(
    points: np.ndarray,
    origin: tuple[float, float],
    config: TrackerConfig,
    full_circle: bool = True,
) -> list[Detection]:
    """Small clusters of scan `points` (odom frame, beam order) seen from `origin`;
    `full_circle` False: the scan's beams cover less than a full turn."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    count = pts.shape[0]
    if count < config.min_points:
        return []
    ox, oy = float(origin[0]), float(origin[1])
    ranges = np.hypot(pts[:, 0] - ox, pts[:, 1] - oy)
    step = np.hypot(*np.diff(pts, axis=0, append=pts[:1]).T)  # i -> i + 1 (wrapping)
    limit = np.maximum(config.cluster_gap, GAP_PER_METRE * ranges)
    split = step > limit  # a cluster ends after point i
    if not split.any():
        return []  # one closed ring of points: a room, nothing small
    # Beams without a return are not in `points`: the next point in the array may be far
    # round. Only a point within a few beam spacings of a cluster's end can hide part of it.
    bearing = np.arctan2(pts[:, 1] - oy, pts[:, 0] - ox)
    turn = np.abs(
        np.remainder(np.diff(bearing, append=bearing[:1]) + math.pi, 2 * math.pi) - math.pi
    )
    adjacent = turn <= ADJACENT_SPACINGS * float(np.median(turn))  # i and i + 1 are neighbours
    # Rotate so the array starts right after a split: clusters never wrap around.
    first = (int(np.flatnonzero(split)[0]) + 1) % count
    order = np.roll(np.arange(count), -first)
    ends = np.flatnonzero(split[order])  # positions (in `order`) that end a cluster
    starts = np.r_[0, ends[:-1] + 1]
    detections = []
    for start, end in zip(starts, ends, strict=True):
        index = order[start : end + 1]
        if index.size < config.min_points:
            continue
        cluster = pts[index]
        width = float(np.hypot(*np.ptp(cluster, axis=0)))
        if width > config.max_size:
            continue
        before, after = order[start - 1], order[(end + 1) % count]
        near = ranges[index].min() - config.cluster_gap
        # Short of a full circle, a cluster at either end of the scan may run on past the
        # edge of the field of view.
        at_edge = not full_circle and (index[0] == 0 or index[-1] == count - 1)
        partial = bool(
            at_edge
            or (adjacent[before] and ranges[before] < near)
            or (adjacent[index[-1]] and ranges[after] < near)
        )
        # Across its width the beams span the chord from the first point to the last.
        radius = max(0.5 * float(np.hypot(*(cluster[-1] - cluster[0]))), 0.02)
        mean = cluster.mean(axis=0)
        away = mean - (ox, oy)
        norm = max(float(np.hypot(*away)), 1e-9)
        detections.append(
            Detection(
                (float(mean[0]), float(mean[1])),
                (float(away[0] / norm), float(away[1] / norm)),
                radius,
                partial,
            )
        )
    return detections


class MoverTracker:
    """Tracks small scan clusters from scan to scan and reports the ones that move."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.config.validate()
        self._tracks: list[_Track] = []
        self._last_time = -math.inf

    def reset(self) -> None:
        """Forget every track."""
        self._tracks = []
        self._last_time = -math.inf

    @property
    def track_count(self) -> int:
        """Tracks held now (moving or not)."""
        return len(self._tracks)

    def update(
        self,
        points: np.ndarray,
        origin: tuple[float, float],
        now: float,
        full_circle: bool = True,
    ) -> None:
        """Take one scan: `points` (odom frame, beam order) seen from `origin` at `now`
        (`full_circle`: see `detect_objects`)."""
        cfg = self.config
        if now < self._last_time:
            self.reset()  # the clock went back: the history is on another clock
        elif now == self._last_time:
            return  # the same instant twice says nothing about motion
        self._last_time = now
        detections = detect_objects(points, origin, cfg, full_circle)
        self._tracks = [t for t in self._tracks if now - t.last_seen <= cfg.max_age]
        used_detections: set[int] = set()
        if self._tracks and detections:
            predicted = np.array([t.predicted(now) for t in self._tracks])
            centers = np.array([d.center() for d in detections])
            gaps = np.hypot(
                predicted[:, None, 0] - centers[None, :, 0],
                predicted[:, None, 1] - centers[None, :, 1],
            )
            used_tracks: set[int] = set()
            # Nearest pairs first, each track and detection used once.
            for flat in np.argsort(gaps, axis=None):
                ti, di = divmod(int(flat), len(detections))
                if gaps[ti, di] > cfg.gate:
                    break
                if ti in used_tracks or di in used_detections:
                    continue
                used_tracks.add(ti)
                used_detections.add(di)
                self._observe(self._tracks[ti], detections[di], now)
        for di, det in enumerate(detections):
            if di not in used_detections:
                track = _Track()
                self._observe(track, det, now)
                self._tracks.append(track)

    def _observe(self, track: _Track, det: Detection, now: float) -> None:
        cfg = self.config
        track.last_seen = now
        change = abs(det.radius - track.radius)
        resized = bool(track.times) and change > max(cfg.radius_change * track.radius, 0.03)
        if det.partial or resized:
            # Where it is, roughly: keep the track alive on its prediction, fit nothing.
            track.last_center = track.predicted(now) if track.times else det.center()
            return
        track.times.append(now)
        track.detections.append(det)
        while track.times and now - track.times[0] > cfg.history:
            track.times.pop(0)
            track.detections.pop(0)
        track.radius = float(np.median([d.radius for d in track.detections]))
        centers = np.array([d.center(track.radius) for d in track.detections])
        track.velocity, track.moving, on_line = self._fit(np.asarray(track.times), centers, now)
        # The fitted line's point now: less noisy than the last centre alone.
        last = on_line if track.moving else centers[-1]
        track.last_center = (float(last[0]), float(last[1]))

    def _fit(
        self, times: np.ndarray, centers: np.ndarray, now: float
    ) -> tuple[tuple[float, float], bool, np.ndarray]:
        """(velocity, moving, the fitted line's point at `now`) from a track's recent centres.

        Moving needs enough detections over enough time, a speed within the limits that
        also stands out of its own standard error three times over (the centres' scatter
        about the fitted line), and a scatter below `max_residual`.
        """
        cfg = self.config
        count = times.size
        mean_t = float(times.mean())
        mean_c = centers.mean(axis=0)
        if count < 2:
            return (0.0, 0.0), False, mean_c
        dt = times - mean_t
        spread = float(np.dot(dt, dt))
        if spread <= 0.0:
            return (0.0, 0.0), False, mean_c
        slope = (dt @ (centers - mean_c)) / spread
        velocity = (float(slope[0]), float(slope[1]))
        speed = math.hypot(*velocity)
        fitted = mean_c + np.outer(dt, slope)
        squared = float(np.sum((centers - fitted) ** 2))
        residual = math.sqrt(squared / count)
        standard_error = math.sqrt(squared / max(count - 2, 1) / spread) if count > 2 else math.inf
        moving = (
            count >= cfg.min_detections
            and float(times[-1] - times[0]) >= cfg.min_span
            and max(cfg.min_speed, 3.0 * standard_error) <= speed <= cfg.max_speed
            and residual <= cfg.max_residual
        )
        return velocity, moving, mean_c + slope * (now - mean_t)

    def moving_discs(self) -> np.ndarray:
        """Where the moving tracks were: rows (x, y, radius), odom frame, one per fitted
        detection of the last `history` seconds, radius with `radius_margin`."""
        cfg = self.config
        rows = [
            (*det.center(track.radius), track.radius + cfg.radius_margin)
            for track in self._tracks
            if track.moving
            for det in track.detections
        ]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)

    def moving_obstacles(self, now: float) -> np.ndarray:
        """Moving tracks as rows (x, y, vx, vy, radius), odom frame, predicted to `now`."""
        cfg = self.config
        rows = []
        for track in self._tracks:
            if not track.moving or now - track.last_seen > cfg.max_age:
                continue
            x, y = track.predicted(now)
            radius = track.radius + cfg.radius_margin
            rows.append((x, y, track.velocity[0], track.velocity[1], radius))
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)
