"""The deployment gate on the shipped policy files (a quick version of the full evaluation)."""

import pytest

from rl_training.cli import main

QUICK_GATE = ["--worlds", "empty,corridor", "--episodes", "4", "--modes", "policy_safety"]


def test_gate_fails_for_the_weak_model(workspace_root, tmp_path):
    model = workspace_root / "models" / "weak_policy.pt"
    assert model.is_file(), "models/weak_policy.pt is shipped with the package"
    args = ["evaluate", str(model), "--worlds", "empty", "--episodes", "2"]
    args += ["--modes", "policy_safety", "--max-time", "20", "--gate", "--quiet"]
    assert main([*args, "--out", str(tmp_path)]) == 1


def test_gate_passes_for_the_shipped_model(workspace_root, tmp_path):
    model = workspace_root / "models" / "nav_policy.pt"
    if not model.is_file():
        pytest.skip("models/nav_policy.pt is not shipped: no trained policy passes the gate yet")
    args = ["evaluate", str(model), *QUICK_GATE, "--gate", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
