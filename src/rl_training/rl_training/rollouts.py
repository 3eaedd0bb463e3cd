"""DAgger data: labelled rollouts of an expert/learner mixture, collected in workers (no rclpy).

A `CollectJob` is one worker's share of a DAgger iteration: it rolls out a beta-mixture of
the expert (`make_expert`) and the learner on `NavEnv` episodes of the curriculum stages,
labels every visited state with the expert's action and returns the `Rollouts`. With
``safety_filter`` every executed command passes the deployed safety filter core. Every
episode is seeded from the job's seed, so a collection is reproducible. `collector` runs
jobs in worker processes (in this process for one worker).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rl_policy_node.action_scaling import action_to_velocity
from rl_training.config import PretrainConfig
from rl_training.controllers import Controller, SafetyFilteredController
from rl_training.expert import ExpertDwa, expert_label
from rl_training.nav_env import EnvConfig, NavEnv

OBS_EPSILON = 1e-8  # VecNormalize's epsilon
OBS_CLIP = 10.0  # VecNormalize's default clip_obs


@dataclass(frozen=True)
class Normalizer:
    """VecNormalize-style observation statistics: clip((obs - mean) / sqrt(var + eps))."""

    mean: np.ndarray
    var: np.ndarray
    count: float

    @staticmethod
    def identity(size: int) -> Normalizer:
        """Statistics that leave observations unchanged (before any data)."""
        return Normalizer(np.zeros(size), np.ones(size) - OBS_EPSILON, 1.0)

    @staticmethod
    def fit(observations: np.ndarray) -> Normalizer:
        """Mean and variance of a data set of observations."""
        obs = np.asarray(observations, dtype=np.float64)
        return Normalizer(obs.mean(axis=0), obs.var(axis=0), float(obs.shape[0]))

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        """Normalized observations (float32)."""
        scaled = (np.asarray(observations) - self.mean) / np.sqrt(self.var + OBS_EPSILON)
        return np.clip(scaled, -OBS_CLIP, OBS_CLIP).astype(np.float32)


@dataclass
class Rollouts:
    """Labelled steps: observations, expert actions, rewards and episode ends (in order)."""

    observations: np.ndarray  # (N, D) raw observations
    expert_actions: np.ndarray  # (N, 2) expert labels in [-1, 1]
    rewards: np.ndarray  # (N,)
    episode_ends: np.ndarray  # (N,) True on the last step of an episode (or of a chunk)
    expert_driven: np.ndarray  # (N,) True where the expert's action was executed
    episodes: int = 0
    successes: int = 0
    collisions: int = 0

    @staticmethod
    def concatenate(parts: Sequence[Rollouts]) -> Rollouts:
        """One data set from several (order kept)."""
        return Rollouts(
            observations=np.concatenate([p.observations for p in parts]),
            expert_actions=np.concatenate([p.expert_actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            episode_ends=np.concatenate([p.episode_ends for p in parts]),
            expert_driven=np.concatenate([p.expert_driven for p in parts]),
            episodes=sum(p.episodes for p in parts),
            successes=sum(p.successes for p in parts),
            collisions=sum(p.collisions for p in parts),
        )

    def __len__(self) -> int:
        return int(self.observations.shape[0])


@dataclass(frozen=True)
class CollectJob:
    """One worker's share of a DAgger iteration."""

    env_config: EnvConfig
    steps: int
    pretrain: PretrainConfig  # the expert and its settings
    beta: float  # probability that the expert's action is executed at a step
    learner_noise: float
    stage_weights: tuple[float, ...]
    seed: Sequence[int]  # entropy for this job's episodes
    actor: torch.nn.Module | None  # raw-normalized obs -> action mean; None: expert only
    normalizer: Normalizer


