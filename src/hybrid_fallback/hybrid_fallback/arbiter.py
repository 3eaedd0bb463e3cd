"""Arbiter between the learned policy, the DWA fallback, teleop and stop (no rclpy).

A pure state machine: `update(inputs, now)` returns a `Decision` (mode, command source,
reason, whether the mode switched). Time is always passed in explicitly.

Modes: POLICY, FALLBACK, TELEOP, IDLE (no goal or goal reached), STOPPED (nothing healthy).

- POLICY -> FALLBACK when the policy reports inactive, its command is older than
  `policy_timeout`, it made less than `min_progress` toward the goal over `stall_window`
  (along the fallback's route when `stall_along_route`, else in a straight line), or
  the fraction of `safety/scale` samples below `intervention_scale_threshold` over
  `intervention_window` (judged once the policy has driven for a full window, with at
  least `intervention_min_samples` samples) exceeds `max_intervention_rate`. Silence,
  stall and interventions count as failures; an inactive policy (switched off, or it
  reports why it cannot run) does not, and `on_policy_disabled` decides between FALLBACK
  and STOPPED for it.
- POLICY -> FALLBACK also while the policy's command would meet a tracked moving
  obstacle (`moving_threat`, when `fallback_for_movers`): the DWA sees obstacles move and
  the policy does not. It is not a failure; the threat keeps the policy from counting as
  healthy, so it returns `retry_after` seconds after the threat has passed.
- FALLBACK/STOPPED -> POLICY after the policy has been healthy for
  `retry_after * 2**(failures - 1)` seconds (at least `retry_after`, at most
  `max_retry_delay`); after more than `max_retries` failures for one goal it stays in FALLBACK.
- Hysteresis: the policy counts as healthy for a return only while its command is younger
  than `healthy_age_fraction * policy_timeout` (stricter than the demotion threshold), for
  an uninterrupted period; STOPPED -> FALLBACK needs the fallback healthy for
  `fallback_recover_time`. A signal hovering at a threshold therefore cannot flap the mode.
- A teleop command younger than `teleop_timeout` overrides every mode; the autonomous state
  is frozen meanwhile and re-evaluated when teleop ends.
- Fallback unhealthy (no scan, blind, stale odom) where the fallback would drive -> STOPPED.
- The clock going back (a simulator restart, a /clock jump): remembered times later than
  `now` are moved to `now` and the stall and intervention windows start over, so every
  check keeps running on the new clock instead of waiting for it to catch up. Input
  times (`last_policy_cmd_time`...) must not be later than `now`: the caller caps them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum


class Mode(StrEnum):
    """What drives the robot."""

    POLICY = "POLICY"
    FALLBACK = "FALLBACK"
    TELEOP = "TELEOP"
    IDLE = "IDLE"
    STOPPED = "STOPPED"


class CommandSource(StrEnum):
    """Where the published command comes from."""

    POLICY = "policy"
    FALLBACK = "fallback"
    TELEOP = "teleop"
    ZERO = "zero"


SOURCE_OF_MODE = {
    Mode.POLICY: CommandSource.POLICY,
    Mode.FALLBACK: CommandSource.FALLBACK,
    Mode.TELEOP: CommandSource.TELEOP,
    Mode.IDLE: CommandSource.ZERO,
    Mode.STOPPED: CommandSource.ZERO,
}

ON_POLICY_DISABLED_CHOICES = ("fallback", "stop")


@dataclass(frozen=True)
class ArbiterConfig:
    """Thresholds and timings of the arbiter (seconds, metres, fractions)."""

    policy_timeout: float = 0.5
    teleop_timeout: float = 0.5
    goal_tolerance: float = 0.1
    stall_window: float = 5.0
    min_progress: float = 0.1
    intervention_window: float = 5.0
    intervention_scale_threshold: float = 0.9
    max_intervention_rate: float = 0.2
    intervention_min_samples: int = 10
    retry_after: float = 3.0
    max_retry_delay: float = 60.0
    max_retries: int = 0  # the first failure hands the goal to the fallback for good
    healthy_age_fraction: float = 0.5
    fallback_recover_time: float = 0.5
    on_policy_disabled: str = "fallback"
    stall_along_route: bool = True  # progress measured along the fallback's route
    fallback_for_movers: bool = False  # the DWA drives while a moving obstacle threatens

    def validate(self) -> None:
        """Raise ValueError naming the first invalid value."""
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{item.name} must be finite")
        for name in ("policy_timeout", "teleop_timeout", "stall_window", "intervention_window"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be > 0")
        for name in ("goal_tolerance", "min_progress", "retry_after", "fallback_recover_time"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_retry_delay < self.retry_after:
            raise ValueError("max_retry_delay must be >= retry_after")
        for name in ("intervention_scale_threshold", "max_intervention_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0.0 < self.healthy_age_fraction <= 1.0:
            raise ValueError("healthy_age_fraction must be in (0, 1]")
        if self.max_retries < 0 or self.intervention_min_samples < 1:
            raise ValueError("max_retries must be >= 0 and intervention_min_samples >= 1")
        if self.on_policy_disabled not in ON_POLICY_DISABLED_CHOICES:
            raise ValueError(f"on_policy_disabled must be one of {ON_POLICY_DISABLED_CHOICES}")


@dataclass(frozen=True)
class ArbiterInputs:
    """What the arbiter knows at one instant (times on the same clock as `now`)."""

    goal_id: int | None = None  # None: no goal; a new id means a new goal
    goal_distance: float = math.nan  # m from the robot to the goal, NaN when unknown
    policy_active: bool = False  # last `policy/active`
    last_policy_cmd_time: float | None = None  # arrival of the last `policy/cmd_vel`
    last_teleop_time: float | None = None  # arrival of the last valid `cmd_vel_teleop`
    fallback_healthy: bool = True  # the DWA has a fresh usable scan and odometry
    fallback_status: str = "ok"  # why the fallback is unhealthy
    position: tuple[float, float] | None = None  # the robot in the goal's frame
    # Distance to the goal along the current route at a position (NaN: unknown); with
    # `stall_along_route`, progress is judged with it, both ends on today's route.
    route_distance: Callable[[tuple[float, float]], float] | None = None
    # Why the policy's current command would meet a tracked moving obstacle ("": it would
    # not, or nothing is tracked).
    moving_threat: str = ""


@dataclass(frozen=True)
class Decision:
    """The arbiter's output for one update."""

    mode: Mode
    source: CommandSource
    reason: str  # why the current mode was entered
    switched: bool  # the mode changed in this update
    previous: Mode


