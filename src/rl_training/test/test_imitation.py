import json
import math

import numpy as np
import pytest
import torch
from rl_training_test_support import tiny_config
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rl_policy_node.action_scaling import action_to_velocity
from rl_training.config import PretrainConfig, config_from_mapping, load_config
from rl_training.controllers import DwaController
from rl_training.expert import (
    ExpertDwa,
    expert_label,
    moving_in_base_frame,
    without_moving_points,
)
from rl_training.export import run_files
from rl_training.fitting import actor_loss, discounted_returns, running_returns
from rl_training.imitation import apply_to_vec_normalize, dagger
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.rollouts import CollectJob, Normalizer, collect, make_expert
from rl_training.train import build_model, train

TINY_PRETRAIN = {
    "enabled": True,
    "iterations": 2,
    "steps_per_iteration": 500,
    "epochs": 30,
    "batch_size": 64,
    "critic_epochs": 2,
    "workers": 1,
}


def fresh_model(tmp_path, seed=3):
    config = tiny_config(seed=seed, pretrain=TINY_PRETRAIN)
    venv = VecNormalize(DummyVecEnv([lambda: NavEnv(config.env)]))
    return config, venv, build_model(config, venv, tmp_path)


def test_expert_labels_are_actions_that_map_back_to_the_expert_command():
    env = NavEnv(EnvConfig(stage=2))
    expert = DwaController()
    spec = env.card.action
    observation, _ = env.reset(seed=11)
    expert.reset(env)
    moving = 0
    for _ in range(60):
        v, w, _ = expert.command(env, observation)
        label = expert_label(v, w, spec)
        assert label.shape == (2,) and np.all(np.abs(label) <= 1.0)
        back = action_to_velocity(label, spec)
        # Inside the card's range the label stands for exactly the expert's command.
        assert back[0] == pytest.approx(min(max(v, spec.linear[0]), spec.linear[1]), abs=1e-6)
        assert back[1] == pytest.approx(min(max(w, spec.angular[0]), spec.angular[1]), abs=1e-6)
        moving += v > 0.05
        observation, _, terminated, truncated, _ = env.step(label)
        if terminated or truncated:
            break
    assert moving > 10, "the expert drives toward the goal"


def test_the_expert_keeps_its_configured_margin():
    env = NavEnv(EnvConfig())
    env.reset(seed=2)
    expert = make_expert(PretrainConfig(expert_safety_margin=0.08))
    assert type(expert) is ExpertDwa and not expert.privileged
    assert make_expert(PretrainConfig(privileged_expert=True)).privileged
    expert.reset(env)
    assert expert.kind == "dwa+grid"
    assert expert.guided.planner.config.safety_margin == 0.08
    default = DwaController()
    default.reset(env)
    assert default.guided.planner.config.safety_margin < 0.08


def test_a_free_window_expert_labels_the_velocity_it_wants_not_one_step_toward_it():
    # From standstill in an empty arena, the goal 1.8 rad to the left: the plain expert's
    # label is one control period's acceleration (0.05 m/s, 0.16 rad/s), the free-window
    # expert's the speed and turn rate it wants.
    env = NavEnv(EnvConfig(stage=0))
    observation, _ = env.reset(seed=1)
    labels = {}
    for free in (False, True):
        expert = make_expert(PretrainConfig(expert_free_window=free))
        assert expert.free_window is free
        expert.reset(env)
        v, w, _ = expert.command(env, observation)
        labels[free] = (v, w)
    step = DwaController()
    step.reset(env)
    planner = step.guided.planner.config
    dv = planner.max_linear_accel * planner.control_period
    dw = planner.max_angular_accel * planner.control_period
    assert labels[False][0] <= dv + 1e-9 and abs(labels[False][1]) <= dw + 1e-9
    assert labels[True][0] > 3.0 * dv and labels[True][1] > 3.0 * dw


