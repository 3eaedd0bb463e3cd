"""One policy tick as a transition-log record, and its Float32MultiArray layout (no rclpy).

With `record_transitions` on, the policy node publishes one record per tick that produced
an action on ``policy/transition``; ``rl_training dataset`` decodes the recording into
offline-RL arrays. The message is a std_msgs/Float32MultiArray: each ``layout.dim`` entry
names one field (its label) and how many floats of ``data`` it holds (its size), in order,
so ``data`` is the fields concatenated. Text goes in size-0 labels ``key:value``: the
format, the weights' sha256 and the tick's stamp. The stamp travels as decimal text
because float32 has 24 mantissa bits, so a nanosecond clock would lose whole
milliseconds (and a split into two floats still loses nanoseconds past 2^24).

Layout (format ``rlguard.transition/1``), fields in this order:

===================  ====  ==================================================
label                size  meaning
===================  ====  ==================================================
format:<name>        0     the layout version, always first
stamp_ns:<int>       0     node clock of the tick (ns)
sha256:<hex>         0     sha256 of the policy's weights (empty: unknown)
observation          D     the observation the policy was given
action               2     the raw policy output (before clipping)
command              2     (v, w) the output was scaled to
pose                 3     odometry x, y (m), yaw (rad) at the tick
goal                 2     goal x, y (m, odom frame) at the tick
closest_range        1     nearest valid scan return (m); inf: none
goal_tolerance       1     the node's goal_tolerance (m)
===================  ====  ==================================================
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rlguard_common.parameters import ParameterSpec

FORMAT = "rlguard.transition/1"
FORMAT_KEY = "format"
STAMP_KEY = "stamp_ns"
SHA_KEY = "sha256"
# The numeric fields in layout order; None: any length >= 1 (the observation).
NUMERIC_FIELDS: dict[str, int | None] = {
    "observation": None,
    "action": 2,
    "command": 2,
    "pose": 3,
    "goal": 2,
    "closest_range": 1,
    "goal_tolerance": 1,
}
_SHA = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]+")

TRANSITION_PARAMETERS: dict[str, ParameterSpec] = {
    "record_transitions": ParameterSpec(
        False,
        "Publish one policy/transition record (observation, action, command, pose, goal, "
        "closest scan range, weights sha256) per tick that produced an action, for "
        "offline-RL datasets (rl_training dataset).",
    ),
}


class TransitionLayoutError(ValueError):
    """A Float32MultiArray that is not a transition record (the message says why)."""


@dataclass(frozen=True, eq=False)
class TransitionRecord:
    """What the policy node knew and did at one tick that produced an action."""

    stamp_ns: int  # node clock of the tick
    observation: np.ndarray  # float32 [D]
    action: np.ndarray  # float32 [2], the raw policy output
    command: tuple[float, float]  # (v, w) after scaling
    weights_sha256: str  # "" when unknown
    pose: tuple[float, float, float]  # odometry x, y, yaw
    goal: tuple[float, float]  # odom frame
    closest_range: float  # m, nearest valid scan return (inf: none, 0: too close)
    goal_tolerance: float  # m, the node's goal_tolerance

    def __post_init__(self) -> None:
        if isinstance(self.stamp_ns, bool) or not isinstance(self.stamp_ns, int | np.integer):
            raise TransitionLayoutError(f"stamp_ns must be an integer, got {self.stamp_ns!r}")
        if self.stamp_ns < 0:
            raise TransitionLayoutError(f"stamp_ns must be >= 0, got {self.stamp_ns}")
        if self.weights_sha256 and not _SHA.fullmatch(self.weights_sha256):
            raise TransitionLayoutError(
                f"weights_sha256 must be 64 lowercase hex digits or empty, "
                f"got {self.weights_sha256!r}"
            )
        observation = np.asarray(self.observation, dtype=np.float32).ravel()
        if observation.size < 1:
            raise TransitionLayoutError("the observation is empty")
        action = np.asarray(self.action, dtype=np.float32).ravel()
        if action.size != 2:
            raise TransitionLayoutError(f"the action has 2 values, got {action.size}")
        set_field = object.__setattr__
        set_field(self, "stamp_ns", int(self.stamp_ns))
        set_field(self, "observation", observation)
        set_field(self, "action", action)
        for name, size in (("command", 2), ("pose", 3), ("goal", 2)):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != size:
                raise TransitionLayoutError(f"{name} has {size} values, got {len(values)}")
            set_field(self, name, values)
        set_field(self, "closest_range", float(self.closest_range))
        set_field(self, "goal_tolerance", float(self.goal_tolerance))


def closest_return(ranges: np.ndarray, range_min: float) -> float:
    """Distance (m) of the nearest valid return of a scan, as training's reward sees it.

    A -inf reading (too close to measure) makes it 0; NaN and readings below
    ``range_min`` are invalid; no valid reading gives inf.
    """
    values = np.asarray(ranges, dtype=np.float64)
    if np.isneginf(values).any():
        return 0.0
    valid = np.isfinite(values) & (values >= range_min)
    return float(values[valid].min()) if valid.any() else math.inf


def encode(record: TransitionRecord) -> tuple[list[str], list[int], list[float]]:
    """(dim labels, dim sizes, data) of the record's Float32MultiArray."""
    labels = [
        f"{FORMAT_KEY}:{FORMAT}",
        f"{STAMP_KEY}:{record.stamp_ns}",
        f"{SHA_KEY}:{record.weights_sha256}",
    ]
    sizes = [0, 0, 0]
    parts = {
        "observation": record.observation,
        "action": record.action,
        "command": record.command,
        "pose": record.pose,
        "goal": record.goal,
        "closest_range": (record.closest_range,),
        "goal_tolerance": (record.goal_tolerance,),
    }
    data: list[float] = []
    for name in NUMERIC_FIELDS:
        values = np.asarray(parts[name], dtype=np.float32).ravel()
        labels.append(name)
        sizes.append(int(values.size))
        data.extend(values.tolist())
    return labels, sizes, data


