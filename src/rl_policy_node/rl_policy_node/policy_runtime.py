"""The policy node's control logic without ROS: gating, inference, shadow, reasons.

`PolicyController` holds the latest inputs (`policy_inputs`: plain numbers with their
header stamp and arrival time), the live policy and an optional shadow policy
(`policy_slots`). `step(now_ns)` decides whether a command may be produced (and why
not), builds the observation with the shared `ObservationBuilder`, runs the policy and
scales its action. A policy whose goal terms describe a grid waypoint
(`goal_source`) has every fresh scan fed to its own source, as points in the base frame
(`lidar_mount`), with the odometry pose; goal reached is judged on the goal itself. The
ROS node only converts messages and publishes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.goal_source import goal_input
from rl_policy_node.observation import ObservationError
from rl_policy_node.policy_inputs import OdomSample, ScanSample, input_age_problem
from rl_policy_node.policy_slots import (
    ZERO_ACTION,
    DryRunInputs,
    PolicySlot,
    PreviousAction,
    previous_action_for,
)
from rl_policy_node.tick_stats import RollingWindow
from safety_controller.scan_geometry import LidarMount

# Reasons for producing no command; each diagnostics message starts with one of these.
REASON_DISABLED = "disabled"
REASON_NO_MODEL = "no model"
REASON_NO_GOAL = "no goal"
REASON_GOAL_REACHED = "goal reached"
REASON_STALE_SCAN = "stale scan"
REASON_STALE_ODOM = "stale odom"
REASON_OBSERVATION = "observation error"
REASON_NON_FINITE = "non-finite output"
REASON_OVERRUN = "inference overrun"
# Something outside the controller holds the policy off (e.g. sensor drift): `hold_reason`.
REASON_HELD = "held"
# Consecutive overrun ticks that make the policy inactive (a lone one only drops its command).
OVERRUN_LIMIT = 3

# Reasons an operator chose (OK level) as opposed to faults (WARN / ERROR level).
BENIGN_REASONS = (REASON_DISABLED, REASON_NO_GOAL, REASON_GOAL_REACHED)
FAULT_REASONS = (
    REASON_STALE_SCAN,
    REASON_STALE_ODOM,
    REASON_OBSERVATION,
    REASON_NON_FINITE,
    REASON_OVERRUN,
    REASON_HELD,
)


@dataclass(frozen=True)
class TickResult:
    """What one tick decided: a command (v, w) or None, and the reason when inactive."""

    command: tuple[float, float] | None
    active: bool
    reason: str
    inference_ms: float | None = None


@dataclass(frozen=True)
class ShadowResult:
    """The shadow policy's command on the same observation (None if non-finite)."""

    command: tuple[float, float] | None
    divergence: float | None


