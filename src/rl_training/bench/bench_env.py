"""Benchmark: env steps per second: single, vectorized, DAgger collection, PPO training.

Run: python src/rl_training/bench/bench_env.py --out /tmp/bench
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace

import numpy as np

from rl_training.config import load_config
from rl_training.nav_env import NavEnv
from rl_training.rollouts import CollectJob, Normalizer, collector
from rl_training.train import make_vec_env, train
from rlguard_tools.benchlib import WORKSPACE_ROOT, bench_arguments, summarize, write_results

CONFIG = WORKSPACE_ROOT / "config" / "training" / "nav_ppo.yaml"
WINDOW_STEPS = 500  # env steps per rate sample
STAGE = 3  # the last curriculum stage: generated clutter, moving obstacles, shipped legs


def single_env_rates(config, windows: int) -> list[float]:
    """Steps/s of one NavEnv with random actions, one sample per window of steps."""
    env = NavEnv(replace(config.env, stage=STAGE))
    env.reset(seed=1)
    env.action_space.seed(1)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(WINDOW_STEPS):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        rates.append(WINDOW_STEPS / (time.perf_counter() - start))
    return rates


def vectorized_rates(config, windows: int) -> list[float]:
    """Env steps/s (summed over workers) of the run's SubprocVecEnv with random actions."""
    venv = make_vec_env(replace(config, vec_env="subproc"))
    venv.env_method("set_stage", STAGE)
    venv.reset()
    rng = np.random.default_rng(1)
    per_window = max(WINDOW_STEPS // config.n_envs, 1)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(per_window):
            venv.step(rng.uniform(-1.0, 1.0, (config.n_envs, 2)).astype(np.float32))
        rates.append(per_window * config.n_envs / (time.perf_counter() - start))
    venv.close()
    return rates


def collection_rate(config, steps: int, workers: int) -> float:
    """Expert-labelled env steps/s of a DAgger iteration (the run's expert and filter)."""
    size = int(np.prod(NavEnv(config.env).observation_space.shape))
    shares = np.array_split(np.arange(steps), workers)
    jobs = [
        CollectJob(
            env_config=config.env,
            steps=len(share),
            pretrain=config.pretrain,
            beta=1.0,
            learner_noise=config.pretrain.learner_noise,
            stage_weights=config.pretrain.stage_weights,
            seed=(1, 0, worker),
            actor=None,
            normalizer=Normalizer.identity(size),
        )
        for worker, share in enumerate(shares)
    ]
    with collector(workers) as pool:
        # A one-step job per worker starts every process and loads its env, untimed.
        pool.run([replace(job, steps=1) for job in jobs])
        start = time.perf_counter()
        pool.run(jobs)
        return steps / (time.perf_counter() - start)


def training_rate(config, steps: int) -> float:
    """Env steps/s of a short PPO run (rollouts + updates), as training sees them."""
    raw = {k: v for k, v in config.raw.items() if k != "pretrain"}
    ppo = dict(config.ppo, n_steps=1024)
    # The RL phase only: the run config's DAgger warm start takes most of an hour.
    short = replace(
        config,
        name="bench",
        total_timesteps=steps,
        checkpoint_every=10**9,
        ppo=ppo,
        raw=raw,
        pretrain=replace(config.pretrain, enabled=False),
    )
    with tempfile.TemporaryDirectory() as folder:
        short = replace(short, output_dir=folder)
        start = time.perf_counter()
        train(short, progress_bar=False)
        return steps / (time.perf_counter() - start)


def main() -> None:
    """Measure and write the results."""
    args = bench_arguments(__doc__.splitlines()[0])
    config = load_config(CONFIG)
    figures = {
        "single_env_steps_per_s": summarize(single_env_rates(config, 10), "steps/s"),
        f"subproc_{config.n_envs}_envs_steps_per_s": summarize(
            vectorized_rates(config, 10), "steps/s"
        ),
    }
    for workers in (1, config.pretrain.workers):
        figures[f"dagger_collection_{workers}_workers_steps_per_s"] = {
            "unit": "steps/s",
            "value": collection_rate(config, 6000, workers),
            "count": 1,
        }
    rate = training_rate(config, 4096)
    figures["ppo_training_steps_per_s"] = {"unit": "steps/s", "value": rate, "count": 1}
    write_results("rl_training_env", figures, args.out)


if __name__ == "__main__":
    main()
