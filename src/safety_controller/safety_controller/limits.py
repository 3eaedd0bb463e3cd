"""Velocity and acceleration limits for a differential-drive command (v, w); no rclpy.

Vectors are [linear, angular]. Decelerations are negative numbers (Nav2 convention).
Scaling keeps v and w in proportion, so the commanded curvature v/w survives limiting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Velocity = tuple[float, float]
TINY = 1e-9  # m/s or rad/s: smaller magnitudes count as zero


class LimitsError(ValueError):
    """Limits that cannot be used (with the reason in the message)."""


def _pair(name: str, values: Sequence[float]) -> tuple[float, float]:
    items = tuple(float(v) for v in values)
    if len(items) != 2:
        raise LimitsError(f"{name} needs 2 values [linear, angular], got {len(items)}")
    if not all(math.isfinite(v) for v in items):
        raise LimitsError(f"{name} has a non-finite value: {list(items)}")
    return items  # type: ignore[return-value]


@dataclass(frozen=True)
class VelocityLimits:
    """Velocity, acceleration and deceleration bounds, [linear, angular] each."""

    max_velocity: tuple[float, float] = (0.26, 1.82)
    min_velocity: tuple[float, float] = (-0.26, -1.82)
    max_accel: tuple[float, float] = (1.5, 3.2)
    max_decel: tuple[float, float] = (-1.5, -3.2)
    emergency_decel: tuple[float, float] = (-1.6, -5.0)

    def __post_init__(self) -> None:
        for name in ("max_velocity", "min_velocity", "max_accel", "max_decel", "emergency_decel"):
            object.__setattr__(self, name, _pair(name, getattr(self, name)))
        for i, axis in enumerate(("linear", "angular")):
            if self.max_velocity[i] < 0.0:
                raise LimitsError(f"max_velocity {axis} must be >= 0, got {self.max_velocity[i]}")
            if self.min_velocity[i] > 0.0:
                raise LimitsError(
                    f"min_velocity {axis} must be <= 0 (negative allows reverse), "
                    f"got {self.min_velocity[i]}"
                )
            if self.max_accel[i] <= 0.0:
                raise LimitsError(f"max_accel {axis} must be > 0, got {self.max_accel[i]}")
            if self.max_decel[i] >= 0.0:
                raise LimitsError(
                    f"max_decel {axis} must be < 0 (Nav2 convention), got {self.max_decel[i]}"
                )
            if self.emergency_decel[i] >= 0.0:
                raise LimitsError(
                    f"emergency_decel {axis} must be < 0, got {self.emergency_decel[i]}"
                )
            if -self.max_decel[i] < self.max_accel[i]:
                raise LimitsError(
                    f"max_decel {axis} ({self.max_decel[i]}) is weaker than max_accel "
                    f"({self.max_accel[i]}): the robot must stop at least as hard as it speeds up"
                )
            if self.emergency_decel[i] > self.max_decel[i]:
                raise LimitsError(
                    f"emergency_decel {axis} ({self.emergency_decel[i]}) is weaker than "
                    f"max_decel ({self.max_decel[i]})"
                )
        if self.max_velocity[1] <= 0.0 and self.max_velocity[0] <= 0.0:
            raise LimitsError("max_velocity allows no motion at all")

    def decel(self, emergency: bool) -> tuple[float, float]:
        """Deceleration magnitudes (positive) for normal ramps or safety stops."""
        source = self.emergency_decel if emergency else self.max_decel
        return (-source[0], -source[1])


def clamp_velocity(v: float, w: float, limits: VelocityLimits) -> Velocity:
    """Bring (v, w) within the velocity limits, scaling both together (curvature kept).

    A component whose direction is not allowed at all (e.g. reverse with min_velocity 0)
    is set to zero on its own, so the other one still passes. Inputs must be finite.
    """
    # Below a nanometre per second a command means standing still (and would overflow).
    request = [v if abs(v) >= TINY else 0.0, w if abs(w) >= TINY else 0.0]
    scale = 1.0
    for i in range(2):
        value = request[i]
        bound = limits.max_velocity[i] if value > 0.0 else limits.min_velocity[i]
        if value == 0.0:
            continue
        if bound == 0.0:
            request[i] = 0.0
            continue
        scale = min(scale, bound / value)
    out_v, out_w = request[0] * scale, request[1] * scale
    # Rounding in the scale must not leave a value a hair outside the bound.
    out_v = min(max(out_v, limits.min_velocity[0]), limits.max_velocity[0])
    out_w = min(max(out_w, limits.min_velocity[1]), limits.max_velocity[1])
    return out_v, out_w


def reachable_interval(
    current: float, accel: float, decel: float, dt: float
) -> tuple[float, float]:
    """Values one axis can reach from `current` within `dt`.

    Growing the magnitude is bounded by `accel`, shrinking it by `decel` (both positive);
    crossing zero first brakes to zero, then accelerates the other way.
    """
    if current > 0.0:
        hi = current + accel * dt
        t_zero = current / decel
        lo = current - decel * dt if dt <= t_zero else -accel * (dt - t_zero)
    elif current < 0.0:
        lo = current - accel * dt
        t_zero = -current / decel
        hi = current + decel * dt if dt <= t_zero else accel * (dt - t_zero)
    else:
        lo, hi = -accel * dt, accel * dt
    return lo, hi


def reachable_box(
    current: Velocity, limits: VelocityLimits, dt: float, emergency: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis bounds (lo, hi) of the commands reachable from `current` within `dt`."""
    decel = limits.decel(emergency)
    bounds = [reachable_interval(current[i], limits.max_accel[i], decel[i], dt) for i in range(2)]
    return np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])


