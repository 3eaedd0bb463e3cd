"""A model's life after a swap (no ROS): probation, rollback, blocked models, events.

`ModelHistory` follows the driving model of the node. It is generic over the slot
object (the node's `PolicySlot`); a model is named by a key string (`model_key`:
requested path and weights sha256), so the same file reloaded is the same model.

- `on_swap` puts a new model on **probation**. Probation completes when the model has
  driven `probation_goals` goals to the end or `probation_seconds` of active driving
  (ticks where its command drove), whichever comes first, without an ERROR from the
  live monitor (0 disables a criterion; both 0: no probation). A key that already
  completed probation on this node is trusted again at once.
- The model the node starts with counts as having completed probation when
  `trust_startup_model` is true (default: it is the robot's configured model, and
  without a trusted model nothing could be rolled back to); false puts it on probation.
- The previous model is remembered when it had completed probation: it is where a
  rollback goes. An ERROR during probation (`on_tick`, with `rollback_on_breach`)
  returns a `RollbackDecision`; the caller installs ``decision.slot`` (it does not call
  `on_swap` for it) and resets the monitor. With rollback off, or nothing trusted to
  return to, the model keeps driving, never becomes trusted, and a "probation_failed"
  event says why. After probation an ERROR only shows in the monitor.
- `request_rollback` (the ``policy/rollback`` service) does the same on request.
- A rolled-back key is blocked: `blocked_problem` refuses an automatic retry (a reload,
  a reinstall of the same key); a person setting ``model_path`` again clears it.

Every swap, completion, failure and rollback appends a JSON-ready event
(`pending_events`, `event_json`) for the ``policy/events`` topic.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rl_policy_node.live_monitor import MAX_TICK_GAP_S, MonitorReport
from rl_policy_node.policy_diagnostics import LEVEL_ERROR
from rlguard_common.parameters import ParameterSpec

SlotT = TypeVar("SlotT")

EVENT_SWAP = "swap"
EVENT_PROBATION_PASSED = "probation_passed"
EVENT_PROBATION_FAILED = "probation_failed"
EVENT_ROLLBACK = "rollback"
EVENT_HISTORY = 100  # events kept for diagnostics

NO_TRUSTED_MODEL = "no model that completed probation to return to"


def model_key(requested_path: str, sha256: str) -> str:
    """The key naming one model: the path it was requested by and its weights' hash."""
    return f"{requested_path}@sha256:{sha256}"


@dataclass(frozen=True)
class ProbationSettings:
    """How a new model earns trust and what a breach during probation does."""

    goals: int = 3
    seconds: float = 120.0
    rollback_on_breach: bool = True
    trust_startup_model: bool = True


PROBATION_PARAMETERS: dict[str, ParameterSpec] = {
    "probation_goals": ParameterSpec(
        ProbationSettings.goals,
        "A swapped-in model completes probation after driving this many goals to the end "
        "without a monitor ERROR (0: goals do not complete it).",
        bounds=(0, 10_000),
    ),
    "probation_seconds": ParameterSpec(
        ProbationSettings.seconds,
        "... or after this many seconds of active driving without a monitor ERROR, "
        "whichever comes first (0: time does not complete it; both 0: no probation).",
        bounds=(0.0, 86_400.0),
    ),
    "rollback_on_breach": ParameterSpec(
        ProbationSettings.rollback_on_breach,
        "A monitor ERROR during probation swaps back to the last model that completed "
        "probation (false: the breach only shows).",
    ),
    "trust_startup_model": ParameterSpec(
        ProbationSettings.trust_startup_model,
        "The model loaded at start-up counts as having completed probation (false: it is "
        "on probation too, with nothing to roll back to).",
    ),
}


def settings_from_parameters(values: Mapping[str, object]) -> ProbationSettings:
    """Probation settings from node parameter values (missing ones default).

    Raises ValueError with the reason for a value of the wrong type or out of range.
    """
    kwargs: dict[str, Any] = {}
    for name, spec in PROBATION_PARAMETERS.items():
        if name not in values:
            continue
        kwargs[name.removeprefix("probation_")] = spec.checked(name, values[name])
    return ProbationSettings(**kwargs)


def event_json(event: Mapping[str, object]) -> str:
    """One event as the JSON text published on ``policy/events``."""
    return json.dumps(dict(event), sort_keys=True, allow_nan=False)


