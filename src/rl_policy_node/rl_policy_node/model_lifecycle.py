"""A model's life in the policy node, without ROS: live monitor and probation, fed by the node.

`ModelLifecycle` joins the `live_monitor.LiveMonitor` and the `probation.ModelHistory` to
the node's `PolicyController` and to what the rest of the stack says: `safety/scale` (an
intervention is a scale below `intervention_threshold`, the arbiter's notion), `hybrid/mode`
(the policy drives only in POLICY; a POLICY -> FALLBACK change while the policy is active
is a take-over; with no arbiter heard the policy counts as driving) and the goals.

Message callbacks and services call `swapped`, `scale`, `mode_changed`, `goal_changed` and
`request_rollback` from their threads; the control thread calls `tick` once per tick. One
re-entrant lock keeps each call between two ticks. A rollback installs the trusted model
in the controller (one assignment: the next tick runs it) and leaves the path of that
model for the node to write back into ``model_path`` (`take_rollback_path`).
"""

from __future__ import annotations

import math
import threading
from typing import Any

from hybrid_fallback.arbiter import Mode
from hybrid_fallback.supervisor import GOAL_CORRECTION_DISTANCE
from rl_policy_node.live_monitor import (
    LiveMonitor,
    MonitorReport,
    MonitorSettings,
    baseline_from_evaluation,
)
from rl_policy_node.policy_runtime import (
    REASON_GOAL_REACHED,
    REASON_OVERRUN,
    PolicyController,
    TickResult,
)
from rl_policy_node.policy_slots import PolicySlot
from rl_policy_node.probation import (
    ModelHistory,
    ProbationSettings,
    RollbackDecision,
    model_key,
)
from rl_policy_node.transition_record import closest_return

# A goal the robot is this close to (m, odom) when the next one comes counts as reached:
# the worlds' tolerances (0.2-0.25 m) plus odometry drift over a leg.
GOAL_DONE_DISTANCE = 0.35
HANDOVER_REASON = "the arbiter took over from the policy"

Event = dict[str, Any]


