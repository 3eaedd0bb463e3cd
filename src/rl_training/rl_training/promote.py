"""Promote a policy file: record a deployment gate verdict of a fresh evaluation in its card.

`promote` evaluates the file (an injected evaluator: `rl_training.evaluate.evaluate` with
the command's options, or a fake in tests), then writes into its card the evaluation
(`evaluation`, as `evaluate --record-card` does) and a `GateRecord`: the verdict, the
gate version, the sha256 of the weights that ran and the digest of the card it is
recorded in (`rl_policy_node.model_gate.card_digest`). The policy node's
`require_gated_model` accepts the file only if that record passed
(`rl_policy_node.model_gate.gate_problem`).

A failed evaluation is recorded too, with `passed: false` and its failures, replacing
any earlier record: the file then says why it is not deployable, and an older passed
gate cannot outlive a fresh evaluation that fails. Only the card changes: the file is
rewritten beside itself, reloaded, and put in place only if its weights hash to the
sha256 that was evaluated and its card reads back as written (TorchScript: the card
extra file; ONNX: the model metadata).

The gated mode must be `PROMOTION_MODE`, the policy behind the safety filter as it is
deployed: an evaluation of other modes cannot promote a model.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rl_policy_node.model_gate import card_digest
from rl_policy_node.onnx_policy import ONNX_SUFFIX
from rl_policy_node.policy_card import CARD_FILENAME, GateRecord, PolicyCard
from rl_policy_node.policy_loader import (
    RUNTIME_ONNX,
    TORCHSCRIPT_DEPRECATION,
    import_torch,
    load_policy,
)
from rl_training.report import EvaluationReport, evaluation_record

# The deployed configuration, the only one a gate verdict may promote.
PROMOTION_MODE = "policy_safety"
# The narrowest evaluation the command line promotes on: every standard world, and enough
# held-out episodes per world that one lucky run cannot pass the gate.
MIN_PROMOTION_EPISODES = 20

Evaluator = Callable[[Path], EvaluationReport]


class PromotionError(ValueError):
    """The file cannot be promoted (no card, another mode gated, changed meanwhile)."""


@dataclass(frozen=True)
class Promotion:
    """The outcome of `promote`: the fresh report and the card written into the file."""

    path: Path
    report: EvaluationReport
    card: PolicyCard
    gate: GateRecord

    @property
    def passed(self) -> bool:
        """Whether the fresh evaluation passed the gate."""
        return self.gate.passed


def promotion_scope_problem(worlds: Sequence[str], episodes: int) -> str | None:
    """Why an evaluation of `worlds` with `episodes` per world is too narrow to promote on
    (None: wide enough). The standard worlds are the gate's; more may be added."""
    from rl_training.evaluate import DEFAULT_WORLDS

    missing = [world for world in DEFAULT_WORLDS if world not in worlds]
    if missing:
        return f"a promotion evaluates every standard world; missing: {', '.join(missing)}"
    if episodes < MIN_PROMOTION_EPISODES:
        return (
            f"a promotion needs >= {MIN_PROMOTION_EPISODES} held-out episodes per world, "
            f"got {episodes}"
        )
    return None


def utc_now() -> str:
    """The current UTC time as ISO 8601 (seconds, "Z")."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gated_card(
    card: PolicyCard, report: EvaluationReport, weights_sha256: str, evaluated: str
) -> PolicyCard:
    """`card` with the report as its evaluation and the gate record of the report's verdict."""
    verdict = report.gate
    if verdict.get("mode") != PROMOTION_MODE:
        raise PromotionError(
            f"the gate judged mode {verdict.get('mode')!r}; promotion needs {PROMOTION_MODE!r} "
            "(the policy behind the safety filter, as deployed)"
        )
    evaluated_card = card.with_updates(evaluation=evaluation_record(report), gate=None)
    record = GateRecord(
        passed=bool(verdict["passed"]),
        version=int(verdict["version"]),
        weights_sha256=weights_sha256,
        card_sha256=card_digest(evaluated_card),
        evaluated=evaluated,
        failures=tuple(str(f) for f in verdict.get("failures", ())),
        mode=PROMOTION_MODE,
        seed=report.seed,
        episodes_per_world=report.episodes_per_world,
        worlds=tuple(report.worlds),
    )
    return evaluated_card.with_updates(gate=record)


def _temporary(path: Path) -> Path:
    # Same directory (os.replace stays on one file system), same suffix (same runtime).
    return path.with_name(f".{path.stem}.{os.getpid()}.promote{path.suffix}")


def _write_torchscript(module: object, card: PolicyCard, out: Path) -> None:
    torch = import_torch()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATION, DeprecationWarning)
        torch.jit.save(module, str(out), _extra_files={CARD_FILENAME: card.to_json()})


def _write_onnx(source: Path, card: PolicyCard, out: Path) -> None:
    import onnx

    model = onnx.load_from_string(source.read_bytes())
    kept = [(e.key, e.value) for e in model.metadata_props if e.key != CARD_FILENAME]
    del model.metadata_props[:]
    for key, value in [*kept, (CARD_FILENAME, card.to_json())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    out.write_bytes(model.SerializeToString())


def rewrite_card(path: str | Path, card: PolicyCard, weights_sha256: str) -> None:
    """Replace the card of a policy file, keeping its weights; check before replacing.

    The new file is written beside `path`, loaded with the node's loader, and renamed
    over `path` only if its weights hash to `weights_sha256` and its card reads back
    equal to `card`; otherwise PromotionError and `path` is untouched.
    """
    file = Path(path)
    policy = load_policy(file)
    if policy.sha256 != weights_sha256:
        raise PromotionError(
            f"{file}: weights changed during the evaluation "
            f"({weights_sha256[:12]}... evaluated, {policy.sha256[:12]}... now)"
        )
    temporary = _temporary(file)
    try:
        if policy.runtime == RUNTIME_ONNX or file.suffix.lower() == ONNX_SUFFIX:
            _write_onnx(file, card, temporary)
        else:
            _write_torchscript(policy.module, card, temporary)
        written = load_policy(temporary)
        if written.sha256 != weights_sha256:
            raise PromotionError(f"{file}: rewriting the card changed the weights' sha256")
        if written.card != card:
            raise PromotionError(f"{file}: the rewritten card does not read back as written")
        os.replace(temporary, file)
    finally:
        temporary.unlink(missing_ok=True)


def promote(
    model_path: str | Path, evaluate_model: Evaluator, evaluated: str | None = None
) -> Promotion:
    """Evaluate `model_path` afresh and record the verdict in its card (passed or not).

    `evaluate_model(path)` runs the evaluation; `evaluated` is the time recorded
    (default: now, UTC). Raises PromotionError (or a `PolicyLoadError`) when the file
    cannot be promoted; the file is then unchanged.
    """
    path = Path(model_path)
    before = load_policy(path)
    if not before.has_card:
        raise PromotionError(f"{path}: the file has no policy card to record a gate in")
    report = evaluate_model(path)
    # The card names its weights (a hand-made card may have left the hash empty).
    card = before.card.with_updates(weights_sha256=before.sha256)
    card = gated_card(card, report, before.sha256, evaluated or utc_now())
    rewrite_card(path, card, before.sha256)
    assert card.gate is not None  # set by gated_card
    return Promotion(path=path, report=report, card=card, gate=card.gate)
