import json

import numpy as np
import pytest
import torch
from rl_policy_node_test_support import LinearTanhPolicy, NanPolicy, small_card, write_policy

from rl_policy_node.policy_card import CARD_FILENAME, ActionSpec
from rl_policy_node.policy_loader import (
    PolicyCardInvalidError,
    PolicyChecksumError,
    PolicyFileNotFoundError,
    PolicyFormatError,
    PolicyLoadError,
    PolicyNonFiniteError,
    PolicyShapeError,
    load_policy,
    weights_sha256,
)


def test_loads_a_policy_with_its_card(tmp_path):
    card = small_card()
    path = write_policy(tmp_path / "p.pt", card)
    policy = load_policy(path)
    assert policy.has_card
    assert policy.card.observation == card.observation and policy.card.action == card.action
    assert policy.card.weights_sha256 == policy.sha256 == weights_sha256(policy.module)
    obs = np.linspace(-1, 1, card.observation.size, dtype=np.float32)
    single, batch = policy(obs), policy(np.stack([obs, obs]))
    assert single.shape == (2,) and batch.shape == (2, 2)
    np.testing.assert_allclose(batch[1], single, atol=1e-7)


def test_file_without_card_is_read_as_the_seed_layout(tmp_path):
    path = write_policy(tmp_path / "seed.pt", card=None, inputs=69)
    limits = ActionSpec(linear=(-0.26, 0.26), angular=(-1.82, 1.82))
    policy = load_policy(path, implicit_action=limits)
    assert not policy.has_card
    assert policy.observation_size == 69
    assert policy.card.observation.scan.reduction == "stride"
    assert policy.card.action == limits


def test_missing_file(tmp_path):
    with pytest.raises(PolicyFileNotFoundError, match="no such file") as info:
        load_policy(tmp_path / "absent.pt")
    assert "absent.pt" in str(info.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(PolicyFormatError, match="not a TorchScript policy") as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_plain_state_dict_is_not_a_policy(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(LinearTanhPolicy(4).state_dict(), path)
    with pytest.raises(PolicyFormatError):
        load_policy(path)


def test_wrong_input_size(tmp_path):
    path = write_policy(
        tmp_path / "wrong.pt", small_card(), inputs=small_card().observation.size + 5
    )
    with pytest.raises(PolicyShapeError, match="does not accept the card's observation") as info:
        load_policy(path)
    assert "wrong.pt" in str(info.value)


def test_wrong_output_size(tmp_path):
    card = small_card()
    module = torch.jit.trace(LinearTanhPolicy(card.observation.size, outputs=3), torch.zeros(1, 23))
    torch.jit.save(module, str(tmp_path / "three.pt"), _extra_files={CARD_FILENAME: card.to_json()})
    with pytest.raises(PolicyShapeError, match=r"output shape \(1, 3\)"):
        load_policy(tmp_path / "three.pt")


def test_non_finite_model(tmp_path):
    card = small_card()
    module = torch.jit.trace(NanPolicy(), torch.zeros(1, card.observation.size))
    path = tmp_path / "nan.pt"
    torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: card.to_json()})
    with pytest.raises(PolicyNonFiniteError, match="non-finite output") as info:
        load_policy(path)
    assert "nan.pt" in str(info.value)


def test_malformed_card(tmp_path):
    card = json.loads(small_card().to_json())
    card["observation"]["scan"]["sectors"] = -3
    module = torch.jit.trace(LinearTanhPolicy(23), torch.zeros(1, 23))
    path = tmp_path / "badcard.pt"
    torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: json.dumps(card)})
    with pytest.raises(PolicyCardInvalidError, match="observation.scan.sectors"):
        load_policy(path)


def test_weights_not_matching_the_card(tmp_path):
    card = small_card().with_updates(weights_sha256="0" * 64)
    module = torch.jit.trace(LinearTanhPolicy(card.observation.size), torch.zeros(1, 23))
    path = tmp_path / "tampered.pt"
    torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: card.to_json()})
    with pytest.raises(PolicyChecksumError, match="does not match"):
        load_policy(path)


def test_every_failure_is_a_value_error_with_distinct_messages(tmp_path):
    corrupt = tmp_path / "c.pt"
    corrupt.write_bytes(b"x")
    paths = [tmp_path / "none.pt", corrupt, write_policy(tmp_path / "w.pt", small_card(), inputs=7)]
    reasons = []
    for path in paths:
        with pytest.raises(ValueError) as info:
            load_policy(path)
        assert isinstance(info.value, PolicyLoadError) and str(path) in str(info.value)
        reasons.append(info.value.reason)
    assert len(set(reasons)) == 3, reasons
