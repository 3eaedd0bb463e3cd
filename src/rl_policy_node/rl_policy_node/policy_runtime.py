"""The policy node's control logic without ROS: gating, inference, swap checks, telemetry.

`PolicyController` holds the latest inputs (plain numbers with their header stamp and
arrival time), the live policy and an optional shadow policy. `step(now_ns)` decides
whether a command may be produced (and why not), builds the observation with the
shared `ObservationBuilder`, runs the policy and scales its action. `prepare_policy`
loads and checks a candidate file off the control path so a swap is one reference
assignment between two ticks. The ROS node only converts messages and publishes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.observation import ObservationBuilder, ObservationError, ScanInput
from rl_policy_node.policy_card import ActionSpec
from rl_policy_node.policy_loader import LoadedPolicy, load_policy

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
)


class PolicyRejectedError(ValueError):
    """A loadable policy that may not drive here (scan coverage, limits, dry run)."""


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ScanSample:
    """The latest scan with its header stamp and arrival time (node clock, ns)."""

    scan: ScanInput
    stamp_ns: int
    arrival_ns: int


@dataclass(frozen=True)
class OdomSample:
    """The latest odometry: pose (x, y, yaw), body velocity (v, w), stamps in ns."""

    pose: tuple[float, float, float]
    velocity: tuple[float, float]
    stamp_ns: int
    arrival_ns: int


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of a quaternion, in radians."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def input_age_problem(
    name: str, stamp_ns: int, arrival_ns: int, now_ns: int, timeout_ns: int
) -> str | None:
    """Why an input is stale (header age or arrival age beyond the timeout), else None."""
    arrival_age = now_ns - arrival_ns
    if arrival_age > timeout_ns:
        return (
            f"{name}: last message arrived {arrival_age / 1e9:.3f} s ago "
            f"(source_timeout {timeout_ns / 1e9:.3f} s)"
        )
    header_age = now_ns - stamp_ns
    if abs(header_age) > timeout_ns:
        word = "in the future" if header_age < 0 else "old"
        return (
            f"{name}: header stamp {abs(header_age) / 1e9:.3f} s {word} "
            f"(source_timeout {timeout_ns / 1e9:.3f} s)"
        )
    return None


# ------------------------------------------------------------------------- model paths


def default_share_models_dir() -> Path | None:
    """`<share of rl_policy_node>/models` when the package is installed, else None."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("rl_policy_node")) / "models"
    except Exception:  # not installed, or ament_index_python missing
        return None


def models_directory(
    models_dir_parameter: str,
    environ: dict[str, str] | os._Environ[str] = os.environ,
    share_models_dir: Callable[[], Path | None] = default_share_models_dir,
) -> Path:
    """Where relative model paths point: parameter, RLGUARD_MODELS_DIR, installed share,
    ``$RLGUARD_WORKSPACE/models``, else ``./models``."""
    if models_dir_parameter:
        return Path(models_dir_parameter).expanduser()
    if environ.get("RLGUARD_MODELS_DIR"):
        return Path(environ["RLGUARD_MODELS_DIR"]).expanduser()
    share = share_models_dir()
    if share is not None:
        return share
    if environ.get("RLGUARD_WORKSPACE"):
        return Path(environ["RLGUARD_WORKSPACE"]) / "models"
    return Path("models")


