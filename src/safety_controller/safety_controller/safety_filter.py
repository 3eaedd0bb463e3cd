"""The stateful safety filter between the navigation command and the wheels; no rclpy.

Every call takes an explicit `now` (seconds, any monotonic clock); the filter never reads
a clock itself. One `step(now)` turns the latest request into the command to publish:

1. latched e-stop or a non-finite request -> zero at once;
2. no request for `velocity_timeout`, or no usable scan (none, older than
   `source_timeout`, or blind) -> brake to zero at emergency_decel along the current arc;
3. otherwise: velocity limits (curvature kept) -> acceleration limits against the current
   velocity over the real elapsed time -> collision guard scale. If the guard asks for a
   faster slow-down than emergency_decel allows, the filter brakes at emergency_decel along
   the current arc instead, which the previous step's guard already proved safe.

The current velocity is odometry when `closed_loop` and odometry is fresh, otherwise the
last output. Scan points are carried forward by dead reckoning on that velocity, so an
older scan is still used in the robot's present frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from safety_controller.collision_guard import guard_command, pose_along, to_moved_frame
from safety_controller.footprint import Footprint
from safety_controller.limits import (
    TINY,
    Velocity,
    VelocityLimits,
    brake_along_arc,
    clamp_velocity,
    in_box,
    limit_acceleration,
    reachable_box,
)
from safety_controller.scan_geometry import ScanPoints

LIMIT = "limit"
ACCEL = "accel"
COLLISION = "collision"
ESTOP = "estop"
STALE_INPUT = "stale_input"
BLIND = "blind"
INVALID_INPUT = "invalid_input"
REASONS = (LIMIT, ACCEL, COLLISION, ESTOP, STALE_INPUT, BLIND, INVALID_INPUT)
# Reasons that override the request for safety (limit/accel only shape it).
SAFETY_REASONS = frozenset({COLLISION, ESTOP, STALE_INPUT, BLIND, INVALID_INPUT})
# Reasons whose output may skip the acceleration limits (a step to zero).
HARD_STOP_REASONS = frozenset({ESTOP, INVALID_INPUT})


# Steps of motion history kept for late scans (covers source_timeout at >= 20 Hz twice over).
MOTION_LOG_STEPS = 64


@dataclass(frozen=True)
class SafetyConfig:
    """Everything the filter needs to know about the robot and its sensors."""

    limits: VelocityLimits = field(default_factory=VelocityLimits)
    footprint: Footprint = field(default_factory=lambda: Footprint(radius=0.11, margin=0.05))
    reaction_time: float = 0.15  # s: latency until a command takes effect, >= control period
    velocity_timeout: float = 0.5  # s without a request -> brake to zero
    source_timeout: float = 0.5  # s without a scan -> blind
    odom_timeout: float = 0.5  # s without odometry -> use the last output as velocity
    closed_loop: bool = True  # use fresh odometry as the current velocity
    intervention_window: float = 5.0  # s over which the intervention rate is taken
    max_step: float = 0.25  # s: cap on the elapsed time used for acceleration limits

    def __post_init__(self) -> None:
        for name in (
            "reaction_time",
            "velocity_timeout",
            "source_timeout",
            "odom_timeout",
            "intervention_window",
            "max_step",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")


@dataclass(frozen=True)
class FilterOutput:
    """The result of one filter step."""

    linear: float
    angular: float
    scale: float  # allowed fraction of the request, 1.0 = untouched
    # Why the output differs from the request (empty: it doesn't), or COLLISION when the
    # guard cut the acceleration-limited ramp to a request it then equals (a safety stop).
    reasons: frozenset[str]
    min_clearance: float  # m from the inflated footprint to the nearest scan point (inf: none)
    state: str  # OK, ESTOP, INVALID_INPUT, STALE_INPUT, IDLE, BLIND, STALE_SCAN, NO_SCAN


@dataclass
class FilterStatus:
    """Bookkeeping for diagnostics."""

    state: str = "NO_SCAN"
    estop_latched: bool = False
    estop_input: bool = False
    last_reasons: frozenset[str] = frozenset()
    last_intervention_reasons: frozenset[str] = frozenset()
    intervention_rate: float = 0.0
    min_clearance: float = math.inf
    odom_stale: bool = True
    input_age: float = math.inf
    scan_age: float = math.inf
    odom_age: float = math.inf
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    invalid_inputs: int = 0
    steps: int = 0


class SafetyFilter:
    """Limits, collision guard, latched e-stop and watchdogs for one robot."""

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()
        self._output: Velocity = (0.0, 0.0)
        self._braking = False  # the last output was a stop ramp (blind or no request)
        # (from, to, velocity) of the recent steps, to dead-reckon scans that arrive late
        self._motion_log: deque[tuple[float, float, Velocity]] = deque(maxlen=MOTION_LOG_STEPS)
        self._output_time: float | None = None
        self._request: Velocity | None = None
        self._request_valid = True
        self._request_time: float | None = None
        self._scan_points: np.ndarray | None = None
        self._scan_blind = False
        self._scan_time: float | None = None
        self._motion_since_scan = (0.0, 0.0, 0.0)
        self._odom: Velocity = (0.0, 0.0)
        self._odom_time: float | None = None
        self._estop_latched = False
        self._estop_input = False
        self._window: deque[tuple[float, bool]] = deque()
        self._previous_reasons: frozenset[str] = frozenset()
        self.status = FilterStatus()

    # ---- inputs -------------------------------------------------------------------------

    def configure(self, config: SafetyConfig) -> None:
        """Swap in new settings; state (last output, latches, scan) is kept."""
        self.config = config

    def set_command(self, linear: float, angular: float, now: float) -> bool:
        """Record a request; False (and counted) when it is not finite."""
        self._request_time = now
        if math.isfinite(linear) and math.isfinite(angular):
            self._request = (float(linear), float(angular))
            self._request_valid = True
            return True
        self._request = None
        self._request_valid = False
        self.status.invalid_inputs += 1
        return False

    def set_scan(self, scan: ScanPoints, now: float, stamp: float | None = None) -> None:
        """Record the obstacle points (base frame) of a scan received at `now`.

        `stamp` is when the scan was taken (its header), if known. A scan that arrives late
        (a loaded machine, a queue) shows obstacles where they were at `stamp`: the motion
        since then is dead-reckoned onto its points, and its age counts from `stamp`, so a
        late scan neither hides the distance driven meanwhile nor looks fresh. A stamp in
        the future or older than `source_timeout` (another clock) is not trusted.
        """
        taken = now
        if stamp is not None and math.isfinite(stamp):
            if 0.0 <= now - stamp <= self.config.source_timeout:
                taken = stamp
        self._scan_points = np.asarray(scan.points, dtype=np.float64).reshape(-1, 2)
        self._scan_blind = scan.blind
        self._scan_time = taken
        self._motion_since_scan = (0.0, 0.0, 0.0)
        if self._output_time is not None and taken < self._output_time <= now:
            # The motion from the scan to the last output, as the steps since then saw
            # it; `step` adds the rest.
            for start, end, velocity in self._motion_log:
                low, high = max(start, taken), min(end, self._output_time)
                if high > low:
                    self._advance_scan(velocity, high - low)

    def set_odometry(self, linear: float, angular: float, now: float) -> bool:
        """Record the measured velocity; False (ignored) when it is not finite."""
        if not (math.isfinite(linear) and math.isfinite(angular)):
            return False
        self._odom = (
            float(linear) if abs(linear) >= TINY else 0.0,
            float(angular) if abs(angular) >= TINY else 0.0,
        )
        self._odom_time = now
        return True

    def set_estop_input(self, active: bool, now: float) -> bool:
        """Follow the e-stop topic; True engages the latch. Returns True if newly latched."""
        self._estop_input = bool(active)
        if active:
            return self.trigger_estop(now)
        return False

    def trigger_estop(self, now: float) -> bool:
        """Latch the e-stop (zero output until reset). Returns True if newly latched."""
        newly = not self._estop_latched
        self._estop_latched = True
        return newly

    def reset(self, now: float) -> tuple[bool, str]:
        """Release the e-stop latch unless the e-stop input is still engaged."""
        if self._estop_input:
            return False, "refused: safety/estop is still true"
        if not self._estop_latched:
            return True, "e-stop was not latched"
        self._estop_latched = False
        return True, "e-stop released"

    @property
    def estop_latched(self) -> bool:
        """True while the e-stop latch is engaged."""
        return self._estop_latched

    @property
    def last_output(self) -> Velocity:
        """The last command returned by step()."""
        return self._output

    # ---- the filter ---------------------------------------------------------------------

    def _current_velocity(self, now: float) -> tuple[Velocity, bool]:
        odom_fresh = (
            self._odom_time is not None and 0.0 <= now - self._odom_time <= self.config.odom_timeout
        )
        if self.config.closed_loop and odom_fresh:
            return self._odom, False
        return self._output, not odom_fresh

    def _brake(self, velocity: Velocity, dt: float) -> Velocity:
        """Brake along the arc at emergency_decel, never above the last braking output.

        In closed loop the ramp starts from the measured velocity, which lags the
        commands; two outputs at the same instant (an input and the timer) would otherwise
        both restart from it, and a stop would keep commanding that speed. So each axis
        starts from the smaller of the measured value and the last output (zero where
        their signs differ).
        """
        start = velocity
        if self._output_time is not None and self._braking:
            start = tuple(
                math.copysign(min(abs(m), abs(p)), m) if m * p > 0.0 else 0.0
                for m, p in zip(velocity, self._output, strict=True)
            )
        return brake_along_arc(start, self.config.limits, dt)

    def _advance_scan(self, velocity: Velocity, elapsed: float) -> None:
        if self._scan_points is None or elapsed <= 0.0:
            return
        dx, dy, dyaw = pose_along(velocity[0], velocity[1], elapsed)
        x, y, yaw = self._motion_since_scan
        c, s = math.cos(yaw), math.sin(yaw)
        self._motion_since_scan = (x + c * dx - s * dy, y + s * dx + c * dy, yaw + dyaw)

    def step(self, now: float) -> FilterOutput:
        """Compute the command to publish at time `now`."""
        cfg = self.config
        limits = cfg.limits
        elapsed = 0.0 if self._output_time is None else now - self._output_time
        if elapsed < 0.0:  # the clock went back (e.g. a simulation reset)
            elapsed = 0.0
        velocity, odom_stale = self._current_velocity(now)
        # Only motion after the scan was taken moves its points.
        since = now if self._output_time is None else self._output_time
        if self._scan_time is not None and self._scan_time > since:
            since = self._scan_time
        self._advance_scan(velocity, now - since)
        if self._output_time is not None and now > self._output_time:
            self._motion_log.append((self._output_time, now, velocity))
        dt = min(elapsed, cfg.max_step)

        request_age = math.inf if self._request_time is None else now - self._request_time
        request_fresh = (
            self._request_time is not None and 0.0 <= request_age <= cfg.velocity_timeout
        )
        request: Velocity | None = self._request if request_fresh else None
        scan_age = math.inf if self._scan_time is None else now - self._scan_time
        scan_usable = (
            self._scan_points is not None
            and 0.0 <= scan_age <= cfg.source_timeout
            and not self._scan_blind
        )

        points = None
        min_clearance = math.inf
        if self._scan_points is not None:
            points = to_moved_frame(self._scan_points, *self._motion_since_scan)
            min_clearance = cfg.footprint.min_clearance(points)

        reasons: set[str] = set()
        scale_hint: float | None = None
        guard_changed = False  # the guard cut the (acceleration-limited) command
        if self._estop_latched:
            output, state = (0.0, 0.0), "ESTOP"
            reasons.add(ESTOP)
        elif request_fresh and not self._request_valid:
            output, state = (0.0, 0.0), "INVALID_INPUT"
            reasons.add(INVALID_INPUT)
        elif not scan_usable:
            output = self._brake(velocity, dt)
            reasons.add(BLIND)
            if self._scan_points is None:
                state = "NO_SCAN"
            elif self._scan_blind:
                state = "BLIND"
            else:
                state = "STALE_SCAN"
            scale_hint = 0.0
        elif request is None:
            output = self._brake(velocity, dt)
            reasons.add(STALE_INPUT)
            state = "STALE_INPUT" if velocity != (0.0, 0.0) else "IDLE"
            if state == "STALE_INPUT":
                scale_hint = 0.0  # braking against nobody's request
        else:
            state = "OK"
            target = clamp_velocity(request[0], request[1], limits)
            if not _close(target, request):
                reasons.add(LIMIT)
            command = limit_acceleration(target, velocity, reachable_box(velocity, limits, dt))
            if not _close(command, target):
                reasons.add(ACCEL)
            guard = guard_command(
                points if points is not None else np.zeros((0, 2)),
                cfg.footprint,
                command[0],
                command[1],
                cfg.reaction_time,
                limits.decel(emergency=True),
            )
            output = (command[0] * guard.scale, command[1] * guard.scale)
            if guard.scale < 1.0:
                reasons.add(COLLISION)
                emergency_box = reachable_box(velocity, limits, dt, emergency=True)
                if not in_box(output, emergency_box):
                    output = brake_along_arc(velocity, limits, dt)
                guard_changed = not _close(output, command)

        output = _finite_within_limits(output, limits)
        requested = request if request is not None else (0.0, 0.0)
        # An output equal to the request needs no reason, unless the guard produced it by
        # cutting the ramp towards it (e.g. a stop faster than max_decel): a safety stop.
        if _close(output, requested) and INVALID_INPUT not in reasons:
            reasons.clear()
            if guard_changed:
                reasons.add(COLLISION)
        frozen = frozenset(reasons)
        scale = (
            scale_hint if scale_hint is not None else _allowed_fraction(requested, output, limits)
        )
        if self._estop_latched or (request_fresh and not self._request_valid):
            scale = 0.0

        self._braking = state in ("NO_SCAN", "BLIND", "STALE_SCAN", "STALE_INPUT", "IDLE")
        self._output = output
        self._output_time = now
        self._record(now, frozen, state, min_clearance, request_age, scan_age, odom_stale)
        return FilterOutput(output[0], output[1], scale, frozen, min_clearance, state)

    def _record(
        self,
        now: float,
        reasons: frozenset[str],
        state: str,
        min_clearance: float,
        request_age: float,
        scan_age: float,
        odom_stale: bool,
    ) -> None:
        status = self.status
        status.steps += 1
        for reason in reasons - self._previous_reasons:
            status.counts[reason] += 1
        self._previous_reasons = reasons
        if reasons:
            status.last_intervention_reasons = reasons
        window = self._window
        if window and window[-1][0] > now:  # the clock went back
            window.clear()
        window.append((now, bool(reasons & SAFETY_REASONS)))
        while window[0][0] < now - self.config.intervention_window:
            window.popleft()
        status.intervention_rate = sum(flag for _, flag in window) / len(window) if window else 0.0
        status.state = state
        status.estop_latched = self._estop_latched
        status.estop_input = self._estop_input
        status.last_reasons = reasons
        status.min_clearance = min_clearance
        status.odom_stale = odom_stale
        status.input_age = request_age
        status.scan_age = scan_age
        status.odom_age = math.inf if self._odom_time is None else now - self._odom_time


def _close(a: Velocity, b: Velocity, tolerance: float = 1e-9) -> bool:
    return abs(a[0] - b[0]) <= tolerance and abs(a[1] - b[1]) <= tolerance


def _finite_within_limits(value: Velocity, limits: VelocityLimits) -> Velocity:
    if not (math.isfinite(value[0]) and math.isfinite(value[1])):
        return 0.0, 0.0
    clamped = clamp_velocity(value[0], value[1], limits)
    return float(clamped[0]), float(clamped[1])


def _allowed_fraction(request: Velocity, output: Velocity, limits: VelocityLimits) -> float:
    """How much of the request passed: projection of output on request, axes normalised."""
    span = (
        max(limits.max_velocity[0], -limits.min_velocity[0], 1e-9),
        max(limits.max_velocity[1], -limits.min_velocity[1], 1e-9),
    )
    req = (
        min(abs(request[0]), 1e6 * span[0]) * math.copysign(1.0, request[0]) / span[0],
        min(abs(request[1]), 1e6 * span[1]) * math.copysign(1.0, request[1]) / span[1],
    )
    out = (output[0] / span[0], output[1] / span[1])
    norm = req[0] * req[0] + req[1] * req[1]
    if norm <= 1e-18:
        return 1.0
    return min(1.0, max(0.0, (req[0] * out[0] + req[1] * out[1]) / norm))
