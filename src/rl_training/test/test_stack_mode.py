"""The `stack` evaluation mode: policy -> hybrid arbiter (+ DWA) -> safety filter, in-process."""

import json
import math

import numpy as np
import pytest

from hybrid_fallback.arbiter import Mode
from rl_policy_node.policy_loader import load_policy
from rl_training.controllers import Controller, LearnedPolicyController, StackController
from rl_training.deployed_cores import deployed_hybrid_config, deployed_safety_config
from rl_training.episodes import EpisodeResult, run_episode, stack_check, summarize
from rl_training.evaluate import evaluate
from rl_training.nav_env import EnvConfig, NavEnv
from rl_training.report import markdown_table
from rl_training.worlds import Task
from rlguard_common.world import load_world


@pytest.fixture(scope="module")
def nav_policy(workspace_root):
    return load_policy(workspace_root / "models" / "nav_policy.pt")


@pytest.fixture(scope="module")
def env():
    return NavEnv(EnvConfig(randomize=False))


def open_task(time_limit=8.0):
    """A far goal in the open: nobody reaches it within a few seconds."""
    world = load_world("empty")
    return Task(world, (-2.0, -2.0, 0.0), (2.0, 2.0), 0.25, time_limit, 5.7, "empty/open")


class Silent(Controller):
    """A policy with a non-finite output while `silent(t)`: the node sends no command then."""

    def __init__(self, inner, silent):
        self.inner = inner
        self.silent = silent

    def command(self, env, observation):
        if self.silent(env.sim.time):
            return math.nan, math.nan, False
        v, w, intervened = self.inner.command(env, observation)
        self.last_action = self.inner.last_action
        return v, w, intervened


def test_the_fallback_drives_while_the_policy_is_inactive_and_hand_overs_are_counted(
    env, nav_policy
):
    # Inactive for 1 s (the first decision is FALLBACK), active from 1 s (back to POLICY
    # after retry_after 3 s: one hand-over), inactive again from 6 s (a second one).
    policy = Silent(LearnedPolicyController(nav_policy), lambda t: t < 1.0 - 1e-9 or t >= 6.0)
    stack = StackController(policy)
    result = run_episode(env, stack, open_task(), 5, "stack", "empty")
    assert result.outcome == "timeout"
    assert result.handovers == 2
    assert set(result.mode_fractions) == {"FALLBACK", "POLICY"}
    assert result.mode_fractions["POLICY"] == pytest.approx(2.0 / 8.0, abs=0.02)
    assert result.mode_fractions["FALLBACK"] == pytest.approx(6.0 / 8.0, abs=0.02)
    assert sum(result.mode_fractions.values()) == pytest.approx(1.0)


def test_a_silent_policy_leaves_the_goal_to_the_dwa_fallback(env):
    never = Silent(Controller(), lambda t: True)
    stack = StackController(never)
    task = Task(load_world("empty"), (-2.0, -2.0, 0.0), (0.0, -2.0), 0.25, 30.0, 2.0, "empty/x")
    result = run_episode(env, stack, task, 1, "stack", "empty")
    assert result.outcome == "success"
    assert result.mode_fractions == {"FALLBACK": pytest.approx(1.0)}
    assert result.handovers == 0


def test_the_policy_sees_its_own_last_output_as_previous_action(env, nav_policy):
    inner = LearnedPolicyController(nav_policy)
    policy = Silent(inner, lambda t: 1.0 - 1e-9 <= t < 1.5)
    stack = StackController(policy)
    observation, _ = env.reset(seed=2, options={"task": open_task(3.0)})
    stack.reset(env)
    modes = set()
    for _ in range(50):
        silent = policy.silent(env.sim.time)
        v, w, _ = stack.command(env, observation)
        modes.add(stack.last_step["mode"])
        expected = np.zeros(2) if silent else inner.last_action
        np.testing.assert_allclose(stack.last_action, expected)
        observation, *_ = env.step_velocity(v, w, stack.last_action)
        # The observation ends with the previous action: the policy's own, not the
        # command that drove (the DWA's while the fallback drives).
        np.testing.assert_allclose(observation[-2:], expected, atol=1e-6)
    assert {"POLICY", "FALLBACK"} <= modes