def _text_label(label: str, key: str, index: int) -> str:
    prefix = f"{key}:"
    if not label.startswith(prefix):
        raise TransitionLayoutError(f"dim {index} must be '{prefix}...', got {label!r}")
    return label[len(prefix) :]


def decode(labels: list[str], sizes: list[int], data: list[float] | np.ndarray) -> TransitionRecord:
    """The record a Float32MultiArray's dim labels, dim sizes and data hold.

    Raises TransitionLayoutError naming what is wrong: another format, a missing, unknown,
    repeated or wrongly sized field, or data of another length than the sizes add up to.
    """
    labels, sizes = list(labels), [int(s) for s in sizes]
    if len(labels) != len(sizes):
        raise TransitionLayoutError(f"{len(labels)} dim labels but {len(sizes)} sizes")
    expected = 3 + len(NUMERIC_FIELDS)
    if len(labels) != expected:
        raise TransitionLayoutError(
            f"a {FORMAT} record has {expected} dims, got {len(labels)}: {labels}"
        )
    found_format = _text_label(labels[0], FORMAT_KEY, 0)
    if found_format != FORMAT:
        raise TransitionLayoutError(f"format {found_format!r} is not {FORMAT!r}")
    stamp_text = _text_label(labels[1], STAMP_KEY, 1)
    if not _DIGITS.fullmatch(stamp_text):
        raise TransitionLayoutError(f"stamp_ns must be a non-negative integer, got {stamp_text!r}")
    sha = _text_label(labels[2], SHA_KEY, 2)
    for index in range(3):
        if sizes[index] != 0:
            raise TransitionLayoutError(f"text dim {labels[index]!r} must have size 0")
    values = np.asarray(data, dtype=np.float32).ravel()
    if sum(sizes) != values.size:
        raise TransitionLayoutError(f"the dims hold {sum(sizes)} values but data has {values.size}")
    fields: dict[str, np.ndarray] = {}
    offset = 0
    for index, (name, size) in enumerate(zip(labels[3:], sizes[3:], strict=True), start=3):
        want = list(NUMERIC_FIELDS)[index - 3]
        if name != want:
            raise TransitionLayoutError(f"dim {index} must be {want!r}, got {name!r}")
        fixed = NUMERIC_FIELDS[name]
        if (fixed is None and size < 1) or (fixed is not None and size != fixed):
            raise TransitionLayoutError(
                f"{name} must have {fixed if fixed is not None else '>= 1'} values, got {size}"
            )
        fields[name] = values[offset : offset + size]
        offset += size
    return TransitionRecord(
        stamp_ns=int(stamp_text),
        observation=fields["observation"].copy(),
        action=fields["action"].copy(),
        command=tuple(fields["command"].tolist()),
        weights_sha256=sha,
        pose=tuple(fields["pose"].tolist()),
        goal=tuple(fields["goal"].tolist()),
        closest_range=float(fields["closest_range"][0]),
        goal_tolerance=float(fields["goal_tolerance"][0]),
    )
