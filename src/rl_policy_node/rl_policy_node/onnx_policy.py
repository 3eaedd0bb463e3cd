"""ONNX policy files: run by ONNX Runtime, card in the model metadata (no rclpy, no torch).

An ONNX policy is the same module as the TorchScript file, `obs[B, D] -> action[B, 2]`
in [-1, 1] with the normalization inside the graph, and the same card as JSON in the
model's metadata under ``policy_card.json``. A robot needs only `onnxruntime` (and
numpy) to run it: the weights' sha256 is computed here by reading the initializers
straight from the protobuf bytes, so the `onnx` package is not needed either.

The hash has the formula of `policy_loader.weights_sha256` (name, then the values'
little-endian bytes, in name order), so an ONNX file exported from a TorchScript
module, whose initializers keep the module's parameter and buffer names, has the very
sha256 of the TorchScript file: the card's gate stays valid for both.

Writing ONNX files is `onnx_export` (torch and the `onnx` package; training and tests,
never the node).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

ONNX_SUFFIX = ".onnx"

# ONNX TensorProto.DataType values and the little-endian numpy type of each.
_DTYPES = {
    1: "<f4",  # FLOAT
    2: "u1",  # UINT8
    3: "i1",  # INT8
    4: "<u2",  # UINT16
    5: "<i2",  # INT16
    6: "<i4",  # INT32
    7: "<i8",  # INT64
    9: "u1",  # BOOL
    10: "<f2",  # FLOAT16
    11: "<f8",  # DOUBLE
    12: "<u4",  # UINT32
    13: "<u8",  # UINT64
}
_TYPED_FIELDS = {4: (1,), 10: (11,), 7: (7,), 5: (6,)}  # field -> data types it may hold


class OnnxFileError(ValueError):
    """Bytes that are not a usable ONNX model; the message says why."""


# ------------------------------------------------------------------ protobuf reading


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise OnnxFileError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxFileError("malformed protobuf varint")


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; LEN values are bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise OnnxFileError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise OnnxFileError("truncated protobuf message")
        yield number, wire, value


def _int64_values(chunks: list[tuple[int, Any]]) -> list[int]:
    values: list[int] = []
    for wire, value in chunks:
        if wire == 0:
            values.append(value)
        else:  # packed
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                values.append(item)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


def _tensor_bytes(tensor: bytes) -> tuple[str, bytes]:
    """(name, little-endian value bytes) of a serialized TensorProto."""
    name = ""
    data_type = 0
    raw: bytes | None = None
    typed: dict[int, list[tuple[int, Any]]] = {}
    external = False
    for number, wire, value in _fields(tensor):
        if number == 8:
            name = value.decode("utf-8", "replace")
        elif number == 2:
            data_type = value
        elif number == 9:
            raw = value
        elif number == 14:
            external = value == 1
        elif number == 13:
            external = True
        elif number in (4, 5, 6, 7, 10, 11):
            typed.setdefault(number, []).append((wire, value))
    if external:
        raise OnnxFileError(
            f"initializer {name!r} keeps its values in an external file; "
            "a policy must be one self-contained file"
        )
    if raw is not None:
        return name, raw
    if not typed:
        return name, b""
    if len(typed) > 1 or data_type not in _DTYPES:
        raise OnnxFileError(f"initializer {name!r}: unsupported value storage")
    field, chunks = next(iter(typed.items()))
    if data_type not in _TYPED_FIELDS.get(field, ()):
        raise OnnxFileError(
            f"initializer {name!r}: values stored in a field this loader does not read "
            f"(field {field}, data type {data_type})"
        )
    if field in (4, 10):  # float / double: packed fixed-width, or one value per entry
        return name, b"".join(value for _, value in chunks)
    values = _int64_values(chunks)
    return name, np.asarray(values, dtype=_DTYPES[data_type]).tobytes()


def _submessages(data: bytes, number: int) -> Iterator[bytes]:
    for field, wire, value in _fields(data):
        if field == number and wire == 2:
            yield value


def _identity_aliases(graph: bytes) -> list[tuple[str, str]]:
    """(input, output) of the graph's one-input Identity nodes of the default domain."""
    aliases = []
    for node in _submessages(graph, 1):
        inputs, outputs, op_type, domain = [], [], "", ""
        for number, wire, value in _fields(node):
            if wire != 2:
                continue
            if number == 1:
                inputs.append(value.decode("utf-8", "replace"))
            elif number == 2:
                outputs.append(value.decode("utf-8", "replace"))
            elif number == 4:
                op_type = value.decode("utf-8", "replace")
            elif number == 7:
                domain = value.decode("utf-8", "replace")
        if op_type == "Identity" and domain in ("", "ai.onnx") and len(inputs) == 1 == len(outputs):
            aliases.append((inputs[0], outputs[0]))
    return aliases