def resolve_model_path(path: str, models_dir: Path) -> Path:
    """An absolute (or ~) path as is; a relative one under `models_dir`."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else models_dir / candidate


# ---------------------------------------------------------------------------- checks


def device_problem(device: str, cuda_available: bool | Callable[[], bool]) -> str | None:
    """Why `device` cannot run policies here, else None (`cpu`, `cuda`, `cuda:N`).

    `cuda_available` may be a function (e.g. `policy_loader.cuda_available`): it is
    only called for a CUDA device, so a CPU node never imports torch to ask.
    """
    if device == "cpu":
        return None
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        available = cuda_available() if callable(cuda_available) else cuda_available
        return None if available else f"device {device!r}: CUDA is not available here"
    return f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'"


def velocity_limits_problem(values: Sequence[float]) -> str | None:
    """Why a `max_velocity` value is unusable, else None (two finite values > 0)."""
    if len(values) != 2:
        return f"max_velocity needs [linear, angular], got {len(values)} values"
    if not all(math.isfinite(v) and v > 0 for v in values):
        return f"max_velocity values must be finite and > 0, got {list(values)}"
    return None


def check_action_limits(action: ActionSpec, max_velocity: Sequence[float]) -> None:
    """Raise `PolicyRejectedError` if the card's velocities exceed the node's limits."""
    for label, ends, limit in (
        ("linear", action.linear, max_velocity[0]),
        ("angular", action.angular, max_velocity[1]),
    ):
        if max(abs(ends[0]), abs(ends[1])) > limit + 1e-9:
            raise PolicyRejectedError(
                f"the card's {label} action range [{ends[0]}, {ends[1]}] exceeds "
                f"max_velocity {label} {limit}"
            )


# ---------------------------------------------------------------------- policy slots


@dataclass
class PolicySlot:
    """A checked policy ready to run: module, the velocities its outputs mean, a builder."""

    policy: LoadedPolicy
    action: ActionSpec
    builder: ObservationBuilder
    requested_path: str

    @property
    def label(self) -> str:
        """name version (sha prefix, runtime) for logs."""
        card = self.policy.card
        return f"{card.name} {card.version} ({self.policy.sha256[:12]}, {self.policy.runtime})"


ZERO_ACTION = (0.0, 0.0)


@dataclass(frozen=True)
class PreviousAction:
    """The last commanded action (clipped to [-1, 1]) and the velocities it stood for."""

    action: np.ndarray
    spec: ActionSpec


def previous_action_for(previous: PreviousAction | None, spec: ActionSpec) -> Sequence[float]:
    """The previous action in the units of a policy with action velocities `spec`.

    None (start, or after a pause) is the zero action, as in training at an episode
    start; after a swap to a policy with other action velocities the last command is
    re-expressed so it still stands for the same velocity.
    """
    if previous is None:
        return ZERO_ACTION
    if previous.spec == spec:
        return previous.action
    return velocity_to_action(*action_to_velocity(previous.action, previous.spec), spec)


@dataclass(frozen=True)
class DryRunInputs:
    """The live inputs a candidate is dry-run on (any may be missing at start-up)."""

    scan: ScanSample | None
    odom: OdomSample | None
    goal: tuple[float, float] | None
    previous: PreviousAction | None = None


def prepare_policy(
    path: Path,
    requested_path: str,
    max_velocity: Sequence[float],
    device: str = "cpu",
    live: DryRunInputs | None = None,
    warmup_runs: int = 10,
) -> PolicySlot:
    """Load, check, warm up and dry-run a policy file; raise a ValueError with the reason.

    Checks: the file loads (see `load_policy`), its card's action range is within
    `max_velocity` (a card-less file gets +-max_velocity), the live scan geometry can
    feed its observation, and on the live inputs it returns a finite action.
    """
    implicit = ActionSpec(
        linear=(-max_velocity[0], max_velocity[0]), angular=(-max_velocity[1], max_velocity[1])
    )
    policy = load_policy(path, implicit_action=implicit, device=device)
    action = policy.card.action if policy.has_card else implicit
    check_action_limits(action, max_velocity)
    builder = ObservationBuilder(policy.card.observation)
    zeros = np.zeros(policy.observation_size, dtype=np.float32)
    for _ in range(max(1, warmup_runs)):
        policy(zeros)
    if live is not None and live.scan is not None:
        scan = live.scan.scan
        try:
            builder.check_scan(scan.ranges.size, scan.angle_min, scan.angle_increment)
        except ObservationError as exc:
            raise PolicyRejectedError(f"{path}: {exc}") from None
        if live.odom is not None and live.goal is not None:
            previous = previous_action_for(live.previous, action)
            try:
                observation = builder.build(
                    scan, live.odom.pose, live.odom.velocity, live.goal, previous
                )
                action_to_velocity(policy(observation), action)
            except ValueError as exc:
                raise PolicyRejectedError(f"{path}: dry run on the live inputs: {exc}") from None
            builder.reset()
    return PolicySlot(policy=policy, action=action, builder=builder, requested_path=requested_path)


def with_implicit_limits(slot: PolicySlot, max_velocity: Sequence[float]) -> PolicySlot:
    """The slot under new `max_velocity`: a card-less policy rescales, a carded one is checked."""
    if slot.policy.has_card:
        check_action_limits(slot.action, max_velocity)
        return slot
    action = ActionSpec(
        linear=(-max_velocity[0], max_velocity[0]), angular=(-max_velocity[1], max_velocity[1])
    )
    return PolicySlot(slot.policy, action, slot.builder, slot.requested_path)


# ---------------------------------------------------------------------------- stats


class RollingWindow:
    """The last `capacity` samples in a preallocated ring (no allocation per sample)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._values = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._filled = 0
        self.total = 0

    def add(self, value: float) -> None:
        """Record one sample."""
        self._values[self._next] = value
        self._next = (self._next + 1) % self._values.size
        self._filled = min(self._filled + 1, self._values.size)
        self.total += 1

    def __len__(self) -> int:
        return self._filled

    def values(self) -> np.ndarray:
        """A copy of the samples held (oldest order not kept)."""
        return self._values[: self._filled].copy()

    def summary(self, percentiles: Sequence[float] = (99.0,)) -> dict[str, float]:
        """mean, max and the requested percentiles (``p99``...) of the held samples."""
        data = self.values()
        if data.size == 0:
            return {}
        result = {"mean": float(data.mean()), "max": float(data.max())}
        for q in percentiles:
            result[f"p{q:g}"] = float(np.percentile(data, q))
        return result


