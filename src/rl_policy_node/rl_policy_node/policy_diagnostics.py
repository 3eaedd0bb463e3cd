"""What the policy node reports on /diagnostics, as plain strings (no ROS).

`diagnostic_values` summarises the controller (state, models, inference times, shadow
divergence), the tick monitor and the node's input counters into the key/value pairs
of one diagnostic status; `reason_level` maps the controller's reason to its level.
"""

from __future__ import annotations

from collections.abc import Mapping

from rl_policy_node.policy_runtime import BENIGN_REASONS, REASON_NO_MODEL, PolicyController
from rl_policy_node.tick_stats import TickMonitor

# Diagnostic levels by index (diagnostic_msgs/DiagnosticStatus OK, WARN, ERROR).
LEVEL_OK, LEVEL_WARN, LEVEL_ERROR = 0, 1, 2


def reason_level(reason: str) -> int:
    """Diagnostic level for a reason: 0 OK (active or chosen), 1 WARN (no model), 2 ERROR."""
    if not reason or reason.startswith(BENIGN_REASONS):
        return LEVEL_OK
    if reason.startswith(REASON_NO_MODEL):
        return LEVEL_WARN
    return LEVEL_ERROR


def status_message(reason: str) -> str:
    """The one-line status of a reason: ``active`` or ``inactive: <reason>``."""
    return "active" if not reason else f"inactive: {reason}"


def format_number(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals, ``n/a`` for None."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def diagnostic_values(
    controller: PolicyController,
    monitor: TickMonitor,
    device: str,
    dropped: Mapping[str, int],
    rejected_scans: Mapping[str, int],
) -> dict[str, str]:
    """Everything the 1 Hz diagnostics report, as strings.

    ``dropped`` counts dropped messages per input topic, ``rejected_scans`` rejected
    scans per validator reason.
    """
    fmt = format_number
    goal = controller.goal
    values = {
        "active": str(controller.active).lower(),
        "enabled": str(controller.enabled).lower(),
        "reason": controller.reason,
        "commands": str(controller.commands),
        "goal": "none" if goal is None else f"{goal[0]:.3f}, {goal[1]:.3f}",
    }
    slot = controller.slot
    if slot is not None:
        card = slot.policy.card
        values.update(
            {
                "model_name": card.name,
                "model_version": card.version,
                "model_sha256": slot.policy.sha256,
                "model_path": str(slot.policy.path),
                "model_has_card": str(slot.policy.has_card).lower(),
                "observation_size": str(slot.policy.observation_size),
            }
        )
    inference = controller.inference_ms.summary()
    values.update(
        {
            "inference_ms_mean": fmt(inference.get("mean")),
            "inference_ms_p99": fmt(inference.get("p99")),
            "inference_ms_max": fmt(inference.get("max")),
            "tick_period_ms_mean": fmt(monitor.periods_ms.summary().get("mean")),
            "tick_jitter_ms": fmt(monitor.jitter_ms()),
            "tick_period_error_ms_max": fmt(monitor.max_period_error_ms()),
            "tick_compute_ms_p99": fmt(monitor.compute_ms.summary().get("p99")),
            "ticks": str(monitor.ticks),
            "deadline_misses": str(monitor.deadline_misses),
            "non_finite_outputs": str(controller.non_finite_outputs),
            "inference_overruns": str(controller.overruns),
            "device": device,
        }
    )
    for topic, count in dropped.items():
        values[f"dropped_{topic}"] = str(count)
    for rejection, count in rejected_scans.items():
        values[f"rejected_scan_{rejection}"] = str(count)
    shadow = controller.shadow
    if shadow is not None:
        divergence = controller.divergence.summary((95.0,))
        values.update(
            {
                "shadow_model_name": shadow.policy.card.name,
                "shadow_model_version": shadow.policy.card.version,
                "shadow_model_sha256": shadow.policy.sha256,
                "shadow_divergence_mean": fmt(divergence.get("mean"), 6),
                "shadow_divergence_p95": fmt(divergence.get("p95"), 6),
                "shadow_divergence_max": fmt(divergence.get("max"), 6),
                "shadow_samples": str(len(controller.divergence)),
            }
        )
    return values