class ModelLifecycle:
    """The live monitor and probation of the models `controller` runs (see the module
    docstring)."""

    def __init__(
        self,
        controller: PolicyController,
        monitor_settings: MonitorSettings,
        probation_settings: ProbationSettings,
        intervention_threshold: float,
    ) -> None:
        self.controller = controller
        self.monitor = LiveMonitor(monitor_settings)
        self.history: ModelHistory[PolicySlot] = ModelHistory(probation_settings)
        self.intervention_threshold = intervention_threshold
        self.report: MonitorReport = self.monitor.report(0.0)
        self.mode: str | None = None  # hybrid/mode; None: no arbiter heard
        self._lock = threading.RLock()  # re-entered: goal counting queues monitor calls
        self._swaps: list[tuple[PolicySlot | None, bool, bool]] = []
        self._calls: list[tuple[str, float, bool]] = []
        self._scale = 1.0
        self._scale_ns = 0
        self._goal_counted: tuple[float, float] | None = None
        self._rollback_path: str | None = None

    # --- from other threads

    def swapped(self, slot: PolicySlot | None, by_person: bool, at_start: bool = False) -> None:
        """`slot` now drives (None: no model); probation hears of it at the next tick."""
        with self._lock:
            self._swaps.append((slot, by_person, at_start))

    def scale(self, value: float, now_ns: int) -> None:
        """A `safety/scale` sample."""
        self._scale, self._scale_ns = float(value), now_ns

    def mode_changed(self, mode: str, now_s: float) -> None:
        """A `hybrid/mode` message ("MODE" or "MODE: reason")."""
        mode = mode.split(":", 1)[0].strip().upper()
        previous, self.mode = self.mode, mode
        goal = self.controller.goal
        if previous == Mode.POLICY and mode == Mode.FALLBACK and self.controller.active:
            self._queue("handover", now_s)
        elif mode == Mode.IDLE and previous in (Mode.POLICY, Mode.FALLBACK) and goal is not None:
            # The arbiter reached the goal at its own tolerance.
            self._count_goal_reached(goal, now_s, policy_drove=previous == Mode.POLICY)

    def goal_changed(self, previous: tuple[float, float] | None, now_s: float) -> None:
        """The controller has a new goal (it replaced `previous`).

        A goal within `GOAL_CORRECTION_DISTANCE` of the previous one is the same goal
        re-expressed in odom; a previous goal the robot stands at was reached.
        """
        goal = self.controller.goal
        if previous is not None and goal is not None:
            if math.dist(previous, goal) <= GOAL_CORRECTION_DISTANCE:
                if self._goal_counted is previous:
                    self._goal_counted = goal
                return
            odom = self.controller.odom
            if odom is not None and math.dist(previous, odom.pose[:2]) <= GOAL_DONE_DISTANCE:
                self._count_goal_reached(previous, now_s, policy_drove=self.mode == Mode.POLICY)
        self._queue("goal_started", now_s)

    def request_rollback(self, now_s: float, reason: str) -> tuple[str | None, list[Event]]:
        """Roll back now, on request: (why not, or None when done; events to publish)."""
        with self._lock:
            self._apply_swaps(now_s)
            decision = self.history.request_rollback(now_s, reason)
            refusal = decision if isinstance(decision, str) else None
            if isinstance(decision, RollbackDecision):
                decision.event["automatic"] = False
                self._roll_back(decision, now_s)
            return refusal, self.history.pending_events()

    def take_rollback_path(self) -> str | None:
        """The requested path of the model the last rollback installed, once."""
        with self._lock:
            path, self._rollback_path = self._rollback_path, None
            return path

    def status(self, now_s: float) -> dict[str, str]:
        """The monitor's and probation's key/values for /diagnostics."""
        with self._lock:
            return {**self.report.values, **self.history.status(now_s)}

    # --- the control thread

    def tick(self, now_ns: int, result: TickResult) -> tuple[RollbackDecision | None, list[Event]]:
        """Feed this tick to the monitor and probation; roll back on a breach.

        Returns the rollback made (if any) and the events to publish.
        """
        now_s = now_ns / 1e9
        controller, monitor = self.controller, self.monitor
        with self._lock:
            self._apply_swaps(now_s)
            calls, self._calls = self._calls, []
            for what, when, policy_drove in calls:
                if what == "handover":
                    monitor.policy_handed_over(when, HANDOVER_REASON)
                elif what == "goal_started":
                    monitor.goal_started(when)
                else:
                    monitor.goal_reached(when)
                    self.history.on_goal_reached(when, policy_drove=policy_drove)
            goal = controller.goal
            if result.reason.startswith(REASON_GOAL_REACHED) and goal is not None:
                self._count_goal_reached(goal, now_s, policy_drove=True)
            driving = result.active and self.mode in (None, Mode.POLICY)
            fresh_scale = now_ns - self._scale_ns <= controller.source_timeout_ns
            scan, odom = controller.scan, controller.odom
            distance = None
            if odom is not None and goal is not None:
                distance = math.dist(goal, odom.pose[:2])
            monitor.record_tick(
                now_s,
                active=driving,
                intervened=driving and fresh_scale and self._scale < self.intervention_threshold,
                clearance=(closest_return(scan.scan.ranges, scan.scan.range_min) if scan else None),
                overrun=result.reason.startswith(REASON_OVERRUN),
                distance_to_goal=distance,
            )
            self.report = monitor.report(now_s)
            decision = self.history.on_tick(now_s, driving, self.report)
            if decision is not None:
                decision.event["automatic"] = True
                self._roll_back(decision, now_s)
            return decision, self.history.pending_events()

    # --- internals (lock held)

    def _queue(self, what: str, now_s: float, policy_drove: bool = False) -> None:
        with self._lock:
            self._calls.append((what, now_s, policy_drove))

    def _count_goal_reached(
        self, goal: tuple[float, float], now_s: float, policy_drove: bool
    ) -> None:
        if self._goal_counted is goal:
            return
        self._goal_counted = goal
        self._queue("goal_reached", now_s, policy_drove)

    def _apply_swaps(self, now_s: float) -> None:
        swaps, self._swaps = self._swaps, []
        for slot, by_person, at_start in swaps:
            if slot is None:
                self.history.on_unload(now_s)
            else:
                key = model_key(slot.requested_path, slot.policy.sha256)
                self.history.on_swap(slot, key, now_s, by_person=by_person, at_start=at_start)
                self.monitor.set_baseline(baseline_from_evaluation(slot.policy.card.evaluation))
            self.monitor.reset(now_s)

    def _roll_back(self, decision: RollbackDecision[PolicySlot], now_s: float) -> None:
        self.controller.install(decision.slot)
        self.monitor.reset(now_s)
        self.monitor.set_baseline(baseline_from_evaluation(decision.slot.policy.card.evaluation))
        self._rollback_path = decision.slot.requested_path
