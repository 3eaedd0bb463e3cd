"""Training run configuration: one YAML file per run (config/training/<run>.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rl_training.nav_env import EnvConfig

ALGORITHMS = ("ppo", "sac")


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
    """Read and validate a training config YAML file."""
    file = Path(path)
    data = yaml.safe_load(file.read_text())
    return config_from_mapping(data, str(file))


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
