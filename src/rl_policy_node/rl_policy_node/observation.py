"""The observation builder shared by training and deployment (no rclpy, no torch).

One function computes what a policy sees, on the robot and in training: the live scan
resampled by angle into the card's sectors, the goal in the robot frame, the measured
velocity and optionally the previous action, stacked over the card's history.

Scan values follow REP-117: NaN is an invalid reading and is ignored; +inf means no
return within range (free up to the cap); -inf means too close to measure (0 m); a
finite reading above `range_max` is beyond the sensor's reach (free); a finite reading
below `range_min` is invalid (many drivers report 0.0 for "no return") and is ignored.
A sector with no usable reading reads as free (the range cap): the safety controller,
not the policy, is what keeps the robot off what the sensor cannot see.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rl_policy_node.policy_card import ObservationSpec, ScanSpec
from rlguard_common.geometry import wrap_angle


class ObservationError(ValueError):
    """An input the observation cannot be built from (the reason says which)."""


@dataclass(frozen=True)
class ScanInput:
    """A laser scan as LaserScan carries it."""

    ranges: np.ndarray
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float


def beam_sectors(
    sectors: int, fov: float, beam_count: int, angle_min: float, angle_increment: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each beam's angle (wrapped), whether it lies in the field of view `fov` (radians,
    centred forward) and its sector (sector 0 starts at -fov/2; 0 for beams outside)."""
    angles = wrap_angle(angle_min + angle_increment * np.arange(beam_count))
    # A full circle covers [-pi, pi) exactly; a narrower FOV is a closed window.
    offset = angles + fov / 2.0
    full = fov >= 2 * math.pi
    inside = np.ones_like(offset, bool) if full else (offset >= 0.0) & (offset < fov)
    # A beam within 1e-4 of a sector width below an edge (float32 angle rounding is
    # ~1e-7 rad) counts in the upper sector, whichever way its angle was computed; on
    # a full circle the last edge is the first.
    sector = np.floor(np.where(inside, offset, 0.0) / (fov / sectors) + 1e-4).astype(np.int64)
    if full:
        sector %= sectors
    return angles, inside, np.clip(sector, 0, sectors - 1)


class ScanResampler:
    """Maps the beams of one scan geometry onto a card's sectors.

    Built once per (beam count, angle_min, angle_increment); raises `ObservationError`
    when the scan cannot give every sector at least one beam.
    """

    def __init__(
        self, spec: ScanSpec, beam_count: int, angle_min: float, angle_increment: float
    ) -> None:
        if beam_count < 1:
            raise ObservationError("scan has no beams")
        if not (math.isfinite(angle_min) and math.isfinite(angle_increment)):
            raise ObservationError("scan angle_min/angle_increment must be finite")
        if angle_increment == 0.0:
            raise ObservationError("scan angle_increment is 0")
        # LaserScan carries its angles as float32; rounding here makes a scan from the
        # simulator (float64) and the same scan off the wire resample identically.
        angle_min = float(np.float32(angle_min))
        angle_increment = float(np.float32(angle_increment))
        self.spec = spec
        self.key = (beam_count, angle_min, angle_increment)
        fov = spec.field_of_view
        width = fov / spec.sectors
        angles, inside, sector = beam_sectors(
            spec.sectors, fov, beam_count, angle_min, angle_increment
        )
        beams = np.flatnonzero(inside)
        counts = np.bincount(sector[beams], minlength=spec.sectors)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            span = abs(angle_increment) * beam_count
            raise ObservationError(
                f"the scan cannot cover the policy's observation: {beam_count} beams over "
                f"{math.degrees(span):.1f} deg from {math.degrees(angle_min):.1f} deg leave "
                f"{empty.size} of {spec.sectors} sectors of the required "
                f"{spec.field_of_view_deg:.1f} deg field of view without a beam "
                f"(first empty sector {int(empty[0])})"
            )
        order = beams[np.argsort(sector[beams], kind="stable")]
        self._order = order
        self._starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        # For stride reduction: the beam of each sector nearest the sector centre.
        centres = -fov / 2.0 + (np.arange(spec.sectors) + 0.5) * width
        distance = np.abs(wrap_angle(angles[order] - centres[sector[order]]))
        nearest = np.empty(spec.sectors, dtype=np.int64)
        for k in range(spec.sectors):
            lo = self._starts[k]
            hi = lo + counts[k]
            nearest[k] = order[lo + int(np.argmin(distance[lo:hi]))]
        self._nearest = nearest

    def __call__(self, ranges: np.ndarray, range_min: float, range_max: float) -> np.ndarray:
        """Sector values in [0, 1] (range / range_cap) for one scan's ranges."""
        r = np.asarray(ranges, dtype=np.float64)
        if r.shape != (self.key[0],):
            raise ObservationError(f"expected {self.key[0]} ranges, got shape {r.shape}")
        cap = self.spec.range_cap
        usable = np.full(r.shape, np.inf)  # inf marks "no usable reading"
        valid = np.isfinite(r) & (r >= range_min) & (r <= range_max)
        usable[valid] = r[valid]
        usable[np.isposinf(r) | (np.isfinite(r) & (r > range_max))] = cap
        usable[np.isneginf(r)] = 0.0
        if self.spec.reduction == "min":
            values = np.minimum.reduceat(usable[self._order], self._starts)
        else:
            values = usable[self._nearest]
        values = np.where(np.isinf(values), cap, np.minimum(values, cap))
        return values / cap


