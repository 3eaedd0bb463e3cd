"""The policy card: the contract between training and deployment (no rclpy, no torch).

A card travels inside the TorchScript file as ``policy_card.json`` (saved with
``torch.jit.save(..., _extra_files=...)``). It says how to build the observation the
policy was trained on and what velocities its [-1, 1] outputs stand for. A file
without a card is read with `implicit_card`, the seed guide's 69-input layout.

Two optional top-level fields: `gate`, the record `rl_training promote` writes when a
fresh evaluation passed (or failed) the deployment gate (`GateRecord`; checked by
`rl_policy_node.model_gate`), and `scan_statistics`, the training scan distribution per
sector (the drift baseline), carried as-is. A card without them reads as before.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from hybrid_fallback.nav_grid import NavGridConfig

CARD_FORMAT = "rlguard.policy/1"
CARD_FILENAME = "policy_card.json"
SCAN_REDUCTIONS = ("min", "stride")
# What the goal terms point at: the goal itself, or a waypoint on the grid path to it.
GOAL_SOURCE_GOAL = "goal"
GOAL_SOURCE_GRID_WAYPOINT = "grid_waypoint"
GOAL_SOURCES = (GOAL_SOURCE_GOAL, GOAL_SOURCE_GRID_WAYPOINT)
# The waypoint settings a grid_waypoint card carries (and a goal card must not).
WAYPOINT_FIELDS = ("lookahead", "replan_period", "grid")


class PolicyCardError(ValueError):
    """A policy card that is malformed or inconsistent; the message names the field."""


@dataclass(frozen=True)
class ScanSpec:
    """How the live scan is resampled into sectors.

    The field of view is centred on the robot's forward axis; sector 0 starts at
    -fov/2 and sectors run counter-clockwise, like LaserScan beams. Each sector value
    is its range clipped to `range_cap` and divided by it, so it lies in [0, 1].
    """

    sectors: int
    field_of_view_deg: float
    range_cap: float
    reduction: str = "min"

    @property
    def field_of_view(self) -> float:
        """Field of view in radians."""
        return math.radians(self.field_of_view_deg)


@dataclass(frozen=True)
class GoalSpec:
    """Goal encoding: distance, cos and sin of the bearing in the robot frame.

    With a `distance_cap` the distance is clipped to it and divided by it (in [0, 1]);
    without one it is the raw distance in metres.

    `source` says which point the terms describe: "goal", the goal itself, or
    "grid_waypoint", the point `lookahead` m down the shortest path to the goal over a
    navigation grid (`grid`) built from the scans, recomputed every `replan_period` s
    (`rl_policy_node.goal_source`). Only a grid_waypoint spec has the three settings.
    """

    distance_cap: float | None = None
    source: str = GOAL_SOURCE_GOAL
    lookahead: float | None = None  # m
    replan_period: float | None = None  # s
    grid: NavGridConfig | None = None


@dataclass(frozen=True)
class VelocitySpec:
    """Measured linear and angular velocity terms, each divided by its scale."""

    linear_scale: float = 1.0
    angular_scale: float = 1.0


@dataclass(frozen=True)
class ObservationSpec:
    """Layout of one observation: scan sectors, goal (3), velocity (2), previous action (2).

    With `history_length` > 1, that many frames are stacked, newest first, each
    `history_stride` control steps older than the one before it (1: consecutive steps).
    """

    scan: ScanSpec
    goal: GoalSpec = GoalSpec()
    velocity: VelocitySpec | None = VelocitySpec()
    previous_action: bool = False
    history_length: int = 1
    history_stride: int = 1

    @property
    def frame_size(self) -> int:
        """Values in one frame."""
        size = self.scan.sectors + 3
        if self.velocity is not None:
            size += 2
        if self.previous_action:
            size += 2
        return size

    @property
    def size(self) -> int:
        """Values in the whole observation vector (D in ``forward(obs[B, D])``)."""
        return self.frame_size * self.history_length


@dataclass(frozen=True)
class ActionSpec:
    """The (linear m/s, angular rad/s) velocities that outputs -1 and +1 map to."""

    linear: tuple[float, float]
    angular: tuple[float, float]


@dataclass(frozen=True)
class GateRecord:
    """The deployment gate verdict of one fresh evaluation, as `rl_training promote` records it.

    `weights_sha256` names the weights the evaluation ran on and `card_sha256` the card it
    was recorded in, as `rl_policy_node.model_gate.card_digest` (every field but `gate`);
    `evaluated` is the ISO 8601 time of the evaluation. `failures` is empty when `passed`.
    The provenance fields say how broad the evaluation was: the gated controller mode,
    held-out seed, episodes per world and worlds.
    """

    passed: bool
    version: int
    weights_sha256: str
    card_sha256: str
    evaluated: str
    failures: tuple[str, ...] = ()
    mode: str = ""
    seed: int | None = None
    episodes_per_world: int | None = None
    worlds: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyCard:
    """Everything deployment must know about a policy file."""

    name: str
    version: str
    observation: ObservationSpec
    action: ActionSpec
    created: str = ""
    weights_sha256: str = ""
    control_rate_hz: float = 20.0
    training: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT
    gate: GateRecord | None = None
    scan_statistics: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON-ready data."""
        data = asdict(self)
        data["action"] = {k: list(v) for k, v in data["action"].items()}
        for key in ("gate", "scan_statistics"):
            if data[key] is None:
                del data[key]  # optional: a card without it is written as before it existed
        if self.gate is not None:
            data["gate"]["failures"] = list(self.gate.failures)
            data["gate"]["worlds"] = list(self.gate.worlds)
        if self.observation.history_stride == 1:
            # Consecutive frames are the format's default: older readers keep reading it.
            del data["observation"]["history_stride"]
        goal = data["observation"]["goal"]
        if goal["source"] == GOAL_SOURCE_GOAL:
            # The goal itself is the format's default: such a card reads as it always did.
            for key in ("source", *WAYPOINT_FIELDS):
                del goal[key]
        return data

    def to_json(self) -> str:
        """The card as the JSON text stored in the policy file."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def with_updates(self, **changes: Any) -> PolicyCard:
        """A copy with some fields replaced (validated)."""
        return validate_card(replace(self, **changes))

    @staticmethod
    def from_json(text: str | bytes, source: str = "policy card") -> PolicyCard:
        """Parse and validate card JSON; errors name `source` and the offending field."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyCardError(f"{source}: not valid JSON ({exc})") from None
        return card_from_dict(data, source)


