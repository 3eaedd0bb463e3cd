"""Gated models: the card's gate record, its digest, and every reason a gate does not apply."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rl_policy_node_test_support import (
    GATE_FAILURES as FAILURES,
)
from rl_policy_node_test_support import (
    SHA_A,
    evaluated_card,
    gated,
    gated_file,
    small_card,
    write_policy,
)

from rl_policy_node.model_gate import GATE_PARAMETERS, card_digest, gate_problem
from rl_policy_node.policy_card import (
    CARD_FILENAME,
    PolicyCard,
    PolicyCardError,
    card_from_dict,
)
from rl_policy_node.policy_loader import TORCHSCRIPT_DEPRECATION, load_policy

SHA_B = "b" * 64


# ------------------------------------------------------------------ the card field


def test_a_card_round_trips_with_its_gate_and_scan_statistics():
    statistics = {"sectors": 16, "mean": [1.0] * 16, "dropout": [0.0] * 16}
    card = gated(evaluated_card()).with_updates(scan_statistics=statistics)
    text = card.to_json()
    again = PolicyCard.from_json(text)
    assert again == card
    assert again.gate.worlds == ("corridor", "dynamic") and again.gate.passed
    assert again.scan_statistics == statistics
    data = json.loads(text)
    assert data["gate"]["failures"] == [] and data["gate"]["version"] == 2
    assert data["scan_statistics"] == statistics


def test_a_card_without_gate_or_statistics_reads_and_writes_as_before():
    card = small_card(evaluation={"summary": {}})
    data = json.loads(card.to_json())
    assert "gate" not in data and "scan_statistics" not in data
    again = card_from_dict(data)
    assert again.gate is None and again.scan_statistics is None
    assert again == card


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("passed", "yes", "gate.passed: must be true/false"),
        ("version", 0, "gate.version: must be >= 1"),
        ("weights_sha256", "abc", "gate.weights_sha256: must be 64 lowercase hex digits"),
        ("card_sha256", SHA_A.upper(), "gate.card_sha256: must be 64 lowercase hex digits"),
        ("evaluated", "yesterday", "gate.evaluated: must be an ISO 8601 time"),
        ("failures", "one", "gate.failures: must be a list of strings"),
        ("bogus", 1, "gate: unknown field(s) bogus"),
    ],
)
def test_a_malformed_gate_record_is_refused_naming_the_field(field, value, message):
    data = json.loads(gated(evaluated_card()).to_json())
    data["gate"][field] = value
    with pytest.raises(PolicyCardError, match=message.replace("(", r"\(").replace(")", r"\)")):
        card_from_dict(data)


def test_scan_statistics_must_be_an_object():
    data = json.loads(small_card().to_json())
    data["scan_statistics"] = [1, 2]
    with pytest.raises(PolicyCardError, match="scan_statistics: must be an object"):
        card_from_dict(data)
    with pytest.raises(PolicyCardError, match="scan_statistics: must be an object"):
        small_card().with_updates(scan_statistics=[1, 2])


def test_require_gated_model_is_off_by_default():
    spec = GATE_PARAMETERS["require_gated_model"]
    assert spec.default is False and "gate" in spec.description


# ------------------------------------------------------------------ digest and verdict


def test_the_digest_covers_everything_but_the_gate():
    card = evaluated_card()
    digest = card_digest(card)
    assert len(digest) == 64
    assert card_digest(gated(card)) == digest  # the gate record is left out
    # Layout of the JSON text does not matter, content does.
    assert card_digest(PolicyCard.from_json(json.dumps(card.to_dict(), indent=7))) == digest
    assert card_digest(card.with_updates(version="1.0.1")) != digest
    assert card_digest(card.with_updates(scan_statistics={"mean": [1.0]})) != digest
    edited = dict(card.evaluation, seed=1)
    assert card_digest(card.with_updates(evaluation=edited)) != digest


def test_a_passed_gate_for_these_weights_and_this_card_has_no_problem():
    assert gate_problem(gated(evaluated_card()), SHA_A) is None


def test_every_reason_a_gate_does_not_apply():
    good = gated(evaluated_card())
    assert gate_problem(evaluated_card(), SHA_A) == "ungated model: the card has no gate record"
    assert gate_problem(good, SHA_B) == (
        f"gate record is for weights {SHA_A[:12]}..., these are {SHA_B[:12]}..."
    )
    edited = good.with_updates(evaluation={**good.evaluation, "seed": 1})
    assert gate_problem(edited, SHA_A) == "card edited after promotion (card sha256 mismatch)"
    failed = gated(evaluated_card(passed=False))
    assert gate_problem(failed, SHA_A) == (
        f"gate not passed (version 2): {FAILURES[0]}; {FAILURES[1]} (and 1 more)"
    )
    flipped = failed.with_updates(gate=replace(failed.gate, passed=True))
    assert gate_problem(flipped, SHA_A).startswith("gate record says passed but lists failures")
    cleared = failed.with_updates(gate=replace(failed.gate, passed=True, failures=()))
    assert gate_problem(cleared, SHA_A) == (
        "gate record says passed but the card's evaluation verdict did not pass"
    )
    older = good.with_updates(gate=replace(good.gate, version=1))
    assert "disagrees with the card's evaluation verdict (version 2)" in gate_problem(older, SHA_A)


# ------------------------------------------------------------------ hand-edited files


def edit_card(path: Path, change: Callable[[dict], None]) -> None:
    """Change the card JSON inside a TorchScript file by hand, weights untouched."""
    extra = {CARD_FILENAME: ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
        module = torch.jit.load(str(path), _extra_files=extra)
        data = json.loads(extra[CARD_FILENAME])
        change(data)
        torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: json.dumps(data)})


def problem_of(path: Path) -> str | None:
    policy = load_policy(path)
    return gate_problem(policy.card, policy.sha256)


def test_a_saved_gate_passes_until_the_card_is_edited_by_hand(tmp_path):
    path = gated_file(tmp_path / "good.pt", passed=True)
    assert problem_of(path) is None

    def lower_the_bar(data: dict) -> None:
        data["evaluation"]["summary"]["corridor"] = {"success_rate": 1.0}

    edit_card(path, lower_the_bar)
    assert problem_of(path) == "card edited after promotion (card sha256 mismatch)"


def test_flipping_a_failed_gate_to_passed_by_hand_is_refused(tmp_path):
    path = gated_file(tmp_path / "failed.pt", passed=False)
    assert problem_of(path).startswith("gate not passed (version 2)")

    def flip(data: dict) -> None:
        data["gate"]["passed"] = True
        data["gate"]["failures"] = []

    edit_card(path, flip)
    assert load_policy(path).card.gate.passed  # the edit took
    assert problem_of(path) == (
        "gate record says passed but the card's evaluation verdict did not pass"
    )

    def flip_the_verdict_too(data: dict) -> None:
        data["evaluation"]["gate"]["passed"] = True
        data["evaluation"]["gate"]["failures"] = []

    edit_card(path, flip_the_verdict_too)
    assert problem_of(path) == "card edited after promotion (card sha256 mismatch)"


def test_a_gate_copied_to_other_weights_is_refused(tmp_path):
    good = gated_file(tmp_path / "good.pt", passed=True, seed=0)
    other = tmp_path / "other.pt"
    write_policy(other, evaluated_card(), seed=1)
    gate = json.loads(load_policy(good).card.to_json())["gate"]
    other_sha = load_policy(other).sha256

    def copy_gate(data: dict) -> None:
        data["gate"] = dict(gate)

    edit_card(other, copy_gate)
    assert problem_of(other).startswith(f"gate record is for weights {gate['weights_sha256'][:12]}")

    def copy_the_sha_too(data: dict) -> None:
        data["gate"]["weights_sha256"] = other_sha

    edit_card(other, copy_the_sha_too)
    assert problem_of(other) == "card edited after promotion (card sha256 mismatch)"