class Reckless(Controller):
    """Far beyond the card's top speed, straight ahead, whatever the scan says."""

    def command(self, env, observation):
        self.last_action = np.array([1.0, 0.0])
        return 1.0, 0.0, False


def wall_task():
    world = load_world("empty")
    # 1 m in front of the +x boundary wall (inner face at x = 3), goal behind the wall.
    return Task(world, (2.0, 0.0, 0.0), (3.5, 0.0), 0.1, 8.0, 1.5, "empty/wall")


def test_the_safety_filter_is_in_the_loop_and_bounds_every_command(env):
    assert run_episode(env, Reckless(), wall_task(), 4, "policy", "empty").outcome == "collision"
    stack = StackController(Reckless())
    observation, _ = env.reset(seed=4, options={"task": wall_task()})
    stack.reset(env)
    limits = stack.safety.filter.config.limits
    commands, interventions = [], 0
    while True:
        v, w, intervened = stack.command(env, observation)
        commands.append((v, w))
        interventions += intervened
        observation, _, terminated, truncated, info = env.step_velocity(v, w, stack.last_action)
        if terminated or truncated:
            break
    assert not info["collision"] and env.sim.at_fault_collision_count == 0
    assert interventions > 0
    linear, angular = np.asarray(commands).T
    assert np.all(linear <= limits.max_velocity[0]) and np.all(linear >= limits.min_velocity[0])
    assert np.all(np.abs(angular) <= limits.max_velocity[1])
    assert linear.max() == pytest.approx(limits.max_velocity[0])  # it did drive at the limit
    # The filter's safety/scale reaches the arbiter: it judges the policy unsafe.
    reasons = [record.reason for record in stack.supervisor.arbiter.history]
    assert any(reason.startswith("safety intervention rate") for reason in reasons)
    assert stack.mode_account.handovers == 1


def test_the_stack_runs_the_deployed_configs(env, workspace_root, tmp_path):
    stack = StackController(Controller())
    env.reset(seed=1, options={"task": open_task()})
    stack.reset(env)
    assert stack.supervisor.config == deployed_hybrid_config(env)
    # A footprint holds numpy arrays (no ==): its repr shows what it is built from.
    assert repr(stack.safety.filter.config) == repr(deployed_safety_config(env))
    assert stack.supervisor.goal == open_task().goal
    # Other YAML files are another stack.
    hybrid_yaml = tmp_path / "hybrid.yaml"
    hybrid_yaml.write_text("hybrid_fallback:\n  ros__parameters:\n    retry_after: 1.5\n")
    safety_yaml = tmp_path / "safety.yaml"
    safety_yaml.write_text("safety_controller:\n  ros__parameters:\n    reaction_time: 0.3\n")
    other = StackController(Controller(), hybrid_yaml=hybrid_yaml, safety_yaml=safety_yaml)
    other.reset(env)
    assert other.supervisor.config == deployed_hybrid_config(env, hybrid_yaml)
    assert other.supervisor.arbiter.config.retry_after == 1.5
    assert repr(other.safety.filter.config) == repr(deployed_safety_config(env, safety_yaml))
    assert other.safety.filter.config.reaction_time == 0.3


def episode(mode, outcome="success", fractions=None, handovers=0, world="w"):
    return EpisodeResult(
        world=world,
        task="w/leg0",
        mode=mode,
        seed=0,
        outcome=outcome,
        time=10.0,
        path_length=2.0,
        smoothness=0.1,
        interventions=0,
        collision_speed=0.0,
        steps=200,
        mode_fractions=fractions or {},
        handovers=handovers,
    )