def _fail(source: str, path: str, reason: str) -> PolicyCardError:
    return PolicyCardError(f"{source}: {path}: {reason}")


def _section(data: Any, path: str, source: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _fail(source, path, f"must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(source, path, f"unknown field(s) {', '.join(unknown)}")
    return data


def _require(data: Mapping[str, Any], key: str, path: str, source: str) -> Any:
    if key not in data:
        raise _fail(source, f"{path}.{key}" if path else key, "missing")
    return data[key]


def _number(value: Any, path: str, source: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, path, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise _fail(source, path, f"must be finite, got {value!r}")
    if positive and value <= 0:
        raise _fail(source, path, f"must be > 0, got {value!r}")
    return float(value)


def _integer(value: Any, path: str, source: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, path, f"must be an integer, got {value!r}")
    if value < minimum:
        raise _fail(source, path, f"must be >= {minimum}, got {value!r}")
    return value


def _text(value: Any, path: str, source: str) -> str:
    if not isinstance(value, str):
        raise _fail(source, path, f"must be a string, got {value!r}")
    return value


def _pair(value: Any, path: str, source: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail(source, path, f"must be [value_at_-1, value_at_+1], got {value!r}")
    low = _number(value[0], f"{path}[0]", source)
    high = _number(value[1], f"{path}[1]", source)
    if low == high:
        raise _fail(source, path, "both ends map to the same velocity")
    return (low, high)


def card_from_dict(data: Any, source: str = "policy card") -> PolicyCard:
    """Build a validated `PolicyCard` from parsed JSON data."""
    top = _section(
        data,
        "card",
        source,
        {
            "format",
            "name",
            "version",
            "created",
            "weights_sha256",
            "observation",
            "action",
            "control_rate_hz",
            "training",
            "evaluation",
            "gate",
            "scan_statistics",
        },
    )
    fmt = _text(_require(top, "format", "", source), "format", source)
    if fmt != CARD_FORMAT:
        raise _fail(source, "format", f"unsupported {fmt!r}, expected {CARD_FORMAT!r}")

    obs = _section(
        _require(top, "observation", "", source),
        "observation",
        source,
        {"scan", "goal", "velocity", "previous_action", "history_length", "history_stride"},
    )
    scan = _section(
        _require(obs, "scan", "observation", source),
        "observation.scan",
        source,
        {"sectors", "field_of_view_deg", "range_cap", "reduction"},
    )
    goal = _section(
        obs.get("goal", {}),
        "observation.goal",
        source,
        {"distance_cap", "source", *WAYPOINT_FIELDS},
    )
    velocity_data = obs.get("velocity", {})
    velocity = None
    if velocity_data is not None:
        vel = _section(
            velocity_data, "observation.velocity", source, {"linear_scale", "angular_scale"}
        )
        velocity = VelocitySpec(
            linear_scale=_number(
                vel.get("linear_scale", 1.0), "observation.velocity.linear_scale", source, True
            ),
            angular_scale=_number(
                vel.get("angular_scale", 1.0), "observation.velocity.angular_scale", source, True
            ),
        )
    cap = goal.get("distance_cap")
    previous_action = obs.get("previous_action", False)
    if not isinstance(previous_action, bool):
        raise _fail(
            source, "observation.previous_action", f"must be true/false, got {previous_action!r}"
        )

    observation = ObservationSpec(
        scan=ScanSpec(
            sectors=_integer(
                _require(scan, "sectors", "observation.scan", source),
                "observation.scan.sectors",
                source,
            ),
            field_of_view_deg=_number(
                _require(scan, "field_of_view_deg", "observation.scan", source),
                "observation.scan.field_of_view_deg",
                source,
                True,
            ),
            range_cap=_number(
                _require(scan, "range_cap", "observation.scan", source),
                "observation.scan.range_cap",
                source,
                True,
            ),
            reduction=_text(scan.get("reduction", "min"), "observation.scan.reduction", source),
        ),
        goal=_goal_spec(goal, cap, source),
        velocity=velocity,
        previous_action=previous_action,
        history_length=_integer(obs.get("history_length", 1), "observation.history_length", source),
        history_stride=_integer(obs.get("history_stride", 1), "observation.history_stride", source),
    )
    action = _section(_require(top, "action", "", source), "action", source, {"linear", "angular"})
    training = top.get("training", {})
    evaluation = top.get("evaluation", {})
    scan_statistics = top.get("scan_statistics")
    for key, value in (
        ("training", training),
        ("evaluation", evaluation),
        ("scan_statistics", {} if scan_statistics is None else scan_statistics),
    ):
        if not isinstance(value, Mapping):
            raise _fail(source, key, f"must be an object, got {type(value).__name__}")
    card = PolicyCard(
        format=fmt,
        name=_text(_require(top, "name", "", source), "name", source),
        version=_text(_require(top, "version", "", source), "version", source),
        created=_text(top.get("created", ""), "created", source),
        weights_sha256=_text(top.get("weights_sha256", ""), "weights_sha256", source),
        observation=observation,
        action=ActionSpec(
            linear=_pair(_require(action, "linear", "action", source), "action.linear", source),
            angular=_pair(_require(action, "angular", "action", source), "action.angular", source),
        ),
        control_rate_hz=_number(top.get("control_rate_hz", 20.0), "control_rate_hz", source, True),
        training=dict(training),
        evaluation=dict(evaluation),
        gate=None if top.get("gate") is None else _gate_record(top["gate"], source),
        scan_statistics=None if scan_statistics is None else dict(scan_statistics),
    )
    return validate_card(card, source)


def _strings(value: Any, path: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _fail(source, path, f"must be a list of strings, got {value!r}")
    return tuple(_text(item, f"{path}[{k}]", source) for k, item in enumerate(value))


def _gate_record(data: Any, source: str) -> GateRecord:
    """The `GateRecord` of a parsed `gate` section (types here, semantics: `validate_card`)."""
    names = {item.name for item in fields(GateRecord)}
    gate = _section(data, "gate", source, names)
    passed = _require(gate, "passed", "gate", source)
    if not isinstance(passed, bool):
        raise _fail(source, "gate.passed", f"must be true/false, got {passed!r}")
    seed, episodes = gate.get("seed"), gate.get("episodes_per_world")
    return GateRecord(
        passed=passed,
        version=_integer(_require(gate, "version", "gate", source), "gate.version", source),
        weights_sha256=_text(
            _require(gate, "weights_sha256", "gate", source), "gate.weights_sha256", source
        ),
        card_sha256=_text(
            _require(gate, "card_sha256", "gate", source), "gate.card_sha256", source
        ),
        evaluated=_text(_require(gate, "evaluated", "gate", source), "gate.evaluated", source),
        failures=_strings(gate.get("failures", []), "gate.failures", source),
        mode=_text(gate.get("mode", ""), "gate.mode", source),
        seed=None if seed is None else _integer(seed, "gate.seed", source, minimum=0),
        episodes_per_world=None
        if episodes is None
        else _integer(episodes, "gate.episodes_per_world", source),
        worlds=_strings(gate.get("worlds", []), "gate.worlds", source),
    )


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _validate_gate(gate: GateRecord, source: str) -> None:
    """A gate record names 64-hex-digit hashes, a gate version >= 1 and an ISO 8601 time."""
    for key in ("weights_sha256", "card_sha256"):
        if not _is_sha256(getattr(gate, key)):
            raise _fail(source, f"gate.{key}", "must be 64 lowercase hex digits")
    if isinstance(gate.version, bool) or not isinstance(gate.version, int) or gate.version < 1:
        raise _fail(source, "gate.version", f"must be an integer >= 1, got {gate.version!r}")
    try:
        dt.datetime.fromisoformat(gate.evaluated)
    except (TypeError, ValueError):
        raise _fail(
            source, "gate.evaluated", f"must be an ISO 8601 time, got {gate.evaluated!r}"
        ) from None


# Grid fields added after cards with a grid goal were first written, and the value that
# reproduces the behaviour such a card's policy was trained with (no route hysteresis, cells
# cleared by any beam through them).
_GRID_FIELDS_BEFORE_THEY_EXISTED = {
    "route_hysteresis": 0.0,
    "route_tolerance": 0.0,
    "clear_radius": 1.0,  # any beam through an occupied cell cleared it
}


def _grid_config(data: Any, source: str) -> NavGridConfig:
    """A navigation grid config from a card mapping that names every field (a card
    written before a field existed gets the value that reproduces its behaviour)."""
    path = "observation.goal.grid"
    names = [f.name for f in fields(NavGridConfig)]
    grid = _section(data, path, source, set(names))
    values: dict[str, Any] = {}
    for item in fields(NavGridConfig):
        if item.name not in grid and item.name in _GRID_FIELDS_BEFORE_THEY_EXISTED:
            values[item.name] = _GRID_FIELDS_BEFORE_THEY_EXISTED[item.name]
            continue
        value = _require(grid, item.name, path, source)
        if type(item.default) is int:
            values[item.name] = _integer(value, f"{path}.{item.name}", source)
        else:
            values[item.name] = _number(value, f"{path}.{item.name}", source)
    return NavGridConfig(**values)


def _goal_spec(goal: Mapping[str, Any], cap: Any, source: str) -> GoalSpec:
    """The goal spec of a parsed `observation.goal` section (semantics: `validate_card`)."""
    path = "observation.goal"
    lookahead, period, grid = (goal.get(key) for key in WAYPOINT_FIELDS)
    return GoalSpec(
        distance_cap=None if cap is None else _number(cap, f"{path}.distance_cap", source, True),
        source=_text(goal.get("source", GOAL_SOURCE_GOAL), f"{path}.source", source),
        lookahead=None if lookahead is None else _number(lookahead, f"{path}.lookahead", source),
        replan_period=None if period is None else _number(period, f"{path}.replan_period", source),
        grid=None if grid is None else _grid_config(grid, source),
    )


def _validate_goal(goal: GoalSpec, source: str) -> None:
    """A grid_waypoint spec has every waypoint setting, valid; a goal spec none."""
    path = "observation.goal"
    if goal.source not in GOAL_SOURCES:
        raise _fail(
            source,
            f"{path}.source",
            f"must be one of {', '.join(GOAL_SOURCES)}, got {goal.source!r}",
        )
    for key in WAYPOINT_FIELDS:
        value = getattr(goal, key)
        if goal.source == GOAL_SOURCE_GOAL and value is not None:
            raise _fail(source, f"{path}.{key}", f"only with source {GOAL_SOURCE_GRID_WAYPOINT!r}")
        if goal.source == GOAL_SOURCE_GRID_WAYPOINT and value is None:
            raise _fail(source, f"{path}.{key}", f"missing (source {goal.source!r})")
    if goal.source != GOAL_SOURCE_GRID_WAYPOINT:
        return
    for key in ("lookahead", "replan_period"):
        value = getattr(goal, key)
        if not (math.isfinite(value) and value > 0):
            raise _fail(source, f"{path}.{key}", f"must be finite and > 0, got {value!r}")
    try:
        goal.grid.validate()
    except ValueError as exc:
        raise _fail(source, f"{path}.grid", str(exc)) from None


def validate_card(card: PolicyCard, source: str = "policy card") -> PolicyCard:
    """Check the semantic rules a parsed card must also meet; returns the card."""
    _validate_goal(card.observation.goal, source)
    scan = card.observation.scan
    if scan.reduction not in SCAN_REDUCTIONS:
        raise _fail(
            source,
            "observation.scan.reduction",
            f"must be one of {', '.join(SCAN_REDUCTIONS)}, got {scan.reduction!r}",
        )
    if not 0 < scan.field_of_view_deg <= 360:
        raise _fail(
            source,
            "observation.scan.field_of_view_deg",
            f"must be in (0, 360], got {scan.field_of_view_deg}",
        )
    if not card.name:
        raise _fail(source, "name", "must not be empty")
    sha = card.weights_sha256
    if sha and not _is_sha256(sha):
        raise _fail(source, "weights_sha256", "must be 64 lowercase hex digits or empty")
    if card.gate is not None:
        _validate_gate(card.gate, source)
    if card.scan_statistics is not None and not isinstance(card.scan_statistics, Mapping):
        raise _fail(source, "scan_statistics", "must be an object")
    return card


SEED_SCAN_SECTORS = 64
SEED_RANGE_CAP = 10.0


def implicit_card(max_linear: float, max_angular: float) -> PolicyCard:
    """The card assumed for a policy file that carries none: the seed guide's layout.

    64 scan values stride-sampled over the full circle, range cap 10 m, scaled to
    [0, 1]; goal distance (raw metres), cos and sin of the bearing; linear and angular
    velocity (raw): 69 inputs. Outputs are scaled by the node's `max_velocity`.
    """
    return PolicyCard(
        name="implicit-seed-layout",
        version="0",
        observation=ObservationSpec(
            scan=ScanSpec(
                sectors=SEED_SCAN_SECTORS,
                field_of_view_deg=360.0,
                range_cap=SEED_RANGE_CAP,
                reduction="stride",
            ),
            goal=GoalSpec(distance_cap=None),
            velocity=VelocitySpec(linear_scale=1.0, angular_scale=1.0),
            previous_action=False,
            history_length=1,
        ),
        action=ActionSpec(linear=(-max_linear, max_linear), angular=(-max_angular, max_angular)),
    )
