"""DAgger warm start: imitate the DWA expert before reinforcement learning (no rclpy).

The expert is `evaluate.DwaController` (the hybrid fallback's DWA guided by its navigation
grid) on the same scan and odometry the policy sees. Each DAgger iteration rolls out a
beta-mixture of expert and learner on `NavEnv` episodes of the curriculum stages (shipped
world legs included from stage 2 on), labels every visited state with the expert's
(v, w) converted to the policy's [-1, 1] action, and adds it to the data set; the actor's
mean is then fitted to all data so far (behaviour cloning, MSE). At the end the observation
normalizer (VecNormalize statistics) is fitted from the data and the critic is regressed on
the rollouts' discounted (normalized) returns, so PPO starts with a warm actor and critic.

Two options shape what the learner is taught. `yield_to_moving` gives the expert the
simulator's moving-obstacle loops, so it waits clear of a lane instead of meeting a
cylinder in it (`rl_training.yielding`). `safety_filter` sends every executed command
through the deployed safety filter core, so the learner also visits, and is labelled in,
the states the filter brakes it into behind the real stack.

Collection uses `workers` processes; every episode is seeded from the run seed, the
iteration, the worker and the episode index, so a run is reproducible.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from hybrid_fallback.dwa import DwaPlanner
from hybrid_fallback.fallback import FallbackController
from rl_policy_node.action_scaling import action_to_velocity, velocity_to_action
from rl_policy_node.policy_card import ActionSpec
from rl_training.config import PretrainConfig
from rl_training.evaluate import (
    Controller,
    DwaController,
    SafetyFilteredController,
    scan_points,
)
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.yielding import MoverForecast, YieldConfig, decide

OBS_EPSILON = 1e-8  # VecNormalize's epsilon
OBS_CLIP = 10.0  # VecNormalize's default clip_obs


def expert_label(linear: float, angular: float, spec: ActionSpec) -> np.ndarray:
    """The [-1, 1] action standing for the expert's (v, w), clipped to the card's range."""
    return velocity_to_action(linear, angular, spec).astype(np.float32)


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


def moving_in_base_frame(moving: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    """World-frame moving obstacles (x, y, vx, vy, radius) in the frame of a base at `pose`."""
    rows = np.asarray(moving, dtype=np.float64).reshape(-1, 5)
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = rows[:, 0] - x, rows[:, 1] - y
    return np.column_stack(
        (
            c * dx + s * dy,
            -s * dx + c * dy,
            c * rows[:, 2] + s * rows[:, 3],
            -s * rows[:, 2] + c * rows[:, 3],
            rows[:, 4],
        )
    )


def without_moving_points(points: np.ndarray, moving: np.ndarray, margin: float) -> np.ndarray:
    """Scan points (base frame) that are not on a moving obstacle (within radius + margin)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(moving) or not len(pts):
        return pts
    dist = np.hypot(pts[:, None, 0] - moving[None, :, 0], pts[:, None, 1] - moving[None, :, 1])
    return pts[(dist > moving[None, :, 4] + margin).all(axis=1)]


