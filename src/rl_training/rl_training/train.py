"""Train a navigation policy with Stable-Baselines3 (PPO by default, SAC selectable).

A run directory (`<output_dir>/<name>/`) holds the config copy, TensorBoard logs
(`tb/`), checkpoints (model + VecNormalize statistics, `checkpoints/`), the final model
(`final_model.zip`, `final_vecnormalize.pkl`) and `run.json` (timesteps, wall time, git
revision). `resume=True` continues from the newest checkpoint to the same budget.

With `pretrain: enabled: true` a fresh run first runs the DAgger warm start
(`rl_training.imitation`) and saves its result (`pretrained_model.zip`,
`pretrained_vecnormalize.pkl`, `pretrain.json`); a resumed run without checkpoints reuses
that instead of collecting again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from rl_training.config import TrainConfig
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.provenance import git_revision, portable_path

CHECKPOINT_PREFIX = "nav"
ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}


def _env_factory(env_config: EnvConfig, rank: int, seed: int) -> Callable[[], Monitor]:
    def make() -> Monitor:
        env = Monitor(NavEnv(env_config), info_keywords=("is_success", "collision"))
        env.reset(seed=seed + 1000 * rank)
        env.action_space.seed(seed + rank)
        return env

    return make


def make_vec_env(config: TrainConfig) -> VecEnv:
    """The run's vectorized environments (SubprocVecEnv or DummyVecEnv, with Monitor)."""
    factories = [_env_factory(config.env, rank, config.seed) for rank in range(config.n_envs)]
    if config.vec_env == "subproc" and config.n_envs > 1:
        return SubprocVecEnv(factories)
    return DummyVecEnv(factories)


