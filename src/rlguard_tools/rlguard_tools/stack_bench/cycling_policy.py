"""The benchmark policy: one of CODES distinct angular values per tick, decodable downstream.

Each command is identifiable after the arbiter and the safety filter (which passes it
unchanged once its acceleration limits are raised, see `environment.PASS_THROUGH`).
"""

from __future__ import annotations

import math
from pathlib import Path

CODES = 16  # distinct commands in one cycle of the benchmark policy
ANGULAR_RANGE = (-1.5, 1.5)  # rad/s that the policy's -1 / +1 angular outputs stand for
CODE_TOLERANCE = 2e-5  # rad/s: a value this close to a code's value carries that code


def code_angular(index: int) -> float:
    """The angular velocity (rad/s) the benchmark policy commands for code `index`."""
    import numpy as np

    k = np.float32(index % CODES)
    action = np.float32(-0.9) + np.float32(1.8) * k / np.float32(CODES - 1)
    low, high = ANGULAR_RANGE
    return low + (float(action) + 1.0) * 0.5 * (high - low)


CODE_VALUES = [code_angular(i) for i in range(CODES)]


def decode(linear: float, angular: float) -> int | None:
    """The code a command carries, or None when it is not a benchmark-policy command."""
    if linear != 0.0 or not math.isfinite(angular):
        return None
    low, high = ANGULAR_RANGE
    action = 2.0 * (angular - low) / (high - low) - 1.0
    index = round((action + 0.9) / (1.8 / (CODES - 1)))
    if 0 <= index < CODES and abs(angular - CODE_VALUES[index]) <= CODE_TOLERANCE:
        return index
    return None


def write_cycling_policy(path: Path, phase: int = 0, name: str = "bench-cycling") -> Path:
    """Save a TorchScript policy whose angular output steps through CODES values per call.

    `phase` (the counter's start) changes the weights' checksum, so two files with other
    phases are two different valid models for the swap benchmark.
    """
    import torch

    from rl_policy_node.policy_card import (
        ActionSpec,
        GoalSpec,
        ObservationSpec,
        PolicyCard,
        ScanSpec,
        VelocitySpec,
    )
    from rl_policy_node.policy_loader import save_policy

    class CyclingPolicy(torch.nn.Module):
        def __init__(self, codes: int, start: int) -> None:
            super().__init__()
            self.codes = codes
            self.register_buffer("count", torch.tensor([start], dtype=torch.int64))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            self.count.add_(1)
            k = torch.remainder(self.count, self.codes).to(torch.float32)
            out = torch.zeros(obs.shape[0], 2, dtype=torch.float32)
            out[:, 1] = -0.9 + 1.8 * k / (self.codes - 1)
            return out

    card = PolicyCard(
        name=name,
        version=str(phase),
        created="2026-01-01T00:00:00Z",
        observation=ObservationSpec(
            scan=ScanSpec(sectors=16, field_of_view_deg=360.0, range_cap=3.5),
            goal=GoalSpec(distance_cap=5.0),
            velocity=VelocitySpec(linear_scale=0.22, angular_scale=2.75),
            previous_action=False,
        ),
        action=ActionSpec(linear=(-0.2, 0.2), angular=ANGULAR_RANGE),
    )
    save_policy(torch.jit.script(CyclingPolicy(CODES, phase)), path, card)
    return path