class ExpertDwa(DwaController):
    """The evaluation's DWA baseline with its own clearance to obstacles (the expert).

    A margin at least the safety filter's keeps the demonstrated paths outside the zone where
    the deployed filter brakes. With `privileged` the expert also knows where the moving
    obstacles are and how they move (simulator ground truth, which the student never
    sees): it plans against their predicted positions instead of their scan points. With
    `yielding` it also knows their loops and waits clear of a lane it would otherwise share
    with one (`rl_training.yielding.decide`); `waiting_steps` counts the steps it yielded.
    """

    name = "expert_dwa"
    MOVING_POINT_MARGIN = 0.06  # m around a moving obstacle whose scan points are its own

    def __init__(
        self, safety_margin: float, privileged: bool = False, yielding: YieldConfig | None = None
    ) -> None:
        super().__init__()
        self.safety_margin = safety_margin
        self.privileged = privileged or yielding is not None
        self.yielding = yielding
        self.forecast: MoverForecast | None = None
        self.waiting_steps = 0

    def command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        """The expert's (v, w): the DWA's, or the yielding rule's while it waits."""
        v, w, intervened = self._dwa_command(env, observation)
        if self.yielding is None or not self.forecast or self.guided is None:
            return v, w, intervened
        odom = env.sim.odometry()
        path = self.guided.grid.path(
            (odom.x, odom.y), self.yielding.cruise_speed * self.yielding.horizon
        )
        true_pose = env.sim.pose
        odom_pose = (odom.x, odom.y, odom.yaw)
        base_points = scan_points(env).points
        decision = decide(
            true_pose,
            None if path is None else frame_to_world(path, odom_pose, true_pose),
            env.sim.time,
            self.forecast,
            env.robot.footprint_radius,
            self.yielding,
            self.guided.planner.config.max_angular_velocity,
            obstacles=frame_to_world(base_points, (0.0, 0.0, 0.0), true_pose),
        )
        if not decision.wait:
            return v, w, intervened
        self.waiting_steps += 1
        self.guided.hold()
        return decision.linear, decision.angular, False

    def _dwa_command(self, env: NavEnv, observation: np.ndarray) -> tuple[float, float, bool]:
        movers = env.sim.moving_obstacles() if self.privileged else np.zeros((0, 5))
        if not len(movers) or self.guided is None:
            return super().command(env, observation)
        odom = env.sim.odometry()
        moving = moving_in_base_frame(movers, env.sim.pose)
        points = without_moving_points(scan_points(env).points, moving, self.MOVING_POINT_MARGIN)
        result = self.guided.compute(
            points,
            (odom.x, odom.y, odom.yaw),
            env.task.goal,
            (odom.v, odom.w),
            env.sim.time,
            moving=moving,
        )
        return result.linear, result.angular, False

    def reset(self, env: NavEnv) -> None:
        """The baseline's planner for the env, with this expert's safety margin."""
        super().reset(env)
        movers = env.task.world.moving_cylinders if env.task is not None else ()
        self.forecast = MoverForecast(movers) if self.yielding is not None else None
        if self.guided is not None:
            config = replace(self.guided.planner.config, safety_margin=self.safety_margin)
            self.guided = FallbackController(dwa=config)
            self.guided.reset()
        else:
            self.planner = DwaPlanner(
                replace(self.planner.config, safety_margin=self.safety_margin)
            )


def frame_to_world(
    points: np.ndarray,
    frame_pose: tuple[float, float, float],
    true_pose: tuple[float, float, float],
) -> np.ndarray:
    """Points (N, 2) of a frame (odom; or the base, where the robot is at (0, 0, 0)) in the
    world frame, given the robot's pose in that frame and in the world."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    turn = true_pose[2] - frame_pose[2]
    c, s = math.cos(turn), math.sin(turn)
    rel = pts - (frame_pose[0], frame_pose[1])
    return np.column_stack(
        (c * rel[:, 0] - s * rel[:, 1] + true_pose[0], s * rel[:, 0] + c * rel[:, 1] + true_pose[1])
    )


def make_expert(config: PretrainConfig) -> DwaController:
    """The expert controller a pretrain config names."""
    if config.expert != "dwa":
        raise ValueError(f"unknown expert {config.expert!r}")
    return ExpertDwa(
        config.expert_safety_margin,
        privileged=config.privileged_expert,
        yielding=YieldConfig() if config.yield_to_moving else None,
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


class _Actor(torch.nn.Module):
    """The mean of an SB3 actor-critic policy's Gaussian (shares its parameters)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.body = policy.mlp_extractor.policy_net
        self.head = policy.action_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action mean for normalized observations."""
        return self.head(self.body(obs))


class _Critic(torch.nn.Module):
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
        mean = _Actor(policy)(torch.as_tensor(normalizer(data.observations)))
        return float(torch.nn.functional.mse_loss(mean, torch.as_tensor(data.expert_actions)))


@dataclass
class PretrainResult:
    """What the warm start produced (statistics for VecNormalize, and a summary)."""

    normalizer: Normalizer
    return_variance: float  # variance of the running discounted return (reward scaling)
    return_count: float
    summary: dict[str, Any]
    data: Rollouts


class _Collector:
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
        if self.pool is None:
            return [collect(job) for job in jobs]
        return list(self.pool.map(collect, jobs))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


@contextlib.contextmanager
def collector(workers: int) -> Iterator[_Collector]:
    """A collection pool of `workers` processes (in this process for one), closed after."""
    pool = _Collector(workers)
    try:
        yield pool
    finally:
        pool.close()


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
    actor = _Actor(policy)
    size = int(np.prod(policy.observation_space.shape))
    normalizer = Normalizer.identity(size)
    parts: list[Rollouts] = []
    iterations = []
    with collector(config.workers) as pool:
        for iteration in range(config.iterations):
            beta = 1.0 if iteration == 0 else config.beta_decay**iteration
            learner = None
            if iteration > 0:
                learner = _Actor(policy)
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
                _Critic(policy),
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
