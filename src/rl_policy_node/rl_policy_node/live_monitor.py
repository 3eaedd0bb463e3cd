"""Live monitor of the policy while it drives (no ROS): rates over a sliding window.

The node feeds `LiveMonitor` once per control tick (`record_tick`) and on goal events;
`report(now_s)` judges the window and returns a `MonitorReport` with a diagnostic level
(0 OK, 1 WARN, 2 ERROR), the reasons and the key/values for ``/diagnostics``. Every
method takes the time ``now_s`` (seconds, one clock, e.g. ROS time) explicitly.

The window is the last `window` seconds of ticks where the policy **drove** (``active``:
its command is the one the arbiter forwards), however spread out, and no tick older than
`max_age`: with the arbiter handing goals to the fallback, a weak model drives in short
bursts, and a window of driving time still collects enough of them to judge it. Ticks
where the fallback drives say nothing about the policy and are not counted. Measured:

- intervention rate: fraction of active ticks where the safety filter cut the request
  (``safety/scale`` below hybrid_fallback's ``intervention_scale_threshold``, as the
  arbiter counts it);
- stall rate: fraction of active ticks where the distance to the goal dropped by less
  than ``min(min_progress, half the distance)`` over the last `stall_window` seconds of
  uninterrupted driving on one goal (the arbiter's no-progress test; ticks before a full
  stall window of driving are not stalled);
- inference overrun rate: fraction of active ticks whose inference overran;
- near misses: the closest scan return falling below `near_miss_distance` while the
  policy drives (one event per approach: it re-arms `NEAR_MISS_REARM_M` above it).

Goals are judged over `goal_window` seconds: the arbiter's take-overs from the policy
for a failure (`policy_handed_over`; the node sees hybrid/mode leave POLICY while
policy/active stays true: the policy's try at that goal failed), reached and failed
goals (a new goal replacing an unreached one, or one in progress longer than `max_goal_time`, both
detected here), and the mean time per reached goal against the card's evaluation
baseline (`baseline_from_evaluation`) when there is one (none: not judged by time).

Rates get no verdict until the window holds `min_active_s` seconds and `min_samples`
ticks of driving, so one bad tick right after a swap cannot raise an ERROR; near misses,
hand-overs and goal failures are counted events, judged at once against their limits.
Call `reset` when another model starts driving.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields

from rl_policy_node.policy_diagnostics import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN, format_number
from rlguard_common.parameters import ParameterSpec

# A tick counts for at most this long in active-time sums: a longer gap (a paused node)
# is not time the policy spent driving.
MAX_TICK_GAP_S = 1.0
# The clock going back by more than this (s) is a restart (a new sim run); a smaller step
# back is an event stamped by a callback while a tick was under way, and changes nothing.
CLOCK_RESTART_S = 1.0
# A near miss re-arms once the clearance is this far (m) above the near-miss distance.
NEAR_MISS_REARM_M = 0.05
# Evaluation modes whose summary serves as the baseline, in order of preference: the full
# stack (policy, arbiter and filter) is what runs on the robot; policy behind the filter next.
BASELINE_MODES = ("stack", "policy_safety")

PARAMETER_PREFIX = "monitor_"


@dataclass(frozen=True)
class MonitorSettings:
    """Window, thresholds and verdict gating of the live monitor (s, m, fractions)."""

    window: float = 20.0
    max_age: float = 300.0
    min_active_s: float = 10.0
    min_samples: int = 100
    warn_intervention_rate: float = 0.45
    max_intervention_rate: float = 0.65
    stall_window: float = 3.0
    min_progress: float = 0.1
    warn_stall_rate: float = 0.3
    max_stall_rate: float = 0.6
    near_miss_distance: float = 0.12
    max_near_misses: int = 3
    max_handovers: int = 2
    warn_overrun_rate: float = 0.05
    max_overrun_rate: float = 0.2
    goal_window: float = 600.0
    max_goal_time: float = 120.0
    min_goals: int = 2
    warn_goal_time_ratio: float = 2.0
    max_goal_time_ratio: float = 3.0
    max_goal_failures: int = 3

    def validate(self) -> None:
        """Raise ValueError naming the first invalid value (bounds and warn <= max)."""
        for name, spec in MONITOR_PARAMETERS.items():
            value = getattr(self, name.removeprefix(PARAMETER_PREFIX))
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be finite")
            problem = spec.out_of_bounds(name, value)
            if problem:
                raise ValueError(problem)
        for warn, error in (
            ("warn_intervention_rate", "max_intervention_rate"),
            ("warn_stall_rate", "max_stall_rate"),
            ("warn_overrun_rate", "max_overrun_rate"),
            ("warn_goal_time_ratio", "max_goal_time_ratio"),
        ):
            if getattr(self, warn) > getattr(self, error):
                raise ValueError(
                    f"{PARAMETER_PREFIX}{warn} ({getattr(self, warn)}) must be <= "
                    f"{PARAMETER_PREFIX}{error} ({getattr(self, error)})"
                )
        for short, long in (("stall_window", "window"), ("window", "max_age")):
            if getattr(self, short) > getattr(self, long):
                raise ValueError(
                    f"{PARAMETER_PREFIX}{short} ({getattr(self, short)}) must be <= "
                    f"{PARAMETER_PREFIX}{long} ({getattr(self, long)})"
                )


_DEFAULTS = MonitorSettings()

MONITOR_PARAMETERS: dict[str, ParameterSpec] = {
    "monitor_window": ParameterSpec(
        _DEFAULTS.window,
        "Live monitor: the rates, near misses and hand-overs cover the last this many "
        "seconds of policy driving (s).",
        bounds=(1.0, 3600.0),
    ),
    "monitor_max_age": ParameterSpec(
        _DEFAULTS.max_age,
        "Live monitor: driving older than this (s) leaves the window even when the policy "
        "drove less than monitor_window since.",
        bounds=(1.0, 86_400.0),
    ),
    "monitor_min_active_s": ParameterSpec(
        _DEFAULTS.min_active_s,
        "Live monitor: seconds of policy driving the window needs before its rates are "
        "judged (one bad tick after a swap is no verdict).",
        bounds=(0.0, 3600.0),
    ),
    "monitor_min_samples": ParameterSpec(
        _DEFAULTS.min_samples,
        "Live monitor: active ticks a rate needs in the window before it is judged.",
        bounds=(1, 1_000_000),
    ),
    "monitor_warn_intervention_rate": ParameterSpec(
        _DEFAULTS.warn_intervention_rate,
        "Live monitor: WARN above this fraction of active ticks the safety filter cut.",
        bounds=(0.0, 1.0),
    ),
    "monitor_max_intervention_rate": ParameterSpec(
        _DEFAULTS.max_intervention_rate,
        "Live monitor: ERROR (rollback on probation) above this safety intervention rate.",
        bounds=(0.0, 1.0),
    ),
    "monitor_stall_window": ParameterSpec(
        _DEFAULTS.stall_window,
        "Live monitor: a tick is stalled when the goal distance dropped by less than "
        "monitor_min_progress over this many seconds of driving (s).",
        bounds=(0.1, 600.0),
    ),
    "monitor_min_progress": ParameterSpec(
        _DEFAULTS.min_progress,
        "Live monitor: progress (m) toward the goal expected per monitor_stall_window "
        "(at most half the remaining distance).",
        bounds=(0.0, 100.0),
    ),
    "monitor_warn_stall_rate": ParameterSpec(
        _DEFAULTS.warn_stall_rate,
        "Live monitor: WARN above this fraction of judged active ticks stalled.",
        bounds=(0.0, 1.0),
    ),
    "monitor_max_stall_rate": ParameterSpec(
        _DEFAULTS.max_stall_rate,
        "Live monitor: ERROR (rollback on probation) above this stall rate.",
        bounds=(0.0, 1.0),
    ),
    "monitor_near_miss_distance": ParameterSpec(
        _DEFAULTS.near_miss_distance,
        "Live monitor: the closest scan return (m) dropping below this while the policy "
        "drives is a near miss (default: just outside a 0.11 m footprint).",
        bounds=(0.0, 10.0),
    ),
    "monitor_max_near_misses": ParameterSpec(
        _DEFAULTS.max_near_misses,
        "Live monitor: ERROR at this many near misses in the window (judged at once, "
        "even before monitor_min_active_s); one is a WARN.",
        bounds=(1, 100_000),
    ),
    "monitor_max_handovers": ParameterSpec(
        _DEFAULTS.max_handovers,
        "Live monitor: ERROR at this many arbiter take-overs from the policy (no progress, "
        "interventions, silence) in monitor_goal_window; fewer are a WARN.",
        bounds=(1, 100_000),
    ),
    "monitor_warn_overrun_rate": ParameterSpec(
        _DEFAULTS.warn_overrun_rate,
        "Live monitor: WARN above this fraction of active ticks with an inference overrun.",
        bounds=(0.0, 1.0),
    ),
    "monitor_max_overrun_rate": ParameterSpec(
        _DEFAULTS.max_overrun_rate,
        "Live monitor: ERROR above this inference overrun rate.",
        bounds=(0.0, 1.0),
    ),
    "monitor_goal_window": ParameterSpec(
        _DEFAULTS.goal_window,
        "Live monitor: window (s) of the goal counts and the mean time per goal.",
        bounds=(1.0, 86_400.0),
    ),
    "monitor_max_goal_time": ParameterSpec(
        _DEFAULTS.max_goal_time,
        "Live monitor: a goal in progress longer than this (s) counts as failed (timeout).",
        bounds=(1.0, 86_400.0),
    ),
    "monitor_min_goals": ParameterSpec(
        _DEFAULTS.min_goals,
        "Live monitor: reached goals the goal window needs before the mean time per goal "
        "is judged against the card's baseline.",
        bounds=(1, 10_000),
    ),
    "monitor_warn_goal_time_ratio": ParameterSpec(
        _DEFAULTS.warn_goal_time_ratio,
        "Live monitor: WARN when the mean time per goal exceeds this multiple of the card's "
        "evaluation mean (no card baseline: not judged).",
        bounds=(1.0, 1000.0),
    ),
    "monitor_max_goal_time_ratio": ParameterSpec(
        _DEFAULTS.max_goal_time_ratio,
        "Live monitor: ERROR when the mean time per goal exceeds this multiple of the "
        "card's evaluation mean.",
        bounds=(1.0, 1000.0),
    ),
    "monitor_max_goal_failures": ParameterSpec(
        _DEFAULTS.max_goal_failures,
        "Live monitor: ERROR at this many failed goals in the goal window when fewer were "
        "reached; a failed goal with no more reached is a WARN.",
        bounds=(1, 10_000),
    ),
}


def settings_from_parameters(values: Mapping[str, object]) -> MonitorSettings:
    """Monitor settings from node parameter values (``monitor_*``; missing ones default).

    Other names are ignored, so the node may pass all its parameters. Raises ValueError
    with the reason for a value out of range or inconsistent (a warn above its error).
    """
    kwargs: dict[str, object] = {}
    for item in fields(MonitorSettings):
        name = PARAMETER_PREFIX + item.name
        if name not in values:
            continue
        kwargs[item.name] = MONITOR_PARAMETERS[name].checked(name, values[name])
    settings = MonitorSettings(**kwargs)  # type: ignore[arg-type]
    settings.validate()
    return settings


# ----------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class MonitorBaseline:
    """What the card's evaluation expects of the policy (None: not measured)."""

    success_rate: float | None
    mean_goal_time: float | None
    intervention_rate: float | None
    source: str  # e.g. "evaluation mode stack, 5 worlds"


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def baseline_from_evaluation(evaluation: Mapping) -> MonitorBaseline | None:
    """The baseline in a policy card's ``evaluation`` section, or None without one.

    Reads ``summary[world][mode]`` for the first mode of `BASELINE_MODES` any world has,
    and pools the worlds: success and intervention rates weighted by episodes, the mean
    time to goal weighted by successful episodes. Malformed entries are skipped.
    """
    summary = evaluation.get("summary") if isinstance(evaluation, Mapping) else None
    if not isinstance(summary, Mapping):
        return None
    worlds = [stats for stats in summary.values() if isinstance(stats, Mapping)]
    for mode in BASELINE_MODES:
        rows = [w[mode] for w in worlds if isinstance(w.get(mode), Mapping)]
        if rows:
            break
    else:
        return None
    episodes = success_weight = time_weight = interventions_weight = 0.0
    success_sum = time_sum = intervention_sum = 0.0
    for row in rows:
        count = _finite(row.get("episodes"))
        count = count if count is not None and count > 0 else 1.0
        episodes += count
        success = _finite(row.get("success_rate"))
        if success is not None:
            success_sum += success * count
            success_weight += count
            mean_time = _finite(row.get("mean_time_to_goal"))
            if mean_time is not None and success > 0:
                time_sum += mean_time * success * count
                time_weight += success * count
        rate = _finite(row.get("intervention_rate"))
        if rate is not None:
            intervention_sum += rate * count
            interventions_weight += count
    baseline = MonitorBaseline(
        success_rate=success_sum / success_weight if success_weight else None,
        mean_goal_time=time_sum / time_weight if time_weight else None,
        intervention_rate=(
            intervention_sum / interventions_weight if interventions_weight else None
        ),
        source=f"evaluation mode {mode}, {len(rows)} world(s)",
    )
    if baseline.success_rate is None and baseline.intervention_rate is None:
        return None
    return baseline


