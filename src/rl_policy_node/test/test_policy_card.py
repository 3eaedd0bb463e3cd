import json

import pytest
from rl_policy_node_test_support import small_card

from rl_policy_node.policy_card import (
    CARD_FORMAT,
    ObservationSpec,
    PolicyCard,
    PolicyCardError,
    card_from_dict,
    implicit_card,
)


def test_round_trip_through_json_is_lossless():
    card = small_card(training={"algo": "PPO", "steps": 1000}, evaluation={"success": 0.97})
    text = card.to_json()
    assert PolicyCard.from_json(text) == card
    assert json.loads(text)["format"] == CARD_FORMAT


def test_implicit_card_is_the_seed_layout():
    card = implicit_card(max_linear=0.26, max_angular=1.82)
    obs = card.observation
    assert obs.size == 69
    assert (obs.scan.sectors, obs.scan.field_of_view_deg, obs.scan.range_cap) == (64, 360.0, 10.0)
    assert obs.scan.reduction == "stride"
    assert obs.goal.distance_cap is None and obs.velocity is not None
    assert not obs.previous_action and obs.history_length == 1
    assert card.action.linear == (-0.26, 0.26) and card.action.angular == (-1.82, 1.82)


def test_observation_size_counts_every_term():
    card = small_card(sectors=16)
    assert card.observation.frame_size == 16 + 3 + 2 + 2
    stacked = card.with_updates(
        observation=ObservationSpec(
            scan=card.observation.scan, previous_action=False, velocity=None, history_length=3
        )
    )
    assert stacked.observation.size == (16 + 3) * 3


def test_history_stride_is_kept_and_consecutive_frames_stay_the_default():
    card = small_card()
    spaced = card.with_updates(
        observation=ObservationSpec(scan=card.observation.scan, history_length=3, history_stride=5)
    )
    assert PolicyCard.from_json(spaced.to_json()) == spaced
    assert json.loads(spaced.to_json())["observation"]["history_stride"] == 5
    # A card with consecutive frames is written as before the stride existed.
    assert "history_stride" not in json.loads(card.to_json())["observation"]
    assert spaced.observation.size == spaced.observation.frame_size * 3


def _mutated(path: str, value: object) -> dict:
    data = json.loads(small_card().to_json())
    *parents, leaf = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format", "other/2", "unsupported"),
        ("name", KeyError, "name: missing"),
        ("name", "", "must not be empty"),
        ("observation.scan.sectors", 0, "observation.scan.sectors: must be >= 1"),
        ("observation.scan.sectors", 6.5, "must be an integer"),
        ("observation.scan.field_of_view_deg", 400, "must be in (0, 360]"),
        ("observation.scan.range_cap", -1, "must be > 0"),
        ("observation.scan.reduction", "mean", "must be one of min, stride"),
        ("observation.scan.extra", 1, "unknown field(s) extra"),
        ("observation.goal.distance_cap", "far", "must be a number"),
        ("observation.history_length", 0, "must be >= 1"),
        ("observation.history_stride", 0, "observation.history_stride: must be >= 1"),
        ("observation.previous_action", "yes", "must be true/false"),
        ("action.linear", [0.2], "must be [value_at_-1, value_at_+1]"),
        ("action.angular", [1.0, 1.0], "same velocity"),
        ("control_rate_hz", 0, "must be > 0"),
        ("weights_sha256", "xyz", "64 lowercase hex"),
        ("training", [1, 2], "training: must be an object"),
    ],
)
def test_malformed_cards_are_refused_with_the_field(path, value, message):
    with pytest.raises(PolicyCardError, match=None) as info:
        card_from_dict(_mutated(path, value), source="model.pt")
    assert message in str(info.value)
    assert str(info.value).startswith("model.pt: ")


def test_invalid_json_is_a_card_error():
    with pytest.raises(PolicyCardError, match="not valid JSON"):
        PolicyCard.from_json("{not json", source="x.pt")
    with pytest.raises(PolicyCardError, match="must be an object"):
        PolicyCard.from_json("[1, 2]")


def test_card_error_is_a_value_error():
    assert issubclass(PolicyCardError, ValueError)
