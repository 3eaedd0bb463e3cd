"""DAgger warm start: imitate the DWA expert before reinforcement learning (no rclpy).

The expert is `expert.ExpertDwa` (the evaluation's DWA baseline, the hybrid fallback's DWA
guided by its navigation grid, with its own margin) on the same scan and odometry the
policy sees. Each DAgger iteration rolls out a beta-mixture of expert and learner on
`NavEnv` episodes of the curriculum stages (shipped world legs included from stage 2 on),
labels every visited state with the expert's (v, w) converted to the policy's [-1, 1]
action, and adds it to the data set; the actor's mean is then fitted to all data so far
(behaviour cloning, MSE). At the end the observation normalizer (VecNormalize statistics)
is fitted from the data and the critic is regressed on the rollouts' discounted
(normalized) returns, so PPO starts with a warm actor and critic.

Two options shape what the learner is taught. `yield_to_moving` gives the expert the
simulator's moving-obstacle loops, so it waits clear of a lane instead of meeting a
cylinder in it (the experiment `rl_training.experiments.yielding`). `safety_filter` sends
every executed command through the deployed safety filter core, so the learner also
visits, and is labelled in, the states the filter brakes it into behind the real stack.

Collection (`rl_training.rollouts`) uses `workers` processes; every episode is seeded
from the run seed, the iteration, the worker and the episode index, so a run is
reproducible. The regressions are in `rl_training.fitting`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rl_training.config import PretrainConfig
from rl_training.fitting import (
    ActorMean,
    CriticValue,
    discounted_returns,
    fit_regression,
    running_returns,
    torch_threads,
)
from rl_training.nav_env import EnvConfig
from rl_training.rollouts import OBS_CLIP, OBS_EPSILON, CollectJob, Normalizer, Rollouts, collector


@dataclass
class PretrainResult:
    """What the warm start produced (statistics for VecNormalize, and a summary)."""

    normalizer: Normalizer
    return_variance: float  # variance of the running discounted return (reward scaling)
    return_count: float
    summary: dict[str, Any]
    data: Rollouts


def dagger(
    policy: Any,
    env_config: EnvConfig,
    config: PretrainConfig,
    seed: int,
    gamma: float = 0.99,
    progress: Callable[[str], None] | None = print,
) -> PretrainResult:
    """Run DAgger with the DWA expert and behaviour-clone `policy` (an SB3 ActorCriticPolicy).

    Changes `policy`'s actor (and critic when `critic_epochs` > 0) in place; the returned
    normalizer is what the policy was fitted for and must become VecNormalize's obs_rms.
    """
    started = time.monotonic()
    torch.manual_seed(seed)
    actor = ActorMean(policy)
    size = int(np.prod(policy.observation_space.shape))
    normalizer = Normalizer.identity(size)
    parts: list[Rollouts] = []
    iterations = []
    with collector(config.workers) as pool:
        for iteration in range(config.iterations):
            beta = 1.0 if iteration == 0 else config.beta_decay**iteration
            learner = None
            if iteration > 0:
                learner = ActorMean(policy)
                learner.load_state_dict(actor.state_dict())
                learner.eval()
            shares = np.array_split(np.arange(config.steps_per_iteration), config.workers)
            jobs = [
                CollectJob(
                    env_config=env_config,
                    steps=len(share),
                    pretrain=config,
                    beta=beta,
                    learner_noise=config.learner_noise,
                    stage_weights=config.stage_weights,
                    seed=(seed, iteration, worker),
                    actor=learner,
                    normalizer=normalizer,
                )
                for worker, share in enumerate(shares)
                if len(share)
            ]
            collected = Rollouts.concatenate(pool.run(jobs))
            parts.append(collected)
            data = Rollouts.concatenate(parts)
            normalizer = Normalizer.fit(data.observations)
            with torch_threads(config.workers):
                loss = fit_regression(
                    actor,
                    normalizer(data.observations),
                    data.expert_actions,
                    config.epochs,
                    config.batch_size,
                    config.learning_rate,
                    seed + iteration,
                )
            record = {
                "iteration": iteration,
                "beta": round(beta, 4),
                "steps": len(collected),
                "episodes": collected.episodes,
                "success_rate": round(collected.successes / max(collected.episodes, 1), 3),
                "collision_rate": round(collected.collisions / max(collected.episodes, 1), 3),
                "dataset": len(data),
                "bc_loss": round(loss, 5),
                "wall_time_s": round(time.monotonic() - started, 1),
            }
            iterations.append(record)
            if progress is not None:
                progress("pretrain: " + ", ".join(f"{k} {v}" for k, v in record.items()))
    data = Rollouts.concatenate(parts)
    running = running_returns(data.rewards, data.episode_ends, gamma)
    return_variance = float(np.var(running))
    critic_loss = None
    if config.critic_epochs > 0:
        scale = 1.0 / np.sqrt(return_variance + OBS_EPSILON)
        targets = discounted_returns(
            np.clip(data.rewards * scale, -OBS_CLIP, OBS_CLIP), data.episode_ends, gamma
        )
        with torch_threads(config.workers):
            critic_loss = fit_regression(
                CriticValue(policy),
                normalizer(data.observations),
                targets,
                config.critic_epochs,
                config.batch_size,
                config.learning_rate,
                seed + 10_000,
            )
        if progress is not None:
            progress(f"pretrain: critic loss {critic_loss:.5f}")
    summary = {
        "expert": config.expert,
        "iterations": iterations,
        "samples": len(data),
        "critic_loss": None if critic_loss is None else round(critic_loss, 5),
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    return PretrainResult(
        normalizer=normalizer,
        return_variance=return_variance,
        return_count=float(len(data)),
        summary=summary,
        data=data,
    )


def apply_to_vec_normalize(venv: Any, result: PretrainResult) -> None:
    """Put the warm start's observation and return statistics into a VecNormalize."""
    venv.obs_rms.mean = result.normalizer.mean.astype(np.float64).copy()
    venv.obs_rms.var = result.normalizer.var.astype(np.float64).copy()
    venv.obs_rms.count = result.normalizer.count
    venv.ret_rms.mean = 0.0
    venv.ret_rms.var = result.return_variance
    venv.ret_rms.count = result.return_count
