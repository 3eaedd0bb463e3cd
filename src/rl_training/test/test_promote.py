"""`rl_training promote`: a gate record only from a fresh evaluation, weights untouched."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rl_training_test_support import exported_policy

import rl_training.evaluate
from rl_policy_node.model_gate import gate_problem
from rl_policy_node.policy_card import CARD_FILENAME
from rl_policy_node.policy_loader import load_policy
from rl_training.cli import main
from rl_training.episodes import GATE_VERSION, gate_verdict
from rl_training.export import convert_to_onnx
from rl_training.promote import PromotionError, promote
from rl_training.report import EvaluationReport, evaluation_record, record_in_card

EVALUATED = "2026-03-01T12:00:00Z"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return exported_policy(tmp_path_factory.mktemp("promote"))[1]


@pytest.fixture
def model(exported, tmp_path) -> Path:
    """A fresh copy of the exported (ungated) policy file."""
    return Path(shutil.copy(exported, tmp_path / "policy.pt"))


def fake_report(path: Path, success: float, mode: str = "policy_safety") -> EvaluationReport:
    """An evaluation report of `success` on one world, judged by the real gate."""
    stats = {
        "episodes": 4,
        "success_rate": success,
        "collisions_at_fault": 0,
        "intervention_rate": 0.0,
        "mean_time_to_goal": 10.0,
        "mean_min_time": 9.5,
    }
    summary = {"corridor": {mode: stats}}
    return EvaluationReport(
        model=str(path),
        worlds=["corridor"],
        modes=[mode],
        episodes_per_world=4,
        seed=900_000,
        summary=summary,
        time_ratio_vs_dwa={},
        gate=gate_verdict(summary, mode=mode),
        baseline="not run",
        wall_time_s=0.0,
        episodes=[],
    )


def passing(path: Path) -> EvaluationReport:
    return fake_report(path, 1.0)


def failing(path: Path) -> EvaluationReport:
    return fake_report(path, 0.5)


def actions(path: Path) -> np.ndarray:
    policy = load_policy(path)
    rng = np.random.default_rng(3)
    return policy(rng.normal(0.0, 1.0, (32, policy.observation_size)).astype(np.float32))


def test_a_new_export_is_ungated(exported):
    policy = load_policy(exported)
    assert policy.card.gate is None
    assert gate_problem(policy.card, policy.sha256) == "ungated model: the card has no gate record"


def test_a_passing_evaluation_records_a_passed_gate_for_these_weights(model):
    before = load_policy(model)
    reference = actions(model)
    promotion = promote(model, passing, evaluated=EVALUATED)
    assert promotion.passed
    after = load_policy(model)
    assert after.sha256 == before.sha256  # weights untouched
    np.testing.assert_array_equal(actions(model), reference)
    assert gate_problem(after.card, after.sha256) is None
    gate = after.card.gate
    assert (gate.passed, gate.version, gate.weights_sha256) == (True, GATE_VERSION, before.sha256)
    assert (gate.evaluated, gate.mode, gate.worlds, gate.episodes_per_world) == (
        EVALUATED,
        "policy_safety",
        ("corridor",),
        4,
    )
    # The card's evaluation is the fresh one; everything else is as exported.
    assert after.card.evaluation == json.loads(json.dumps(evaluation_record(promotion.report)))
    assert after.card.with_updates(evaluation={}, gate=None) == before.card.with_updates(
        evaluation={}
    )


def test_a_failing_evaluation_records_no_passed_gate(model):
    before = load_policy(model)
    promotion = promote(model, failing, evaluated=EVALUATED)
    assert not promotion.passed
    after = load_policy(model)
    assert after.sha256 == before.sha256
    assert not after.card.gate.passed
    assert after.card.gate.failures == ("corridor: success 0.50 < 0.95 (by 0.45)",)
    assert gate_problem(after.card, after.sha256) == (
        f"gate not passed (version {GATE_VERSION}): corridor: success 0.50 < 0.95 (by 0.45)"
    )


def test_a_failing_promotion_replaces_an_earlier_passed_gate(model):
    promote(model, passing, evaluated=EVALUATED)
    promote(model, failing, evaluated=EVALUATED)
    policy = load_policy(model)
    assert gate_problem(policy.card, policy.sha256).startswith("gate not passed")


def test_only_the_deployed_mode_can_promote(model):
    data = model.read_bytes()
    with pytest.raises(PromotionError, match="promotion needs 'policy_safety'"):
        promote(model, lambda path: fake_report(path, 1.0, mode="policy"))
    assert model.read_bytes() == data


def test_weights_changed_during_the_evaluation_are_not_promoted(model, workspace_root):
    other = workspace_root / "models" / "weak_policy.pt"

    def evaluate_then_swap(path: Path) -> EvaluationReport:
        report = passing(path)
        shutil.copy(other, path)
        return report

    with pytest.raises(PromotionError, match="weights changed during the evaluation"):
        promote(model, evaluate_then_swap)
    assert model.read_bytes() == other.read_bytes()  # the swapped file, left as it is


def test_an_onnx_file_is_promoted_in_its_metadata(model, tmp_path):
    size = load_policy(model).observation_size
    observations = np.random.default_rng(0).normal(0.0, 1.0, (64, size)).astype(np.float32)
    onnx_path = tmp_path / "policy.onnx"
    convert_to_onnx(model, onnx_path, observations)
    before = load_policy(onnx_path)
    reference = before(observations)
    promote(onnx_path, passing, evaluated=EVALUATED)
    after = load_policy(onnx_path)
    assert after.sha256 == before.sha256
    np.testing.assert_array_equal(after(observations), reference)
    assert gate_problem(after.card, after.sha256) is None
    entries = after.module.get_modelmeta().custom_metadata_map
    assert list(entries).count(CARD_FILENAME) == 1


def test_a_promoted_gate_survives_conversion_to_onnx(model, tmp_path):
    """Same weights (same sha256) and the card copied as it is: the gate still applies."""
    promote(model, passing, evaluated=EVALUATED)
    size = load_policy(model).observation_size
    observations = np.random.default_rng(1).normal(0.0, 1.0, (64, size)).astype(np.float32)
    convert_to_onnx(model, tmp_path / "policy.onnx", observations)
    converted = load_policy(tmp_path / "policy.onnx")
    assert gate_problem(converted.card, converted.sha256) is None


def test_record_card_never_writes_a_gate_and_removes_a_stale_one(model):
    promote(model, passing, evaluated=EVALUATED)
    report = passing(model)
    assert record_in_card(model, report) is True
    policy = load_policy(model)
    assert policy.card.gate is None and policy.card.evaluation["gate"]["passed"]
    assert record_in_card(model, report) is False
    assert load_policy(model).card.gate is None


@pytest.fixture
def fake_evaluate(monkeypatch):
    """Replace the evaluation the command runs; `outcome["success"]` sets its result."""
    outcome = {"success": 1.0, "calls": []}

    def evaluate(path, **options):
        outcome["calls"].append(options)
        return fake_report(Path(path), outcome["success"])

    monkeypatch.setattr(rl_training.evaluate, "evaluate", evaluate)
    return outcome


STANDARD_WORLDS = ",".join(rl_training.evaluate.DEFAULT_WORLDS)


def test_cli_promote_exit_status_follows_the_gate(model, tmp_path, fake_evaluate, capsys):
    args = ["promote", str(model), "--worlds", STANDARD_WORLDS, "--episodes", "20"]
    args += ["--out", str(tmp_path / "out"), "--quiet"]
    fake_evaluate["success"] = 0.5
    assert main(args) == 1
    assert "FAILED" in capsys.readouterr().err
    policy = load_policy(model)
    assert gate_problem(policy.card, policy.sha256).startswith("gate not passed")
    fake_evaluate["success"] = 1.0
    assert main(args) == 0
    assert "promoted" in capsys.readouterr().out
    policy = load_policy(model)
    assert gate_problem(policy.card, policy.sha256) is None
    assert fake_evaluate["calls"][-1]["worlds"] == STANDARD_WORLDS.split(",")
    assert fake_evaluate["calls"][-1]["episodes"] == 20
    assert (tmp_path / "out" / "evaluation.json").is_file()


def test_cli_promote_refuses_an_evaluation_without_the_deployed_mode(model, fake_evaluate):
    data = model.read_bytes()
    assert main(["promote", str(model), "--modes", "policy,dwa", "--quiet"]) == 2
    assert main(["promote", str(model), "--modes", "bogus", "--quiet"]) == 2
    full = ["--worlds", STANDARD_WORLDS, "--episodes", "20", "--quiet"]
    assert main(["promote", str(model.with_name("missing.pt")), *full]) == 1
    assert model.read_bytes() == data and fake_evaluate["calls"] == []


def test_cli_promote_refuses_a_narrow_evaluation(model, fake_evaluate, capsys):
    data = model.read_bytes()
    assert main(["promote", str(model), "--worlds", "empty", "--episodes", "20"]) == 2
    assert "missing: corridor" in capsys.readouterr().err
    assert main(["promote", str(model), "--worlds", STANDARD_WORLDS, "--episodes", "5"]) == 2
    assert ">= 20 held-out episodes" in capsys.readouterr().err
    assert model.read_bytes() == data and fake_evaluate["calls"] == []


def test_the_shipped_policy_is_promoted_on_a_real_short_evaluation(workspace_root, tmp_path):
    """Two held-out episodes of the empty world, behind the safety filter (~10 s)."""
    model = Path(shutil.copy(workspace_root / "models" / "nav_policy.pt", tmp_path / "nav.pt"))
    shipped = load_policy(model)
    assert gate_problem(shipped.card, shipped.sha256).startswith("ungated model")
    # The library promotes on whatever evaluation it is given (the command line insists on
    # a wide one): here a short real one.
    evaluation = functools.partial(
        rl_training.evaluate.evaluate, worlds=["empty"], episodes=2, modes=["policy_safety"]
    )
    assert promote(model, evaluation).passed
    promoted = load_policy(model)
    assert promoted.sha256 == shipped.sha256
    assert gate_problem(promoted.card, promoted.sha256) is None
    assert promoted.card.evaluation["summary"]["empty"]["policy_safety"]["episodes"] == 2
