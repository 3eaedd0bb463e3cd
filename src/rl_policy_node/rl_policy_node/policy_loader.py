"""Load a policy file with its card, and check it before it may drive.

Two runtimes, picked by the file's suffix: ``.onnx`` files run on ONNX Runtime (card in
the model metadata), every other file is a TorchScript module (card as an extra file).
`load_policy` reads the file, parses its card (or assumes the seed layout when it has
none), verifies the weights' checksum, and dry-runs the module on a zero observation:
the output must be [B, 2] and finite. Every failure is a `PolicyLoadError` (a
ValueError) whose message names the file and the reason, never a raw runtime error.

torch is imported only when a TorchScript file is loaded or saved, so a robot that
runs ONNX files needs neither torch nor the `onnx` package (requirements-robot.txt).
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_policy_node.onnx_policy import (
    ONNX_SUFFIX,
    OnnxFileError,
    OnnxRunner,
    card_text_of,
    onnx_weights_sha256,
    open_session,
    set_onnx_threads,
)
from rl_policy_node.policy_card import (
    CARD_FILENAME,
    ActionSpec,
    PolicyCard,
    PolicyCardError,
    implicit_card,
)

# torch 2.13 flags TorchScript as deprecated; it is still the policy file format of the
# contract (ARCHITECTURE.md), so the warning is expected and silenced where we use it.
TORCHSCRIPT_DEPRECATION = r".*torch\.jit.* is deprecated"

# Outputs of a card-less file map to these unless the caller passes its own limits.
UNIT_ACTION = ActionSpec(linear=(-1.0, 1.0), angular=(-1.0, 1.0))

RUNTIME_TORCHSCRIPT = "torchscript"
RUNTIME_ONNX = "onnxruntime"

# Threads per inference set by `set_inference_threads` (None: each runtime's default).
_INFERENCE_THREADS: dict[str, int | None] = {"count": None}


def runtime_for(path: str | Path) -> str:
    """The runtime a policy file is run by: ONNX Runtime for .onnx, TorchScript otherwise."""
    return RUNTIME_ONNX if Path(path).suffix.lower() == ONNX_SUFFIX else RUNTIME_TORCHSCRIPT


def _configure_torch(torch: Any) -> None:
    count = _INFERENCE_THREADS["count"]
    if count is None:
        return
    torch.set_num_threads(count)
    try:
        torch.set_num_interop_threads(1)  # one inference at a time; no pool to wake per call
    except RuntimeError:  # already fixed once torch ran parallel work in this process
        pass


def set_inference_threads(count: int | None) -> None:
    """Threads each runtime may use per inference in this process (the node uses 1).

    Applies to torch now if it is already imported, else when a TorchScript file first
    imports it, and to ONNX Runtime sessions opened from now on.
    """
    _INFERENCE_THREADS["count"] = count
    set_onnx_threads(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        _configure_torch(torch)


def import_torch() -> Any:
    """torch, imported on first use (ImportError with the way out when it is missing).

    The thread counts of `set_inference_threads` are (re)applied on every call: cheap,
    and right even when something else imported torch first.
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "a TorchScript (.pt) policy needs torch, which is not installed here; a "
            "torch-free (robot) install runs the policy's .onnx file with onnxruntime"
        ) from exc
    _configure_torch(torch)
    return torch


def cuda_available() -> bool:
    """Whether either runtime can use CUDA here (imports torch only if it is installed)."""
    try:
        torch = import_torch()
        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


class PolicyLoadError(ValueError):
    """A policy file that cannot be used; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class PolicyFileNotFoundError(PolicyLoadError):
    """The path does not name a readable file."""


class PolicyFormatError(PolicyLoadError):
    """The file is not a loadable TorchScript or ONNX policy (corrupt, or another format)."""


class PolicyRuntimeError(PolicyLoadError):
    """The file's runtime (torch or onnxruntime) or the device is not available here."""


class PolicyCardInvalidError(PolicyLoadError):
    """The embedded policy card is malformed."""


class PolicyChecksumError(PolicyLoadError):
    """The weights do not match the card's sha256."""


class PolicyShapeError(PolicyLoadError):
    """The module does not take the card's observation size or does not return [B, 2]."""


class PolicyNonFiniteError(PolicyLoadError):
    """The module returns NaN or infinity on the dry run."""


def weights_sha256(module: Any) -> str:
    """sha256 over a torch module's named parameters and buffers, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def torch_actions(module: Any, batch: np.ndarray, device: str = "cpu") -> np.ndarray:
    """A torch module's outputs for a float32 (B, D) batch, as numpy."""
    torch = import_torch()
    tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    with torch.inference_mode():
        return module(tensor.to(device)).detach().cpu().numpy()


class _TorchRunner:
    """Calls a TorchScript module with numpy batches."""

    def __init__(self, module: Any, device: str) -> None:
        self.torch = import_torch()
        self.module = module
        self.device = device

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        return out.detach().cpu().numpy()


