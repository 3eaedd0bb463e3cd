"""Gated models: whether a policy file passed the deployment gate for its own weights (no rclpy).

`rl_training promote MODEL` runs a fresh evaluation and records its verdict in the card
as a `GateRecord`: passed or not, the gate version, the sha256 of the weights it ran on
and the digest of the card it was recorded in (`card_digest`: every field but `gate`).
`gate_problem` says why a loaded policy has no passed gate for exactly these weights and
this card, or None. The policy node's `require_gated_model` parameter (`GATE_PARAMETERS`)
refuses a model for which it is not None.

The hashes make a copied or hand-edited gate fail: a record copied from another model
names other weights, and editing the card after promotion (evaluation, observation,
action, ...) changes its digest. A passed record must also agree with the card's own
evaluation verdict (`evaluation.gate`), which the digest covers, so flipping `passed` is
refused too. They are integrity checks, not a signature: someone who recomputes the
digests on purpose can forge a record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from rl_policy_node.policy_card import PolicyCard
from rlguard_common.parameters import ParameterSpec

# Failures quoted in a refusal reason; the card lists them all.
QUOTED_FAILURES = 2

GATE_PARAMETERS: dict[str, ParameterSpec] = {
    "require_gated_model": ParameterSpec(
        False,
        "Refuse a model whose card has no passed deployment gate for its own weights "
        "(rl_training promote records one). False: such a model loads and diagnostics "
        "warn 'ungated model'.",
    ),
}


def card_digest(card: PolicyCard) -> str:
    """sha256 of the card's canonical JSON without its `gate` field (hex).

    Canonical: sorted keys, no whitespace, ASCII only, so the digest depends on the
    card's content and not on how its JSON text is laid out.
    """
    data = card.to_dict()
    data.pop("gate", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _quoted(failures: tuple[str, ...]) -> str:
    shown = "; ".join(failures[:QUOTED_FAILURES])
    more = len(failures) - QUOTED_FAILURES
    return shown + (f" (and {more} more)" if more > 0 else "") if shown else "no failures listed"


def gate_problem(card: PolicyCard, actual_weights_sha256: str) -> str | None:
    """Why `card` has no passed gate for the weights hashing to `actual_weights_sha256`.

    None when its gate record passed, was recorded for exactly these weights and this
    card content, and agrees with the card's evaluation verdict; else a reason for a
    person (the node logs it and refuses the model when `require_gated_model` is true).
    """
    gate = card.gate
    if gate is None:
        return "ungated model: the card has no gate record"
    if gate.weights_sha256 != actual_weights_sha256:
        return (
            f"gate record is for weights {gate.weights_sha256[:12]}..., "
            f"these are {actual_weights_sha256[:12]}..."
        )
    if gate.card_sha256 != card_digest(card):
        return "card edited after promotion (card sha256 mismatch)"
    if not gate.passed:
        return f"gate not passed (version {gate.version}): {_quoted(gate.failures)}"
    if gate.failures:
        return f"gate record says passed but lists failures: {_quoted(gate.failures)}"
    verdict = card.evaluation.get("gate")
    if not isinstance(verdict, Mapping) or verdict.get("passed") is not True:
        return "gate record says passed but the card's evaluation verdict did not pass"
    if verdict.get("version") != gate.version:
        return (
            f"gate record (version {gate.version}) disagrees with the card's evaluation "
            f"verdict (version {verdict.get('version')})"
        )
    return None