class ObservationBuilder:
    """Builds observation vectors for one `ObservationSpec`, keeping the frame history."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        self._resampler: ScanResampler | None = None
        # Every frame of the last (length - 1) * stride + 1 steps; every stride-th is used.
        span = (spec.history_length - 1) * spec.history_stride + 1
        self._history: deque[np.ndarray] = deque(maxlen=span)

    @property
    def size(self) -> int:
        """Length of the vectors `build` returns."""
        return self.spec.size

    def check_scan(self, beam_count: int, angle_min: float, angle_increment: float) -> None:
        """Raise `ObservationError` if a scan of this geometry cannot feed the spec."""
        self._resampler_for(beam_count, angle_min, angle_increment)

    def _resampler_for(
        self, beam_count: int, angle_min: float, angle_increment: float
    ) -> ScanResampler:
        key = (beam_count, float(np.float32(angle_min)), float(np.float32(angle_increment)))
        if self._resampler is None or self._resampler.key != key:
            self._resampler = ScanResampler(self.spec.scan, beam_count, angle_min, angle_increment)
        return self._resampler

    def reset(self) -> None:
        """Forget the frame history (start of an episode or after a gap)."""
        self._history.clear()

    def frame(
        self,
        scan: ScanInput,
        pose: Sequence[float],
        velocity: Sequence[float],
        goal: Sequence[float],
        previous_action: Sequence[float] = (0.0, 0.0),
    ) -> np.ndarray:
        """One frame: scan sectors, goal terms, velocity terms, previous action.

        `pose` is (x, y, yaw) and `goal` is (x, y), both in the same fixed frame;
        `velocity` is the measured (linear, angular) body velocity.
        """
        x, y, yaw = _finite(pose, 3, "pose")
        gx, gy = _finite(goal, 2, "goal")
        v, w = _finite(velocity, 2, "velocity")
        ranges = np.asarray(scan.ranges, dtype=np.float64).ravel()
        resampler = self._resampler_for(ranges.size, scan.angle_min, scan.angle_increment)
        parts = [resampler(ranges, scan.range_min, scan.range_max)]

        dx, dy = gx - x, gy - y
        c, s = math.cos(yaw), math.sin(yaw)
        forward, left = c * dx + s * dy, -s * dx + c * dy
        distance = math.hypot(forward, left)
        bearing = math.atan2(left, forward) if distance > 0.0 else 0.0
        cap = self.spec.goal.distance_cap
        distance_term = distance if cap is None else min(distance, cap) / cap
        parts.append(np.array([distance_term, math.cos(bearing), math.sin(bearing)]))

        if self.spec.velocity is not None:
            parts.append(
                np.array(
                    [v / self.spec.velocity.linear_scale, w / self.spec.velocity.angular_scale]
                )
            )
        if self.spec.previous_action:
            parts.append(np.clip(_finite(previous_action, 2, "previous_action"), -1.0, 1.0))
        return np.concatenate(parts).astype(np.float32)

    def build(
        self,
        scan: ScanInput,
        pose: Sequence[float],
        velocity: Sequence[float],
        goal: Sequence[float],
        previous_action: Sequence[float] = (0.0, 0.0),
    ) -> np.ndarray:
        """The full observation (frames stacked newest first), float32 of length `size`.

        Until the history is full, the oldest frame stands in for the missing ones.
        """
        current = self.frame(scan, pose, velocity, goal, previous_action)
        if not self._history:
            self._history.extend([current] * self._history.maxlen)
        else:
            self._history.append(current)
        newest_first = list(reversed(self._history))
        return np.concatenate(newest_first[:: self.spec.history_stride])


def _finite(values: Sequence[float], count: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size != count:
        raise ObservationError(f"{name} must have {count} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ObservationError(f"{name} is not finite: {array.tolist()}")
    return array
