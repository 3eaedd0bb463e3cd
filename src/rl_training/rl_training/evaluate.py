"""Evaluate a policy file against the deployment gate, beside the DWA baseline (no rclpy).

Each world gets `episodes` held-out tasks (seeds disjoint from training's, randomization
on); every task is run by each controller mode on the same seed, so the numbers compare:

- ``policy``: the exported policy alone (its [-1, 1] output scaled by the card);
- ``policy_safety``: the policy's command through the safety filter core
  (`safety_controller.safety_filter.SafetyFilter`), as deployed;
- ``dwa``: the hybrid fallback's controller (DWA guided by its navigation grid) on the
  same scan and odometry;
- ``dwa_safety``: the DWA's command through the same safety filter core;
- ``stack``: the deployed stack in-process: the policy, the hybrid arbiter with the DWA
  fallback, and the safety filter (`rl_training.controllers.StackController`); it also
  reports the fraction of time each arbiter mode drove and the hand-overs, and
  `stack_check` whether it succeeds at least as often as the better of ``policy_safety``
  and ``dwa`` on every world where all three ran.

The filter and the DWA are configured as their nodes are, from
`config/safety_controller.yaml` (or the file given) and `config/hybrid_fallback.yaml` with
the robot profile's overrides, each built by its package's own function
(`rl_training.deployed_cores`); only the velocity limits are the policy card's action range.
The controllers are in `rl_training.controllers`, the episode runner, summaries and gate
in `rl_training.episodes`, the table, JSON, plots and card record in `rl_training.report`.

Worlds are shipped world names, ``generated`` (clutter and moving-obstacle stages),
``generated_<stage>`` (one curriculum stage, e.g. ``generated_clutter``) and the
static families of `rl_training.world_families` (``doorway``, ``clutter``, ``dead_end``,
``open``, ``rooms``) and the moving-obstacle families of `rl_training.mover_scenes`
(``crossing``, ``headon``, ``overtaking``, ``movers``); families take held-out seeds
`seed + episode`.

Per world and mode: success (with its Wilson 95 % interval), collision and timeout rates,
collisions split into at fault (the robot's own velocity had a component toward the
contact: `Simulator.at_fault_collision_count`) and not (hit while still or moving away),
mean time-to-goal and path length over successful episodes, command smoothness (mean
change of the normalized command per step), and the safety intervention rate (steps where
the filter overrode the request for safety). The gate: success >= the world's threshold
and no collision behind the safety filter, on every world.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rl_policy_node.policy_loader import LoadedPolicy, load_policy
from rl_training.controllers import (
    Controller,
    DwaController,
    LearnedPolicyController,
    SafetyFilteredController,
    StackController,
    baseline_kind,
)
from rl_training.deployed_cores import deployed_hybrid_config
from rl_training.episodes import (
    EpisodeResult,
    gate_verdict,
    run_episode,
    stack_check,
    summarize,
    time_ratio,
)
from rl_training.mover_scenes import FAMILIES, scene_task
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.report import EvaluationReport
from rl_training.world_families import STATIC_FAMILIES, static_family_task
from rl_training.worlds import STAGE_NAMES, Task, TaskSettings, generated_task, shipped_task
from rlguard_common.robot_profile import RobotProfile, load_robot_profile
from rlguard_common.world import load_world

MODES = ("policy", "policy_safety", "dwa", "dwa_safety", "stack")  # every mode there is
DEFAULT_MODES = ("policy", "policy_safety", "dwa")  # what runs unless asked for
DEFAULT_WORLDS = ("empty", "corridor", "warehouse", "dynamic", "generated")
DEFAULT_THRESHOLDS: dict[str, float] = {}  # per-world overrides of the gate's thresholds
# The procedural families: static (`world_families`) and moving-obstacle (`mover_scenes`).
FAMILY_WORLDS = (*STATIC_FAMILIES, *FAMILIES)
# Held-out evaluation seeds start here; training draws its seeds from its config seed.
EVALUATION_SEED = 900_000


def evaluation_tasks(
    world: str, episodes: int, settings: TaskSettings, seed: int, max_time: float | None = None
) -> list[Task]:
    """Held-out tasks for a world name.

    "generated": clutter and moving-obstacle worlds in turn; "generated_<stage>": one
    curriculum stage (e.g. "generated_clutter"); a static family of `world_families`
    (e.g. "doorway") or a `mover_scenes` family name: its tasks of seeds `seed + episode`;
    anything else: a shipped world's legs. `max_time` caps each
    task's time limit (s), for quick checks.
    """
    tasks = []
    stage = None
    if world.startswith("generated_"):
        name = world.removeprefix("generated_")
        if name not in STAGE_NAMES:
            raise ValueError(f"unknown generated stage {name!r}; known: {', '.join(STAGE_NAMES)}")
        stage = STAGE_NAMES.index(name)
    shipped = None
    if world != "generated" and stage is None and world not in FAMILY_WORLDS:
        shipped = load_world(world)
    for episode in range(episodes):
        rng = np.random.default_rng([seed, episode, len(world)])
        if world in FAMILIES:
            tasks.append(scene_task(world, seed + episode, settings))
        elif world in STATIC_FAMILIES:
            tasks.append(static_family_task(world, seed + episode, settings))
        elif stage is not None:
            tasks.append(generated_task(stage, rng, settings))
        elif shipped is None:
            tasks.append(generated_task(2 + episode % 2, rng, settings))
        else:
            tasks.append(shipped_task(shipped, episode, rng, settings))
    if max_time is not None:
        tasks = [replace(t, time_limit=min(t.time_limit, max_time)) for t in tasks]
    return tasks


def evaluate(
    model_path: str | Path,
    worlds: Sequence[str] = DEFAULT_WORLDS,
    episodes: int = 10,
    modes: Sequence[str] = DEFAULT_MODES,
    seed: int = EVALUATION_SEED,
    thresholds: Mapping[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
    max_time: float | None = None,
    workers: int = 1,
    safety_yaml: str | Path | None = None,
) -> EvaluationReport:
    """Run every mode on the same held-out tasks of every world.

    `workers` > 1 runs the tasks in that many processes (results in the same order and
    the same as with one); `safety_yaml` is the safety node's YAML the filter is built
    from (default the workspace's config/safety_controller.yaml).
    """
    started = time.monotonic()
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown mode(s): {', '.join(unknown)}")
    policy = load_policy(model_path)
    env = NavEnv(env_config_for(policy))
    settings = env.task_settings
    jobs = []
    for world in worlds:
        for index, task in enumerate(evaluation_tasks(world, episodes, settings, seed, max_time)):
            jobs.append((world, index, task, seed + 1000 * index + len(world)))
    setup = (str(model_path), tuple(modes), None if safety_yaml is None else str(safety_yaml))
    results: list[EpisodeResult] = []

    def collect(job: tuple[str, int, Task, int], outcome: list[EpisodeResult]) -> None:
        results.extend(outcome)
        if progress is not None:
            for result in outcome:
                progress(
                    f"{job[0]} {job[1] + 1}/{episodes} {result.mode}: {result.outcome}"
                    f"{' (at fault)' if result.at_fault else ''} in {result.time:.1f} s "
                    f"({job[2].label})"
                )

    if workers <= 1 or len(jobs) <= 1:
        _init_worker(*setup)
        for job in jobs:
            collect(job, _run_job(job))
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(jobs)), _init_worker, setup) as pool:
            for job, outcome in zip(jobs, pool.imap(_run_job, jobs), strict=True):
                collect(job, outcome)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for world in worlds:
        summary[world] = {
            mode: summarize([r for r in results if r.world == world and r.mode == mode])
            for mode in modes
        }
    ratios = {mode: time_ratio(results, mode) for mode in modes if mode != "dwa"}
    merged = dict(DEFAULT_THRESHOLDS)
    merged.update(thresholds or {})
    gate_mode = "policy_safety" if "policy_safety" in modes else modes[0]
    return EvaluationReport(
        model=str(model_path),
        worlds=list(worlds),
        modes=list(modes),
        episodes_per_world=episodes,
        seed=seed,
        summary=summary,
        time_ratio_vs_dwa=ratios,
        gate=gate_verdict(summary, merged, mode=gate_mode),
        stack_check=stack_check(summary),
        baseline=baseline_kind(deployed_hybrid_config(env))
        if {"dwa", "dwa_safety"} & set(modes)
        else "not run",
        wall_time_s=round(time.monotonic() - started, 1),
        episodes=results,
    )


# One evaluation's env and controllers per process (built by `_init_worker`).
_WORKER: dict[str, Any] = {}


def _init_worker(model_path: str, modes: tuple[str, ...], safety_yaml: str | None) -> None:
    """Load the policy and build the env and the controllers of `modes` in this process."""
    if multiprocessing.parent_process() is not None:
        import torch

        torch.set_num_threads(1)  # one core per worker process
    policy = load_policy(model_path)
    env = NavEnv(env_config_for(policy))
    builders: dict[str, Callable[[], Controller]] = {
        "policy": lambda: LearnedPolicyController(policy),
        "policy_safety": lambda: SafetyFilteredController(
            LearnedPolicyController(policy), safety_yaml=safety_yaml
        ),
        "dwa": DwaController,
        "dwa_safety": lambda: SafetyFilteredController(DwaController(), safety_yaml=safety_yaml),
        "stack": lambda: StackController(LearnedPolicyController(policy), safety_yaml=safety_yaml),
    }
    _WORKER.clear()
    _WORKER.update(env=env, modes=modes, controllers={m: builders[m]() for m in modes})


def _run_job(job: tuple[str, int, Task, int]) -> list[EpisodeResult]:
    """Every mode of this process on one task (world, index, task, episode seed)."""
    world, _, task, episode_seed = job
    env, controllers = _WORKER["env"], _WORKER["controllers"]
    return [
        run_episode(env, controllers[mode], task, episode_seed, mode, world)
        for mode in _WORKER["modes"]
    ]


def env_config_for(policy: LoadedPolicy) -> EnvConfig:
    """The env config a policy was trained with (from its card), randomization on."""
    training = dict(policy.card.training)
    config = dict(training.get("config", {}) or {})
    env = EnvConfig.from_mapping(config.get("env"))
    spec = env.card(env_robot(env)).observation
    if spec != policy.card.observation or env.action_spec() != policy.card.action:
        raise ValueError(
            f"{policy.path}: the card's observation/action do not match its training config"
        )
    return EnvConfig.from_mapping({**(config.get("env") or {}), "randomize": True})


def env_robot(env: EnvConfig) -> RobotProfile:
    """The robot profile of an env config."""
    return load_robot_profile(env.robot)
