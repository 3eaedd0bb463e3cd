"""The one scan validator: is a planar laser scan usable at all?

Every consumer of `scan` (safety controller, policy node, fallback, training env) asks this
module, so a scan is judged by one rule everywhere. It looks only at the scan's geometry
and bookkeeping, never at what the ranges say (REP-117: NaN is "no measurement", +inf
"nothing within range", -inf "too close"; those are data, not defects).

A scan is invalid when:

- its header stamp is not finite;
- `angle_increment` is not finite, or not > 0;
- `angle_min` or `angle_max` is not finite;
- `range_max` is not finite, or not > 0;
- `range_min` is not finite, or above `range_max`;
- `ranges` is empty;
- `len(ranges)` disagrees with `(angle_max - angle_min) / angle_increment + 1` by more than
  one beam (drivers differ by one beam on whether `angle_max` is the last beam or the end
  of the sweep, so one beam of rounding is allowed);
- `intensities` is non-empty and of another length than `ranges`.

The answer is `None` for a valid scan, else the first failing rule's name (one of
`REASONS`), short enough to be a diagnostics key.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import Protocol

STAMP_NOT_FINITE = "stamp_not_finite"
ANGLE_INCREMENT_NOT_FINITE = "angle_increment_not_finite"
ANGLE_INCREMENT_NOT_POSITIVE = "angle_increment_not_positive"
ANGLE_NOT_FINITE = "angle_not_finite"
RANGE_MAX_NOT_FINITE = "range_max_not_finite"
RANGE_MAX_NOT_POSITIVE = "range_max_not_positive"
RANGE_MIN_NOT_FINITE = "range_min_not_finite"
RANGE_MIN_ABOVE_RANGE_MAX = "range_min_above_range_max"
EMPTY_RANGES = "empty_ranges"
BEAM_COUNT_MISMATCH = "beam_count_mismatch"
INTENSITIES_LENGTH_MISMATCH = "intensities_length_mismatch"

# Every reason `validate_scan` can return, in the order the rules are checked.
REASONS: tuple[str, ...] = (
    STAMP_NOT_FINITE,
    ANGLE_INCREMENT_NOT_FINITE,
    ANGLE_INCREMENT_NOT_POSITIVE,
    ANGLE_NOT_FINITE,
    RANGE_MAX_NOT_FINITE,
    RANGE_MAX_NOT_POSITIVE,
    RANGE_MIN_NOT_FINITE,
    RANGE_MIN_ABOVE_RANGE_MAX,
    EMPTY_RANGES,
    BEAM_COUNT_MISMATCH,
    INTENSITIES_LENGTH_MISMATCH,
)

# Beams by which len(ranges) may differ from the count the angles imply.
BEAM_COUNT_TOLERANCE = 1.0
# Floating-point slack on that comparison, in beams, on top of the float32 rounding of the
# message's angle fields (LaserScan carries float32).
_BEAM_COUNT_SLACK = 0.01
_FLOAT32_EPS = 2.0**-23
_MAX_ROUNDING = 0.49


def expected_beams(angle_min: float, angle_max: float, angle_increment: float) -> float:
    """The beam count the angles imply: (angle_max - angle_min) / angle_increment + 1."""
    return (angle_max - angle_min) / angle_increment + 1.0


def validate_scan(
    angle_min: float,
    angle_max: float,
    angle_increment: float,
    range_min: float,
    range_max: float,
    ranges_count: int,
    intensities_count: int = 0,
    stamp: float = 0.0,
) -> str | None:
    """None when a scan with this geometry is usable, else the name of the rule it breaks.

    Plain numbers only (no message types): `ranges_count` and `intensities_count` are the
    lengths of the scan's arrays, `stamp` its header time in seconds.
    """
    if not math.isfinite(stamp):
        return STAMP_NOT_FINITE
    if not math.isfinite(angle_increment):
        return ANGLE_INCREMENT_NOT_FINITE
    if not angle_increment > 0.0:
        return ANGLE_INCREMENT_NOT_POSITIVE
    if not (math.isfinite(angle_min) and math.isfinite(angle_max)):
        return ANGLE_NOT_FINITE
    if not math.isfinite(range_max):
        return RANGE_MAX_NOT_FINITE
    if not range_max > 0.0:
        return RANGE_MAX_NOT_POSITIVE
    if not math.isfinite(range_min):
        return RANGE_MIN_NOT_FINITE
    if range_min > range_max:
        return RANGE_MIN_ABOVE_RANGE_MAX
    if ranges_count <= 0:
        return EMPTY_RANGES
    expected = expected_beams(angle_min, angle_max, angle_increment)
    # float32 rounding of angle_min/angle_max (absolute) and of the increment (relative),
    # capped so that two beams too many or too few are always a mismatch.
    rounding = min(
        _MAX_ROUNDING,
        _FLOAT32_EPS * ((abs(angle_min) + abs(angle_max)) / angle_increment + abs(expected)),
    )
    # A non-finite expectation (an increment so small the division overflows) fails too.
    if not abs(ranges_count - expected) <= BEAM_COUNT_TOLERANCE + _BEAM_COUNT_SLACK + rounding:
        return BEAM_COUNT_MISMATCH
    if intensities_count > 0 and intensities_count != ranges_count:
        return INTENSITIES_LENGTH_MISMATCH
    return None


class LaserScanLike(Protocol):
    """The fields of sensor_msgs/LaserScan the validator reads (no message import)."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: Sized


def validate_scan_message(msg: LaserScanLike) -> str | None:
    """`validate_scan` for any object shaped like sensor_msgs/LaserScan (duck-typed).

    Reads `angle_min`, `angle_max`, `angle_increment`, `range_min`, `range_max`, `ranges`,
    `intensities` (optional) and `header.stamp.sec` / `.nanosec` (optional); imports no
    message type, so the ground floor stays free of ROS.
    """
    intensities = getattr(msg, "intensities", None)
    header = getattr(msg, "header", None)
    stamp_msg = getattr(header, "stamp", None)
    stamp = 0.0
    if stamp_msg is not None:
        stamp = float(stamp_msg.sec) + float(stamp_msg.nanosec) * 1e-9
    return validate_scan(
        float(msg.angle_min),
        float(msg.angle_max),
        float(msg.angle_increment),
        float(msg.range_min),
        float(msg.range_max),
        len(msg.ranges),
        0 if intensities is None else len(intensities),
        stamp,
    )