@dataclass
class LoadedPolicy:
    """A checked policy: call it with observations, read its card.

    `module` is the TorchScript module (runtime "torchscript") or the ONNX Runtime
    session (runtime "onnxruntime"); `card_text` the card JSON as stored in the file.
    """

    path: Path
    card: PolicyCard
    module: Any
    has_card: bool
    sha256: str
    device: str = "cpu"
    runtime: str = RUNTIME_TORCHSCRIPT
    runner: Callable[[np.ndarray], np.ndarray] | None = None
    card_text: str = ""

    def __post_init__(self) -> None:
        if self.runner is None:
            self.runner = (
                OnnxRunner.for_session(self.module)
                if self.runtime == RUNTIME_ONNX
                else _TorchRunner(self.module, self.device)
            )

    @property
    def observation_size(self) -> int:
        """D, the observation length the module takes."""
        return self.card.observation.size

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """Actions for observations: (D,) -> (2,), or (B, D) -> (B, 2); float32."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = np.ascontiguousarray(obs.reshape(1, -1) if single else obs)
        out = self.runner(batch)  # type: ignore[misc]
        return out[0] if single else out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_torchscript(file: Path, device: str) -> tuple[Any, str, str]:
    """(module, card text, sha256) of a TorchScript file."""
    try:
        torch = import_torch()
    except ImportError as exc:
        raise PolicyRuntimeError(file, str(exc)) from None
    extra = {CARD_FILENAME: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
            module = torch.jit.load(str(file), map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError and others for bad archives
        raise PolicyFormatError(file, f"not a TorchScript policy ({_first_line(exc)})") from None
    module.eval()
    return module, extra[CARD_FILENAME], weights_sha256(module)


def _load_onnx(file: Path, device: str) -> tuple[Any, str, str]:
    """(session, card text, sha256) of an ONNX file."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PolicyFileNotFoundError(file, f"cannot read ({exc.strerror or exc})") from None
    try:
        session = open_session(data, device)
    except ImportError as exc:
        raise PolicyRuntimeError(file, str(exc)) from None
    except ValueError as exc:  # device not available or unknown
        raise PolicyRuntimeError(file, str(exc)) from None
    except Exception as exc:  # onnxruntime raises its own errors for bad models
        raise PolicyFormatError(file, f"not an ONNX policy ({_first_line(exc)})") from None
    try:
        OnnxRunner.for_session(session)
        sha = onnx_weights_sha256(data)
    except OnnxFileError as exc:
        raise PolicyFormatError(file, f"not an ONNX policy ({exc})") from None
    return session, card_text_of(session), sha


def load_policy(
    path: str | Path,
    implicit_action: ActionSpec = UNIT_ACTION,
    device: str = "cpu",
) -> LoadedPolicy:
    """Load and check a policy file; raise a `PolicyLoadError` subclass on any problem.

    The runtime follows the suffix (`runtime_for`). `implicit_action` gives the
    velocities of a card-less file's outputs (the node passes its `max_velocity`).
    """
    file = Path(path)
    if not file.is_file():
        raise PolicyFileNotFoundError(file, "no such file")
    runtime = runtime_for(file)
    loader = _load_onnx if runtime == RUNTIME_ONNX else _load_torchscript
    module, card_text, sha = loader(file, device)
    if isinstance(card_text, bytes):  # torch hands extra files back as bytes
        try:
            card_text = card_text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyCardInvalidError(file, f"{CARD_FILENAME}: not UTF-8 text") from None

    has_card = bool(card_text)
    if has_card:
        try:
            card = PolicyCard.from_json(card_text, source=CARD_FILENAME)
        except PolicyCardError as exc:
            raise PolicyCardInvalidError(file, str(exc)) from None
    else:
        card = implicit_card(1.0, 1.0).with_updates(action=implicit_action)

    if card.weights_sha256 and card.weights_sha256 != sha:
        raise PolicyChecksumError(
            file,
            f"weights sha256 {sha[:12]}... does not match the card's {card.weights_sha256[:12]}...",
        )

    policy = LoadedPolicy(
        path=file,
        card=card,
        module=module,
        has_card=has_card,
        sha256=sha,
        device=device,
        runtime=runtime,
        card_text=card_text,
    )
    size = card.observation.size
    try:
        out = policy(np.zeros((1, size), dtype=np.float32))
    except Exception as exc:
        raise PolicyShapeError(
            file,
            f"dry run on a zero observation of size {size} failed: the module does not "
            f"accept the card's observation ({type(exc).__name__})",
        ) from None
    if out.shape != (1, 2):
        raise PolicyShapeError(file, f"output shape {tuple(out.shape)}, expected (1, 2)")
    if not np.all(np.isfinite(out)):
        raise PolicyNonFiniteError(file, f"non-finite output on a zero observation: {out.tolist()}")
    return policy


def save_policy(module: Any, path: str | Path, card: PolicyCard) -> PolicyCard:
    """Save a TorchScript module with its card; the card's sha256 is set from the weights."""
    torch = import_torch()
    card = card.with_updates(weights_sha256=weights_sha256(module))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
        torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: card.to_json()})
    return card