class CurriculumCallback(BaseCallback):
    """Sets every env's curriculum stage from the fraction of the budget spent."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.stage = -1

    def _update(self) -> None:
        fraction = self.num_timesteps / max(self.config.total_timesteps, 1)
        stage = self.config.stage_at(fraction)
        if stage != self.stage:
            self.stage = stage
            self.training_env.env_method("set_stage", stage)
            if self.verbose:
                print(f"curriculum: stage {stage} at {self.num_timesteps} steps")
        self.logger.record("curriculum/stage", self.stage)

    def _on_training_start(self) -> None:
        self._update()

    def _on_step(self) -> bool:
        self._update()
        return True


def latest_checkpoint(run_dir: Path) -> tuple[Path, Path | None] | None:
    """The newest checkpoint (model zip, VecNormalize pickle or None) of a run, if any."""
    folder = run_dir / "checkpoints"
    best: tuple[int, Path] | None = None
    for path in folder.glob(f"{CHECKPOINT_PREFIX}_*_steps.zip"):
        match = re.search(r"_(\d+)_steps\.zip$", path.name)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), path)
    if best is None:
        return None
    stats = folder / f"{CHECKPOINT_PREFIX}_vecnormalize_{best[0]}_steps.pkl"
    return best[1], stats if stats.is_file() else None


def _policy_kwargs(config: TrainConfig) -> dict[str, Any]:
    kwargs = dict(config.policy)
    arch = kwargs.pop("net_arch", [128, 128])
    if config.algorithm == "ppo":
        kwargs["net_arch"] = {"pi": list(arch), "vf": list(arch)}
    else:
        kwargs["net_arch"] = {"pi": list(arch), "qf": list(arch)}
    return kwargs


def build_model(config: TrainConfig, venv: VecEnv, run_dir: Path) -> BaseAlgorithm:
    """A fresh algorithm instance for the config."""
    algorithm = ALGORITHM_CLASSES[config.algorithm]
    return algorithm(
        "MlpPolicy",
        venv,
        seed=config.seed,
        device="cpu",
        verbose=1,
        tensorboard_log=str(run_dir / "tb"),
        policy_kwargs=_policy_kwargs(config),
        **config.algorithm_kwargs,
    )


PRETRAINED_MODEL = "pretrained_model.zip"
PRETRAINED_STATS = "pretrained_vecnormalize.pkl"


def warm_start(
    config: TrainConfig, model: BaseAlgorithm, venv: VecEnv, run_dir: Path, reuse: bool
) -> dict[str, Any] | None:
    """Run the config's DAgger warm start on a fresh model (or reuse a saved one).

    Fits `model`'s actor and critic and `venv`'s VecNormalize statistics in place, and
    saves the result in the run directory.
    """
    if not config.pretrain.enabled:
        return None
    from rl_training.imitation import apply_to_vec_normalize, dagger

    saved_model, saved_stats = run_dir / PRETRAINED_MODEL, run_dir / PRETRAINED_STATS
    summary_file = run_dir / "pretrain.json"
    if reuse and saved_model.is_file() and saved_stats.is_file() and summary_file.is_file():
        model.set_parameters(str(saved_model), device="cpu")
        stats = VecNormalize.load(str(saved_stats), DummyVecEnv([lambda: NavEnv(config.env)]))
        venv.obs_rms, venv.ret_rms = stats.obs_rms, stats.ret_rms
        print(f"pretrain: reusing {saved_model.name}")
        return json.loads(summary_file.read_text())
    gamma = float(config.algorithm_kwargs.get("gamma", 0.99))
    result = dagger(model.policy, config.env, config.pretrain, seed=config.seed, gamma=gamma)
    apply_to_vec_normalize(venv, result)
    model.save(str(saved_model))
    venv.save(str(saved_stats))
    summary_file.write_text(json.dumps(result.summary, indent=2) + "\n")
    return result.summary


def train(
    config: TrainConfig,
    base_dir: Path | None = None,
    resume: bool = False,
    progress_bar: bool = True,
) -> Path:
    """Run (or resume) a training run; returns the run directory."""
    torch.set_num_threads(max(config.torch_threads, 1))
    run_dir = config.run_dir(base_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dict(config.raw), sort_keys=False))
    started = time.monotonic()
    venv = make_vec_env(config)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        print(f"resume: no checkpoint in {run_dir / 'checkpoints'}, starting fresh")
    if checkpoint is not None:
        model_path, stats_path = checkpoint
        if config.normalize_observations or config.normalize_rewards:
            if stats_path is None:
                raise FileNotFoundError(f"no VecNormalize statistics beside {model_path}")
            venv = VecNormalize.load(str(stats_path), venv)
            venv.training = True
        model = ALGORITHM_CLASSES[config.algorithm].load(
            str(model_path), env=venv, device="cpu", tensorboard_log=str(run_dir / "tb")
        )
        print(f"resume: from {model_path.name} at {model.num_timesteps} steps")
    else:
        if config.normalize_observations or config.normalize_rewards:
            venv = VecNormalize(
                venv,
                norm_obs=config.normalize_observations,
                norm_reward=config.normalize_rewards,
                gamma=float(config.algorithm_kwargs.get("gamma", 0.99)),
            )
        model = build_model(config, venv, run_dir)
        warm_start(config, model, venv, run_dir, resume)
    remaining = config.total_timesteps - model.num_timesteps
    callbacks = CallbackList(
        [
            CurriculumCallback(config),
            CheckpointCallback(
                save_freq=max(config.checkpoint_every // config.n_envs, 1),
                save_path=str(run_dir / "checkpoints"),
                name_prefix=CHECKPOINT_PREFIX,
                save_vecnormalize=True,
            ),
        ]
    )
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=callbacks,
            progress_bar=progress_bar,
            reset_num_timesteps=checkpoint is None,
            tb_log_name=config.algorithm,
        )
    model.save(str(run_dir / "final_model.zip"))
    if isinstance(venv, VecNormalize):
        venv.save(str(run_dir / "final_vecnormalize.pkl"))
    summary = {
        "name": config.name,
        "algorithm": config.algorithm,
        "timesteps": int(model.num_timesteps),
        "wall_time_s": round(time.monotonic() - started, 1),
        "resumed_from": checkpoint[0].name if checkpoint else None,
        "git_revision": git_revision(),
        "config_file": portable_path(config.source),
        "seed": config.seed,
    }
    pretrain_file = run_dir / "pretrain.json"
    if config.pretrain.enabled and pretrain_file.is_file():
        summary["pretrain"] = json.loads(pretrain_file.read_text())
    previous = run_dir / "run.json"
    if checkpoint is not None and previous.is_file():
        summary["earlier_wall_time_s"] = json.loads(previous.read_text()).get("wall_time_s")
    previous.write_text(json.dumps(summary, indent=2) + "\n")
    venv.close()
    return run_dir
