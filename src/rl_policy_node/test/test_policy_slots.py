"""Candidate policies (no ROS): the device and limit checks, preparing, staging swaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rl_policy_node_test_support import (
    LIMITS,
    T0,
    controller_with_inputs,
    nan_on_input_policy,
    prepared_slot,
    scan_input,
    small_card,
)

from rl_policy_node.action_scaling import action_to_velocity
from rl_policy_node.policy_card import ActionSpec
from rl_policy_node.policy_inputs import ScanSample
from rl_policy_node.policy_loader import PolicyFileNotFoundError
from rl_policy_node.policy_slots import (
    MODEL_PARAMETERS,
    DryRunInputs,
    PolicyRejectedError,
    PreviousAction,
    check_action_limits,
    device_problem,
    implicit_action,
    prepare_policy,
    previous_action_for,
    staged_slots,
    velocity_limits_problem,
    with_implicit_limits,
)

# ---------------------------------------------------------------------------- checks


def test_device_and_velocity_limit_validation():
    assert device_problem("cpu", False) is None
    assert device_problem("cuda", True) is None and device_problem("cuda:1", True) is None
    assert "not available" in device_problem("cuda", False)
    assert "expected" in device_problem("gpu", True)
    assert velocity_limits_problem([0.26, 1.82]) is None
    assert "needs" in velocity_limits_problem([0.26])
    assert "finite" in velocity_limits_problem([0.26, math.nan])
    assert "finite" in velocity_limits_problem([0.0, 1.0])


def test_device_check_asks_about_cuda_only_for_a_cuda_device():
    asked = []

    def cuda_available() -> bool:
        asked.append(True)
        return False

    assert device_problem("cpu", cuda_available) is None
    assert "expected" in device_problem("gpu", cuda_available)
    assert asked == []  # a CPU node never imports torch to ask
    assert "not available" in device_problem("cuda:0", cuda_available)
    assert asked == [True]


def test_card_action_range_must_fit_the_limits():
    check_action_limits(ActionSpec((-0.1, 0.26), (-1.82, 1.82)), LIMITS)
    with pytest.raises(PolicyRejectedError, match="linear action range"):
        check_action_limits(ActionSpec((-0.5, 0.26), (-1.0, 1.0)), LIMITS)
    with pytest.raises(PolicyRejectedError, match="angular action range"):
        check_action_limits(ActionSpec((-0.1, 0.2), (-2.0, 1.0)), LIMITS)


# ------------------------------------------------------------------------ candidates


def test_prepare_refuses_a_card_beyond_the_limits(tmp_path):
    card = small_card(action=ActionSpec((-1.0, 1.0), (-1.0, 1.0)))
    with pytest.raises(PolicyRejectedError, match="exceeds max_velocity"):
        prepared_slot(tmp_path, card=card)


def test_prepare_refuses_a_card_the_live_scan_cannot_feed(tmp_path):
    live = DryRunInputs(ScanSample(scan_input(271, 270.0), T0, T0), None, None)
    with pytest.raises(PolicyRejectedError, match="field of view"):
        prepared_slot(tmp_path, card=small_card(16, 360.0), live=live)
    assert prepared_slot(tmp_path, "narrow.pt", card=small_card(16, 240.0), live=live) is not None


def test_prepare_dry_runs_on_the_live_inputs(tmp_path):
    path = nan_on_input_policy(tmp_path)
    assert prepare_policy(path, "nan.pt", LIMITS) is not None  # zero dry run only
    controller = controller_with_inputs()
    with pytest.raises(PolicyRejectedError, match="dry run on the live inputs"):
        prepare_policy(path, "nan.pt", LIMITS, live=controller.dry_run_inputs())


def test_prepare_passes_load_errors_through(tmp_path):
    with pytest.raises(PolicyFileNotFoundError, match="no such file"):
        prepare_policy(tmp_path / "missing.pt", "missing.pt", LIMITS)


def test_cardless_policy_scales_by_max_velocity_and_follows_limit_changes(tmp_path):
    slot = prepared_slot(tmp_path, "seed.pt", card=None)
    assert not slot.policy.has_card
    assert slot.action == ActionSpec((-0.26, 0.26), (-1.82, 1.82))
    faster = with_implicit_limits(slot, (0.5, 2.0))
    assert faster.action == ActionSpec((-0.5, 0.5), (-2.0, 2.0))
    carded = prepared_slot(tmp_path, card=small_card())
    assert with_implicit_limits(carded, (0.3, 2.0)) is carded
    with pytest.raises(PolicyRejectedError):
        with_implicit_limits(carded, (0.2, 2.0))


def test_previous_action_is_zero_after_reset_and_reexpressed_after_a_swap():
    spec = ActionSpec((-0.1, 0.26), (-1.82, 1.82))
    other = ActionSpec((-0.26, 0.26), (-1.82, 1.82))
    assert tuple(previous_action_for(None, spec)) == (0.0, 0.0)
    previous = PreviousAction(np.array([0.5, -0.25]), spec)
    assert previous_action_for(previous, spec) is previous.action
    moved = previous_action_for(previous, other)
    np.testing.assert_allclose(
        action_to_velocity(moved, other), action_to_velocity(previous.action, spec), atol=1e-12
    )


def test_implicit_action_spans_minus_to_plus_max_velocity():
    assert implicit_action((0.3, 2.0)) == ActionSpec((-0.3, 0.3), (-2.0, 2.0))


# ---------------------------------------------------------------------------- staging


class _Preparer:
    """A stand-in for the node's prepare: records the paths and returns a marker."""

    def __init__(self, refuse: str = "") -> None:
        self.asked: list[str] = []
        self.refuse = refuse

    def __call__(self, requested: str):
        self.asked.append(requested)
        if requested == self.refuse:
            raise PolicyRejectedError(f"{requested}: refused")
        return f"prepared {requested}"