class PolicyController:
    """Decides, tick by tick, whether and what the policy commands (no ROS, no threads).

    Inputs are replaced by single reference assignments, so message callbacks on
    other threads may call the setters while a tick runs; only `step` and
    `shadow_step` call the policies, and both run on the control thread.
    """

    def __init__(
        self,
        source_timeout: float = 0.5,
        goal_tolerance: float = 0.08,
        max_inference_ms: float = 25.0,
        enabled: bool = True,
        overrun_limit: int = OVERRUN_LIMIT,
        lidar_mount: LidarMount | None = None,
    ) -> None:
        self.lidar_mount = lidar_mount or LidarMount()  # lidar pose in the base frame
        # True when another thread calls `plan_goal_sources` (the node): the tick then only
        # walks the grid waypoint sources' last plans instead of mapping and replanning.
        self.plan_in_background = False
        self.source_timeout_ns = int(source_timeout * 1e9)
        self.overrun_limit = overrun_limit
        self.goal_tolerance = goal_tolerance
        self.max_inference_ms = max_inference_ms
        self.enabled = enabled
        # Set from another thread (e.g. drift detection) to keep the policy inactive.
        self.hold_reason: str | None = None
        self.slot: PolicySlot | None = None
        self.shadow: PolicySlot | None = None
        self.no_model_detail = ""
        self.scan: ScanSample | None = None
        self.odom: OdomSample | None = None
        self.goal: tuple[float, float] | None = None
        # The goal object that was reached: a new goal (a new tuple) is never it, so a
        # goal arriving while a tick runs cannot be lost to that tick's latch.
        self._reached_goal: tuple[float, float] | None = None
        self._active = False
        self._previous: PreviousAction | None = None
        self._tick_previous: PreviousAction | None = None  # what this tick's policy saw
        # Bumped whenever the live history restarts; the shadow's own history follows it.
        self._history_epoch = 0
        self._shadow_epoch = -1
        self._shadow_seen: PolicySlot | None = None
        self._last_observation: np.ndarray | None = None
        self._last_action: np.ndarray | None = None
        self._last_slot: PolicySlot | None = None
        self._tick_time = 0.0  # s, node clock of the last tick (the shadow's waypoint time)
        self.reason = REASON_NO_MODEL
        self.inference_ms = RollingWindow()
        self.shadow_inference_ms = RollingWindow()
        self.divergence = RollingWindow()
        self.commands = 0
        self.non_finite_outputs = 0
        self.overruns = 0
        self.consecutive_overruns = 0

    # --- inputs (called from message callbacks)

    def set_goal(self, x: float, y: float) -> None:
        """A new goal (replaces a reached one)."""
        self.goal = (x, y)

    def install(self, slot: PolicySlot | None, detail: str = "") -> None:
        """Make `slot` the live policy from the next tick on (None: no model, `detail` why)."""
        self.no_model_detail = detail
        self.slot = slot

    def dry_run_inputs(self) -> DryRunInputs:
        """The live inputs, for checking a candidate before a swap."""
        return DryRunInputs(self.scan, self.odom, self.goal, self._previous)

    def last_step(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(observation, raw action) of the last tick that produced a command, else None."""
        observation, action = self._last_observation, self._last_action
        if observation is None or action is None or not self._active:
            return None
        return observation, action

    @property
    def active(self) -> bool:
        """True while the last tick produced a policy command."""
        return self._active

    # --- the tick

    def _inactive(self, reason: str, inference_ms: float | None = None) -> TickResult:
        self._active = False
        self.reason = reason
        self._last_observation = None
        return TickResult(None, False, reason, inference_ms)

    def gate(self, now_ns: int) -> str | None:
        """Why no command may be produced now (before inference), else None."""
        if not self.enabled:
            return REASON_DISABLED
        hold = self.hold_reason
        if hold is not None:
            return f"{REASON_HELD}: {hold}"
        if self.slot is None:
            detail = self.no_model_detail
            return f"{REASON_NO_MODEL}: {detail}" if detail else REASON_NO_MODEL
        if self.goal is None:
            return REASON_NO_GOAL
        if self.goal is self._reached_goal:
            return REASON_GOAL_REACHED
        scan, odom, timeout = self.scan, self.odom, self.source_timeout_ns
        if scan is None:
            return f"{REASON_STALE_SCAN}: no scan received"
        problem = input_age_problem(
            REASON_STALE_SCAN, scan.stamp_ns, scan.arrival_ns, now_ns, timeout
        )
        if problem:
            return problem
        if odom is None:
            return f"{REASON_STALE_ODOM}: no odom received"
        return input_age_problem(REASON_STALE_ODOM, odom.stamp_ns, odom.arrival_ns, now_ns, timeout)

    def feed_goal_sources(self, now_ns: int) -> None:
        """Feed a new, fresh scan with the fresh odometry pose to the live and shadow
        policies' grid waypoint sources (each scan once; a no-op for goal-only policies)."""
        scan, odom, timeout = self.scan, self.odom, self.source_timeout_ns
        sources = [
            slot.goal_source
            for slot in (self.slot, self.shadow)
            if slot is not None and slot.goal_source is not None
        ]
        if scan is None or odom is None or not sources:
            return
        if input_age_problem("", scan.stamp_ns, scan.arrival_ns, now_ns, timeout) or (
            input_age_problem("", odom.stamp_ns, odom.arrival_ns, now_ns, timeout)
        ):
            return
        for source in sources:
            source.feed_scan(scan.scan, scan.stamp_ns, self.lidar_mount, odom.pose, now_ns / 1e9)

    def plan_goal_sources(self, now_ns: int) -> None:
        """Map a new, fresh scan and replan when due, for the live and shadow policies'
        grid waypoint sources: the tick's share of that work, done by another thread
        when `plan_in_background` (a no-op for goal-only policies). Like the tick, it
        replans only while a command may be produced (the map is kept current always)."""
        self.feed_goal_sources(now_ns)
        odom, goal = self.odom, self.goal
        if odom is None or goal is None or self.gate(now_ns) is not None:
            return
        for slot in (self.slot, self.shadow):
            if slot is not None and slot.goal_source is not None:
                slot.goal_source.plan(goal, odom.pose, now_ns / 1e9)

    def step(self, now_ns: int) -> TickResult:
        """One control tick at node time `now_ns`."""
        if not self.plan_in_background:
            self.feed_goal_sources(now_ns)
        self._tick_time = now_ns / 1e9
        reason = self.gate(now_ns)
        if reason is not None:
            return self._inactive(reason)
        slot, scan, odom, goal = self.slot, self.scan, self.odom, self.goal
        assert slot is not None and scan is not None and odom is not None and goal is not None
        if not self._active or slot is not self._last_slot:
            # After a gap (or a swap) the frame history would mix old and new inputs.
            slot.builder.reset()
            if not self._active:
                self._previous = None
            self._last_slot = slot
            self._history_epoch += 1
        x, y, _ = odom.pose
        if math.hypot(goal[0] - x, goal[1] - y) <= self.goal_tolerance:
            self._reached_goal = goal
            self._active = False
            self.reason = REASON_GOAL_REACHED
            self._last_observation = None
            self._previous = None
            return TickResult((0.0, 0.0), False, REASON_GOAL_REACHED)
        spec = slot.policy.card.observation
        self._tick_previous = self._previous
        previous = (
            previous_action_for(self._previous, slot.action)
            if spec.previous_action
            else ZERO_ACTION
        )
        target = goal_input(
            slot.goal_source, goal, odom.pose, self._tick_time, not self.plan_in_background
        )
        try:
            observation = slot.builder.build(scan.scan, odom.pose, odom.velocity, target, previous)
        except ObservationError as exc:
            return self._inactive(f"{REASON_OBSERVATION}: {exc}")
        started = time.perf_counter()
        action = slot.policy(observation)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        self.inference_ms.add(elapsed_ms)
        self._last_observation = observation
        self._last_action = action
        try:
            command = action_to_velocity(action, slot.action)
        except ValueError as exc:
            self.non_finite_outputs += 1
            result = self._inactive(f"{REASON_NON_FINITE}: {exc}", elapsed_ms)
            self._last_observation = observation
            return result
        if elapsed_ms > self.max_inference_ms:
            self.overruns += 1
            self.consecutive_overruns += 1
            reason = (
                f"{REASON_OVERRUN}: {elapsed_ms:.3f} ms > max_inference_ms "
                f"{self.max_inference_ms:g}"
            )
            if self.consecutive_overruns >= self.overrun_limit:
                return self._inactive(reason, elapsed_ms)
            # A lone late tick (the process was descheduled) drops its command but does
            # not make the policy inactive: the arbiter would hand over for retry_after.
            self._last_observation = None
            return TickResult(None, self._active, reason, elapsed_ms)
        self.consecutive_overruns = 0
        self._previous = PreviousAction(np.clip(action.astype(np.float64), -1.0, 1.0), slot.action)
        self._active = True
        self.reason = ""
        self.commands += 1
        return TickResult(command, True, "", elapsed_ms)

    def shadow_step(self) -> ShadowResult | None:
        """Run the shadow policy on the last tick's inputs; None when there is nothing to do.

        With the same observation layout the shadow gets the very same vector; otherwise
        its own builder encodes the same inputs. Divergence is the Euclidean distance
        between the live action and the shadow's, both in the live policy's [-1, 1] units.
        """
        shadow, slot, observation = self.shadow, self._last_slot, self._last_observation
        if shadow is None or slot is None or observation is None:
            return None
        if shadow.policy.card.observation == slot.policy.card.observation:
            shadow_observation = observation
        else:
            scan, odom, goal = self.scan, self.odom, self.goal
            if scan is None or odom is None or goal is None:
                return None
            if shadow is not self._shadow_seen or self._shadow_epoch != self._history_epoch:
                shadow.builder.reset()
                self._shadow_seen, self._shadow_epoch = shadow, self._history_epoch
            spec = shadow.policy.card.observation
            previous = (
                previous_action_for(self._tick_previous, shadow.action)
                if spec.previous_action
                else ZERO_ACTION
            )
            target = goal_input(
                shadow.goal_source, goal, odom.pose, self._tick_time, not self.plan_in_background
            )
            try:
                shadow_observation = shadow.builder.build(
                    scan.scan, odom.pose, odom.velocity, target, previous
                )
            except ObservationError:
                return ShadowResult(None, None)
        started = time.perf_counter()
        shadow_action = shadow.policy(shadow_observation)
        self.shadow_inference_ms.add((time.perf_counter() - started) * 1e3)
        try:
            command = action_to_velocity(shadow_action, shadow.action)
        except ValueError:
            return ShadowResult(None, None)
        divergence = None
        live_action = self._last_action
        if live_action is not None and np.all(np.isfinite(live_action)):
            in_live_units = velocity_to_action(command[0], command[1], slot.action)
            live = np.clip(live_action, -1.0, 1.0)
            divergence = float(math.hypot(live[0] - in_live_units[0], live[1] - in_live_units[1]))
            self.divergence.add(divergence)
        return ShadowResult(command, divergence)
