import json

import pytest
import yaml
from rl_training_test_support import tiny_config

from rl_training.config import config_from_mapping, load_config
from rl_training.export import run_config, run_files
from rl_training.train import latest_checkpoint, train


def test_shipped_run_configs_load(workspace_root):
    folder = workspace_root / "config" / "training"
    runs = sorted(folder.glob("*.yaml")) + sorted(folder.glob("experiments/*.yaml"))
    runs = [path for path in runs if path.name != "base.yaml"]  # the base is not a run
    assert len(runs) == 4
    for path in runs:
        config = load_config(path)
        assert config.name == path.stem
        assert config.algorithm in ("ppo", "sac")
    nav = load_config(workspace_root / "config" / "training" / "nav_ppo.yaml")
    assert nav.n_envs == 2 and nav.vec_env == "subproc" and nav.algorithm == "ppo"


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="name: missing"):
        config_from_mapping({"seed": 1}, "x.yaml")
    with pytest.raises(ValueError, match="algorithm"):
        config_from_mapping({"name": "a", "algorithm": "dqn"})
    with pytest.raises(ValueError, match="curriculum"):
        config_from_mapping({"name": "a", "curriculum": [0.5, 0.2]})
    with pytest.raises(ValueError, match="env: unknown env setting"):
        config_from_mapping({"name": "a", "env": {"bogus": 1}})
    with pytest.raises(ValueError, match="unknown field"):
        config_from_mapping({"name": "a", "epochs": 1})


def test_curriculum_stage_follows_the_budget_fraction():
    config = config_from_mapping({"name": "a", "curriculum": [0.0, 0.1, 0.3, 0.6]})
    assert [config.stage_at(f) for f in (0.0, 0.09, 0.1, 0.5, 0.6, 1.0)] == [0, 0, 1, 2, 3, 3]


def test_train_checkpoints_and_resumes(tmp_path):
    config = tiny_config(output_dir=str(tmp_path))
    run_dir = train(config, progress_bar=False)
    assert (run_dir / "final_model.zip").is_file()
    assert (run_dir / "final_vecnormalize.pkl").is_file()
    assert any((run_dir / "tb").iterdir())
    model, stats = latest_checkpoint(run_dir)
    assert model.name == "nav_256_steps.zip" and stats is not None
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] == "tiny"
    assert run_config(run_dir).total_timesteps == 256
    assert run_files(run_dir, model)[1] == stats

    longer = tiny_config(output_dir=str(tmp_path), total_timesteps=384)
    train(longer, resume=True, progress_bar=False)
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["timesteps"] == 384
    assert summary["resumed_from"] == "nav_256_steps.zip"