class TickMonitor:
    """Tick period, jitter and deadline misses of a periodic loop.

    A deadline miss is a tick that started more than half a period late (a skipped
    slot) or whose own work took longer than one period.
    """

    def __init__(self, period_s: float, capacity: int = 1024) -> None:
        self.period_ns = int(period_s * 1e9)
        self.periods_ms = RollingWindow(capacity)
        self.compute_ms = RollingWindow(capacity)
        self.deadline_misses = 0
        self.ticks = 0
        self._last_start_ns: int | None = None

    def record(self, start_ns: int, compute_ns: int) -> None:
        """Record one tick that started at `start_ns` and took `compute_ns` of work."""
        self.ticks += 1
        if self._last_start_ns is not None:
            gap = start_ns - self._last_start_ns
            self.periods_ms.add(gap / 1e6)
            if gap > 1.5 * self.period_ns:
                self.deadline_misses += 1
        if compute_ns > self.period_ns:
            self.deadline_misses += 1
        self._last_start_ns = start_ns
        self.compute_ms.add(compute_ns / 1e6)

    def jitter_ms(self) -> float | None:
        """Standard deviation of the tick period, ms (None before two periods)."""
        if len(self.periods_ms) < 2:
            return None
        return float(self.periods_ms.values().std())

    def max_period_error_ms(self) -> float | None:
        """Largest |period - nominal|, ms."""
        if len(self.periods_ms) == 0:
            return None
        return float(np.max(np.abs(self.periods_ms.values() - self.period_ns / 1e6)))


# ------------------------------------------------------------------------ controller


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
    ) -> None:
        self.source_timeout_ns = int(source_timeout * 1e9)
        self.overrun_limit = overrun_limit
        self.goal_tolerance = goal_tolerance
        self.max_inference_ms = max_inference_ms
        self.enabled = enabled
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

    def step(self, now_ns: int) -> TickResult:
        """One control tick at node time `now_ns`."""
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
        try:
            observation = slot.builder.build(scan.scan, odom.pose, odom.velocity, goal, previous)
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
            try:
                shadow_observation = shadow.builder.build(
                    scan.scan, odom.pose, odom.velocity, goal, previous
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


def reason_level(reason: str) -> int:
    """Diagnostic level for a reason: 0 OK (active or chosen), 1 WARN (no model), 2 ERROR."""
    if not reason or reason.startswith(BENIGN_REASONS):
        return 0
    if reason.startswith(REASON_NO_MODEL):
        return 1
    return 2
