"""ONNX policy files: loading, card and checksum, refusals, parity with TorchScript, writing."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from rl_policy_node_test_support import (
    LinearTanhPolicy,
    NanPolicy,
    small_card,
    write_onnx,
    write_policy,
)

from rl_policy_node.onnx_export import OnnxParityError, write_onnx_policy
from rl_policy_node.onnx_policy import OnnxFileError, onnx_weights_sha256
from rl_policy_node.policy_card import CARD_FILENAME, ActionSpec
from rl_policy_node.policy_loader import (
    RUNTIME_ONNX,
    RUNTIME_TORCHSCRIPT,
    PolicyCardInvalidError,
    PolicyChecksumError,
    PolicyFormatError,
    PolicyNonFiniteError,
    PolicyRuntimeError,
    PolicyShapeError,
    load_policy,
    runtime_for,
    weights_sha256,
)

MODELS = Path(__file__).resolve().parents[3] / "models"
PARITY = 1e-5


def _observations(size: int, count: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.5, 1.5, (count, size)).astype(np.float32)


def _with_metadata(path: Path, card_text: str) -> Path:
    model = onnx.load(path)
    for entry in model.metadata_props:
        if entry.key == CARD_FILENAME:
            entry.value = card_text
    onnx.save(model, path)
    return path


def test_runtime_is_picked_by_suffix():
    assert runtime_for("a/b.onnx") == runtime_for("B.ONNX") == RUNTIME_ONNX
    assert runtime_for("a/b.pt") == runtime_for("b") == RUNTIME_TORCHSCRIPT


def test_onnx_file_loads_with_its_card_and_the_torchscript_twins_sha256(tmp_path):
    card = small_card()
    onnx_policy = load_policy(write_onnx(tmp_path / "p.onnx", card, seed=4))
    pt_policy = load_policy(write_policy(tmp_path / "p.pt", card, seed=4))
    assert onnx_policy.runtime == RUNTIME_ONNX and pt_policy.runtime == RUNTIME_TORCHSCRIPT
    assert onnx_policy.has_card and onnx_policy.card == pt_policy.card
    assert onnx_policy.sha256 == pt_policy.sha256 == onnx_policy.card.weights_sha256
    obs = _observations(card.observation.size)
    single, batch = onnx_policy(obs[3]), onnx_policy(obs)
    assert single.shape == (2,) and single.dtype == np.float32 and batch.shape == (256, 2)
    np.testing.assert_allclose(batch[3], single, atol=1e-7)
    np.testing.assert_allclose(batch, pt_policy(obs), atol=PARITY)


def test_onnx_file_without_card_is_read_as_the_seed_layout(tmp_path):
    limits = ActionSpec(linear=(-0.26, 0.26), angular=(-1.82, 1.82))
    policy = load_policy(write_onnx(tmp_path / "seed.onnx", None), implicit_action=limits)
    assert not policy.has_card and policy.observation_size == 69
    assert policy.card.observation.scan.reduction == "stride" and policy.card.action == limits


def test_corrupt_and_mislabelled_files_are_refused_by_format(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07definitely not a model" * 10)
    with pytest.raises(PolicyFormatError, match="not an ONNX policy") as info:
        load_policy(corrupt)
    assert str(corrupt) in str(info.value)
    pt_as_onnx = tmp_path / "really_pt.onnx"
    pt_as_onnx.write_bytes(write_policy(tmp_path / "x.pt", small_card()).read_bytes())
    with pytest.raises(PolicyFormatError, match="not an ONNX policy"):
        load_policy(pt_as_onnx)
    onnx_as_pt = tmp_path / "really_onnx.pt"
    onnx_as_pt.write_bytes(write_onnx(tmp_path / "y.onnx", small_card()).read_bytes())
    with pytest.raises(PolicyFormatError, match="not a TorchScript policy"):
        load_policy(onnx_as_pt)


def test_malformed_card_and_tampered_weights_are_refused(tmp_path):
    card = json.loads(small_card().to_json())
    card["observation"]["scan"]["sectors"] = -3
    bad_card = _with_metadata(write_onnx(tmp_path / "badcard.onnx", small_card()), json.dumps(card))
    with pytest.raises(PolicyCardInvalidError, match="observation.scan.sectors"):
        load_policy(bad_card)
    tampered = small_card().with_updates(weights_sha256="0" * 64).to_json()
    wrong_sha = _with_metadata(write_onnx(tmp_path / "tampered.onnx", small_card()), tampered)
    with pytest.raises(PolicyChecksumError, match="does not match"):
        load_policy(wrong_sha)


def test_shape_and_non_finite_problems_are_refused(tmp_path):
    card = small_card()
    size = card.observation.size
    wrong_in = write_onnx(tmp_path / "wrong_in.onnx", card, inputs=size + 5)
    # The card names `size` inputs; the graph takes size + 5 (a card from another policy).
    _with_metadata(wrong_in, card.with_updates(weights_sha256="").to_json())
    with pytest.raises(PolicyShapeError, match="does not accept the card's observation"):
        load_policy(wrong_in)
    three = write_onnx(tmp_path / "three.onnx", card, module=LinearTanhPolicy(size, outputs=3))
    with pytest.raises(PolicyShapeError, match=r"output shape \(1, 3\)"):
        load_policy(three)
    nan = write_onnx(tmp_path / "nan.onnx", card, module=NanPolicy())
    with pytest.raises(PolicyNonFiniteError, match="non-finite output"):
        load_policy(nan)


class _TwoInputs(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a[:, :2] + b[:, :2])


def test_a_graph_with_two_inputs_is_not_a_policy(tmp_path):
    path = tmp_path / "two.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(
            _TwoInputs(), (torch.zeros(1, 4), torch.zeros(1, 4)), str(path), dynamo=False
        )
    with pytest.raises(PolicyFormatError, match="one input and one output"):
        load_policy(path)


def test_an_unavailable_device_is_a_runtime_refusal(tmp_path):
    path = write_onnx(tmp_path / "p.onnx", small_card())
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(PolicyRuntimeError, match="no CUDA execution provider"):
        load_policy(path, device="cuda")
    with pytest.raises(PolicyRuntimeError, match="expected 'cpu'"):
        load_policy(path, device="gpu")


def _reference_sha256(model: onnx.ModelProto) -> str:
    """The same hash computed with the onnx package (what the byte reader must match)."""
    digest = hashlib.sha256()
    for tensor in sorted(model.graph.initializer, key=lambda t: t.name):
        digest.update(tensor.name.encode())
        array = numpy_helper.to_array(tensor)
        digest.update(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def test_weights_hash_reads_raw_and_typed_initializer_storage():
    values = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    raw = numpy_helper.from_array(values, "w")
    typed = helper.make_tensor("w", onnx.TensorProto.FLOAT, [3, 4], values.ravel().tolist())
    steps = helper.make_tensor("steps", onnx.TensorProto.INT64, [3], [-5, 0, 1 << 40])
    doubles = numpy_helper.from_array(np.array([0.5, -2.0]), "d")

    def model(*initializers):
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
            initializer=list(initializers),
        )
        return helper.make_model(graph)

    raw_model, typed_model = model(raw, steps, doubles), model(typed, steps, doubles)
    assert typed_model.graph.initializer[0].float_data  # really stored as typed values
    raw_hash = onnx_weights_sha256(raw_model.SerializeToString())
    assert raw_hash == onnx_weights_sha256(typed_model.SerializeToString())
    assert raw_hash == _reference_sha256(raw_model)
    changed = numpy_helper.from_array(values + np.float32(1e-3), "w")
    assert onnx_weights_sha256(model(changed, steps, doubles).SerializeToString()) != raw_hash


def test_weights_hash_of_a_module_export_equals_the_module_hash(tmp_path):
    module = LinearTanhPolicy(23, seed=9)
    path = write_onnx(tmp_path / "m.onnx", small_card(), module=module)
    assert onnx_weights_sha256(path.read_bytes()) == weights_sha256(module)


def test_weights_hash_counts_tensors_the_exporter_stored_once(tmp_path):
    module = torch.nn.Sequential(
        torch.nn.Linear(23, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)
    )
    with torch.no_grad():
        module[0].bias.zero_()
        module[2].bias.zero_()  # two equal tensors: torch's exporter keeps one
    path = write_onnx(tmp_path / "dedup.onnx", small_card(), module=module.eval())
    graph = onnx.load(path).graph
    assert len(graph.initializer) < len(module.state_dict())
    assert any(node.op_type == "Identity" for node in graph.node)
    assert onnx_weights_sha256(path.read_bytes()) == weights_sha256(module)
    assert load_policy(path).sha256 == weights_sha256(module)


def test_external_data_and_garbage_are_refused_by_the_hash_reader(tmp_path):
    path = write_onnx(tmp_path / "m.onnx", small_card())
    model = onnx.load(path)
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, size_threshold=0)
    with pytest.raises(OnnxFileError, match="external file"):
        onnx_weights_sha256((tmp_path / "ext.onnx").read_bytes())
    with pytest.raises(OnnxFileError):
        onnx_weights_sha256(b"\x3a\xff\xff")


def test_write_refuses_a_file_whose_parity_fails_and_keeps_the_old_one(tmp_path):
    card = small_card()
    size = card.observation.size
    module = LinearTanhPolicy(size, seed=2)
    text = card.with_updates(weights_sha256=weights_sha256(module)).to_json()
    out = tmp_path / "policy.onnx"
    out.write_bytes(b"the previous file")
    obs = _observations(size, 64)

    def off_by_a_little(batch):
        return module(torch.from_numpy(batch)).detach().numpy() + 1e-3

    with pytest.raises(OnnxParityError, match="not written") as info:
        write_onnx_policy(module, text, size, out, obs, reference=off_by_a_little)
    assert "1e-05" in str(info.value)
    assert out.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]  # no leftovers
    with pytest.raises(ValueError, match="renamed or folded"):
        write_onnx_policy(module, text, size, out, obs, expected_sha256="1" * 64)
    result = write_onnx_policy(module, text, size, out, obs, expected_sha256=weights_sha256(module))
    assert result.max_difference <= 1e-5 and result.observations == 64
    assert load_policy(out).card_text == text


# ------------------------------------------------------------------- shipped files


@pytest.fixture(scope="module")
def shipped():
    return load_policy(MODELS / "nav_policy.pt"), load_policy(MODELS / "nav_policy.onnx")


def test_shipped_onnx_carries_the_torchscript_card_unchanged(shipped):
    pt_policy, onnx_policy = shipped
    assert onnx_policy.runtime == RUNTIME_ONNX
    assert onnx_policy.card_text == pt_policy.card_text
    assert onnx_policy.sha256 == pt_policy.sha256 == pt_policy.card.weights_sha256


def test_shipped_onnx_and_torchscript_give_the_same_actions(shipped):
    pt_policy, onnx_policy = shipped
    size = pt_policy.observation_size
    rng = np.random.default_rng(19)
    # Observations in the card's ranges: scan sectors and goal distance in [0, 1], cos/sin,
    # velocities and the previous action in [-1, 1]; plus out-of-range values (clipped).
    obs = rng.uniform(-1.0, 1.0, (300, size)).astype(np.float32)
    sectors = pt_policy.card.observation.scan.sectors
    obs[:, : sectors + 1] = np.abs(obs[:, : sectors + 1])
    obs[:50] *= 20.0
    reference = pt_policy(obs)
    assert np.ptp(reference, axis=0).min() > 0.1  # not a constant policy
    np.testing.assert_allclose(onnx_policy(obs), reference, atol=PARITY, rtol=0)
