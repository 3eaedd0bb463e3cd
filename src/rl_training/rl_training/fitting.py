"""Fitting an SB3 actor-critic policy to DAgger data: actor mean and critic (no rclpy).

The actor's mean is regressed on the expert labels (behaviour cloning, MSE) and the
critic on the discounted returns of the rollouts; `running_returns` is the return
VecNormalize tracks to scale rewards, so the critic's targets are scaled as PPO's are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from rl_training.rollouts import Normalizer, Rollouts


def discounted_returns(rewards: np.ndarray, episode_ends: np.ndarray, gamma: float) -> np.ndarray:
    """Return-to-go of every step within its episode (no bootstrap after an end)."""
    returns = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for index in range(len(rewards) - 1, -1, -1):
        if episode_ends[index]:
            running = 0.0
        running = rewards[index] + gamma * running
        returns[index] = running
    return returns


def running_returns(rewards: np.ndarray, episode_ends: np.ndarray, gamma: float) -> np.ndarray:
    """The discounted running return VecNormalize tracks to scale rewards."""
    values = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for index, reward in enumerate(rewards):
        running = running * gamma + reward
        values[index] = running
        if episode_ends[index]:
            running = 0.0
    return values


class ActorMean(torch.nn.Module):
    """The mean of an SB3 actor-critic policy's Gaussian (shares its parameters)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.body = policy.mlp_extractor.policy_net
        self.head = policy.action_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action mean for normalized observations."""
        return self.head(self.body(obs))


class CriticValue(torch.nn.Module):
    """The value head of an SB3 actor-critic policy (shares its parameters)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.body = policy.mlp_extractor.value_net
        self.head = policy.value_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Value estimate for normalized observations."""
        return self.head(self.body(obs)).squeeze(-1)


def fit_regression(
    module: torch.nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> float:
    """Fit `module(inputs)` to `targets` (MSE, Adam); returns the last epoch's mean loss."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    y = torch.as_tensor(targets, dtype=torch.float32)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
    loss_sum, batches = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        loss_sum, batches = 0.0, 0
        for start in range(0, x.shape[0], batch_size):
            index = order[start : start + batch_size]
            loss = torch.nn.functional.mse_loss(module(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            batches += 1
    return loss_sum / max(batches, 1)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch threads (the collection workers are idle then)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(count, 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def actor_loss(policy: Any, normalizer: Normalizer, data: Rollouts) -> float:
    """MSE between the policy's action mean and the expert labels on `data`."""
    with torch.no_grad():
        mean = ActorMean(policy)(torch.as_tensor(normalizer(data.observations)))
        return float(torch.nn.functional.mse_loss(mean, torch.as_tensor(data.expert_actions)))
