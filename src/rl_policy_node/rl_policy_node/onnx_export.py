"""Writing ONNX policy files from torch modules (training and tests, never the node).

`onnx_bytes_from_module` exports a module `obs[B, D] -> action[B, 2]` with the card in
the model metadata; `write_onnx_policy` also loads the result with the node's loader and
checks its actions against the reference before the file is put in place. Needs torch
and the `onnx` package, imported only when a file is written.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_policy_node.onnx_policy import ONNX_SUFFIX, onnx_weights_sha256
from rl_policy_node.policy_card import CARD_FILENAME
from rl_policy_node.policy_loader import load_policy, torch_actions

# Input and output names of the files this package writes (the loader accepts any names).
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
OPSET = 17
# Largest |ONNX - TorchScript| action difference an export accepts.
PARITY_TOLERANCE = 1e-5


def onnx_bytes_from_module(module: Any, observation_size: int, card_json: str) -> bytes:
    """ONNX bytes of a torch module `obs[B, D] -> [B, 2]` with the card in its metadata.

    Uses torch's TorchScript-based exporter (no onnxscript needed) with a dynamic batch
    axis, then the `onnx` package to add the card and check the model. The exporter
    traces `module` on a zero observation: data-dependent control flow is not kept.
    """
    import io

    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in torch 2.13 but needs no onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", ".*signature.*_decide_input_format", UserWarning)
        torch.onnx.export(
            module,
            (torch.zeros(1, observation_size, dtype=torch.float32),),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            # Folding would turn e.g. a transposed weight into a renamed initializer; without
            # it the initializers are the module's parameters, by name (same sha256).
            # ONNX Runtime folds constants itself when it opens the session.
            do_constant_folding=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_FILENAME, card_json
    model.doc_string = "rlguard policy: obs[B, D] -> action[B, 2] in [-1, 1]"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


@dataclass(frozen=True)
class OnnxWriteResult:
    """A written ONNX policy and its parity against the reference."""

    path: Path
    sha256: str
    observations: int
    max_difference: float


class OnnxParityError(ValueError):
    """The ONNX file's actions differ from the reference's; nothing was written."""


def write_onnx_policy(
    module: Any,
    card_json: str,
    observation_size: int,
    out_path: str | Path,
    observations: np.ndarray,
    reference: Callable[[np.ndarray], np.ndarray] | None = None,
    tolerance: float = PARITY_TOLERANCE,
    expected_sha256: str = "",
) -> OnnxWriteResult:
    """Export `module` as an ONNX policy file, check it, and write it only if it holds.

    The file is written beside `out_path` under a temporary name, loaded with the
    node's loader (card, sha256, shape and dry-run checks), and run on `observations`;
    only when its actions are within `tolerance` of `reference` (default: the torch
    module itself) is it renamed to `out_path`. An existing file there is untouched
    otherwise. `expected_sha256` (the card's) must equal the ONNX weights' hash.
    """
    out = Path(out_path)
    if out.suffix != ONNX_SUFFIX:
        raise ValueError(f"{out}: an ONNX policy file must end in {ONNX_SUFFIX}")
    data = onnx_bytes_from_module(module, observation_size, card_json)
    sha = onnx_weights_sha256(data)
    if expected_sha256 and sha != expected_sha256:
        raise ValueError(
            f"{out}: the exported graph's weights hash to {sha[:12]}..., not the card's "
            f"{expected_sha256[:12]}... (the exporter renamed or folded parameters)"
        )
    batch = np.ascontiguousarray(observations, dtype=np.float32)
    if batch.ndim != 2 or batch.shape[1] != observation_size or batch.shape[0] == 0:
        raise ValueError(f"parity observations must be (N > 0, {observation_size})")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp{ONNX_SUFFIX}")
    try:
        temporary.write_bytes(data)
        candidate = load_policy(temporary)(batch)
        expected = reference(batch) if reference is not None else torch_actions(module, batch)
        difference = float(np.max(np.abs(candidate - np.asarray(expected, dtype=np.float32))))
        if not difference <= tolerance:
            raise OnnxParityError(
                f"{out}: not written: ONNX and reference actions differ by up to "
                f"{difference:.3g} on {len(batch)} observations (tolerance {tolerance:g})"
            )
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return OnnxWriteResult(out, sha, len(batch), difference)
