"""Map policy outputs in [-1, 1] to (linear, angular) velocities and back (no rclpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rl_policy_node.policy_card import ActionSpec


def _to_velocity(a: float, ends: tuple[float, float]) -> float:
    low, high = ends
    return low + (a + 1.0) * 0.5 * (high - low)


def _to_action(value: float, ends: tuple[float, float]) -> float:
    low, high = ends
    return 2.0 * (value - low) / (high - low) - 1.0


def action_to_velocity(action: Sequence[float], spec: ActionSpec) -> tuple[float, float]:
    """(v, w) for a policy output; outputs are clipped to [-1, 1] first.

    Raises ValueError for a non-finite output: a NaN must never become a command.
    """
    a = np.asarray(action, dtype=np.float64).ravel()
    if a.size != 2:
        raise ValueError(f"a policy action has 2 values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"policy output is not finite: {a.tolist()}")
    a = np.clip(a, -1.0, 1.0)
    return _to_velocity(float(a[0]), spec.linear), _to_velocity(float(a[1]), spec.angular)


def velocity_to_action(linear: float, angular: float, spec: ActionSpec) -> np.ndarray:
    """The policy output in [-1, 1] that stands for (linear, angular), clipped."""
    if not (math.isfinite(linear) and math.isfinite(angular)):
        raise ValueError(f"velocity is not finite: ({linear}, {angular})")
    action = np.array([_to_action(linear, spec.linear), _to_action(angular, spec.angular)])
    return np.clip(action, -1.0, 1.0)
