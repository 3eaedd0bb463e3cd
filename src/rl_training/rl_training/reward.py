"""The navigation reward as a pure function of one step's outcome (no simulator, no torch)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward terms."""

    progress: float = 10.0  # per metre of distance gained toward the goal
    time: float = 0.01  # per step, paid every step
    goal: float = 10.0  # once, when the goal is reached
    collision: float = 10.0  # once, when the robot collides (the episode ends)
    smoothness: float = 0.02  # times the squared change of the [-1, 1] action
    proximity: float = 0.05  # per step, times how far inside `proximity_distance` we are
    proximity_distance: float = 0.25  # m between footprint and nearest scan return

    @staticmethod
    def from_mapping(data: Mapping[str, Any] | None) -> RewardConfig:
        """A config from a mapping (unknown keys are an error, missing keys default)."""
        data = dict(data or {})
        known = {f.name for f in fields(RewardConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown reward term(s): {', '.join(unknown)}")
        values = {key: float(value) for key, value in data.items()}
        for key, value in values.items():
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"reward.{key} must be finite and >= 0, got {value}")
        return RewardConfig(**values)


@dataclass(frozen=True)
class StepOutcome:
    """What happened in one control step, as the reward needs it."""

    previous_distance: float  # m to the goal before the step
    distance: float  # m to the goal after the step
    action: Sequence[float]  # the [-1, 1] action applied
    previous_action: Sequence[float]  # the action of the step before
    collided: bool
    reached: bool
    clearance: float  # m between the footprint and the nearest obstacle return


def reward_terms(outcome: StepOutcome, config: RewardConfig) -> dict[str, float]:
    """Each reward term for one step (they sum to the step's reward)."""
    change = sum((a - b) ** 2 for a, b in zip(outcome.action, outcome.previous_action, strict=True))
    shortfall = max(0.0, config.proximity_distance - max(outcome.clearance, 0.0))
    proximity = shortfall / config.proximity_distance if config.proximity_distance > 0 else 0.0
    return {
        "progress": config.progress * (outcome.previous_distance - outcome.distance),
        "time": -config.time,
        "goal": config.goal if outcome.reached else 0.0,
        "collision": -config.collision if outcome.collided else 0.0,
        "smoothness": -config.smoothness * change,
        "proximity": -config.proximity * proximity,
    }


def step_reward(outcome: StepOutcome, config: RewardConfig) -> float:
    """The reward of one step: the sum of `reward_terms`."""
    return float(sum(reward_terms(outcome, config).values()))