def in_box(value: Velocity, box: tuple[np.ndarray, np.ndarray], tolerance: float = 1e-9) -> bool:
    """True when `value` lies within `box` (both axes)."""
    lo, hi = box
    return all(lo[i] - tolerance <= value[i] <= hi[i] + tolerance for i in range(2))


def limit_acceleration(
    target: Velocity, current: Velocity, box: tuple[np.ndarray, np.ndarray]
) -> Velocity:
    """The command to send toward `target` from `current` without leaving `box`.

    Prefers the largest s in [0, 1] with s·target inside the box (same curvature as the
    target). When no such s exists (e.g. a sharp turn requested at speed), moves from
    `current` toward `target` as far as the box allows.
    """
    lo, hi = box
    s_lo, s_hi = 0.0, 1.0
    for i in range(2):
        t = target[i]
        if abs(t) < 1e-12:  # treat as zero (dividing the bounds by it would overflow)
            if not (lo[i] <= 0.0 <= hi[i]):
                s_lo, s_hi = 1.0, 0.0
            continue
        a, b = lo[i] / t, hi[i] / t
        if a > b:
            a, b = b, a
        s_lo, s_hi = max(s_lo, a), min(s_hi, b)
    if s_lo <= s_hi:
        return target[0] * s_hi, target[1] * s_hi
    eta = 1.0
    for i in range(2):
        delta = target[i] - current[i]
        if delta > 0.0:
            eta = min(eta, (hi[i] - current[i]) / delta)
        elif delta < 0.0:
            eta = min(eta, (lo[i] - current[i]) / delta)
    eta = max(eta, 0.0)
    return (
        current[0] + eta * (target[0] - current[0]),
        current[1] + eta * (target[1] - current[1]),
    )


def brake_along_arc(current: Velocity, limits: VelocityLimits, dt: float) -> Velocity:
    """Slow `current` toward zero at emergency_decel, keeping its curvature."""
    decel = limits.decel(emergency=True)
    rate = math.inf
    for i in range(2):
        if abs(current[i]) >= TINY:
            rate = min(rate, decel[i] / abs(current[i]))
    if not math.isfinite(rate):
        return 0.0, 0.0
    factor = max(0.0, 1.0 - rate * dt)
    return current[0] * factor, current[1] * factor
