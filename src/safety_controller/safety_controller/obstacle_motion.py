"""How fast each part of the scan closes in on the robot, ego motion removed (no rclpy).

Two consecutive scans, the older one dead-reckoned into the newer one's frame, show a
static world at the same place; what moved is an obstacle moving. Each new point is
compared with the older scan's distance at the same bearing (interpolated between its
two neighbouring points), which gives that point's closing speed. Per bearing sector the
foreground (points near the sector's nearest one) closes at the median of its points'
speeds, so range noise and occlusion edges do not count as motion. One pair can still be
fooled, so a sector counts as closing only at the smaller speed of the last two pairs.
"""

from __future__ import annotations

import math

import numpy as np

SECTORS = 36  # 10 degrees each
MAX_RANGE = 2.5  # m: points farther away do not take part
FOREGROUND_DEPTH = 0.15  # m behind a sector's nearest point that still belong to it
MAX_BEARING_GAP = math.radians(3.0)  # older points farther apart in bearing do not interpolate
MIN_POINTS = 3  # a sector needs this many foreground points to show motion
# Closing speeds below this (m/s) are range noise: about 1 cm between scans at 10 Hz.
NOISE_SPEED = 0.1
TWO_PI = 2.0 * math.pi


def sector_of(points: np.ndarray) -> np.ndarray:
    """Sector index of each point (bearing from the base centre)."""
    bearing = np.mod(np.arctan2(points[:, 1], points[:, 0]), TWO_PI)
    return np.minimum((bearing / TWO_PI * SECTORS).astype(np.int64), SECTORS - 1)


def point_closing_speeds(previous: np.ndarray, current: np.ndarray, elapsed: float) -> np.ndarray:
    """Per current point, how fast its bearing's distance shrank (m/s); NaN if unknown."""
    result = np.full(current.shape[0], np.nan)
    if previous.shape[0] < 2 or current.shape[0] == 0 or elapsed <= 0.0:
        return result
    bearing_prev = np.mod(np.arctan2(previous[:, 1], previous[:, 0]), TWO_PI)
    order = np.argsort(bearing_prev)
    bearing_prev = bearing_prev[order]
    distance_prev = np.hypot(previous[order, 0], previous[order, 1])
    bearing = np.mod(np.arctan2(current[:, 1], current[:, 0]), TWO_PI)
    distance = np.hypot(current[:, 0], current[:, 1])
    # Bracketing older points (wrapping around the circle).
    high = np.searchsorted(bearing_prev, bearing) % bearing_prev.size
    low = (high - 1) % bearing_prev.size
    gap = np.mod(bearing_prev[high] - bearing_prev[low], TWO_PI)
    offset = np.mod(bearing - bearing_prev[low], TWO_PI)
    usable = (gap <= MAX_BEARING_GAP) & (offset <= gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(gap > 0.0, offset / gap, 0.0)
    before = distance_prev[low] + fraction * (distance_prev[high] - distance_prev[low])
    result[usable] = (before[usable] - distance[usable]) / elapsed
    return result


def _sector_medians(sectors: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sector present in `sectors`: (sector ids, median of their values, count)."""
    order = np.lexsort((values, sectors))
    sectors, values = sectors[order], values[order]
    starts = np.flatnonzero(np.r_[True, sectors[1:] != sectors[:-1]])
    counts = np.diff(np.r_[starts, sectors.size])
    median = 0.5 * (values[starts + (counts - 1) // 2] + values[starts + counts // 2])
    return sectors[starts], median, counts


def foreground_speeds(current: np.ndarray, speeds: np.ndarray) -> np.ndarray:
    """Per sector, the closing speed of its foreground points (0 unless clearly moving).

    The median of the points' speeds counts only where it stands out of their spread: by
    more than NOISE_SPEED plus two standard errors (from the median absolute deviation).
    """
    result = np.zeros(SECTORS)
    distance = np.hypot(current[:, 0], current[:, 1])
    keep = (distance <= MAX_RANGE) & np.isfinite(speeds)
    if not keep.any():
        return result
    sectors, distance, speeds = sector_of(current[keep]), distance[keep], speeds[keep]
    nearest = np.full(SECTORS, np.inf)
    np.minimum.at(nearest, sectors, distance)
    front = distance <= nearest[sectors] + FOREGROUND_DEPTH
    sectors, speeds = sectors[front], speeds[front]
    ids, median, counts = _sector_medians(sectors, speeds)
    centre = np.zeros(SECTORS)
    centre[ids] = median
    _, deviation, _ = _sector_medians(sectors, np.abs(speeds - centre[sectors]))
    # 1.4826 * MAD estimates a standard deviation; the median's error is ~1.25 sigma/sqrt(n).
    error = 1.25 * 1.4826 * deviation / np.sqrt(counts)
    clear = (counts >= MIN_POINTS) & (median > NOISE_SPEED + 2.0 * error)
    result[ids[clear]] = median[clear]
    return result


class ClosingSpeeds:
    """Per-sector closing speed (m/s, >= 0) of the obstacles around the robot."""

    def __init__(self) -> None:
        self.speeds = np.zeros(SECTORS)
        self._last_pair = np.zeros(SECTORS)

    def reset(self) -> None:
        """Forget all motion (no earlier scan to compare with)."""
        self.speeds[:] = 0.0
        self._last_pair[:] = 0.0

    def update(self, previous: np.ndarray, current: np.ndarray, elapsed: float, cap: float) -> None:
        """Compare `previous` (dead-reckoned into the current frame) with `current`."""
        if not (elapsed > 0.0 and cap > 0.0):
            self.reset()
            return
        pair = foreground_speeds(current, point_closing_speeds(previous, current, elapsed))
        pair = np.clip(pair, 0.0, cap)
        speeds = np.minimum(pair, self._last_pair)
        speeds[speeds < NOISE_SPEED] = 0.0
        self.speeds = speeds
        self._last_pair = pair

    def moving(self) -> bool:
        """True when any sector is closing in."""
        return bool(np.any(self.speeds > 0.0))

    def advance(self, points: np.ndarray, seconds: float, floor: float) -> np.ndarray:
        """Points moved toward the base centre as far as their sector closes in `seconds`.

        A point never ends closer than `floor` (m) from the centre, or than it already is.
        """
        if points.shape[0] == 0 or not self.moving() or seconds <= 0.0:
            return points
        speed = self.speeds[sector_of(points)]
        distance = np.hypot(points[:, 0], points[:, 1])
        target = np.maximum(distance - speed * seconds, np.minimum(distance, floor))
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(distance > 0.0, target / distance, 1.0)
        return points * factor[:, None]
