"""Training run configuration: one YAML file per run (config/training/<run>.yaml).

A run file may name a base file (``base: base.yaml``, relative to the run file) and then
state only what differs from it. `load_config` deep-merges the run file over its base
(`merge_override`, JSON Merge Patch rules, RFC 7396):

- a mapping in the run file is merged key by key into the base's mapping of that key;
- any other value (number, string, list) replaces the base's value as a whole;
- ``null`` removes the key from the base (refused when the base has no such key).

A base may itself name a base. The merged mapping is then validated as one config, so
unknown keys are refused as before, and it is what the run records (`TrainConfig.raw`:
the run directory's config.yaml copy and the policy card), without the ``base:`` key.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rl_training.nav_env import EnvConfig

ALGORITHMS = ("ppo", "sac")
BASE_KEY = "base"  # a run file's base file, relative to the run file
EXPERTS = ("dwa",)
STAGE_COUNT = 4


@dataclass(frozen=True)
class PretrainConfig:
    """The DAgger warm start run before the RL algorithm (`pretrain:` in a run config).

    Iteration 0 is driven by the expert alone; iteration i executes the expert's action
    with probability `beta_decay ** i` and the learner's otherwise. Every visited state is
    labelled with the expert's action, the data aggregated, and the actor's mean fitted to
    it (behaviour cloning) after each iteration; the critic is regressed on the discounted
    returns of the rollouts at the end.
    """

    enabled: bool = False
    expert: str = "dwa"  # hybrid_fallback's DWA guided by its navigation grid
    expert_safety_margin: float = 0.03  # m the expert keeps between footprint and obstacles
    privileged_expert: bool = False  # the expert sees moving obstacles' true motion
    # The expert knows the moving obstacles' loops and waits before a lane it would share
    # with one (the experiment rl_training.experiments.yielding); implies privileged_expert.
    yield_to_moving: bool = False
    # Every executed command passes the deployed safety filter core, so the learner visits
    # (and is labelled in) the states the filter leads it into behind the stack.
    safety_filter: bool = False
    # The expert's dynamic window spans the whole velocity range at every step, so its label
    # is the velocity it prefers, not one control period's step toward it from the measured
    # velocity: a learner the filter holds still is otherwise taught the tiny first step
    # (0.05 m/s, 0.16 rad/s) it cannot take, and stays still (the executed command is
    # ramped by the simulator's motors and, behind the stack, by the safety filter).
    expert_free_window: bool = False
    iterations: int = 6
    steps_per_iteration: int = 20_000  # env steps per DAgger iteration (all workers)
    beta_decay: float = 0.5
    learner_noise: float = 0.1  # std of Gaussian noise on the learner's action when it drives
    stage_weights: tuple[float, ...] = (0.1, 0.2, 0.35, 0.35)  # curriculum stage mix
    epochs: int = 4  # behaviour-cloning epochs over the aggregated data, per iteration
    batch_size: int = 512
    learning_rate: float = 1e-3
    critic_epochs: int = 4  # 0: leave the critic untrained
    workers: int = 2  # collection processes (1: in this process)

    @staticmethod
    def from_mapping(data: Mapping[str, Any] | None) -> PretrainConfig:
        """Validate a `pretrain:` mapping; errors name the field and the bad value."""
        values = dict(data or {})
        known = {f.name for f in fields(PretrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        flags = (
            "enabled",
            "privileged_expert",
            "yield_to_moving",
            "safety_filter",
            "expert_free_window",
        )
        for key in flags:
            if not isinstance(values.get(key, False), bool):
                raise ValueError(f"{key}: must be true or false, got {values[key]!r}")
        if values.get("expert", "dwa") not in EXPERTS:
            raise ValueError(f"expert: must be one of {EXPERTS}, got {values['expert']!r}")
        minimum = {
            "iterations": 1,
            "steps_per_iteration": 1,
            "epochs": 1,
            "batch_size": 1,
            "critic_epochs": 0,
            "workers": 1,
        }
        for key, low in minimum.items():
            value = values.get(key, low)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key}: must be an integer >= {low}, got {values[key]!r}")
        for key, low, high in (
            ("beta_decay", 0.0, 1.0),
            ("learner_noise", 0.0, 1.0),
            ("learning_rate", 0.0, 1.0),
            ("expert_safety_margin", 0.0, 0.5),
        ):
            if key not in values:
                continue
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key}: must be a number, got {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{key}: must be in [{low}, {high}], got {value!r}")
            values[key] = float(value)
        if values.get("learning_rate", 1.0) <= 0.0:
            raise ValueError("learning_rate: must be > 0")
        if "stage_weights" in values:
            weights = values["stage_weights"]
            if not isinstance(weights, list | tuple) or len(weights) != STAGE_COUNT:
                raise ValueError(
                    f"stage_weights: must list {STAGE_COUNT} weights (one per stage), "
                    f"got {weights!r}"
                )
            try:
                weights = tuple(float(w) for w in weights)
            except (TypeError, ValueError):
                raise ValueError(f"stage_weights: must be numbers, got {weights!r}") from None
            if not all(math.isfinite(w) and w >= 0.0 for w in weights) or sum(weights) <= 0.0:
                raise ValueError(
                    f"stage_weights: must be >= 0 with a positive sum, got {list(weights)}"
                )
            values["stage_weights"] = weights
        return PretrainConfig(**values)


@dataclass(frozen=True)
class TrainConfig:
    """A training run: algorithm, budget, vectorization, env, curriculum and output."""

    name: str
    seed: int = 0
    algorithm: str = "ppo"
    total_timesteps: int = 1_000_000
    n_envs: int = 2
    vec_env: str = "subproc"  # "subproc" (one process per env) or "dummy" (in-process)
    normalize_observations: bool = True
    normalize_rewards: bool = True
    checkpoint_every: int = 100_000  # env steps between checkpoints
    output_dir: str = "training_runs"
    torch_threads: int = 1
    curriculum: tuple[float, ...] = (0.0, 0.1, 0.25, 0.45)  # fraction at which stage k starts
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: Mapping[str, Any] = field(default_factory=dict)
    sac: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)  # net_arch, log_std_init, ...
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # DAgger warm start
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def algorithm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the selected Stable-Baselines3 algorithm."""
        return dict(self.ppo if self.algorithm == "ppo" else self.sac)

    def run_dir(self, base: Path | None = None) -> Path:
        """Where this run writes checkpoints, logs and the final model."""
        root = Path(self.output_dir)
        if not root.is_absolute() and base is not None:
            root = base / root
        return root / self.name

    def stage_at(self, fraction: float) -> int:
        """The curriculum stage at `fraction` (0..1) of the training budget."""
        stage = 0
        for index, start in enumerate(self.curriculum):
            if fraction >= start:
                stage = index
        return stage


