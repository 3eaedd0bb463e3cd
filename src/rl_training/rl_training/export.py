"""Export a trained Stable-Baselines3 policy as a TorchScript or ONNX policy file with its card.

The exported module is deterministic (the mean action of PPO's Gaussian, tanh(mu) for
SAC), carries the VecNormalize observation statistics as buffers and applies them first
(same formula, epsilon and clip as VecNormalize), and clips its output to [-1, 1]. So the
deployed node feeds it the raw observation vector of the card and gets the action the
training policy would take.

The ONNX file (`export_onnx`, or `convert_to_onnx` of an existing TorchScript file) is
the same module with the same card in the model metadata; it is written only when its
actions match the TorchScript module's on recorded observations (`PARITY_TOLERANCE`).

The card carries the training scan statistics (`training_scan_statistics`), the baseline
the deployed node's lidar drift detector compares live scans with.
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

from rl_policy_node.onnx_export import PARITY_TOLERANCE, OnnxWriteResult, write_onnx_policy
from rl_policy_node.policy_card import PolicyCard
from rl_policy_node.policy_loader import (
    RUNTIME_TORCHSCRIPT,
    TORCHSCRIPT_DEPRECATION,
    LoadedPolicy,
    load_policy,
    save_policy,
    weights_sha256,
)
from rl_policy_node.scan_drift import KIND_TRAINING, ScanStatistics
from rl_training.config import TrainConfig, config_from_mapping
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.provenance import git_revision, portable_path
from rlguard_common.robot_profile import load_robot_profile


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


# The training scan statistics of a card: scans of the training env (curriculum stage
# BASELINE_STAGE, domain randomization as in training) over episodes of at most
# BASELINE_EPISODE_SCANS scans, so the baseline mixes many randomized lidars (~1 s).
BASELINE_SCANS = 800
BASELINE_EPISODE_SCANS = 40
BASELINE_STAGE = 3
BASELINE_ACTION_HOLD = 10  # control steps each random action is held (to get around)


def training_scan_statistics(
    env_config: EnvConfig, scans: int = BASELINE_SCANS, seed: int = 0
) -> ScanStatistics:
    """Per-sector statistics of `scans` raw lidar scans of the training environment.

    The robot drives random actions (each held for `BASELINE_ACTION_HOLD` steps) in
    episodes of at most `BASELINE_EPISODE_SCANS` scans on stage-`BASELINE_STAGE` tasks;
    every scan the simulator takes counts once, before any observation is built from it.
    Same config and seed, same statistics.
    """
    env = NavEnv(env_config)
    env.set_stage(BASELINE_STAGE)
    stats = ScanStatistics.for_scan_spec(env.card.observation.scan, KIND_TRAINING)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    episodes, in_episode, step = 1, 0, 0
    last = None
    action = np.zeros(2)
    while stats.scans < scans:
        if env.scan is not last:
            last = env.scan
            stats.add(last)
            in_episode += 1
        if step % BASELINE_ACTION_HOLD == 0:
            action = rng.uniform(-1.0, 1.0, 2)
        _, _, terminated, truncated, _ = env.step(action)
        step += 1
        if terminated or truncated or in_episode >= BASELINE_EPISODE_SCANS:
            env.reset()
            episodes, in_episode = episodes + 1, 0
    stats.description = (
        f"training env: {stats.scans} scans over {episodes} episodes of stage "
        f"{BASELINE_STAGE} tasks, random actions, seed {seed}"
    )
    return stats


def policy_card(
    trained: TrainedPolicy,
    name: str = "nav_policy",
    version: str = "1.0.0",
    training: dict[str, Any] | None = None,
    baseline_scans: int = BASELINE_SCANS,
) -> PolicyCard:
    """The card of a trained policy (without the weights' sha256).

    With `baseline_scans` > 0 it carries the training scan statistics of that many scans
    (`training_scan_statistics`); 0 leaves them out.
    """
    robot = load_robot_profile(trained.config.env.robot)
    card = trained.config.env.card(robot, name=name, version=version)
    info = {
        "algorithm": trained.config.algorithm,
        "timesteps": int(trained.model.num_timesteps),
        "seed": trained.config.seed,
        "config": dict(trained.config.raw),
        "config_file": portable_path(trained.config.source),
        "git_revision": git_revision(),
        "observation_normalization": "VecNormalize statistics inside the module"
        if trained.normalizer is not None
        else "none",
    }
    info.update(training or {})
    statistics = None
    if baseline_scans > 0:
        statistics = training_scan_statistics(trained.config.env, baseline_scans).to_dict()
    return card.with_updates(
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        training=info,
        scan_statistics=statistics,
    )


def export_policy(
    trained: TrainedPolicy,
    out_path: str | Path,
    name: str = "nav_policy",
    version: str = "1.0.0",
    training: dict[str, Any] | None = None,
    baseline_scans: int = BASELINE_SCANS,
) -> PolicyCard:
    """Write the TorchScript policy file with its card; returns the saved card (with sha256).

    `baseline_scans`: scans of the training scan statistics in the card (0: none).
    """
    card = policy_card(trained, name, version, training, baseline_scans)
    return save_policy(scripted_policy(trained), out_path, card)


def export_onnx(
    trained: TrainedPolicy,
    out_path: str | Path,
    observations: np.ndarray,
    name: str = "nav_policy",
    version: str = "1.0.0",
    training: dict[str, Any] | None = None,
    tolerance: float = PARITY_TOLERANCE,
    baseline_scans: int = BASELINE_SCANS,
) -> tuple[PolicyCard, OnnxWriteResult]:
    """Write the ONNX policy file of a trained policy (parity-checked against TorchScript).

    The card is the one `export_policy` would write (same sha256: the graph keeps the
    module's parameter names). Raises `OnnxParityError` (nothing written) when the ONNX
    actions differ from the TorchScript module's on `observations` by more than
    `tolerance`.
    """
    module = scripted_policy(trained)
    card = policy_card(trained, name, version, training, baseline_scans)
    card = card.with_updates(weights_sha256=weights_sha256(module))
    result = write_onnx_policy(
        module,
        card.to_json(),
        card.observation.size,
        out_path,
        observations,
        tolerance=tolerance,
        expected_sha256=card.weights_sha256,
    )
    return card, result


def convert_to_onnx(
    source: str | Path,
    out_path: str | Path,
    observations: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> OnnxWriteResult:
    """Write the ONNX file of a TorchScript policy file, with its card unchanged.

    The card text is copied as stored (sha256, evaluation and gate included: the ONNX
    graph's weights hash to the same sha256, which is checked). Parity: the ONNX file's
    actions on `observations` are within `tolerance` of the TorchScript file's, else
    `OnnxParityError` and nothing is written.
    """
    policy = load_policy(source)
    if policy.runtime != RUNTIME_TORCHSCRIPT:
        raise ValueError(f"{source}: not a TorchScript policy file (runtime {policy.runtime})")
    return write_onnx_policy(
        policy.module,
        policy.card_text or policy.card.to_json(),
        policy.observation_size,
        out_path,
        observations,
        reference=policy,
        tolerance=tolerance,
        expected_sha256=policy.card.weights_sha256 or policy.sha256,
    )


def _rollout_observations(
    env_config: Any, act: Any, count: int, seed: int, stage: int
) -> np.ndarray:
    env = NavEnv(env_config)
    env.set_stage(stage)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    recorded = []
    while len(recorded) < count:
        recorded.append(obs)
        action = act(obs[None])[0] + rng.normal(0.0, 0.3, 2)
        obs, _, terminated, truncated, _ = env.step(np.clip(action, -1.0, 1.0))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.asarray(recorded, dtype=np.float32)


def record_observations(
    trained: TrainedPolicy, count: int, seed: int = 0, stage: int = 3
) -> np.ndarray:
    """`count` observations from rollouts of the trained policy (stochastic actions)."""
    return _rollout_observations(trained.config.env, trained.predict, count, seed, stage)


def card_training_config(policy: LoadedPolicy) -> TrainConfig:
    """The training config recorded in a policy's card (ValueError if it has none)."""
    raw = policy.card.training.get("config") if policy.has_card else None
    if not isinstance(raw, dict):
        raise ValueError(f"{policy.path}: the card records no training config")
    config = config_from_mapping(raw, f"{policy.path}: card training config")
    robot = load_robot_profile(config.env.robot)
    if config.env.card(robot).observation != policy.card.observation:
        raise ValueError(
            f"{policy.path}: the card's training config builds another observation than the card"
        )
    return config


def record_policy_observations(
    policy: LoadedPolicy, count: int, seed: int = 0, stage: int = 3
) -> np.ndarray:
    """`count` observations from rollouts of a policy file in its card's training env.

    The policy drives (its deterministic action plus N(0, 0.3) noise, clipped), so the
    observations are the states it meets; same seed, same observations.
    """
    config = card_training_config(policy)
    return _rollout_observations(config.env, policy, count, seed, stage)
