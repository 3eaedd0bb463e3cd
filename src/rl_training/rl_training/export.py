"""Export a trained Stable-Baselines3 policy as a TorchScript policy file with its card.

The exported module is deterministic (the mean action of PPO's Gaussian, tanh(mu) for
SAC), carries the VecNormalize observation statistics as buffers and applies them first
(same formula, epsilon and clip as VecNormalize), and clips its output to [-1, 1]. So the
deployed node feeds it the raw observation vector of the card and gets the action the
training policy would take.
"""

from __future__ import annotations

import copy
import datetime as dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rl_policy_node.policy_card import PolicyCard
from rl_policy_node.policy_loader import TORCHSCRIPT_DEPRECATION, save_policy
from rl_training.config import TrainConfig, config_from_mapping
from rl_training.nav_env import NavEnv
from rl_training.train import git_revision
from sim_bringup.profiles import load_robot_profile


class ExportedPolicy(torch.nn.Module):
    """obs[B, D] -> clip(actor(normalize(obs)), -1, 1)[B, 2]."""

    def __init__(
        self,
        actor: torch.nn.Module,
        obs_mean: np.ndarray,
        obs_var: np.ndarray,
        clip_obs: float,
        epsilon: float,
        squash: bool,
    ) -> None:
        super().__init__()
        self.actor = actor
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer(
            "obs_scale",
            torch.as_tensor(1.0 / np.sqrt(np.asarray(obs_var) + epsilon), dtype=torch.float32),
        )
        self.clip_obs = float(clip_obs)
        self.squash = bool(squash)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalized observation through the actor; output in [-1, 1]."""
        x = torch.clamp((obs - self.obs_mean) * self.obs_scale, -self.clip_obs, self.clip_obs)
        action = self.actor(x)
        if self.squash:
            action = torch.tanh(action)
        return torch.clamp(action, -1.0, 1.0)


@dataclass
class TrainedPolicy:
    """A trained model with its (optional) VecNormalize statistics and run config."""

    model: BaseAlgorithm
    normalizer: VecNormalize | None
    config: TrainConfig

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions for raw observations (B, D), as training evaluates them."""
        obs = np.asarray(observations, dtype=np.float32)
        if self.normalizer is not None and self.normalizer.norm_obs:
            obs = self.normalizer.normalize_obs(obs)
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions, dtype=np.float32)


def load_trained(
    model_path: str | Path, stats_path: str | Path | None, config: TrainConfig
) -> TrainedPolicy:
    """Load a model zip and its VecNormalize pickle (None when the run did not normalize)."""
    algorithm = {"ppo": PPO, "sac": SAC}[config.algorithm]
    model = algorithm.load(str(model_path), device="cpu")
    normalizer = None
    if stats_path is not None and Path(stats_path).is_file():
        dummy = DummyVecEnv([lambda: NavEnv(config.env)])
        normalizer = VecNormalize.load(str(stats_path), dummy)
        normalizer.training = False
        normalizer.norm_reward = False
    return TrainedPolicy(model=model, normalizer=normalizer, config=config)


def run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run directory was trained with (its config.yaml copy)."""
    path = Path(run_dir) / "config.yaml"
    return config_from_mapping(yaml.safe_load(path.read_text()), str(path))


def run_files(
    run_dir: str | Path, checkpoint: str | Path | None = None
) -> tuple[Path, Path | None]:
    """(model zip, VecNormalize pickle or None) of a run's final model or of a checkpoint.

    A checkpoint is a `nav_<steps>_steps.zip` of `checkpoints/` or a `<stem>_model.zip`
    beside its `<stem>_vecnormalize.pkl` (e.g. the warm start's `pretrained_model.zip`).
    """
    run = Path(run_dir)
    if checkpoint is None:
        stats = run / "final_vecnormalize.pkl"
        return run / "final_model.zip", stats if stats.is_file() else None
    model = Path(checkpoint)
    if model.stem.endswith("_model"):
        stats = model.parent / (model.stem.removesuffix("_model") + "_vecnormalize.pkl")
        return model, stats if stats.is_file() else None
    steps = model.stem.split("_")[-2]
    stats = model.parent / f"nav_vecnormalize_{steps}_steps.pkl"
    return model, stats if stats.is_file() else None


def actor_module(trained: TrainedPolicy) -> tuple[torch.nn.Module, bool]:
    """A copy of the deterministic actor network and whether it needs a final tanh."""
    policy = trained.model.policy
    if trained.config.algorithm == "ppo":
        actor = torch.nn.Sequential(
            copy.deepcopy(policy.mlp_extractor.policy_net), copy.deepcopy(policy.action_net)
        )
        return actor, False
    sac_actor = policy.actor
    return torch.nn.Sequential(
        copy.deepcopy(sac_actor.latent_pi), copy.deepcopy(sac_actor.mu)
    ), True


def scripted_policy(trained: TrainedPolicy) -> torch.jit.ScriptModule:
    """The TorchScript module of a trained policy (normalization inside)."""
    actor, squash = actor_module(trained)
    size = trained.model.observation_space.shape[0]
    if trained.normalizer is not None and trained.normalizer.norm_obs:
        rms = trained.normalizer.obs_rms
        mean, var = rms.mean, rms.var
        clip, eps = trained.normalizer.clip_obs, trained.normalizer.epsilon
    else:
        mean, var, clip, eps = np.zeros(size), np.ones(size), 1e9, 0.0
    module = ExportedPolicy(actor, mean, var, clip, eps, squash).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
        return torch.jit.script(module)


def export_policy(
    trained: TrainedPolicy,
    out_path: str | Path,
    name: str = "nav_policy",
    version: str = "1.0.0",
    training: dict[str, Any] | None = None,
) -> PolicyCard:
    """Write the policy file with its card; returns the saved card (with sha256)."""
    robot = load_robot_profile(trained.config.env.robot)
    card = trained.config.env.card(robot, name=name, version=version)
    info = {
        "algorithm": trained.config.algorithm,
        "timesteps": int(trained.model.num_timesteps),
        "seed": trained.config.seed,
        "config": dict(trained.config.raw),
        "config_file": trained.config.source,
        "git_revision": git_revision(),
        "observation_normalization": "VecNormalize statistics inside the module"
        if trained.normalizer is not None
        else "none",
    }
    info.update(training or {})
    card = card.with_updates(
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), training=info
    )
    return save_policy(scripted_policy(trained), out_path, card)


def record_observations(
    trained: TrainedPolicy, count: int, seed: int = 0, stage: int = 3
) -> np.ndarray:
    """`count` observations from rollouts of the trained policy (stochastic actions)."""
    env = NavEnv(trained.config.env)
    env.set_stage(stage)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    recorded = []
    while len(recorded) < count:
        recorded.append(obs)
        action = trained.predict(obs[None])[0] + rng.normal(0.0, 0.3, 2)
        obs, _, terminated, truncated, _ = env.step(np.clip(action, -1.0, 1.0))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.asarray(recorded, dtype=np.float32)