def load_config(path: str | Path) -> TrainConfig:
    """Read a training config YAML file (merged over its base chain) and validate it."""
    file = Path(path)
    return config_from_mapping(load_config_mapping(file), str(file))


def load_config_mapping(path: str | Path) -> dict[str, Any]:
    """The effective mapping of a run file: the file deep-merged over its `base:` chain.

    ``name`` comes first, as in a run file (the run's config.yaml copy reads the same).
    Errors name the file: an unreadable or non-mapping file, a bad ``base:`` entry, a
    base chain that loops, a ``null`` for a key the base does not have.
    """
    merged = _merged_file(Path(path), ())
    if "name" in merged:
        merged = {"name": merged["name"], **merged}
    return merged


def _merged_file(file: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """One file of a base chain, merged over its own base (`seen`: the files below it)."""
    resolved = file.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ValueError(f"{file}: base: the chain of bases loops ({chain})")
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{file}: cannot read the training config ({exc})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{file}: a training config must be a mapping")
    if BASE_KEY not in data:
        return dict(data)
    base_name = data[BASE_KEY]
    if not isinstance(base_name, str) or not base_name.strip():
        raise ValueError(f"{file}: {BASE_KEY}: must name a YAML file, got {base_name!r}")
    base_file = file.parent / base_name
    if not base_file.is_file():
        raise ValueError(f"{file}: {BASE_KEY}: {base_name} not found (looked for {base_file})")
    base = _merged_file(base_file, (*seen, resolved))
    override = {key: value for key, value in data.items() if key != BASE_KEY}
    return merge_override(base, override, str(file))


def merge_override(
    base: Mapping[str, Any],
    override: Mapping[str, Any],
    source: str = "<override>",
    prefix: str = "",
) -> dict[str, Any]:
    """`override` deep-merged over `base` (a new mapping; neither argument is changed).

    Mappings merge key by key (the base's key order kept, new keys appended); any other
    value replaces the base's; ``None`` (YAML ``null``) removes the key, and is refused
    when the base has no such key (a typo must not pass silently). ValueError names
    `source` and the dotted key (`prefix` is the dotted path of these mappings).
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        where = f"{prefix}{key}"
        if value is None:
            if key not in merged:
                raise ValueError(f"{source}: {where}: null removes a base key, the base has none")
            del merged[key]
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_override(merged[key], value, source, f"{where}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def config_from_mapping(data: Any, source: str = "<dict>") -> TrainConfig:
    """Validate a training config mapping; errors name `source` and the field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: a training config must be a mapping")
    values = dict(data)
    known = {f.name for f in fields(TrainConfig)} - {"source", "raw"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}")
    if "name" not in values:
        raise ValueError(f"{source}: name: missing")
    algorithm = str(values.get("algorithm", "ppo")).lower()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{source}: algorithm: must be one of {ALGORITHMS}, got {algorithm!r}")
    values["algorithm"] = algorithm
    try:
        values["env"] = EnvConfig.from_mapping(values.get("env"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: env: {exc}") from None
    try:
        values["pretrain"] = PretrainConfig.from_mapping(values.get("pretrain"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: pretrain: {exc}") from None
    if values["pretrain"].enabled and algorithm != "ppo":
        raise ValueError(f"{source}: pretrain: the DAgger warm start needs algorithm: ppo")
    if values["pretrain"].enabled and not values.get("normalize_observations", True):
        raise ValueError(
            f"{source}: pretrain: the DAgger warm start needs normalize_observations: true"
        )
    curriculum = tuple(float(v) for v in values.get("curriculum", TrainConfig.curriculum))
    if not curriculum or curriculum[0] != 0.0 or list(curriculum) != sorted(curriculum):
        raise ValueError(f"{source}: curriculum: must start at 0.0 and increase, got {curriculum}")
    values["curriculum"] = curriculum
    for key in ("total_timesteps", "n_envs", "checkpoint_every", "seed", "torch_threads"):
        if key in values and (not isinstance(values[key], int) or values[key] < 0):
            raise ValueError(f"{source}: {key}: must be a non-negative integer")
    if values.get("n_envs", 2) < 1:
        raise ValueError(f"{source}: n_envs: must be >= 1")
    if values.get("vec_env", "subproc") not in ("subproc", "dummy"):
        raise ValueError(f"{source}: vec_env: must be 'subproc' or 'dummy'")
    return TrainConfig(**values, source=source, raw=dict(data))