# ------------------------------------------------------------------------------ monitor


@dataclass(frozen=True)
class MonitorReport:
    """The monitor's verdict at one instant.

    ``level`` is the worst breach (0 OK, 1 WARN, 2 ERROR, as diagnostic_msgs);
    ``breaches`` every reason, ERROR ones first; ``errors`` the ERROR ones alone (what
    triggers a rollback on probation); ``values`` the ``/diagnostics`` key/values.
    """

    level: int
    breaches: tuple[str, ...]
    errors: tuple[str, ...]
    values: dict[str, str]
    message: str


@dataclass(frozen=True)
class _Tick:
    time: float
    duration: float
    intervened: bool
    overrun: bool
    stalled: bool
    near_miss: bool


@dataclass(frozen=True)
class _GoalResult:
    time: float  # when it ended
    reached: bool
    duration: float
    reason: str


class LiveMonitor:
    """Sliding-window monitor of the driving policy; see the module docstring."""

    def __init__(
        self,
        settings: MonitorSettings | None = None,
        baseline: MonitorBaseline | None = None,
        now_s: float = 0.0,
    ) -> None:
        self.settings = settings or MonitorSettings()
        self.settings.validate()
        self.baseline = baseline
        self._goal_start: float | None = None
        self._clear(now_s)

    def _clear(self, now_s: float) -> None:
        self._ticks: deque[_Tick] = deque()
        self._counts = {"intervened": 0, "overrun": 0, "stalled": 0, "near_miss": 0}
        self._active_s = 0.0
        # (time, clearance) with increasing clearance from the front: the window's minimum.
        self._clearances: deque[tuple[float, float]] = deque()
        self._near_miss_armed = True
        self._handovers: deque[tuple[float, str]] = deque()
        self._progress: deque[tuple[float, float]] = deque()
        self._goals: deque[_GoalResult] = deque()
        if self._goal_start is not None:
            self._goal_start = now_s
        self._last_time = now_s
        self._last_tick: float | None = None

    # -------------------------------------------------------------------- inputs

    def reset(self, now_s: float) -> None:
        """Start over (another model drives): windows and goal results are cleared; a
        goal in progress stays, timed from now."""
        self._clear(now_s)

    def set_baseline(self, baseline: MonitorBaseline | None) -> None:
        """Judge goal times against another baseline (a new model's card)."""
        self.baseline = baseline

    def record_tick(
        self,
        now_s: float,
        *,
        active: bool,
        intervened: bool,
        clearance: float | None,
        overrun: bool,
        distance_to_goal: float | None,
    ) -> None:
        """Record one control tick (call it every tick, active or not).

        ``active``: the policy's command drove this tick (policy/active true and the
        arbiter in POLICY); ``intervened``: the safety filter cut it; ``clearance``:
        closest scan return (m; None or non-finite when unknown); ``overrun``: the
        inference overran; ``distance_to_goal`` in m (None without a goal).
        """
        self._advance(now_s)
        duration = 0.0 if self._last_tick is None else min(now_s - self._last_tick, MAX_TICK_GAP_S)
        self._last_tick = now_s
        self._check_goal_timeout(now_s)
        if not active:
            self._progress.clear()  # progress made by another driver is not the policy's
            self._near_miss_armed = True
            self._trim(now_s)
            return
        near_miss = False
        if clearance is not None and math.isfinite(clearance):
            near_miss = self._record_clearance(now_s, float(clearance))
        tick = _Tick(
            now_s,
            duration,
            bool(intervened),
            bool(overrun),
            self._stalled(now_s, distance_to_goal),
            near_miss,
        )
        self._ticks.append(tick)
        self._count(tick, +1)
        self._trim(now_s)

    def policy_handed_over(self, now_s: float, reason: str) -> None:
        """The arbiter took the robot from the policy for a failure (no progress,
        interventions, silence), not because the policy went inactive or teleop."""
        self._advance(now_s)
        self._handovers.append((now_s, reason))
        self._trim(now_s)

    def goal_started(self, now_s: float) -> None:
        """A new goal; an unreached goal in progress counts as failed (replaced)."""
        self._advance(now_s)
        if self._goal_start is not None:
            self._end_goal(now_s, reached=False, reason="replaced by a new goal")
        self._goal_start = now_s
        self._progress.clear()

    def goal_reached(self, now_s: float) -> None:
        """The goal in progress was reached (ignored without one)."""
        self._advance(now_s)
        if self._goal_start is not None:
            self._end_goal(now_s, reached=True, reason="reached")

    def goal_failed(self, now_s: float, reason: str) -> None:
        """The goal in progress failed for ``reason`` (ignored without one)."""
        self._advance(now_s)
        if self._goal_start is not None:
            self._end_goal(now_s, reached=False, reason=reason)

    # -------------------------------------------------------------------- verdict

    def report(self, now_s: float) -> MonitorReport:
        """Judge the window at ``now_s``."""
        self._advance(now_s)
        self._check_goal_timeout(now_s)
        self._trim(now_s)
        cfg = self.settings
        samples = len(self._ticks)
        errors: list[str] = []
        warnings: list[str] = []
        span = f"over {self._active_s:.0f} s of driving"

        def judge(value: float | None, warn: float, error: float, text: str) -> None:
            if value is None:
                return
            if value > error:
                errors.append(f"{text} {value:.2f} > {error:.2f} {span}")
            elif value > warn:
                warnings.append(f"{text} {value:.2f} > {warn:.2f} {span}")

        ready = self._active_s >= cfg.min_active_s - 1e-9 and samples >= cfg.min_samples
        intervention_rate = self._rate("intervened")
        overrun_rate = self._rate("overrun")
        stall_rate = self._rate("stalled")
        if ready:
            judge(
                intervention_rate,
                cfg.warn_intervention_rate,
                cfg.max_intervention_rate,
                "intervention rate",
            )
            judge(stall_rate, cfg.warn_stall_rate, cfg.max_stall_rate, "stall rate")
            judge(overrun_rate, cfg.warn_overrun_rate, cfg.max_overrun_rate, "overrun rate")

        self._judge_events(errors, warnings, span)
        reached = [g for g in self._goals if g.reached]
        failed = [g for g in self._goals if not g.reached]
        if failed and len(failed) >= len(reached):
            text = (
                f"{len(failed)} goal(s) failed, {len(reached)} reached in "
                f"{cfg.goal_window:g} s (last: {failed[-1].reason})"
            )
            if len(failed) >= cfg.max_goal_failures and len(failed) > len(reached):
                errors.append(f"{text}, limit {cfg.max_goal_failures}")
            else:
                warnings.append(text)
        mean_goal_time = sum(g.duration for g in reached) / len(reached) if reached else None
        base_time = self.baseline.mean_goal_time if self.baseline else None
        if mean_goal_time is not None and base_time and len(reached) >= cfg.min_goals:
            ratio = mean_goal_time / base_time
            text = (
                f"mean goal time {mean_goal_time:.1f} s = {ratio:.1f} x baseline "
                f"{base_time:.1f} s over {len(reached)} goal(s)"
            )
            if ratio > cfg.max_goal_time_ratio:
                errors.append(f"{text} > {cfg.max_goal_time_ratio:g} x")
            elif ratio > cfg.warn_goal_time_ratio:
                warnings.append(f"{text} > {cfg.warn_goal_time_ratio:g} x")

        level = LEVEL_ERROR if errors else LEVEL_WARN if warnings else LEVEL_OK
        breaches = (*errors, *warnings)
        if breaches:
            message = "; ".join(breaches)
        elif not ready:
            message = (
                f"OK; rates judged after {cfg.min_active_s:g} s of policy driving "
                f"({self._active_s:.1f} s so far)"
            )
        else:
            message = "OK"
        fmt = format_number
        baseline = self.baseline
        values = {
            "intervention_rate": fmt(intervention_rate),
            "stall_rate": fmt(stall_rate),
            "overrun_rate": fmt(overrun_rate),
            "min_clearance": fmt(self._clearances[0][1] if self._clearances else None),
            "near_misses": str(self._counts["near_miss"]),
            "handovers": str(len(self._handovers)),
            "goals_reached": str(len(reached)),
            "goals_failed": str(len(failed)),
            "mean_goal_time": fmt(mean_goal_time, 1),
            "baseline_goal_time": fmt(base_time, 1),
            "baseline_success_rate": fmt(baseline.success_rate if baseline else None),
            "baseline_intervention_rate": fmt(baseline.intervention_rate if baseline else None),
            "baseline_source": baseline.source if baseline else "none",
            "window_s": f"{cfg.window:g}",
            "active_s": f"{self._active_s:.1f}",
            "samples": str(samples),
            "verdict": "judging" if ready else "waiting",
        }
        return MonitorReport(level, breaches, tuple(errors), values, message)

    def _judge_events(self, errors: list[str], warnings: list[str], span: str) -> None:
        """Near misses and hand-overs: counted events, judged without waiting."""
        cfg = self.settings
        near_misses = self._counts["near_miss"]
        text = f"{near_misses} near miss(es) (clearance < {cfg.near_miss_distance:g} m) {span}"
        if near_misses >= cfg.max_near_misses:
            errors.append(f"{text}, limit {cfg.max_near_misses}")
        elif near_misses:
            warnings.append(text)
        handovers = len(self._handovers)
        if handovers:
            text = (
                f"arbiter took over {handovers} time(s) in {cfg.goal_window:g} s "
                f"(last: {self._handovers[-1][1]})"
            )
            if handovers >= cfg.max_handovers:
                errors.append(f"{text}, limit {cfg.max_handovers}")
            else:
                warnings.append(text)

    # ------------------------------------------------------------------ internals

    def _advance(self, now_s: float) -> None:
        """Follow the clock; when it goes back (a sim restart) the windows start over."""
        if now_s < self._last_time - CLOCK_RESTART_S:
            self._clear(now_s)
        self._last_time = max(self._last_time, now_s)

    def _rate(self, name: str) -> float | None:
        return self._counts[name] / len(self._ticks) if self._ticks else None

    def _count(self, tick: _Tick, sign: int) -> None:
        self._counts["intervened"] += sign * tick.intervened
        self._counts["overrun"] += sign * tick.overrun
        self._counts["stalled"] += sign * tick.stalled
        self._counts["near_miss"] += sign * tick.near_miss
        self._active_s += sign * tick.duration

    def _trim(self, now_s: float) -> None:
        """Keep the last `window` s of driving, no tick older than `max_age`."""
        cfg = self.settings
        oldest = now_s - cfg.max_age
        ticks = self._ticks
        while ticks and (
            ticks[0].time < oldest or self._active_s - ticks[0].duration >= cfg.window - 1e-9
        ):
            self._count(ticks.popleft(), -1)
        if not ticks:
            self._active_s = 0.0  # no float residue from the running sum
        start = ticks[0].time if ticks else oldest
        while self._clearances and self._clearances[0][0] < start:
            self._clearances.popleft()
        goal_horizon = now_s - cfg.goal_window
        # A take-over ends the policy's try at a goal: counted per goal, like goal
        # failures, since a weak model drives longer than `window` between two of them.
        while self._handovers and self._handovers[0][0] < goal_horizon:
            self._handovers.popleft()
        while self._goals and self._goals[0].time < goal_horizon:
            self._goals.popleft()

    def _record_clearance(self, now_s: float, clearance: float) -> bool:
        """Track the window's closest return; True when this is a new near miss."""
        while self._clearances and self._clearances[-1][1] >= clearance:
            self._clearances.pop()
        self._clearances.append((now_s, clearance))
        limit = self.settings.near_miss_distance
        if clearance < limit and self._near_miss_armed:
            self._near_miss_armed = False
            return True
        if clearance >= limit + NEAR_MISS_REARM_M:
            self._near_miss_armed = True
        return False

    def _stalled(self, now_s: float, distance: float | None) -> bool:
        """Whether this active tick is stalled (not judged, so False, before a full
        `stall_window` of driving toward the current goal)."""
        cfg = self.settings
        if self._goal_start is None or distance is None or not math.isfinite(distance):
            return False
        progress = self._progress
        if progress and now_s - progress[-1][0] > MAX_TICK_GAP_S:
            progress.clear()  # a gap in driving: progress starts over
        progress.append((now_s, distance))
        horizon = now_s - cfg.stall_window
        # Keep one sample at or before the window start as the reference.
        while len(progress) >= 2 and progress[1][0] <= horizon + 1e-9:
            progress.popleft()
        then, distance_then = progress[0]
        if then > horizon + 1e-9:
            return False
        required = min(cfg.min_progress, 0.5 * distance_then)
        return distance_then - distance < required

    def _end_goal(self, now_s: float, reached: bool, reason: str) -> None:
        assert self._goal_start is not None
        duration = max(0.0, now_s - self._goal_start)
        self._goals.append(_GoalResult(now_s, reached, duration, reason))
        self._goal_start = None
        self._progress.clear()

    def _check_goal_timeout(self, now_s: float) -> None:
        limit = self.settings.max_goal_time
        if self._goal_start is not None and now_s - self._goal_start > limit:
            self._end_goal(now_s, reached=False, reason=f"timeout after {limit:g} s")
