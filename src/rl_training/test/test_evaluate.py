import json
import math

import numpy as np
import pytest
from rl_training_test_support import exported_policy

from rl_policy_node.policy_loader import load_policy
from rl_training.cli import main
from rl_training.evaluate import (
    Controller,
    DwaController,
    EpisodeResult,
    SafetyFilteredController,
    evaluate,
    gate_verdict,
    markdown_table,
    record_in_card,
    run_episode,
    summarize,
    time_ratio,
    write_outputs,
)
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.worlds import Task
from sim_bringup.profiles import load_world


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    return exported_policy(tmp_path_factory.mktemp("evaluate"))[1]


def episode(
    outcome, mode="policy", time=10.0, seed=0, world="w", steps=100, interventions=0, speed=0.0
):
    return EpisodeResult(
        world=world,
        task="w/leg0",
        mode=mode,
        seed=seed,
        outcome=outcome,
        time=time,
        path_length=2.0,
        smoothness=0.1,
        interventions=interventions,
        collision_speed=speed,
        steps=steps,
    )


def test_five_short_episodes_run_for_every_mode(policy_file, tmp_path):
    report = evaluate(policy_file, worlds=["corridor"], episodes=5, max_time=2.0)
    assert len(report.episodes) == 5 * 3
    assert {e.mode for e in report.episodes} == {"policy", "policy_safety", "dwa"}
    # Every mode ran the same tasks with the same seeds.
    tasks = {
        mode: [(e.task, e.seed) for e in report.episodes if e.mode == mode] for mode in report.modes
    }
    assert tasks["policy"] == tasks["dwa"] == tasks["policy_safety"]
    assert all(e.time <= 2.0 + 1e-6 for e in report.episodes)
    stats = report.summary["corridor"]["dwa"]
    assert stats["episodes"] == 5
    assert math.isclose(stats["success_rate"] + stats["collision_rate"] + stats["timeout_rate"], 1)
    paths = write_outputs(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["corridor"]["policy"]["episodes"] == 5
    assert paths["trajectories"].stat().st_size > 0 and paths["bars"].stat().st_size > 0
    assert "| corridor | policy_safety | 5 |" in paths["table"].read_text()


def test_summary_rates_and_means():
    results = [
        episode("success", time=10.0),
        episode("success", time=20.0),
        episode("collision", time=3.0, speed=0.2),
        episode("timeout", time=50.0, interventions=10),
        episode("collision", time=4.0, speed=0.0),
    ]
    stats = summarize(results)
    assert stats["success_rate"] == 0.4
    assert stats["collision_rate"] == 0.4 and stats["collisions"] == 2
    assert stats["collisions_while_still"] == 1
    assert stats["timeout_rate"] == 0.2
    assert stats["mean_time_to_goal"] == 15.0
    assert stats["intervention_rate"] == pytest.approx(10 / 500)


def test_time_ratio_uses_episodes_both_modes_reached():
    results = [
        episode("success", "policy", 8.0, seed=1),
        episode("success", "dwa", 10.0, seed=1),
        episode("success", "policy", 5.0, seed=2),
        episode("timeout", "dwa", 60.0, seed=2),
    ]
    assert time_ratio(results, "policy") == pytest.approx(0.8)


def test_gate_needs_success_and_no_collision_behind_the_filter():
    ok = {"episodes": 10, "success_rate": 1.0, "collisions": 0}
    summary = {"corridor": {"policy_safety": ok}, "dynamic": {"policy_safety": dict(ok)}}
    assert gate_verdict(summary, {"dynamic": 0.85})["passed"]
    summary["dynamic"]["policy_safety"]["success_rate"] = 0.9
    assert gate_verdict(summary, {"dynamic": 0.85})["passed"]
    summary["corridor"]["policy_safety"] = {**ok, "success_rate": 0.9}
    verdict = gate_verdict(summary, {"dynamic": 0.85})
    assert not verdict["passed"] and "corridor: success 0.90 < 0.95" in verdict["failures"]
    summary["corridor"]["policy_safety"] = {**ok, "collisions": 1}
    assert not gate_verdict(summary, {})["passed"]


def test_results_are_recorded_in_the_card(policy_file, tmp_path):
    report = evaluate(policy_file, worlds=["empty"], episodes=1, modes=["policy"], max_time=1.0)
    copy = tmp_path / "copy.pt"
    copy.write_bytes(policy_file.read_bytes())
    record_in_card(copy, report)
    card = load_policy(copy).card
    assert card.evaluation["summary"]["empty"]["policy"]["episodes"] == 1
    assert card.evaluation["gate"] == report.gate
    assert "| empty | policy | 1 |" in markdown_table(report)


def test_cli_evaluate_writes_outputs_and_gates(policy_file, tmp_path):
    args = [
        "evaluate",
        str(policy_file),
        "--worlds",
        "empty",
        "--episodes",
        "1",
        "--modes",
        "policy_safety",
        "--max-time",
        "1.0",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert main(args) == 0  # without --gate a failing model still exits 0
    assert (tmp_path / "evaluation.json").is_file()
    assert main([*args, "--gate"]) == 1
    assert main([*args[:-1], "--modes", "bogus"]) == 2


class Forward(Controller):
    """Full speed ahead, whatever the scan says."""

    def command(self, env, observation):
        self.last_action = np.array([1.0, 0.0])
        return 0.22, 0.0, False


def wall_task():
    world = load_world("empty")
    # 1 m in front of the +x boundary wall (inner face at x = 3), goal behind the wall.
    return Task(world, (2.0, 0.0, 0.0), (3.5, 0.0), 0.1, 8.0, 1.5, "empty/wall")


def test_the_safety_filter_keeps_a_reckless_controller_off_the_wall():
    env = NavEnv(EnvConfig(randomize=True))
    alone = run_episode(env, Forward(), wall_task(), 4, "policy", "empty")
    assert alone.outcome == "collision"
    filtered = run_episode(env, SafetyFilteredController(Forward()), wall_task(), 4, "s", "empty")
    assert filtered.outcome == "timeout"
    assert filtered.interventions > 0


def test_the_dwa_baseline_reaches_an_open_goal():
    env = NavEnv(EnvConfig(randomize=True))
    task = Task(load_world("empty"), (-2.0, -2.0, 0.0), (0.0, -2.0), 0.25, 30.0, 2.0, "empty/x")
    result = run_episode(env, DwaController(), task, 1, "dwa", "empty")
    assert result.outcome == "success"
    assert result.path_length == pytest.approx(2.0, abs=0.5)