def onnx_weights_sha256(model: bytes) -> str:
    """sha256 over the main graph's initializers (name, values) in name order.

    The same formula as `policy_loader.weights_sha256` of a torch module, so a file
    exported from a module with its parameter names hashes to the module's sha256. A
    name an Identity node gives to an initializer counts as a tensor with its values.
    """
    graphs = list(_submessages(model, 7))
    if not graphs:
        raise OnnxFileError("no graph in the model")
    tensors: dict[str, bytes] = {}
    aliases: list[tuple[str, str]] = []
    for graph in graphs:
        if any(True for _ in _submessages(graph, 15)):
            raise OnnxFileError("sparse initializers are not supported")
        for tensor in _submessages(graph, 5):
            name, values = _tensor_bytes(tensor)
            tensors[name] = values
        aliases += _identity_aliases(graph)
    # Exporters store equal tensors once and name the others through Identity nodes
    # (torch does, e.g. for two all-zero biases); those names hold the same values.
    changed = True
    while changed:
        changed = False
        for source, target in aliases:
            if source in tensors and target not in tensors:
                tensors[target] = tensors[source]
                changed = True
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name])
    return digest.hexdigest()


# ----------------------------------------------------------------------- running


_THREADS = {"count": None}


def set_onnx_threads(count: int | None) -> None:
    """Intra-op threads of sessions opened from now on (None: ONNX Runtime's default)."""
    _THREADS["count"] = count


def onnxruntime_module() -> Any:
    """The `onnxruntime` module; ImportError with a clear message when it is missing."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "an ONNX (.onnx) policy needs onnxruntime, which is not installed here "
            "(pip install -r requirements-robot.txt)"
        ) from exc
    return onnxruntime


def onnx_providers(device: str, available: list[str]) -> list[Any]:
    """Execution providers for `device` (cpu, cuda, cuda:N); ValueError if not available."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if "CUDAExecutionProvider" not in available:
            raise ValueError(
                f"device {device!r}: this onnxruntime has no CUDA execution provider "
                f"(available: {', '.join(available)})"
            )
        index = int(device[5:]) if device.startswith("cuda:") else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ValueError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def open_session(model: bytes, device: str = "cpu") -> Any:
    """An ONNX Runtime session for the model bytes (sequential, deterministic, no spinning)."""
    ort = onnxruntime_module()
    providers = onnx_providers(device, list(ort.get_available_providers()))
    options = ort.SessionOptions()
    threads = _THREADS["count"]
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.use_deterministic_compute = True
    options.log_severity_level = 3  # errors only; the loader reports what went wrong
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=providers)


@dataclass
class OnnxRunner:
    """Calls a session with float32 (B, D) batches and returns (B, 2) float32 actions."""

    session: Any
    input_name: str
    output_name: str
    fixed_batch: int | None

    @staticmethod
    def for_session(session: Any) -> OnnxRunner:
        """The runner of a session with one float tensor input and one output."""
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise OnnxFileError(
                f"expected one input and one output, got {len(inputs)} inputs "
                f"and {len(outputs)} outputs"
            )
        spec = inputs[0]
        if spec.type != "tensor(float)":
            raise OnnxFileError(f"input {spec.name!r} is {spec.type}, expected tensor(float)")
        if len(spec.shape) != 2:
            raise OnnxFileError(f"input {spec.name!r} has shape {spec.shape}, expected [B, D]")
        batch = spec.shape[0]
        return OnnxRunner(
            session, spec.name, outputs[0].name, batch if isinstance(batch, int) else None
        )

    @property
    def input_size(self) -> int | None:
        """D when the graph fixes it, else None."""
        size = self.session.get_inputs()[0].shape[1]
        return size if isinstance(size, int) else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Actions for a (B, D) float32 batch (row by row when the graph fixes B = 1)."""
        if self.fixed_batch == 1 and batch.shape[0] != 1:
            rows = [
                self.session.run([self.output_name], {self.input_name: row[None]})[0]
                for row in batch
            ]
            return np.asarray(np.concatenate(rows), dtype=np.float32)
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)


def card_text_of(session: Any) -> str:
    """The policy card JSON in a session's model metadata ("" when there is none)."""
    from rl_policy_node.policy_card import CARD_FILENAME

    return session.get_modelmeta().custom_metadata_map.get(CARD_FILENAME, "")
