"""The stateful safety filter between the navigation command and the wheels; no rclpy.

Every call takes an explicit `now` (seconds, any monotonic clock); the filter never reads
a clock itself. One `step(now)` turns the latest request into the command to publish:

1. latched e-stop, a non-finite request or a non-finite `now` -> zero at once;
2. no request for `velocity_timeout`, or no usable scan (none, rejected by the scan
   validator, older than `source_timeout`, blind, or without any return for that long)
   -> brake to zero at emergency_decel along the current arc;
3. otherwise: velocity limits (curvature kept) -> acceleration limits against the
   previous output over the elapsed time -> collision guard scale. If the guard asks for
   a faster slow-down than emergency_decel allows, the filter brakes at emergency_decel
   along the current arc instead, which the previous step's guard already proved safe.

Time cannot make it faster: ramps start from the previous output (never from odometry),
over max(0, elapsed) capped at `max_step`; a clock that goes back starts a new time base
without a step up; a repeated `now` can only repeat or lower the output, and such a repeat
is marked `hold` so the shell does not re-send it (re-sending would refresh the base's
command watchdog without a new certificate: with a stalled clock the base then stops on
its own horizon, which the guard's reaction budget covers).

What the guard treats as an obstacle: the scan's returns (a -inf return is something
anywhere between the sensor and range_min along its beam), and the edges of space the
lidar does not see (outside its field of view, long runs without a measurement) unless an
earlier scan, dead-reckoned and at most `memory_time` old, saw it free; earlier returns in
directions not seen now count too. Parts of the scan that close in faster than the ego
motion explains are moving obstacles: they are advanced by how far they can close before
the robot could stop. Scan points are carried forward by dead reckoning on the measured
velocity (odometry when `closed_loop` and fresh, else the last output).
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
from safety_controller.obstacle_motion import ClosingSpeeds
from safety_controller.scan_geometry import ScanPoints, Visibility

LIMIT = "limit"
ACCEL = "accel"
COLLISION = "collision"
BLIND_DIRECTION = "blind_direction"
ESTOP = "estop"
STALE_INPUT = "stale_input"
BLIND = "blind"
INVALID_INPUT = "invalid_input"
REASONS = (LIMIT, ACCEL, COLLISION, BLIND_DIRECTION, ESTOP, STALE_INPUT, BLIND, INVALID_INPUT)
# Reasons that override the request for safety (limit/accel only shape it).
SAFETY_REASONS = frozenset({COLLISION, BLIND_DIRECTION, ESTOP, STALE_INPUT, BLIND, INVALID_INPUT})
# Reasons whose output may skip the acceleration limits (a step to zero).
HARD_STOP_REASONS = frozenset({ESTOP, INVALID_INPUT})
# States in which the output is a stop ramp.
BRAKING_STATES = frozenset(
    {"NO_SCAN", "BLIND", "STALE_SCAN", "EMPTY_SCAN", "INVALID_SCAN", "STALE_INPUT", "IDLE"}
)

# Steps of motion history kept for late scans (covers source_timeout at >= 20 Hz twice over).
MOTION_LOG_STEPS = 64
# Earlier scans kept to prove unseen directions free (10 Hz over 6 s).
MEMORY_SCANS = 60
# Memory keeps one scan per this much travel (m) or turn (rad) ...
MEMORY_SPACING = 0.03
MEMORY_TURN = math.radians(3.0)
# ... and its points within the guard's reach plus this much travel (m).
MEMORY_TRAVEL = 1.0
# Added to the guard's reach (m) when pruning points that cannot limit a command.
REACH_SLACK = 0.1
# Synthetic points (frontier, near field) deeper than this inside the body are the robot.
BODY_TOLERANCE = 1e-3

Pose = tuple[float, float, float]


@dataclass(frozen=True)
class SafetyConfig:
    """Everything the filter needs to know about the robot and its sensors."""

    limits: VelocityLimits = field(default_factory=VelocityLimits)
    footprint: Footprint = field(default_factory=lambda: Footprint(radius=0.11, margin=0.05))
    reaction_time: float = 0.15  # s: latency until a command takes effect, >= control period
    velocity_timeout: float = 0.5  # s without a request -> brake to zero
    source_timeout: float = 0.5  # s without a scan -> blind
    odom_timeout: float = 0.5  # s without odometry -> use the last output as velocity
    closed_loop: bool = True  # dead-reckon scans on fresh odometry (else on the last output)
    intervention_window: float = 5.0  # s over which the intervention rate is taken
    max_step: float = 0.25  # s: cap on the elapsed time used for acceleration limits
    allow_empty_scans: bool = False  # a scan without any return is "nothing there"
    memory_time: float = 2.0  # s an earlier scan may prove an unseen direction free
    max_obstacle_speed: float = 0.5  # m/s cap on closing speeds; 0 treats all as static

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
        for name in ("memory_time", "max_obstacle_speed"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")


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
    state: str  # OK, ESTOP, INVALID_INPUT, INVALID_TIME, STALE_INPUT, IDLE, BLIND, ...
    # True: the same non-zero command as the last output at no later time. Re-sending it
    # would refresh the base's command watchdog without a new certificate: do not publish.
    hold: bool = False


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
    invalid_times: int = 0
    clock_jumps_back: int = 0
    rejected_scans: int = 0
    last_rejected_reason: str = ""
    empty_scans: int = 0
    held_outputs: int = 0
    closing_speed: float = 0.0  # m/s, fastest closing sector of the last scan pair
    steps: int = 0


@dataclass
class _Observation:
    """One accepted scan: where the robot was when it was taken, and what it showed."""

    pose: Pose  # dead-reckoned pose of the base when taken (the filter's own frame)
    time: float
    points: np.ndarray  # obstacles, including the near field of -inf beams
    frontier: np.ndarray  # edges of unobserved space
    visibility: Visibility | None
    blind: bool
    reach: float = math.inf  # m around its pose within which its points are kept in memory


def _within(points: np.ndarray, radius: float) -> np.ndarray:
    """Mask of the points within `radius` of the base centre."""
    return np.einsum("ij,ij->i", points, points) <= radius * radius


def compose(a: Pose, b: Pose) -> Pose:
    """Pose b (given in frame a) expressed in a's parent frame."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return (a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], a[2] + b[2])


