"""Small policy modules and cards for the rl_policy_node tests."""

from __future__ import annotations

from pathlib import Path

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


class LinearTanhPolicy(torch.nn.Module):
    """obs[B, D] -> tanh(W obs + b)[B, 2], deterministic weights from a seed."""

    def __init__(self, inputs: int, outputs: int = 2, seed: int = 0, bias: float = 0.0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(outputs, inputs, generator=generator) * 0.1)
        self.bias = torch.nn.Parameter(torch.full((outputs,), bias))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(obs @ self.weight.T + self.bias)


class NanPolicy(torch.nn.Module):
    """Returns NaN for every input (a diverged network)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], 2), float("nan")) + obs[:, :2] * 0.0


def small_card(sectors: int = 16, fov_deg: float = 360.0, **changes: object) -> PolicyCard:
    """A compact card: `sectors` min-reduced scan values, capped goal, velocity, prev action."""
    card = PolicyCard(
        name="test-policy",
        version="1.0.0",
        created="2026-01-01T00:00:00Z",
        observation=ObservationSpec(
            scan=ScanSpec(sectors=sectors, field_of_view_deg=fov_deg, range_cap=3.5),
            goal=GoalSpec(distance_cap=5.0),
            velocity=VelocitySpec(linear_scale=0.26, angular_scale=1.82),
            previous_action=True,
            history_length=1,
        ),
        action=ActionSpec(linear=(-0.1, 0.26), angular=(-1.82, 1.82)),
    )
    return card.with_updates(**changes) if changes else card


def write_policy(
    path: Path, card: PolicyCard | None, inputs: int | None = None, seed: int = 0
) -> Path:
    """Trace a LinearTanhPolicy and save it, with `card` embedded unless None."""
    size = inputs if inputs is not None else (card.observation.size if card else 69)
    module = torch.jit.trace(LinearTanhPolicy(size, seed=seed), torch.zeros(1, size))
    if card is None:
        torch.jit.save(module, str(path))
    else:
        save_policy(module, path, card)
    return path


def write_onnx(
    path: Path,
    card: PolicyCard | None,
    inputs: int | None = None,
    seed: int = 0,
    module: torch.nn.Module | None = None,
) -> Path:
    """Export a LinearTanhPolicy (or `module`) as an ONNX file, `card` in its metadata.

    With a card, its sha256 is set from the module's weights (as `save_policy` does), so
    `write_policy` and `write_onnx` of the same seed give twins with one sha256.
    """
    from rl_policy_node.onnx_policy import onnx_bytes_from_module
    from rl_policy_node.policy_loader import weights_sha256

    size = inputs if inputs is not None else (card.observation.size if card else 69)
    module = module if module is not None else LinearTanhPolicy(size, seed=seed).eval()
    text = card.with_updates(weights_sha256=weights_sha256(module)).to_json() if card else ""
    data = onnx_bytes_from_module(module, size, text) if text else _bare_onnx(module, size)
    path.write_bytes(data)
    return path


def _bare_onnx(module: torch.nn.Module, size: int) -> bytes:
    """ONNX bytes of `module` without metadata (a card-less file)."""
    import onnx

    from rl_policy_node.onnx_policy import onnx_bytes_from_module

    model = onnx.load_from_string(onnx_bytes_from_module(module, size, "{}"))
    del model.metadata_props[:]
    return model.SerializeToString()
