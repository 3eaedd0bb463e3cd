"""Policies ready to drive, and the checks a candidate passes before a swap (no ROS).

`prepare_policy` loads and checks a candidate file off the control path (action range
within the node's limits, live scan geometry, a finite dry run on the live inputs) so a
swap is one reference assignment between two ticks; `staged_slots` decides which slots
a parameter set replaces. The previous action travels between policies as
`PreviousAction`, re-expressed when the action velocities differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.goal_source import GridWaypointSource, goal_source_for
from rl_policy_node.observation import ObservationBuilder, ObservationError
from rl_policy_node.policy_card import ActionSpec
from rl_policy_node.policy_inputs import OdomSample, ScanSample
from rl_policy_node.policy_loader import LoadedPolicy, load_policy

# The node parameters that name a policy file: the live one and the shadow.
MODEL_PARAMETERS = ("model_path", "shadow_model_path")
ZERO_ACTION = (0.0, 0.0)


class PolicyRejectedError(ValueError):
    """A loadable policy that may not drive here (scan coverage, limits, dry run)."""


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
    """A checked policy ready to run: module, the velocities its outputs mean, a builder.

    `goal_source` is the policy's own grid waypoint source when its card's goal terms
    describe a grid waypoint (None: the goal itself); each prepared slot gets a fresh one.
    """

    policy: LoadedPolicy
    action: ActionSpec
    builder: ObservationBuilder
    requested_path: str
    goal_source: GridWaypointSource | None = None

    @property
    def label(self) -> str:
        """name version (sha prefix, runtime) for logs."""
        card = self.policy.card
        return f"{card.name} {card.version} ({self.policy.sha256[:12]}, {self.policy.runtime})"


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


def implicit_action(max_velocity: Sequence[float]) -> ActionSpec:
    """The action velocities of a card-less policy: -1..1 maps to -max..max."""
    return ActionSpec(
        linear=(-max_velocity[0], max_velocity[0]), angular=(-max_velocity[1], max_velocity[1])
    )


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
    implicit = implicit_action(max_velocity)
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
    return PolicySlot(
        policy=policy,
        action=action,
        builder=builder,
        requested_path=requested_path,
        goal_source=goal_source_for(policy.card.observation.goal),
    )


def with_implicit_limits(slot: PolicySlot, max_velocity: Sequence[float]) -> PolicySlot:
    """The slot under new `max_velocity`: a card-less policy rescales, a carded one is checked."""
    if slot.policy.has_card:
        check_action_limits(slot.action, max_velocity)
        return slot
    return PolicySlot(
        slot.policy,
        implicit_action(max_velocity),
        slot.builder,
        slot.requested_path,
        slot.goal_source,
    )


def staged_slots(
    changes: Mapping[str, object],
    current: Mapping[str, PolicySlot | None],
    current_paths: Mapping[str, str],
    reload_all: bool,
    max_velocity: Sequence[float],
    prepare: Callable[[str], PolicySlot],
) -> dict[str, PolicySlot | None]:
    """The slots a parameter set puts in place, keyed by `MODEL_PARAMETERS` name.

    A slot whose path changes (or every loaded one when ``reload_all``, e.g. a new
    device) is prepared anew (an empty path empties it); with a new ``max_velocity``
    the others are rescaled or re-checked. Slots that stay as they are are left out.
    Raises the ValueError of the first candidate refused.
    """
    staged: dict[str, PolicySlot | None] = {}
    for name in MODEL_PARAMETERS:
        slot = current.get(name)
        if name in changes or (reload_all and slot is not None):
            requested = str(changes.get(name, current_paths.get(name, "")))
            staged[name] = prepare(requested) if requested else None
        elif "max_velocity" in changes and slot is not None:
            staged[name] = with_implicit_limits(slot, max_velocity)
    return staged