def test_summaries_report_mode_shares_and_hand_overs_only_for_the_stack():
    stack = [
        episode("stack", fractions={"POLICY": 1.0}),
        episode("stack", fractions={"FALLBACK": 0.5, "POLICY": 0.5}, handovers=3),
    ]
    stats = summarize(stack)
    assert stats["mode_time_fraction"] == {"POLICY": 0.75, "FALLBACK": 0.25}
    assert list(stats["mode_time_fraction"]) == ["POLICY", "FALLBACK"]  # the arbiter's order
    assert stats["handovers_mean"] == 1.5 and stats["handovers_total"] == 3
    plain = summarize([episode("dwa")])
    assert not {"mode_time_fraction", "handovers_mean", "handovers_total"} & set(plain)


def test_the_stack_check_compares_with_the_better_of_policy_safety_and_dwa():
    def stats(rate):
        return {"episodes": 10, "success_rate": rate}

    summary = {
        "a": {"policy_safety": stats(0.6), "dwa": stats(0.9), "stack": stats(0.9)},
        "b": {"policy_safety": stats(0.8), "dwa": stats(0.7), "stack": stats(0.7)},
        "c": {"dwa": stats(1.0), "stack": stats(0.0)},  # policy_safety did not run: not judged
    }
    check = stack_check(summary)
    assert set(check["worlds"]) == {"a", "b"}
    assert check["worlds"]["a"]["ok"] and check["worlds"]["a"]["best_rival"] == "dwa"
    assert not check["worlds"]["b"]["ok"] and check["worlds"]["b"]["best_rival"] == "policy_safety"
    assert not check["passed"]
    summary["b"]["stack"] = stats(0.8)
    assert stack_check(summary)["passed"]
    assert stack_check({"c": summary["c"]}) is None


def test_an_evaluation_with_the_stack_reports_its_modes_and_the_check(workspace_root):
    model = workspace_root / "models" / "nav_policy.pt"
    modes = ["policy_safety", "dwa", "stack"]
    report = evaluate(model, worlds=["empty"], episodes=1, modes=modes, max_time=2.0)
    assert [e.mode for e in report.episodes] == modes
    stats = report.summary["empty"]["stack"]
    assert sum(stats["mode_time_fraction"].values()) == pytest.approx(1.0)
    assert stats["handovers_total"] == 0 and stats["handovers_mean"] == 0.0
    assert "mode_time_fraction" not in report.summary["empty"]["policy_safety"]
    assert set(report.stack_check["worlds"]) == {"empty"}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["stack_check"] == report.stack_check
    assert data["episodes"][2]["mode_fractions"] == report.episodes[2].mode_fractions
    table = markdown_table(report)
    assert "arbiter: time share; hand-overs |" in table.splitlines()[0]
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| empty")}
    assert rows["stack"].endswith("; 0.0 |") and rows["dwa"].endswith("| - |")
    assert "Stack check (stack >= the better of policy_safety and dwa" in table
    assert Mode.POLICY.value in stats["mode_time_fraction"]


def test_without_the_stack_the_table_keeps_its_columns(workspace_root):
    model = workspace_root / "models" / "nav_policy.pt"
    report = evaluate(model, worlds=["empty"], episodes=1, modes=["dwa"], max_time=0.5)
    table = markdown_table(report)
    assert "arbiter" not in table and "Stack check" not in table
    assert report.stack_check is None
    assert table.splitlines()[0].count("|") == 12


def test_the_goal_is_corrected_for_odometry_drift_as_the_simulator_node_does(env, nav_policy):
    """Odometry off by more than GOAL_REISSUE_DRIFT: the stack gets the goal re-expressed in
    odom, as a correction of the same goal (same id), not a new one."""
    from dataclasses import replace

    from sim_bringup.goal_schedule import GOAL_REISSUE_DRIFT

    stack = StackController(LearnedPolicyController(nav_policy))
    observation, _ = env.reset(seed=3, options={"task": open_task()})
    stack.reset(env)
    supervisor = stack.supervisor
    first = supervisor.goal
    true_odometry = env.sim.odometry
    offset = 2.0 * GOAL_REISSUE_DRIFT
    try:
        env.sim.odometry = lambda: replace(true_odometry(), x=true_odometry().x + offset)
        stack.command(env, observation)
    finally:
        del env.sim.odometry
    assert supervisor.goal == pytest.approx((first[0] + offset, first[1]))
    assert supervisor.goal_id == 1