@dataclass(frozen=True)
class SwitchRecord:
    """One mode switch, for diagnostics."""

    time: float
    from_mode: Mode
    to_mode: Mode
    reason: str


class Arbiter:
    """The mode state machine. Feed it `update()` every control period."""

    def __init__(self, config: ArbiterConfig | None = None, now: float = 0.0) -> None:
        self.config = config or ArbiterConfig()
        self.config.validate()
        self._mode = Mode.IDLE
        self._autonomy = Mode.IDLE  # the mode to return to when teleop ends
        self._reason = "no goal"
        self._autonomy_reason = "no goal"
        self._goal_id: int | None = None
        self._goal_reached = False
        self._failures = 0
        self._last_demotion_time = -math.inf
        self._healthy_since: float | None = None
        self._fallback_healthy_since: float | None = None
        self._policy_since = now
        # (time, straight-line distance to the goal, position) of recent policy updates
        self._progress: deque[tuple[float, float, tuple[float, float] | None]] = deque()
        self._scales: deque[tuple[float, float]] = deque()
        self._last_update = now
        self.time_in_mode: dict[Mode, float] = {mode: 0.0 for mode in Mode}
        self.switch_counts: dict[str, int] = {}
        self.history: deque[SwitchRecord] = deque(maxlen=10)

    @property
    def mode(self) -> Mode:
        """The current mode."""
        return self._mode

    @property
    def failures(self) -> int:
        """Policy failures (silence, stall, interventions) counted for the current goal."""
        return self._failures

    @property
    def retries_exhausted(self) -> bool:
        """True when the policy will not be retried any more for this goal."""
        return self._failures > self.config.max_retries

    def retry_delay(self) -> float:
        """Seconds of healthy policy needed before the next return to POLICY."""
        cfg = self.config
        if self._failures <= 1:
            return cfg.retry_after
        return min(cfg.retry_after * 2.0 ** (self._failures - 1), cfg.max_retry_delay)

    def record_safety_scale(self, scale: float, now: float) -> None:
        """Record a `safety/scale` sample; only samples taken under POLICY count."""
        if self._scales and self._scales[-1][0] > now:  # the clock went back
            self._scales.clear()
        if self._mode is Mode.POLICY and math.isfinite(scale):
            self._scales.append((now, float(scale)))
            self._trim_scales(now)

    def intervention_rate(self, now: float) -> tuple[float, int]:
        """Fraction of recent samples where safety cut the request, and the sample count."""
        self._trim_scales(now)
        count = len(self._scales)
        if count == 0:
            return 0.0, 0
        cut = sum(1 for _, s in self._scales if s < self.config.intervention_scale_threshold)
        return cut / count, count

    def update(self, inputs: ArbiterInputs, now: float) -> Decision:
        """Advance the state machine to `now` and return the decision."""
        previous = self._mode
        if now < self._last_update:
            self._clock_went_back(now)
        elapsed = max(0.0, now - self._last_update)
        self.time_in_mode[previous] += elapsed
        self._last_update = now
        self._track_goal(inputs)

        teleop_fresh = (
            inputs.last_teleop_time is not None
            and now - inputs.last_teleop_time <= self.config.teleop_timeout
        )
        if teleop_fresh:
            new_mode, reason = Mode.TELEOP, "teleop command received (overrides)"
            if previous is Mode.TELEOP:
                reason = self._reason
        else:
            if previous is Mode.TELEOP:
                # The robot was driven by hand: progress and interventions say nothing
                # about the policy, so they restart.
                self._progress.clear()
                self._scales.clear()
                self._policy_since = now
            autonomy, autonomy_reason = self._step_autonomy(inputs, now)
            if autonomy is not self._autonomy:
                self._enter_autonomy(autonomy, autonomy_reason, now)
            new_mode = self._autonomy
            reason = self._autonomy_reason
            if previous is Mode.TELEOP:
                reason = f"teleop released; {reason}"

        switched = new_mode is not previous
        if switched:
            self._mode = new_mode
            self._reason = reason
            key = f"{previous.value}->{new_mode.value}"
            self.switch_counts[key] = self.switch_counts.get(key, 0) + 1
            self.history.append(SwitchRecord(now, previous, new_mode, reason))
        return Decision(
            mode=self._mode,
            source=SOURCE_OF_MODE[self._mode],
            reason=self._reason,
            switched=switched,
            previous=previous,
        )

    def _clock_went_back(self, now: float) -> None:
        """Cap every remembered time at `now`; the progress and scale windows start over."""
        if self._healthy_since is not None:
            self._healthy_since = min(self._healthy_since, now)
        if self._fallback_healthy_since is not None:
            self._fallback_healthy_since = min(self._fallback_healthy_since, now)
        self._last_demotion_time = min(self._last_demotion_time, now)
        self._policy_since = min(self._policy_since, now)
        self._progress.clear()
        self._scales.clear()

    def goal_moved(self) -> None:
        """The current goal's coordinates were corrected (same goal id): it counts as not
        reached again and progress restarts, but the policy's failures for it still count."""
        self._goal_reached = False
        self._progress.clear()

    def _track_goal(self, inputs: ArbiterInputs) -> None:
        if inputs.goal_id != self._goal_id:
            self._goal_id = inputs.goal_id
            self._goal_reached = False
            self._failures = 0
            self._progress.clear()
        if (
            self._goal_id is not None
            and not self._goal_reached
            and math.isfinite(inputs.goal_distance)
            and inputs.goal_distance <= self.config.goal_tolerance
        ):
            self._goal_reached = True

    def _enter_autonomy(self, mode: Mode, reason: str, now: float) -> None:
        if self._autonomy is Mode.POLICY and mode is not Mode.POLICY:
            self._last_demotion_time = now
        if mode is Mode.POLICY:
            self._policy_since = now
            self._progress.clear()
            self._scales.clear()
        self._autonomy = mode
        self._autonomy_reason = reason

    def _policy_health(self, inputs: ArbiterInputs, now: float) -> tuple[bool, bool, bool, float]:
        """(active, fresh, strictly healthy for a return, command age)."""
        cfg = self.config
        age = math.inf if inputs.last_policy_cmd_time is None else now - inputs.last_policy_cmd_time
        fresh = age <= cfg.policy_timeout
        strictly = inputs.policy_active and age <= cfg.healthy_age_fraction * cfg.policy_timeout
        return inputs.policy_active, fresh, strictly, age

    def _step_autonomy(self, inputs: ArbiterInputs, now: float) -> tuple[Mode, str]:
        """The autonomous mode (not TELEOP) at `now`, and the reason when it changes."""
        cfg = self.config
        current = self._autonomy
        if self._goal_id is None:
            if current is Mode.IDLE:
                return current, self._autonomy_reason
            return Mode.IDLE, "no goal"
        if self._goal_reached:
            if current is Mode.IDLE:
                return current, self._autonomy_reason
            return Mode.IDLE, f"goal reached (within {cfg.goal_tolerance:g} m)"

        active, fresh, strictly_healthy, age = self._policy_health(inputs, now)
        threatened = cfg.fallback_for_movers and bool(inputs.moving_threat)
        strictly_healthy = strictly_healthy and not threatened
        if strictly_healthy:
            if self._healthy_since is None:
                self._healthy_since = now
        else:
            self._healthy_since = None
        if inputs.fallback_healthy:
            if self._fallback_healthy_since is None:
                self._fallback_healthy_since = now
        else:
            self._fallback_healthy_since = None

        if current is Mode.IDLE:
            if active and fresh and not self.retries_exhausted:
                return Mode.POLICY, "new goal; policy active"
            return self._without_policy(inputs, now, self._idle_reason(active, age))

        if current is Mode.POLICY:
            failure = self._policy_failure(inputs, now, active, fresh, age)
            if failure is None:
                return current, self._autonomy_reason
            reason, counts_as_failure = failure
            if counts_as_failure:
                self._failures += 1
                if self.retries_exhausted:
                    reason += f"; max_retries ({cfg.max_retries}) used, staying without policy"
            return self._without_policy(inputs, now, reason, from_policy=True)

        # FALLBACK or STOPPED: retry the policy once it has been healthy long enough.
        if not self.retries_exhausted and self._healthy_since is not None:
            healthy_for = now - max(self._healthy_since, self._last_demotion_time)
            delay = self.retry_delay()
            if healthy_for >= delay - 1e-9:
                retry_note = f", retry {self._failures}" if self._failures else ""
                return Mode.POLICY, f"policy healthy for {healthy_for:.2f} s{retry_note}"
        reason = "policy inactive" if not active else "policy not healthy"
        return self._without_policy(inputs, now, reason)

    def _idle_reason(self, active: bool, age: float) -> str:
        if not active:
            return "new goal; policy inactive"
        if math.isinf(age):
            return "new goal; no policy/cmd_vel received"
        return f"new goal; policy/cmd_vel silent for {age:.2f} s"

    def _without_policy(
        self, inputs: ArbiterInputs, now: float, reason: str, from_policy: bool = False
    ) -> tuple[Mode, str]:
        """FALLBACK or STOPPED when the policy cannot drive."""
        current = self._autonomy
        stop_for_disabled = not inputs.policy_active and self.config.on_policy_disabled == "stop"
        if stop_for_disabled:
            if current is Mode.STOPPED:
                return current, self._autonomy_reason
            return Mode.STOPPED, f"{reason}; on_policy_disabled=stop"
        if not inputs.fallback_healthy:
            if current is Mode.STOPPED:
                return current, self._autonomy_reason
            return Mode.STOPPED, f"{reason}; fallback unhealthy: {inputs.fallback_status}"
        if current is Mode.FALLBACK:
            return current, self._autonomy_reason
        if current is Mode.STOPPED:
            assert self._fallback_healthy_since is not None
            if now - self._fallback_healthy_since >= self.config.fallback_recover_time - 1e-9:
                return Mode.FALLBACK, f"fallback healthy again; {reason}"
            return current, self._autonomy_reason
        return Mode.FALLBACK, reason

    def _policy_failure(
        self, inputs: ArbiterInputs, now: float, active: bool, fresh: bool, age: float
    ) -> tuple[str, bool] | None:
        """(reason, counts as a failure) when the policy must hand over, else None."""
        cfg = self.config
        if not active:
            return "policy/active false", False
        if not fresh:
            silent_for = "ever" if math.isinf(age) else f"{age:.2f} s"
            return (
                f"policy/cmd_vel silent for {silent_for} "
                f"(> policy_timeout {cfg.policy_timeout:g} s)",
                True,
            )
        if cfg.fallback_for_movers and inputs.moving_threat:
            return f"moving obstacle: {inputs.moving_threat}", False
        stall = self._stall(inputs, now)
        if stall is not None:
            return stall, True
        rate, count = self.intervention_rate(now)
        # Judged only over a full window: a few early samples say little about the policy.
        window_full = now - self._policy_since >= cfg.intervention_window - 1e-9
        if (
            window_full
            and count >= cfg.intervention_min_samples
            and rate > cfg.max_intervention_rate
        ):
            return (
                f"safety intervention rate {rate:.2f} > {cfg.max_intervention_rate:g} "
                f"over {cfg.intervention_window:g} s",
                True,
            )
        return None

    def _stall(self, inputs: ArbiterInputs, now: float) -> str | None:
        """A reason when the policy made too little progress over the stall window.

        Progress is the drop of the distance to the goal: along the fallback's current
        route when `stall_along_route` and the route covers both ends (a policy heading
        into a dead end toward the goal makes none), else in a straight line.
        """
        cfg = self.config
        distance = inputs.goal_distance
        if not math.isfinite(distance):
            return None
        self._progress.append((now, distance, inputs.position))
        horizon = now - cfg.stall_window
        # Keep exactly one sample at or before the window start as the reference.
        while len(self._progress) >= 2 and self._progress[1][0] <= horizon:
            self._progress.popleft()
        if now - self._policy_since < cfg.stall_window - 1e-9:
            return None
        then, distance_then, position_then = self._progress[0]
        if then > horizon + 1e-9:
            return None
        measure = "toward the goal"
        if (
            cfg.stall_along_route
            and inputs.route_distance is not None
            and inputs.position is not None
            and position_then is not None
        ):
            route_then = inputs.route_distance(position_then)
            route_now = inputs.route_distance(inputs.position)
            if math.isfinite(route_then) and math.isfinite(route_now):
                distance_then, distance = route_then, route_now
                measure = "along the route to the goal"
        progress = distance_then - distance
        # Close to the goal less than min_progress may be left to make.
        required = min(cfg.min_progress, 0.5 * distance_then)
        if progress < required:
            return (
                f"no progress: {progress:.2f} m {measure} in {now - then:.1f} s "
                f"(< min_progress {required:.2f} m)"
            )
        return None

    def _trim_scales(self, now: float) -> None:
        horizon = now - self.config.intervention_window
        while self._scales and self._scales[0][0] < horizon:
            self._scales.popleft()