def make_expert(config: PretrainConfig) -> ExpertDwa:
    """The expert controller a pretrain config names.

    With ``yield_to_moving`` it is the yielding expert of the experiment
    `rl_training.experiments.yielding` (imported only then).
    """
    if config.expert != "dwa":
        raise ValueError(f"unknown expert {config.expert!r}")
    if config.yield_to_moving:
        from rl_training.experiments.yielding import YieldingExpert

        return YieldingExpert(config.expert_safety_margin)
    return ExpertDwa(
        config.expert_safety_margin,
        privileged=config.privileged_expert,
        free_window=config.expert_free_window,
    )


_WORKER_ENVS: dict[EnvConfig, NavEnv] = {}


def _worker_env(config: EnvConfig) -> NavEnv:
    """One env per config and process (loading the shipped worlds once)."""
    if config not in _WORKER_ENVS:
        _WORKER_ENVS[config] = NavEnv(config)
    return _WORKER_ENVS[config]


def collect(job: CollectJob) -> Rollouts:
    """Roll out the beta-mixture for `job.steps` steps, labelling every state."""
    torch.set_num_threads(1)
    env = _worker_env(job.env_config)
    expert = make_expert(job.pretrain)
    shield = SafetyFilteredController(Controller()) if job.pretrain.safety_filter else None
    rng = np.random.default_rng(list(job.seed))
    weights = np.asarray(job.stage_weights, dtype=np.float64)
    weights = weights / weights.sum()
    observations, labels, rewards, ends, driven = [], [], [], [], []
    episodes = successes = collisions = 0
    while len(observations) < job.steps:
        env.set_stage(int(rng.choice(len(weights), p=weights)))
        observation, _ = env.reset(seed=int(rng.integers(0, 2**31 - 1)))
        expert.reset(env)
        if shield is not None:
            shield.reset(env)
        episodes += 1
        while True:
            v, w, _ = expert.command(env, observation)
            label = expert_label(v, w, env.card.action)
            use_expert = job.actor is None or rng.random() < job.beta
            if use_expert:
                action = label
            else:
                with torch.no_grad():
                    normalized = torch.as_tensor(job.normalizer(observation[None]))
                    action = job.actor(normalized).numpy()[0]
                action = np.clip(action + rng.normal(0.0, job.learner_noise, 2), -1.0, 1.0)
            observations.append(observation)
            labels.append(label)
            driven.append(use_expert)
            if shield is None:
                observation, reward, terminated, truncated, info = env.step(action)
            else:
                request = (v, w) if use_expert else action_to_velocity(action, env.card.action)
                filtered_v, filtered_w, _ = shield.filtered(env, *request)
                observation, reward, terminated, truncated, info = env.step_velocity(
                    filtered_v, filtered_w, action
                )
            rewards.append(reward)
            done = terminated or truncated or len(observations) >= job.steps
            ends.append(done)
            if done:
                successes += int(info["is_success"])
                collisions += int(info["collision"])
                break
    return Rollouts(
        observations=np.asarray(observations, dtype=np.float32),
        expert_actions=np.asarray(labels, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        episode_ends=np.asarray(ends, dtype=bool),
        expert_driven=np.asarray(driven, dtype=bool),
        episodes=episodes,
        successes=successes,
        collisions=collisions,
    )


class Collector:
    """Runs collection jobs in worker processes (or inline with one worker)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = (
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")
            )
            if workers > 1
            else None
        )

    def run(self, jobs: Sequence[CollectJob]) -> list[Rollouts]:
        """The jobs' rollouts, in job order."""
        if self.pool is None:
            return [collect(job) for job in jobs]
        return list(self.pool.map(collect, jobs))

    def close(self) -> None:
        """Shut the worker processes down."""
        if self.pool is not None:
            self.pool.shutdown()


@contextlib.contextmanager
def collector(workers: int) -> Iterator[Collector]:
    """A collection pool of `workers` processes (in this process for one), closed after."""
    pool = Collector(workers)
    try:
        yield pool
    finally:
        pool.close()
