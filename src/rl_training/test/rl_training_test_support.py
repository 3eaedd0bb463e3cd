"""Small training runs and policy files for the rl_training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rl_training.config import TrainConfig, config_from_mapping
from rl_training.export import TrainedPolicy, export_policy
from rl_training.nav_env import NavEnv
from rl_training.train import build_model


def tiny_config(name: str = "tiny", **changes: object) -> TrainConfig:
    """A one-env, in-process PPO run config with small rollouts."""
    data = {
        "name": name,
        "seed": 3,
        "total_timesteps": 256,
        "n_envs": 1,
        "vec_env": "dummy",
        "checkpoint_every": 128,
        "policy": {"net_arch": [32, 32]},
        "ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 1},
        "env": {"randomize": True},
    }
    data.update(changes)
    return config_from_mapping(data, "test")


def untrained_policy(tmp_path: Path, normalization_steps: int = 300) -> TrainedPolicy:
    """A fresh PPO policy whose VecNormalize statistics come from random-action steps."""
    config = tiny_config()
    venv = VecNormalize(DummyVecEnv([lambda: NavEnv(config.env)]))
    venv.env_method("set_stage", 3)
    venv.seed(5)
    venv.reset()
    rng = np.random.default_rng(5)
    for _ in range(normalization_steps):
        venv.step(rng.uniform(-1.0, 1.0, (1, 2)).astype(np.float32))
    venv.training = False
    model = build_model(config, venv, tmp_path)
    return TrainedPolicy(model=model, normalizer=venv, config=config)


def exported_policy(tmp_path: Path) -> tuple[TrainedPolicy, Path]:
    """An untrained policy exported to a policy file in `tmp_path`."""
    trained = untrained_policy(tmp_path)
    path = tmp_path / "policy.pt"
    export_policy(trained, path, name="test_policy", version="0.0.1")
    return trained, path