def test_expert_labels_clip_commands_outside_the_card_range():
    spec = EnvConfig().action_spec()
    assert expert_label(-0.1, 0.0, spec)[0] == -1.0  # backing up: the policy cannot reverse
    assert expert_label(0.5, 9.0, spec).tolist() == [1.0, 1.0]


def test_collection_is_seeded_and_labels_every_step():
    job = CollectJob(
        env_config=EnvConfig(),
        steps=120,
        pretrain=PretrainConfig(),
        beta=1.0,
        learner_noise=0.0,
        stage_weights=(0.0, 1.0, 0.0, 0.0),
        seed=(1, 0, 0),
        actor=None,
        normalizer=Normalizer.identity(43),
    )
    first, second = collect(job), collect(job)
    assert len(first) == 120 and first.episode_ends[-1]
    assert first.expert_driven.all()
    assert np.array_equal(first.observations, second.observations)
    assert np.all(np.abs(first.expert_actions) <= 1.0)


def test_returns_restart_at_episode_ends():
    rewards = np.array([1.0, 1.0, 1.0, 2.0])
    ends = np.array([False, True, False, True])
    assert discounted_returns(rewards, ends, 0.5).tolist() == [1.5, 1.0, 2.0, 2.0]
    assert running_returns(rewards, ends, 0.5).tolist() == [1.0, 1.5, 1.0, 2.5]


def test_dagger_makes_the_learner_agree_with_the_expert_on_held_out_states(tmp_path):
    config, venv, model = fresh_model(tmp_path)
    _, _, untrained = fresh_model(tmp_path / "untrained", seed=4)
    result = dagger(model.policy, config.env, config.pretrain, seed=5, progress=None)
    iterations = result.summary["iterations"]
    assert [it["beta"] for it in iterations] == [1.0, 0.5]
    assert result.summary["samples"] == 1000 and len(result.data) == 1000
    held_out = collect(
        CollectJob(
            env_config=config.env,
            steps=400,
            pretrain=config.pretrain,
            beta=1.0,
            learner_noise=0.0,
            stage_weights=(0.25, 0.25, 0.25, 0.25),
            seed=(99, 0, 0),
            actor=None,
            normalizer=result.normalizer,
        )
    )
    trained_loss = actor_loss(model.policy, result.normalizer, held_out)
    untrained_loss = actor_loss(untrained.policy, result.normalizer, held_out)
    assert trained_loss < 0.3 * untrained_loss
    apply_to_vec_normalize(venv, result)
    assert np.allclose(venv.obs_rms.mean, result.data.observations.mean(axis=0), atol=1e-5)
    assert venv.ret_rms.var == pytest.approx(result.return_variance)


def test_pretrain_section_validates():
    assert not config_from_mapping({"name": "a"}).pretrain.enabled
    loaded = config_from_mapping({"name": "a", "pretrain": {"enabled": True, "iterations": 3}})
    assert loaded.pretrain == PretrainConfig(enabled=True, iterations=3)
    bad = [
        ({"iterations": 0}, "pretrain: iterations: must be an integer >= 1"),
        ({"steps_per_iteration": 1.5}, "pretrain: steps_per_iteration"),
        ({"beta_decay": 1.5}, r"pretrain: beta_decay: must be in \[0.0, 1.0\]"),
        ({"learning_rate": 0.0}, "pretrain: learning_rate: must be > 0"),
        ({"stage_weights": [1, 0]}, "pretrain: stage_weights: must list 4 weights"),
        ({"stage_weights": [0, 0, 0, 0]}, "pretrain: stage_weights: must be >= 0"),
        ({"expert": "oracle"}, "pretrain: expert: must be one of"),
        ({"enabled": "yes"}, "pretrain: enabled: must be true or false"),
        ({"bogus": 1}, "pretrain: unknown setting"),
        ({"workers": True}, "pretrain: workers"),
        ({"expert_safety_margin": -0.1}, "pretrain: expert_safety_margin: must be in"),
        ({"yield_to_moving": 1}, "pretrain: yield_to_moving: must be true or false"),
        ({"safety_filter": "on"}, "pretrain: safety_filter: must be true or false"),
        ({"expert_free_window": 1}, "pretrain: expert_free_window: must be true or false"),
    ]
    for section, message in bad:
        with pytest.raises(ValueError, match=message):
            config_from_mapping({"name": "a", "pretrain": section}, "x.yaml")
    with pytest.raises(ValueError, match="needs algorithm: ppo"):
        config_from_mapping({"name": "a", "algorithm": "sac", "pretrain": {"enabled": True}})
    with pytest.raises(ValueError, match="needs normalize_observations"):
        config_from_mapping(
            {"name": "a", "normalize_observations": False, "pretrain": {"enabled": True}}
        )