def inverse(a: Pose) -> Pose:
    """The pose that undoes `a`."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return (-c * a[0] - s * a[1], s * a[0] - c * a[1], -a[2])


class SafetyFilter:
    """Limits, collision guard, latched e-stop and watchdogs for one robot."""

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()
        self._body = self.config.footprint.with_margin(0.0)
        self._output: Velocity = (0.0, 0.0)
        # (from, to, velocity) of the recent steps, to dead-reckon scans that arrive late
        self._motion_log: deque[tuple[float, float, Velocity]] = deque(maxlen=MOTION_LOG_STEPS)
        self._output_time: float | None = None
        self._pose: Pose = (0.0, 0.0, 0.0)  # dead-reckoned pose at _output_time
        self._request: Velocity | None = None
        self._request_valid = True
        self._request_time: float | None = None
        self._scan: _Observation | None = None
        self._memory: deque[_Observation] = deque(maxlen=MEMORY_SCANS)
        self._scan_rejected = False
        self._last_scan_empty = False
        self._closing = ClosingSpeeds()
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
        self._body = config.footprint.with_margin(0.0)

    def set_command(self, linear: float, angular: float, now: float) -> bool:
        """Record a request; False (and counted) when it is not finite."""
        if not math.isfinite(now):
            self.status.invalid_times += 1
            return False
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

        A scan without any return (every beam +inf or missing) does not refresh the scan,
        unless `allow_empty_scans`: a covered or broken lidar looks like an empty hall, so
        the last scan that saw something goes stale and the robot stops after
        `source_timeout`.
        """
        if not math.isfinite(now):
            self.status.invalid_times += 1
            return
        if not scan.blind and not scan.sees_anything and not self.config.allow_empty_scans:
            self._last_scan_empty = True
            self.status.empty_scans += 1
            return
        taken = now
        if stamp is not None and math.isfinite(stamp):
            if 0.0 <= now - stamp <= self.config.source_timeout:
                taken = stamp
        observation = _Observation(
            pose=self._pose_at(taken),
            time=taken,
            points=self._obstacles(scan),
            frontier=self._outside_body(scan.frontier),
            visibility=scan.visibility,
            blind=scan.blind,
        )
        previous = self._scan
        self._scan = observation
        self._scan_rejected = False
        self._last_scan_empty = False
        if scan.blind:
            return
        self._remember(observation)
        if previous is None or previous.blind:
            self._closing.reset()
        else:
            self._closing.update(
                self._in_frame(previous.points, previous.pose, observation.pose),
                observation.points,
                taken - previous.time,
                self.config.max_obstacle_speed,
            )
        self.status.closing_speed = float(self._closing.speeds.max())

    def _remember(self, observation: _Observation) -> None:
        """Keep a scan for later; one taken from nearly the same pose replaces the last."""
        reach = self._guard_reach() + MEMORY_TRAVEL
        observation.reach = reach
        if self._memory:
            last = self._memory[-1]
            dx, dy, dyaw = compose(inverse(last.pose), observation.pose)
            if math.hypot(dx, dy) < MEMORY_SPACING and abs(dyaw) < MEMORY_TURN:
                self._memory.pop()
        self._memory.append(observation)

    def reject_scan(self, now: float, reason: str) -> None:
        """A scan the validator refused arrived: blind (brake to zero) until a valid one."""
        self._scan_rejected = True
        self.status.rejected_scans += 1
        self.status.last_rejected_reason = reason

    def set_odometry(self, linear: float, angular: float, now: float) -> bool:
        """Record the measured velocity; False (ignored) when it is not finite."""
        if not (math.isfinite(linear) and math.isfinite(angular) and math.isfinite(now)):
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

    # ---- geometry -----------------------------------------------------------------------

    def _outside_body(self, points: np.ndarray | None) -> np.ndarray:
        """Synthetic points minus those inside the robot's own outline."""
        if points is None or points.shape[0] == 0:
            return np.zeros((0, 2))
        body = self._body.clearance(points)
        return points[body >= -BODY_TOLERANCE]

    def _obstacles(self, scan: ScanPoints) -> np.ndarray:
        points = np.asarray(scan.points, dtype=np.float64).reshape(-1, 2)
        near = self._outside_body(scan.near_field)
        return np.concatenate((points, near)) if near.shape[0] else points

    def _pose_at(self, taken: float) -> Pose:
        """Dead-reckoned pose of the base at time `taken`."""
        if self._output_time is None:
            return self._pose
        if taken >= self._output_time:
            # The next step dead-reckons this stretch on the velocity measured then.
            velocity = self._measured_velocity(taken)[0]
            return compose(self._pose, pose_along(*velocity, taken - self._output_time))
        # Undo the motion from `taken` to the last output, as the steps saw it.
        back: Pose = (0.0, 0.0, 0.0)
        for start, end, velocity in self._motion_log:
            low, high = max(start, taken), min(end, self._output_time)
            if high > low:
                back = compose(back, pose_along(velocity[0], velocity[1], high - low))
        return compose(self._pose, inverse(back))

    @staticmethod
    def _in_frame(points: np.ndarray, pose: Pose, target: Pose) -> np.ndarray:
        """Points given in the frame of `pose`, expressed in the frame of `target`."""
        if points.shape[0] == 0:
            return points
        return to_moved_frame(points, *compose(inverse(pose), target))

    def _guard_points(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(obstacle points, unobserved-edge points) in the present base frame."""
        scan = self._scan
        assert scan is not None
        cfg = self.config
        points = self._in_frame(scan.points, scan.pose, self._pose)
        if self._closing.moving():
            limits = cfg.limits
            stop_time = (
                max(limits.max_velocity[0], -limits.min_velocity[0])
                / limits.decel(emergency=True)[0]
            )
            points = self._closing.advance(
                points,
                max(0.0, now - scan.time) + cfg.reaction_time + stop_time,
                self._body.bounding_radius,
            )
        frontier = self._in_frame(scan.frontier, scan.pose, self._pose)
        frontier = frontier[_within(frontier, self._guard_reach())]
        if frontier.shape[0] == 0 or scan.visibility is None:
            return points, frontier
        remembered = [
            m
            for m in self._memory
            if m is not scan and 0.0 <= now - m.time <= cfg.memory_time and not m.blind
        ]
        unexplained = np.ones(frontier.shape[0], dtype=bool)
        extra = []
        for memory in remembered:
            if memory.visibility is None:
                continue
            # Frontier seen free by this earlier scan is not unknown.
            in_memory = self._in_frame(frontier, self._pose, memory.pose)
            unexplained &= ~memory.visibility.proves_free(in_memory)
            # Its returns in directions the present scan does not see are still obstacles.
            near = memory.points[_within(memory.points, memory.reach)]
            in_scan = self._in_frame(near, memory.pose, scan.pose)
            hidden = ~scan.visibility.proves_free(in_scan, tolerance=-0.02)
            if np.any(hidden):
                extra.append(self._in_frame(near[hidden], memory.pose, self._pose))
        if extra:
            points = np.concatenate([points, *extra])
        return points, frontier[unexplained]

    def _guard_reach(self) -> float:
        """Distance (m) from the base centre beyond which no point can limit a command."""
        cfg = self.config
        limits = cfg.limits
        speed = max(limits.max_velocity[0], -limits.min_velocity[0])
        decel = limits.decel(emergency=True)[0]
        travel = speed * (cfg.reaction_time + speed / (2.0 * decel))
        return cfg.footprint.bounding_radius + 2.0 * travel + REACH_SLACK

    # ---- the filter ---------------------------------------------------------------------

    def _measured_velocity(self, now: float) -> tuple[Velocity, bool]:
        odom_fresh = (
            self._odom_time is not None and 0.0 <= now - self._odom_time <= self.config.odom_timeout
        )
        if self.config.closed_loop and odom_fresh:
            return self._odom, False
        return self._output, not odom_fresh

    def _rebase(self, now: float) -> None:
        """The clock went back: shift every stored time so ages stay as they were."""
        shift = now - (self._output_time or now)
        self.status.clock_jumps_back += 1

        def rebased(time: float | None) -> float | None:
            # Anything later than `now` was stamped before the jump; the rest after it.
            return time + shift if time is not None and time > now else time

        self._request_time = rebased(self._request_time)
        self._odom_time = rebased(self._odom_time)
        if self._scan is not None:
            self._scan.time = rebased(self._scan.time)
        # Earlier scans could belong to another episode (a simulation reset): forget them.
        self._memory.clear()
        if self._scan is not None and not self._scan.blind:
            self._memory.append(self._scan)
        self._motion_log.clear()
        self._window.clear()
        self._output_time = now

    def _invalid_time(self) -> FilterOutput:
        """A non-finite `now`: stop at once, keep the time base."""
        self.status.invalid_times += 1
        self._output = (0.0, 0.0)
        reasons = frozenset({INVALID_INPUT})
        self.status.steps += 1
        self.status.state = "INVALID_TIME"
        self.status.last_reasons = reasons
        self.status.last_intervention_reasons = reasons
        return FilterOutput(0.0, 0.0, 0.0, reasons, self.status.min_clearance, "INVALID_TIME")

    def step(self, now: float) -> FilterOutput:
        """Compute the command to publish at time `now`."""
        if not math.isfinite(now):
            return self._invalid_time()
        cfg = self.config
        limits = cfg.limits
        if self._output_time is not None and now < self._output_time:
            self._rebase(now)
        elapsed = 0.0 if self._output_time is None else now - self._output_time
        velocity, odom_stale = self._measured_velocity(now)
        if elapsed > 0.0:
            self._pose = compose(self._pose, pose_along(velocity[0], velocity[1], elapsed))
            self._motion_log.append((now - elapsed, now, velocity))
        dt = min(elapsed, cfg.max_step)
        previous = self._output

        request_age = math.inf if self._request_time is None else now - self._request_time
        request_fresh = (
            self._request_time is not None and 0.0 <= request_age <= cfg.velocity_timeout
        )
        request: Velocity | None = self._request if request_fresh else None
        scan = self._scan
        scan_age = math.inf if scan is None else now - scan.time
        scan_usable = (
            scan is not None
            and not self._scan_rejected
            and 0.0 <= scan_age <= cfg.source_timeout
            and not scan.blind
        )

        points = frontier = None
        min_clearance = math.inf
        if scan is not None:
            points, frontier = self._guard_points(now)
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
            output = brake_along_arc(previous, limits, dt)
            reasons.add(BLIND)
            if self._scan_rejected:
                state = "INVALID_SCAN"
            elif scan is None:
                state = "NO_SCAN"
            elif scan.blind:
                state = "BLIND"
            elif self._last_scan_empty:
                state = "EMPTY_SCAN"
            else:
                state = "STALE_SCAN"
            scale_hint = 0.0
        elif request is None:
            output = brake_along_arc(previous, limits, dt)
            reasons.add(STALE_INPUT)
            state = "STALE_INPUT" if previous != (0.0, 0.0) else "IDLE"
            if state == "STALE_INPUT":
                scale_hint = 0.0  # braking against nobody's request
        else:
            state = "OK"
            target = clamp_velocity(request[0], request[1], limits)
            if not _close(target, request):
                reasons.add(LIMIT)
            command = limit_acceleration(target, previous, reachable_box(previous, limits, dt))
            if not _close(command, target):
                reasons.add(ACCEL)
            assert points is not None and frontier is not None
            decel = limits.decel(emergency=True)
            guard = guard_command(
                points, cfg.footprint, command[0], command[1], cfg.reaction_time, decel
            )
            scale = guard.scale
            if frontier.shape[0] and scale > 0.0:
                unseen = guard_command(
                    np.concatenate((points, frontier)),
                    cfg.footprint,
                    command[0],
                    command[1],
                    cfg.reaction_time,
                    decel,
                )
                if unseen.scale < scale:
                    scale = unseen.scale
                    reasons.add(BLIND_DIRECTION)
                elif guard.scale < 1.0:
                    reasons.add(COLLISION)
            elif guard.scale < 1.0:
                reasons.add(COLLISION)
            output = (command[0] * scale, command[1] * scale)
            if scale < 1.0:
                emergency_box = reachable_box(previous, limits, dt, emergency=True)
                if not in_box(output, emergency_box):
                    output = brake_along_arc(previous, limits, dt)
                guard_changed = not _close(output, command)

        output = _finite_within_limits(output, limits)
        requested = request if request is not None else (0.0, 0.0)
        # An output equal to the request needs no reason, unless the guard produced it by
        # cutting the ramp towards it, or it brakes harder than max_decel allows: a safety
        # stop keeps its safety reasons.
        if _close(output, requested) and INVALID_INPUT not in reasons:
            guard_reasons = reasons & {COLLISION, BLIND_DIRECTION}
            hard = not in_box(output, reachable_box(previous, limits, dt))
            kept = reasons & SAFETY_REASONS if hard else set()
            reasons.clear()
            if guard_changed:
                reasons |= guard_reasons or {COLLISION}
            reasons |= kept
        frozen = frozenset(reasons)
        scale = (
            scale_hint if scale_hint is not None else _allowed_fraction(requested, output, limits)
        )
        if self._estop_latched or (request_fresh and not self._request_valid):
            scale = 0.0
        hold = (
            self._output_time is not None
            and elapsed <= 0.0
            and output != (0.0, 0.0)
            and _close(output, previous)
        )
        if hold:
            self.status.held_outputs += 1

        self._output = output
        self._output_time = now
        self._record(now, frozen, state, min_clearance, request_age, scan_age, odom_stale)
        return FilterOutput(output[0], output[1], scale, frozen, min_clearance, state, hold)

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
