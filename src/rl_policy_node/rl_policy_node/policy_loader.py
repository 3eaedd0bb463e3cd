"""Load a TorchScript policy file with its card, and check it before it may drive.

`load_policy` reads the file, parses its card (or assumes the seed layout when it has
none), verifies the weights' checksum, and dry-runs the module on a zero observation:
the output must be [B, 2] and finite. Every failure is a `PolicyLoadError` (a
ValueError) whose message names the file and the reason, never a raw torch error.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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


class PolicyLoadError(ValueError):
    """A policy file that cannot be used; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class PolicyFileNotFoundError(PolicyLoadError):
    """The path does not name a readable file."""


class PolicyFormatError(PolicyLoadError):
    """The file is not a loadable TorchScript module (corrupt, or another format)."""


class PolicyCardInvalidError(PolicyLoadError):
    """The embedded policy card is malformed."""


class PolicyChecksumError(PolicyLoadError):
    """The weights do not match the card's sha256."""


class PolicyShapeError(PolicyLoadError):
    """The module does not take the card's observation size or does not return [B, 2]."""


class PolicyNonFiniteError(PolicyLoadError):
    """The module returns NaN or infinity on the dry run."""


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over the module's named parameters and buffers, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class LoadedPolicy:
    """A checked policy: call it with observations, read its card."""

    path: Path
    card: PolicyCard
    module: torch.jit.ScriptModule
    has_card: bool
    sha256: str
    device: str = "cpu"

    @property
    def observation_size(self) -> int:
        """D, the observation length the module takes."""
        return self.card.observation.size

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """Actions for observations: (D,) -> (2,), or (B, D) -> (B, 2); float32."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = torch.from_numpy(np.ascontiguousarray(obs.reshape(1, -1) if single else obs))
        with torch.inference_mode():
            out = self.module(batch.to(self.device)).detach().cpu().numpy()
        return out[0] if single else out


def load_policy(
    path: str | Path,
    implicit_action: ActionSpec = UNIT_ACTION,
    device: str = "cpu",
) -> LoadedPolicy:
    """Load and check a policy file; raise a `PolicyLoadError` subclass on any problem.

    `implicit_action` gives the velocities of a card-less file's outputs (the node
    passes its `max_velocity`).
    """
    file = Path(path)
    if not file.is_file():
        raise PolicyFileNotFoundError(file, "no such file")
    extra = {CARD_FILENAME: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
            module = torch.jit.load(str(file), map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError and others for bad archives
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyFormatError(file, f"not a TorchScript policy ({first_line})") from None
    module.eval()

    card_text = extra[CARD_FILENAME]
    has_card = bool(card_text)
    if has_card:
        try:
            card = PolicyCard.from_json(card_text, source=CARD_FILENAME)
        except PolicyCardError as exc:
            raise PolicyCardInvalidError(file, str(exc)) from None
    else:
        card = implicit_card(1.0, 1.0).with_updates(action=implicit_action)

    sha = weights_sha256(module)
    if card.weights_sha256 and card.weights_sha256 != sha:
        raise PolicyChecksumError(
            file,
            f"weights sha256 {sha[:12]}... does not match the card's {card.weights_sha256[:12]}...",
        )

    policy = LoadedPolicy(
        path=file, card=card, module=module, has_card=has_card, sha256=sha, device=device
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


def save_policy(module: torch.jit.ScriptModule, path: str | Path, card: PolicyCard) -> PolicyCard:
    """Save a TorchScript module with its card; the card's sha256 is set from the weights."""
    card = card.with_updates(weights_sha256=weights_sha256(module))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
        torch.jit.save(module, str(path), _extra_files={CARD_FILENAME: card.to_json()})
    return card