@dataclass(frozen=True)
class RollbackDecision(Generic[SlotT]):
    """Swap back: the slot to install, its key, why, and when the left model's
    probation started (None when it had completed probation)."""

    slot: SlotT
    key: str
    from_key: str
    reason: str
    probation_started_s: float | None
    event: dict[str, Any]


@dataclass
class _Model(Generic[SlotT]):
    slot: SlotT
    key: str
    trusted: bool
    since_s: float  # probation start (or when it was installed, if trusted)
    active_s: float = 0.0
    goals: int = 0
    failed: bool = False  # breached during probation and kept: never trusted


class ModelHistory(Generic[SlotT]):
    """The driving model's probation and the trusted model to return to."""

    def __init__(self, settings: ProbationSettings | None = None) -> None:
        self.settings = settings or ProbationSettings()
        self._current: _Model[SlotT] | None = None
        self._previous: _Model[SlotT] | None = None  # the last trusted model before it
        self._trusted_keys: set[str] = set()
        self._blocked: dict[str, str] = {}  # key -> why
        self._pending: list[dict[str, Any]] = []
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_HISTORY)
        self._last_tick: float | None = None
        self._seen_model = False

    # ------------------------------------------------------------------ queries

    @property
    def current_key(self) -> str | None:
        """The key of the driving model (None: no model)."""
        return None if self._current is None else self._current.key

    @property
    def on_probation(self) -> bool:
        """The driving model has not completed probation (and has not failed it)."""
        current = self._current
        return current is not None and not current.trusted and not current.failed

    @property
    def rollback_key(self) -> str | None:
        """The key a rollback would return to (None: nothing trusted)."""
        return None if self._previous is None else self._previous.key

    def blocked_problem(self, key: str, by_person: bool) -> str | None:
        """Why installing ``key`` is refused, else None.

        A rolled-back key may not come back automatically (a reload, a retry); a person
        setting ``model_path`` again (``by_person``) may install it, and `on_swap` with
        ``by_person`` then clears the block.
        """
        why = self._blocked.get(key)
        if why is None or by_person:
            return None
        return f"{key} was rolled back ({why}); set model_path again to retry it"

    def status(self, now_s: float) -> dict[str, str]:
        """Key/values for ``/diagnostics``."""
        current = self._current
        state = "none"
        if current is not None:
            state = "trusted" if current.trusted else "failed" if current.failed else "probation"
        values = {
            "model_state": state,
            "model_key": current.key if current else "none",
            "rollback_to": self.rollback_key or "none",
            "blocked_models": str(len(self._blocked)),
        }
        if current is not None and not current.trusted:
            values.update(
                {
                    "probation_goals": f"{current.goals}/{self.settings.goals}",
                    "probation_active_s": (f"{current.active_s:.1f}/{self.settings.seconds:g}"),
                    "probation_elapsed_s": f"{max(0.0, now_s - current.since_s):.1f}",
                }
            )
        return values

    def pending_events(self) -> list[dict[str, Any]]:
        """Events since the last call (oldest first), to publish."""
        pending, self._pending = self._pending, []
        return pending

    # ------------------------------------------------------------------- inputs

    def on_swap(
        self, slot: SlotT, key: str, now_s: float, by_person: bool, at_start: bool = False
    ) -> dict[str, Any]:
        """A new model drives (``at_start``: the node's first model); returns the event.

        The outgoing model becomes the rollback target if it had completed probation.
        A key that completed probation before, or the start-up model when
        `trust_startup_model`, is trusted at once; any other goes on probation.
        """
        if by_person:
            self._blocked.pop(key, None)
        outgoing = self._current
        if outgoing is not None and outgoing.trusted and outgoing.key != key:
            self._previous = outgoing
        trusted = key in self._trusted_keys or self._probation_off()
        if at_start and not self._seen_model and self.settings.trust_startup_model:
            trusted = True
        self._seen_model = True
        if trusted:
            self._trusted_keys.add(key)
        self._current = _Model(slot, key, trusted=trusted, since_s=now_s)
        return self._emit(
            EVENT_SWAP,
            now_s,
            from_key=outgoing.key if outgoing else None,
            to_key=key,
            reason="start-up model" if at_start else "set by a person" if by_person else "swap",
            by_person=by_person,
            probation=not trusted,
        )

    def on_unload(self, now_s: float) -> None:
        """The model was removed (empty ``model_path``): nothing drives or is judged."""
        current = self._current
        if current is not None and current.trusted and current.key != self.rollback_key:
            self._previous = current
        self._current = None
        self._last_tick = now_s

    def on_goal_reached(self, now_s: float, *, policy_drove: bool) -> dict[str, Any] | None:
        """A goal was reached; it counts for probation only when the policy drove it to the
        end (``policy_drove``: not the fallback). Returns the completion event, if any."""
        current = self._current
        if current is None or not self.on_probation or not policy_drove:
            return None
        current.goals += 1
        return self._maybe_pass(now_s)

    def on_tick(
        self, now_s: float, active: bool, report: MonitorReport
    ) -> RollbackDecision[SlotT] | None:
        """Advance probation by one control tick with the monitor's latest report.

        Returns a decision when an ERROR during probation rolls the model back.
        """
        duration = 0.0
        if self._last_tick is not None and now_s >= self._last_tick:
            duration = min(now_s - self._last_tick, MAX_TICK_GAP_S)
        self._last_tick = now_s
        current = self._current
        if current is None or not self.on_probation:
            return None
        if report.level >= LEVEL_ERROR:
            reason = "; ".join(report.errors or report.breaches) or "monitor ERROR"
            if self.settings.rollback_on_breach and self._previous is not None:
                return self._roll_back(now_s, f"probation breach: {reason}")
            current.failed = True
            why = "rollback_on_breach is false" if self._previous else NO_TRUSTED_MODEL
            self._emit(
                EVENT_PROBATION_FAILED,
                now_s,
                from_key=current.key,
                to_key=current.key,
                reason=f"probation breach: {reason}; kept driving: {why}",
                **self._probation_fields(current, now_s),
            )
            return None
        if active:
            current.active_s += duration
        self._maybe_pass(now_s)
        return None

    def request_rollback(self, now_s: float, reason: str) -> RollbackDecision[SlotT] | str:
        """Swap back to the last model that completed probation, on request; or why not."""
        if self._current is None:
            return "no model is driving"
        if self._previous is None:
            return NO_TRUSTED_MODEL
        return self._roll_back(now_s, f"requested: {reason}" if reason else "requested")

    # ---------------------------------------------------------------- internals

    def _probation_off(self) -> bool:
        return self.settings.goals <= 0 and self.settings.seconds <= 0.0

    def _probation_fields(self, model: _Model[SlotT], now_s: float) -> dict[str, Any]:
        return {
            "probation_s": round(max(0.0, now_s - model.since_s), 3),
            "active_s": round(model.active_s, 3),
            "goals": model.goals,
        }

    def _maybe_pass(self, now_s: float) -> dict[str, Any] | None:
        current = self._current
        assert current is not None
        cfg = self.settings
        by_goals = cfg.goals > 0 and current.goals >= cfg.goals
        by_time = cfg.seconds > 0 and current.active_s >= cfg.seconds - 1e-9
        if not (by_goals or by_time):
            return None
        current.trusted = True
        self._trusted_keys.add(current.key)
        what = f"{current.goals} goal(s)" if by_goals else f"{current.active_s:.1f} s of driving"
        return self._emit(
            EVENT_PROBATION_PASSED,
            now_s,
            from_key=current.key,
            to_key=current.key,
            reason=f"{what} without a monitor ERROR",
            **self._probation_fields(current, now_s),
        )

    def _roll_back(self, now_s: float, reason: str) -> RollbackDecision[SlotT]:
        leaving, target = self._current, self._previous
        assert leaving is not None and target is not None
        self._blocked[leaving.key] = reason
        self._trusted_keys.discard(leaving.key)
        started = None if leaving.trusted else leaving.since_s
        event = self._emit(
            EVENT_ROLLBACK,
            now_s,
            from_key=leaving.key,
            to_key=target.key,
            reason=reason,
            **self._probation_fields(leaving, now_s),
            on_probation=not leaving.trusted,
        )
        self._current = _Model(target.slot, target.key, trusted=True, since_s=now_s)
        self._previous = None
        return RollbackDecision(target.slot, target.key, leaving.key, reason, started, event)

    def _emit(
        self, kind: str, now_s: float, from_key: str | None, to_key: str | None, **extra: Any
    ) -> dict[str, Any]:
        event = {"type": kind, "time": now_s, "from": from_key, "to": to_key, **extra}
        self.events.append(event)
        self._pending.append(event)
        return event