def test_shipped_config_warm_starts(workspace_root):
    config = load_config(workspace_root / "config" / "training" / "nav_ppo.yaml")
    assert config.pretrain.enabled and config.pretrain.workers == config.n_envs


def test_train_runs_the_warm_start_and_resume_reuses_it(tmp_path):
    pretrain = {**TINY_PRETRAIN, "iterations": 1, "steps_per_iteration": 200, "epochs": 2}
    config = tiny_config(output_dir=str(tmp_path), pretrain=pretrain)
    run_dir = train(config, progress_bar=False)
    for name in ("pretrained_model.zip", "pretrained_vecnormalize.pkl", "pretrain.json"):
        assert (run_dir / name).is_file()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["pretrain"]["samples"] == 200
    saved = VecNormalize.load(
        str(run_dir / "pretrained_vecnormalize.pkl"), DummyVecEnv([lambda: NavEnv(config.env)])
    )
    assert saved.obs_rms.count == pytest.approx(200)
    # The warm-started policy exports like a checkpoint, with its own statistics.
    assert run_files(run_dir, run_dir / "pretrained_model.zip") == (
        run_dir / "pretrained_model.zip",
        run_dir / "pretrained_vecnormalize.pkl",
    )

    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    (run_dir / "pretrain.json").write_text(json.dumps({"marker": "reused"}))
    train(config, resume=True, progress_bar=False)
    assert json.loads((run_dir / "run.json").read_text())["pretrain"] == {"marker": "reused"}


def test_moving_obstacles_are_moved_into_the_base_frame_and_their_points_dropped():
    world = np.array([[1.0, 1.0, 0.3, 0.0, 0.2]])
    base = moving_in_base_frame(world, (1.0, 0.0, math.pi / 2))
    np.testing.assert_allclose(base, [[1.0, 0.0, 0.0, -0.3, 0.2]], atol=1e-12)
    points = np.array([[1.0, 0.21], [1.25, 0.0], [2.0, 2.0]])
    kept = without_moving_points(points, base, margin=0.06)
    np.testing.assert_allclose(kept, [[2.0, 2.0]])


class _StraightAhead(torch.nn.Module):
    """A learner that always asks for full speed straight ahead."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0]]).expand(obs.shape[0], 2)


@pytest.mark.parametrize("filtered", [False, True])
def test_with_the_safety_filter_in_the_loop_the_learner_is_stopped_before_obstacles(filtered):
    job = CollectJob(
        env_config=EnvConfig(),
        steps=1500,
        pretrain=PretrainConfig(safety_filter=filtered),
        beta=0.0,
        learner_noise=0.0,
        stage_weights=(0.0, 0.0, 1.0, 0.0),
        seed=(4, 1, 0),
        actor=_StraightAhead(),
        normalizer=Normalizer.identity(43),
    )
    data = collect(job)
    assert not data.expert_driven.any()
    if filtered:
        # Every state is still labelled by the expert, now including the braked ones.
        assert data.collisions == 0 and len(data) == 1500
        assert np.all(np.abs(data.expert_actions) <= 1.0)
    else:
        assert data.collisions > 0