def test_staging_prepares_only_the_changed_paths():
    prepare = _Preparer()
    current = {"model_path": "live", "shadow_model_path": None}
    paths = {"model_path": "a.pt", "shadow_model_path": ""}
    staged = staged_slots({"model_path": "b.pt"}, current, paths, False, LIMITS, prepare)
    assert staged == {"model_path": "prepared b.pt"} and prepare.asked == ["b.pt"]
    staged = staged_slots({"shadow_model_path": ""}, current, paths, False, LIMITS, prepare)
    assert staged == {"shadow_model_path": None}  # an empty path empties the slot
    assert staged_slots({"goal_tolerance": 0.2}, current, paths, False, LIMITS, prepare) == {}
    assert set(MODEL_PARAMETERS) == set(current)


def test_staging_reloads_every_loaded_slot_for_a_new_device():
    prepare = _Preparer()
    current = {"model_path": "live", "shadow_model_path": "shadow"}
    paths = {"model_path": "a.pt", "shadow_model_path": "s.pt"}
    staged = staged_slots({"device": "cuda"}, current, paths, True, LIMITS, prepare)
    assert staged == {"model_path": "prepared a.pt", "shadow_model_path": "prepared s.pt"}
    current = {"model_path": "live", "shadow_model_path": None}
    staged = staged_slots({"device": "cuda"}, current, paths, True, LIMITS, prepare)
    assert staged == {"model_path": "prepared a.pt"}  # nothing loaded: nothing to reload


def test_staging_rescales_on_new_limits_and_passes_refusals_on(tmp_path):
    cardless = prepared_slot(tmp_path, "seed.pt", card=None)
    carded = prepared_slot(tmp_path, "carded.pt")
    current = {"model_path": cardless, "shadow_model_path": carded}
    paths = {"model_path": "seed.pt", "shadow_model_path": "carded.pt"}
    staged = staged_slots({"max_velocity": [0.5, 2.0]}, current, paths, False, (0.5, 2.0), None)
    assert staged["model_path"].action == ActionSpec((-0.5, 0.5), (-2.0, 2.0))
    assert staged["shadow_model_path"] is carded
    with pytest.raises(PolicyRejectedError, match="exceeds max_velocity"):
        staged_slots({"max_velocity": [0.2, 2.0]}, current, paths, False, (0.2, 2.0), None)
    with pytest.raises(PolicyRejectedError, match="refused"):
        staged_slots(
            {"model_path": "bad.pt"}, current, paths, False, LIMITS, _Preparer(refuse="bad.pt")
        )
