"""What one episode is and what it counted, and their JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VIOLATION_KINDS = ("velocity", "accel", "brake", "hard_stop", "invalid_now")


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: its class, world, seed and length in control steps."""

    index: int
    class_name: str
    world: str
    seed: int
    steps: int


@dataclass
class EpisodeResult:
    """Counters of one episode."""

    spec: EpisodeSpec
    steps: int = 0
    filter_steps: int = 0
    sim_seconds: float = 0.0
    collisions: int = 0
    at_fault: int = 0
    non_finite: int = 0
    exceptions: int = 0
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIOLATION_KINDS, 0))
    stuck: bool = False
    stuck_events: int = 0
    blocked_escapes: int = 0  # informational: escapes refused while other motions passed
    longest_blocked_escape: float = 0.0
    guard_steps: int = 0
    hard_stop_steps: int = 0
    max_accel_excess: float = 0.0  # m/s^2 or rad/s^2 beyond the box, largest axis
    faults_injected: int = 0  # malformed scans sent, or clock faults
    held_outputs: int = 0  # outputs marked `hold` (not published by the node)
    min_gap: float = math.inf  # m between the robot body and the nearest obstacle
    min_approach: float = math.inf  # m: smallest gap once the gap was >= the safety margin
    reasons: dict[str, int] = field(default_factory=dict)  # filter reason -> steps
    states: dict[str, int] = field(default_factory=dict)  # filter state -> steps
    scan_rejections: dict[str, int] = field(default_factory=dict)  # validator reason -> scans
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def limit_violations(self) -> int:
        """All limit violations of the episode."""
        return sum(self.violations.values())

    @property
    def not_at_fault(self) -> int:
        """Collisions while the robot stood still or moved away."""
        return self.collisions - self.at_fault


def json_ready(value: Any) -> Any:
    """`value` with numpy numbers as Python ones and non-finite floats as strings."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
