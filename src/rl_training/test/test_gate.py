"""The deployment gate on the shipped policy files (a quick version of the full evaluation)."""

import json

import pytest

from rl_policy_node.policy_loader import load_policy
from rl_training.cli import main

# The first held-out episodes of a world the shipped policy handles (corridor) and of the
# one it does not (dynamic): the evaluation is seeded, so the verdict is reproducible.
QUICK_GATE = ["--worlds", "corridor,dynamic", "--episodes", "4", "--modes", "policy_safety"]


def test_gate_fails_for_the_weak_model(workspace_root, tmp_path):
    model = workspace_root / "models" / "weak_policy.pt"
    assert model.is_file(), "models/weak_policy.pt is shipped with the package"
    args = ["evaluate", str(model), "--worlds", "empty", "--episodes", "2"]
    args += ["--modes", "policy_safety", "--max-time", "20", "--gate", "--quiet"]
    assert main([*args, "--out", str(tmp_path)]) == 1


def test_the_shipped_card_records_its_held_out_evaluation(workspace_root):
    card = json.loads(load_policy(workspace_root / "models" / "nav_policy.pt").card.to_json())
    evaluation = card["evaluation"]
    assert evaluation["seed"] == 900_000 and evaluation["episodes_per_world"] >= 50
    shipped_worlds = {"empty", "corridor", "warehouse", "dynamic"}
    families = {"doorway", "clutter", "dead_end", "open", "rooms"}
    families |= {"crossing", "headon", "overtaking", "movers"}
    assert set(evaluation["summary"]) >= shipped_worlds | families
    for world, modes in evaluation["summary"].items():
        assert set(modes) >= {"policy", "policy_safety", "dwa", "stack"}, world
    assert evaluation["gate"]["mode"] == "policy_safety"


@pytest.mark.xfail(
    strict=True,
    reason="known gap (issue 17): the shipped policy misses gate version 2 behind the "
    "safety filter (timeouts in doorways and dead ends, interventions, movers); see "
    "models/README.md",
)
def test_gate_passes_for_the_shipped_model(workspace_root, tmp_path):
    model = workspace_root / "models" / "nav_policy.pt"
    args = ["evaluate", str(model), *QUICK_GATE, "--gate", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0


def test_the_shipped_card_records_the_documented_recipe(workspace_root):
    """models/README.md retrains the shipped policy with one documented config file: the
    card's training config is that file's, loaded (the run was made from a copy under
    another run name, the only difference)."""
    from rl_training.config import load_config

    card = json.loads(load_policy(workspace_root / "models" / "nav_policy.pt").card.to_json())
    recipe = workspace_root / "config" / "training" / "experiments" / "nav_waypoint.yaml"
    expected = dict(load_config(recipe).raw)
    recorded = dict(card["training"]["config"])
    assert {k: v for k, v in recorded.items() if k != "name"} == {
        k: v for k, v in expected.items() if k != "name"
    }
    assert card["training"]["timesteps"] == 0  # the DAgger warm start, no PPO
    assert card["observation"]["goal"]["source"] == "grid_waypoint"
