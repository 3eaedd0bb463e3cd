"""Lidar drift detection: per-sector scan statistics against a baseline (no rclpy, no torch).

`ScanStatistics` accumulates, per sector of a card's scan layout (`ScanSpec`: sector
count, field of view centred forward, range cap), what the lidar delivers:

- the range distribution: count, mean and standard deviation of the ranges as the
  observation reads them (clipped to the range cap; +inf and finite readings beyond
  `range_max` count as the cap, -inf as 0 m);
- the dropout rate: beams without a measurement, REP-117's NaN and finite readings below
  `range_min` (many drivers report 0.0 for "no return"). +inf ("nothing within range")
  is a measurement, not a dropout;
- a noise estimate: per scan and sector, the median of |r[i-1] - 2 r[i] + r[i+1]| over
  adjacent beams with valid readings, divided by `NOISE_SCALE`; the sector's noise is the
  mean of these per-scan medians. The second difference cancels the scene's geometry to
  first order (a wall is locally linear in beam angle; at 1 deg spacing its curvature
  leaves ~1 mm or less), and the median ignores the few triples that straddle an object
  edge. It works on a moving robot, unlike differencing consecutive scans, which needs the
  robot and the scene to stand still. For i.i.d. Gaussian range noise of std sigma the
  second difference is N(0, 6 sigma^2), whose median absolute value is 0.6745 sqrt(6)
  sigma, so the estimate reads as sigma in metres (7-20 % high from the median of few
  triples and from edges; alike for baseline and live scans, so their ratio holds).

Its `to_dict` is the card's optional top-level ``scan_statistics`` field (format
`STATISTICS_FORMAT`), written by ``rl_training export`` from the training environment's
scans (kind "training"), and the calibration baseline `BaselineCapture` records on the
robot (kind "calibration", the ``policy/capture_baseline`` service).

`DriftDetector` compares a sliding window of live scans (the last `window` seconds, by an
injected clock) with a baseline and reports OK / WARN / ERROR with reasons. Three
whole-sensor measures, each the median or the mean over the sectors both sides observed,
so a few sectors whose scene changed do not decide it:

- dropout increase: live dropout rate minus the baseline's (fraction of beams);
- noise ratio: median over sectors of live noise / max(baseline noise, `noise_floor`);
- range shift: median over sectors of (live mean range - baseline mean range); a range
  bias moves every sector the same way, a changed scene moves them both ways.

Range distributions depend on the scene. Against a "calibration" baseline, captured where
the robot works (e.g. at its dock), the range shift is judged in metres and catches a
range bias; it also flags the robot standing somewhere else, so it suits a check in the
calibrated scene more than a robot driving through changing ones. Against the card's
"training" baseline, a mixture of many generated scenes, one scene's window moves by up to
~1.5 m (~1.4 baseline standard deviations) in the training env itself, so the shift is
judged in units of the baseline's per-sector range std against much looser thresholds:
WARN flags a scene unlike any in training (every range near 0: a blocked lidar), and the
default ERROR is out of reach of clipped ranges; catching a range bias needs a calibration
baseline. Noise and dropout are properties of the sensor: their thresholds are the same
for both kinds.

A level rises as soon as a measure crosses its threshold and falls only when it is back
below `release` times that threshold, so a measure near a threshold does not flicker; once
the fault stops and clean scans refill the window, the report returns to OK.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from rl_policy_node.observation import beam_sectors
from rl_policy_node.policy_card import ScanSpec
from rlguard_common.parameters import ParameterSpec

STATISTICS_FORMAT = "rlguard.scan_statistics/1"
KIND_TRAINING = "training"
KIND_CALIBRATION = "calibration"
BASELINE_KINDS = (KIND_TRAINING, KIND_CALIBRATION)

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = ("OK", "WARN", "ERROR")

# Median |second difference| of N(0, sigma^2) readings, in sigma (module docstring).
NOISE_SCALE = 0.6744897501960817 * math.sqrt(6.0)
MIN_NOISE_TRIPLES = 3  # fewer valid triples in a sector: no noise sample from that scan
# A sector whose baseline ranges hardly varied is judged against this std (m), not ~0.
RANGE_STD_FLOOR = 0.05
# Round floats of `to_dict` to this many decimals (1 um): readable, and a round trip
# through JSON is stable.
DICT_DECIMALS = 6

# Rows of the per-sector sums one scan contributes (and a window or a baseline holds).
_BEAMS, _DROPOUTS, _RANGE_COUNT, _RANGE_SUM, _RANGE_SUM_SQ, _NOISE_SUM, _NOISE_COUNT = range(7)
_ROWS = 7


class ScanStatisticsError(ValueError):
    """Scan statistics (a baseline dict) that are malformed; the message names the field."""


class ScanLike(Protocol):
    """Anything with LaserScan's fields: `ScanInput`, the simulator's `ScanData`, a message."""

    ranges: Any
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float


class _SectorLayout:
    """The beams of one scan geometry grouped into sectors (cached per geometry).

    The observation's sectors (`rl_policy_node.observation.beam_sectors`): the field of
    view is centred forward, sector 0 starts at -fov/2; beams outside it are ignored. A
    sector without a beam simply has no statistics.
    """

    def __init__(
        self, sectors: int, fov: float, beam_count: int, angle_min: float, angle_increment: float
    ) -> None:
        self.key = (beam_count, angle_min, angle_increment)
        _, inside, sector = beam_sectors(sectors, fov, beam_count, angle_min, angle_increment)
        self.inside = inside
        self.sector = np.where(inside, sector, -1)
        self.beams = np.bincount(sector[inside], minlength=sectors).astype(np.float64)
        # Second-difference triples (i-1, i, i+1) count in the sector of the middle beam;
        # `noise_index` is a (sectors, widest) table of triple slots, padded with the
        # index of an always-invalid slot, so one sort gives every sector's median.
        middle = np.arange(1, beam_count - 1)
        middle = middle[inside[middle]]
        owner = sector[middle]
        counts = np.bincount(owner, minlength=sectors)
        width = max(int(counts.max()) if counts.size else 0, 1)
        table = np.full((sectors, width), beam_count, dtype=np.int64)
        order = np.argsort(owner, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        column = np.arange(middle.size) - np.repeat(starts, counts)
        table[owner[order], column] = middle[order]
        self.noise_index = table
        self.rows = np.arange(sectors)


class ScanStatistics:
    """Per-sector scan statistics accumulated over many scans (see the module docstring).

    `add(scan)` costs a few vectorised passes over the beams; the sums it keeps are what
    `to_dict` writes (as counts, means and standard deviations), so a baseline read back
    with `from_dict` keeps accumulating exactly.
    """

    def __init__(
        self,
        sectors: int,
        field_of_view_deg: float,
        range_cap: float,
        kind: str = KIND_CALIBRATION,
        description: str = "",
    ) -> None:
        _check_layout(sectors, field_of_view_deg, range_cap, kind, "scan statistics")
        self.sectors = int(sectors)
        self.field_of_view_deg = float(field_of_view_deg)
        self.range_cap = float(range_cap)
        self.kind = kind
        self.description = description
        self.scans = 0
        self.sums = np.zeros((_ROWS, self.sectors), dtype=np.float64)
        self._layout: _SectorLayout | None = None

    @staticmethod
    def for_scan_spec(
        spec: ScanSpec, kind: str = KIND_CALIBRATION, description: str = ""
    ) -> ScanStatistics:
        """Empty statistics with the sectors, field of view and range cap of a card's scan."""
        return ScanStatistics(
            spec.sectors, spec.field_of_view_deg, spec.range_cap, kind, description
        )

    def empty_like(self, kind: str | None = None, description: str = "") -> ScanStatistics:
        """Empty statistics with the same sector layout (and kind unless given)."""
        return ScanStatistics(
            self.sectors,
            self.field_of_view_deg,
            self.range_cap,
            self.kind if kind is None else kind,
            description,
        )

    def same_layout(self, other: ScanStatistics) -> bool:
        """True when both have the same sectors, field of view and range cap."""
        return (self.sectors, self.field_of_view_deg, self.range_cap) == (
            other.sectors,
            other.field_of_view_deg,
            other.range_cap,
        )

    # ------------------------------------------------------------------ accumulation

    def scan_sums(self, scan: ScanLike) -> np.ndarray:
        """The per-sector sums one scan contributes, shape (7, sectors); nothing is kept."""
        ranges = np.asarray(scan.ranges, dtype=np.float64).ravel()
        layout = self._layout_for(ranges.size, scan.angle_min, scan.angle_increment)
        range_min, range_max, cap = float(scan.range_min), float(scan.range_max), self.range_cap
        sums = np.zeros((_ROWS, self.sectors), dtype=np.float64)
        sums[_BEAMS] = layout.beams
        if ranges.size == 0:
            return sums
        finite = np.isfinite(ranges)
        dropout = np.isnan(ranges) | (finite & (ranges < range_min))
        measured = layout.inside & ~dropout
        # The value the observation reads: +inf and finite beyond range_max are free up
        # to the cap, -inf is 0 m (too close to measure).
        value = np.where(finite & (ranges <= range_max), np.minimum(ranges, cap), cap)
        value[np.isneginf(ranges)] = 0.0
        sector = layout.sector
        n = self.sectors
        sums[_DROPOUTS] = np.bincount(sector[layout.inside & dropout], minlength=n)
        owner = sector[measured]
        kept = value[measured]
        sums[_RANGE_COUNT] = layout.beams - sums[_DROPOUTS]
        sums[_RANGE_SUM] = np.bincount(owner, weights=kept, minlength=n)
        sums[_RANGE_SUM_SQ] = np.bincount(owner, weights=kept * kept, minlength=n)
        if ranges.size >= 3:
            valid = finite & (ranges >= range_min) & (ranges <= range_max)
            second = np.full(ranges.size + 1, np.inf)  # the last slot pads the table
            triple = valid[:-2] & valid[1:-1] & valid[2:]
            clean = np.where(valid, ranges, 0.0)
            d2 = np.abs(clean[:-2] - 2.0 * clean[1:-1] + clean[2:])
            second[1:-2] = np.where(triple, d2, np.inf)
            table = np.sort(second[layout.noise_index], axis=1)
            count = np.count_nonzero(np.isfinite(table), axis=1)
            low = table[layout.rows, np.maximum(count - 1, 0) // 2]
            high = table[layout.rows, count // 2]
            enough = count >= MIN_NOISE_TRIPLES
            sums[_NOISE_SUM] = np.where(enough, 0.5 * (low + high), 0.0) / NOISE_SCALE
            sums[_NOISE_COUNT] = enough
        return sums

    def add(self, scan: ScanLike) -> None:
        """Accumulate one scan."""
        self.add_sums(self.scan_sums(scan))

    def add_sums(self, sums: np.ndarray, scans: int = 1) -> None:
        """Accumulate sums from `scan_sums` (or another statistics' `sums`)."""
        self.sums += sums
        self.scans += scans

    def merge(self, other: ScanStatistics) -> None:
        """Accumulate another statistics of the same layout."""
        if not self.same_layout(other):
            raise ScanStatisticsError("cannot merge scan statistics of different sector layouts")
        self.add_sums(other.sums, other.scans)

    def _layout_for(
        self, beam_count: int, angle_min: float, angle_increment: float
    ) -> _SectorLayout:
        # LaserScan carries angles as float32: a sim scan and the same scan off the wire
        # must map alike (as in ScanResampler).
        key = (beam_count, float(np.float32(angle_min)), float(np.float32(angle_increment)))
        if self._layout is None or self._layout.key != key:
            if not (math.isfinite(key[1]) and math.isfinite(key[2]) and key[2] != 0.0):
                raise ScanStatisticsError("scan angle_min/angle_increment must be finite, != 0")
            self._layout = _SectorLayout(self.sectors, math.radians(self.field_of_view_deg), *key)
        return self._layout

    # ------------------------------------------------------------------ summaries

    @property
    def beams(self) -> np.ndarray:
        """Beam readings seen per sector (over all scans)."""
        return self.sums[_BEAMS].copy()

    @property
    def dropout_rate(self) -> np.ndarray:
        """Fraction of beams per sector without a measurement (NaN: sector never seen)."""
        return _ratio(self.sums[_DROPOUTS], self.sums[_BEAMS])

    @property
    def range_mean(self) -> np.ndarray:
        """Mean clipped range per sector, m (NaN: no measurement)."""
        return _ratio(self.sums[_RANGE_SUM], self.sums[_RANGE_COUNT])

    @property
    def range_std(self) -> np.ndarray:
        """Standard deviation of the clipped range per sector, m (NaN: no measurement)."""
        mean = self.range_mean
        square = _ratio(self.sums[_RANGE_SUM_SQ], self.sums[_RANGE_COUNT])
        return np.sqrt(np.maximum(square - mean * mean, 0.0))

    @property
    def noise(self) -> np.ndarray:
        """Range noise estimate per sector, m (NaN: no scan gave a sample)."""
        return _ratio(self.sums[_NOISE_SUM], self.sums[_NOISE_COUNT])

    @property
    def overall_dropout_rate(self) -> float:
        """Fraction of all beams without a measurement (NaN before any beam)."""
        beams = float(self.sums[_BEAMS].sum())
        return float(self.sums[_DROPOUTS].sum()) / beams if beams > 0 else math.nan

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the card's ``scan_statistics``): layout, kind, per-sector lists.

        ``per_sector`` holds lists of `sectors` values: integer counts ``beams``,
        ``dropouts``, ``range_count`` and ``noise_count`` (scans with a noise sample), and
        ``range_mean``, ``range_std`` and ``noise`` in metres (null where the count is 0).
        """

        def floats(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else round(float(v), DICT_DECIMALS) for v in values]

        def counts(row: int) -> list[int]:
            return [int(round(v)) for v in self.sums[row]]

        return {
            "format": STATISTICS_FORMAT,
            "kind": self.kind,
            "description": self.description,
            "sectors": self.sectors,
            "field_of_view_deg": self.field_of_view_deg,
            "range_cap": self.range_cap,
            "scans": self.scans,
            "per_sector": {
                "beams": counts(_BEAMS),
                "dropouts": counts(_DROPOUTS),
                "range_count": counts(_RANGE_COUNT),
                "range_mean": floats(self.range_mean),
                "range_std": floats(self.range_std),
                "noise_count": counts(_NOISE_COUNT),
                "noise": floats(self.noise),
            },
        }

    @staticmethod
    def from_dict(data: Any, source: str = "scan_statistics") -> ScanStatistics:
        """Statistics from `to_dict` data; `ScanStatisticsError` names the bad field."""
        top = _mapping(data, source)
        _known(top, source, _TOP_FIELDS)
        fmt = top.get("format")
        if fmt != STATISTICS_FORMAT:
            raise ScanStatisticsError(
                f"{source}.format: unsupported {fmt!r}, expected {STATISTICS_FORMAT!r}"
            )
        sectors = _int_field(top, "sectors", source, minimum=1)
        fov = _float_field(top, "field_of_view_deg", source)
        cap = _float_field(top, "range_cap", source)
        kind = top.get("kind")
        description = top.get("description", "")
        if not isinstance(description, str):
            raise ScanStatisticsError(f"{source}.description: must be a string")
        try:
            stats = ScanStatistics(sectors, fov, cap, kind, description)
        except ScanStatisticsError as exc:
            raise ScanStatisticsError(f"{source}: {exc}") from None
        stats.scans = _int_field(top, "scans", source, minimum=0)
        path = f"{source}.per_sector"
        per = _mapping(top.get("per_sector"), path)
        _known(per, path, _SECTOR_FIELDS)
        lists = {key: _sector_list(per, key, sectors, path) for key in _SECTOR_FIELDS}
        sums = stats.sums
        for key, row in (
            ("beams", _BEAMS),
            ("dropouts", _DROPOUTS),
            ("range_count", _RANGE_COUNT),
            ("noise_count", _NOISE_COUNT),
        ):
            for k, value in enumerate(lists[key]):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ScanStatisticsError(f"{path}.{key}[{k}]: must be an integer >= 0")
                sums[row, k] = value
        for k in range(sectors):
            where = f"{path}[sector {k}]"
            if sums[_DROPOUTS, k] + sums[_RANGE_COUNT, k] != sums[_BEAMS, k]:
                raise ScanStatisticsError(f"{where}: dropouts + range_count must equal beams")
            if sums[_NOISE_COUNT, k] > stats.scans:
                raise ScanStatisticsError(f"{where}: noise_count exceeds scans")
            mean = _sector_value(lists, "range_mean", k, sums[_RANGE_COUNT, k], path, cap)
            std = _sector_value(lists, "range_std", k, sums[_RANGE_COUNT, k], path, cap)
            noise = _sector_value(lists, "noise", k, sums[_NOISE_COUNT, k], path, None)
            sums[_RANGE_SUM, k] = mean * sums[_RANGE_COUNT, k]
            sums[_RANGE_SUM_SQ, k] = (std * std + mean * mean) * sums[_RANGE_COUNT, k]
            sums[_NOISE_SUM, k] = noise * sums[_NOISE_COUNT, k]
        return stats


_TOP_FIELDS = (
    "format",
    "kind",
    "description",
    "sectors",
    "field_of_view_deg",
    "range_cap",
    "scans",
    "per_sector",
)
_SECTOR_FIELDS = (
    "beams",
    "dropouts",
    "range_count",
    "range_mean",
    "range_std",
    "noise_count",
    "noise",
)


def _check_layout(sectors: Any, fov: Any, cap: Any, kind: Any, source: str) -> None:
    if isinstance(sectors, bool) or not isinstance(sectors, int) or sectors < 1:
        raise ScanStatisticsError(f"{source}: sectors must be an integer >= 1, got {sectors!r}")
    if not (isinstance(fov, int | float) and 0.0 < fov <= 360.0):
        raise ScanStatisticsError(f"{source}: field_of_view_deg must be in (0, 360], got {fov!r}")
    if not (isinstance(cap, int | float) and math.isfinite(cap) and cap > 0.0):
        raise ScanStatisticsError(f"{source}: range_cap must be finite and > 0, got {cap!r}")
    if kind not in BASELINE_KINDS:
        raise ScanStatisticsError(
            f"{source}: kind must be one of {', '.join(BASELINE_KINDS)}, got {kind!r}"
        )


def _mapping(data: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ScanStatisticsError(f"{path}: must be an object, got {type(data).__name__}")
    return data


def _known(data: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ScanStatisticsError(f"{path}: unknown field(s) {', '.join(map(str, unknown))}")


def _int_field(data: Mapping[str, Any], key: str, source: str, minimum: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScanStatisticsError(f"{source}.{key}: must be an integer >= {minimum}, got {value!r}")
    return value


def _float_field(data: Mapping[str, Any], key: str, source: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScanStatisticsError(f"{source}.{key}: must be a finite number, got {value!r}")
    return float(value)


def _sector_list(data: Mapping[str, Any], key: str, sectors: int, path: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list | tuple) or len(value) != sectors:
        raise ScanStatisticsError(f"{path}.{key}: must be a list of {sectors} values")
    return list(value)


def _sector_value(
    lists: Mapping[str, list[Any]],
    key: str,
    k: int,
    count: float,
    path: str,
    cap: float | None,
) -> float:
    """A per-sector float: null exactly when its count is 0, else finite, >= 0 (<= cap)."""
    value = lists[key][k]
    where = f"{path}.{key}[{k}]"
    if count == 0:
        if value is not None:
            raise ScanStatisticsError(f"{where}: must be null when its count is 0")
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScanStatisticsError(f"{where}: must be a finite number, got {value!r}")
    if value < 0.0 or (cap is not None and value > cap + 1e-6):
        bound = f"[0, {cap}]" if cap is not None else ">= 0"
        raise ScanStatisticsError(f"{where}: must be in {bound}, got {value!r}")
    return float(value)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# ---------------------------------------------------------------------- settings


DRIFT_PARAMETERS: dict[str, ParameterSpec] = {
    "drift_window": ParameterSpec(
        5.0, "Sliding window of live scans compared with the drift baseline (s).", (0.5, 600.0)
    ),
    "drift_min_scans": ParameterSpec(
        20,
        "Scans the window must hold before drift is judged (the level holds until then).",
        (1, 100000),
    ),
    "drift_warn_dropout": ParameterSpec(
        0.05,
        "WARN when the live dropout rate (NaN or < range_min beams) exceeds the baseline's by "
        "this fraction of beams.",
        (0.001, 1.0),
    ),
    "drift_error_dropout": ParameterSpec(
        0.2, "ERROR at this dropout increase (fraction of beams).", (0.001, 1.0)
    ),
    "drift_warn_noise_ratio": ParameterSpec(
        2.0,
        "WARN when the live range noise (median over sectors) is this many times the "
        "baseline's (at least drift_noise_floor).",
        (1.01, 1000.0),
    ),
    "drift_error_noise_ratio": ParameterSpec(
        4.0, "ERROR at this live / baseline noise ratio.", (1.01, 1000.0)
    ),
    "drift_noise_floor": ParameterSpec(
        0.005,
        "Smallest baseline noise (m) a ratio is taken against (a near noiseless baseline "
        "would make any noise a fault).",
        (1e-6, 1.0),
    ),
    "drift_warn_range_shift": ParameterSpec(
        0.05,
        "WARN when the live ranges shift from a calibration baseline's by this much (m, "
        "median over sectors of the mean shift).",
        (0.001, 100.0),
    ),
    "drift_error_range_shift": ParameterSpec(
        0.15, "ERROR at this range shift from a calibration baseline (m).", (0.001, 100.0)
    ),
    "drift_training_warn_range_shift": ParameterSpec(
        1.5,
        "WARN when the live ranges shift from the card's training baseline by this many of "
        "its per-sector range standard deviations (median over sectors).",
        (0.01, 100.0),
    ),
    "drift_training_error_range_shift": ParameterSpec(
        3.0,
        "ERROR at this range shift from the training baseline (baseline std units; the "
        "default is beyond what a scene alone reaches).",
        (0.01, 100.0),
    ),
    "drift_release": ParameterSpec(
        0.8,
        "Hysteresis: a raised drift level falls once its measure is below this fraction of "
        "the level's threshold.",
        (0.05, 1.0),
    ),
    "drift_deactivates_policy": ParameterSpec(
        False, "Drift ERROR makes the policy inactive (the fallback drives)."
    ),
    "drift_capture_duration": ParameterSpec(
        5.0, "Scans a policy/capture_baseline request records (s).", (0.1, 3600.0)
    ),
    "drift_capture_min_scans": ParameterSpec(
        20, "A baseline capture with fewer scans fails.", (1, 1000000)
    ),
}


def _default(name: str) -> Any:
    return DRIFT_PARAMETERS[f"drift_{name}"].default


@dataclass(frozen=True)
class DriftSettings:
    """The drift detector's settings; field `x` is parameter `drift_x` (`DRIFT_PARAMETERS`)."""

    window: float = _default("window")
    min_scans: int = _default("min_scans")
    warn_dropout: float = _default("warn_dropout")
    error_dropout: float = _default("error_dropout")
    warn_noise_ratio: float = _default("warn_noise_ratio")
    error_noise_ratio: float = _default("error_noise_ratio")
    noise_floor: float = _default("noise_floor")
    warn_range_shift: float = _default("warn_range_shift")
    error_range_shift: float = _default("error_range_shift")
    training_warn_range_shift: float = _default("training_warn_range_shift")
    training_error_range_shift: float = _default("training_error_range_shift")
    release: float = _default("release")
    deactivates_policy: bool = _default("deactivates_policy")
    capture_duration: float = _default("capture_duration")
    capture_min_scans: int = _default("capture_min_scans")

    def problem(self) -> str:
        """Why these settings are inconsistent, or "" when they are fine."""
        for prefix, measure in (
            ("", "dropout"),
            ("", "noise_ratio"),
            ("", "range_shift"),
            ("training_", "range_shift"),
        ):
            warn_name, error_name = f"{prefix}warn_{measure}", f"{prefix}error_{measure}"
            warn, error = getattr(self, warn_name), getattr(self, error_name)
            if not warn < error:
                return f"drift_{warn_name} ({warn}) must be below drift_{error_name} ({error})"
        return ""


def settings_from_parameters(values: Mapping[str, Any]) -> DriftSettings:
    """`DriftSettings` from parameter values (``drift_*`` keys; others are ignored).

    A missing parameter takes its default; a value out of its range, of the wrong type or
    inconsistent (a WARN threshold not below its ERROR one) raises ValueError naming it.
    """
    chosen: dict[str, Any] = {}
    for item in fields(DriftSettings):
        name = f"drift_{item.name}"
        spec = DRIFT_PARAMETERS[name]
        chosen[item.name] = spec.checked(name, values.get(name, spec.default))
    settings = DriftSettings(**chosen)
    problem = settings.problem()
    if problem:
        raise ValueError(problem)
    return settings


# ---------------------------------------------------------------------- detection


@dataclass(frozen=True)
class DriftReport:
    """A drift verdict: level (0 OK, 1 WARN, 2 ERROR), why, and the measures as text.

    `values` (for diagnostics) holds ``baseline`` (its kind), ``window_scans``, the level
    of each measure (``dropout_level``, ``noise_level``, ``range_level``), the measures
    (``dropout_rate``, ``noise_m``, ``noise_ratio``, ``range_shift_m``, ...) and, while
    the window holds too few scans, ``state``.
    """

    level: int
    reasons: tuple[str, ...]
    values: dict[str, str]

    @property
    def level_name(self) -> str:
        """The level's name: OK, WARN or ERROR."""
        return LEVEL_NAMES[self.level]


@dataclass(frozen=True)
class DriftMeasures:
    """The whole-sensor comparison of a window with a baseline (NaN: not measurable)."""

    dropout_increase: float
    live_dropout: float
    baseline_dropout: float
    noise_ratio: float
    live_noise: float
    baseline_noise: float
    range_shift: float
    range_shift_std: float
    sectors_compared: int
    worst_dropout_sector: int
    worst_noise_sector: int
    worst_shift_sector: int


@dataclass(frozen=True)
class _Summary:
    """The per-sector figures a comparison needs (a baseline's are computed once)."""

    beams: np.ndarray
    dropouts: np.ndarray
    dropout_rate: np.ndarray
    noise: np.ndarray
    range_mean: np.ndarray
    range_std: np.ndarray

    @staticmethod
    def of(stats: ScanStatistics) -> _Summary:
        return _Summary(
            beams=stats.sums[_BEAMS].copy(),
            dropouts=stats.sums[_DROPOUTS].copy(),
            dropout_rate=stats.dropout_rate,
            noise=stats.noise,
            range_mean=stats.range_mean,
            range_std=stats.range_std,
        )


def compare(live: ScanStatistics, baseline: ScanStatistics, noise_floor: float) -> DriftMeasures:
    """The drift measures of `live` against `baseline` (same sector layout)."""
    if not live.same_layout(baseline):
        raise ScanStatisticsError("live and baseline scan statistics differ in sector layout")
    return _compare(_Summary.of(live), _Summary.of(baseline), noise_floor)


def _compare(live: _Summary, base: _Summary, noise_floor: float) -> DriftMeasures:
    both = (live.beams > 0) & (base.beams > 0)
    live_dropout = _fraction(live.dropouts[both].sum(), live.beams[both].sum())
    base_dropout = _fraction(base.dropouts[both].sum(), base.beams[both].sum())
    noisy = np.isfinite(live.noise) & np.isfinite(base.noise)
    ratios = np.full(live.noise.size, np.nan)
    ratios[noisy] = live.noise[noisy] / np.maximum(base.noise[noisy], noise_floor)
    shifts = live.range_mean - base.range_mean
    ranged = np.isfinite(shifts)
    return DriftMeasures(
        dropout_increase=live_dropout - base_dropout,
        live_dropout=live_dropout,
        baseline_dropout=base_dropout,
        noise_ratio=_median(ratios[noisy]),
        live_noise=_median(live.noise[noisy]),
        baseline_noise=_median(base.noise[noisy]),
        range_shift=_median(shifts[ranged]),
        range_shift_std=_median(
            shifts[ranged] / np.maximum(base.range_std[ranged], RANGE_STD_FLOOR)
        ),
        sectors_compared=int(np.count_nonzero(both)),
        worst_dropout_sector=_argmax(live.dropout_rate - base.dropout_rate),
        worst_noise_sector=_argmax(ratios),
        worst_shift_sector=_argmax(np.abs(shifts)),
    )


def _fraction(part: float, whole: float) -> float:
    return float(part / whole) if whole > 0 else math.nan


def _median(values: np.ndarray) -> float:
    """Median of a small array (NaN when empty); np.median's overhead is 10x this."""
    if values.size == 0:
        return math.nan
    ordered = np.sort(values)
    return 0.5 * float(ordered[(values.size - 1) // 2] + ordered[values.size // 2])


def _argmax(values: np.ndarray) -> int:
    """Index of the largest finite value, -1 when there is none."""
    masked = np.where(np.isfinite(values), values, -np.inf)
    best = int(np.argmax(masked))
    return best if masked[best] > -np.inf else -1


class DriftDetector:
    """Live scans over a sliding time window against a baseline (see the module docstring).

    Feed every scan with `update(scan, now_s)` (or `add` and `report`); `now_s` is the
    caller's clock (sim or wall time, s). A clock that goes backwards empties the window.
    Until the window holds `min_scans` scans the level holds (OK at start).
    """

    def __init__(self, baseline: ScanStatistics, settings: DriftSettings | None = None) -> None:
        self.baseline = baseline
        self.settings = settings or DriftSettings()
        problem = self.settings.problem()
        if problem:
            raise ValueError(problem)
        self._window = baseline.empty_like(kind=KIND_CALIBRATION, description="live window")
        self._baseline = _Summary.of(baseline)  # the baseline is read once
        self._scans: deque[tuple[float, np.ndarray]] = deque()
        self._levels = {"dropout": OK, "noise": OK, "range": OK}
        self._last_time = -math.inf
        self._report = DriftReport(OK, (), {"state": "no scans yet"})
        self._version = 0  # counts window changes: a report of an unchanged window is reused
        self._judged: tuple[int, DriftSettings] | None = None

    @property
    def level(self) -> int:
        """The level of the latest report."""
        return self._report.level

    @property
    def last_report(self) -> DriftReport:
        """The latest report."""
        return self._report

    @property
    def blocks_policy(self) -> bool:
        """True when drift is ERROR and `deactivates_policy` says the policy must stop."""
        return self.settings.deactivates_policy and self._report.level == ERROR

    def window_statistics(self) -> ScanStatistics:
        """A copy of the live window's statistics."""
        copy = self._window.empty_like()
        copy.add_sums(self._window.sums, self._window.scans)
        return copy

    def reset(self) -> None:
        """Empty the window and return to OK (e.g. after the baseline changed)."""
        self._scans.clear()
        self._window = self._window.empty_like()
        self._levels = dict.fromkeys(self._levels, OK)
        self._last_time = -math.inf
        self._report = DriftReport(OK, (), {"state": "no scans yet"})
        self._version = 0  # counts window changes: a report of an unchanged window is reused
        self._judged: tuple[int, DriftSettings] | None = None

    def add(self, scan: ScanLike, now_s: float) -> None:
        """Put one scan received at `now_s` into the window."""
        sums = self._window.scan_sums(scan)
        if now_s < self._last_time:
            self._scans.clear()
            self._window = self._window.empty_like()
        self._last_time = now_s
        self._scans.append((now_s, sums))
        self._window.add_sums(sums)
        self._version += 1
        self._evict(now_s)

    def _evict(self, now_s: float) -> None:
        start = now_s - self.settings.window
        while self._scans and self._scans[0][0] <= start:
            _, sums = self._scans.popleft()
            self._window.add_sums(-sums, -1)
            self._version += 1
        if not self._scans:
            # Re-zero: no rounding residue survives an empty window.
            self._window = self._window.empty_like()

    def update(self, scan: ScanLike, now_s: float) -> DriftReport:
        """`add` the scan, then `report`."""
        self.add(scan, now_s)
        return self.report(now_s)

    def report(self, now_s: float | None = None) -> DriftReport:
        """Judge the window (dropping scans older than the window before `now_s`).

        Judging the same window with the same settings again returns the same report
        without recomputing it, so a 1 Hz diagnostics call after `update` costs nothing.
        """
        if now_s is not None and now_s >= self._last_time:
            self._evict(now_s)
        settings = self.settings
        if self._judged == (self._version, settings):
            return self._report
        self._judged = (self._version, settings)
        scans = len(self._scans)
        kind = self.baseline.kind
        values = {"baseline": kind, "window_scans": str(scans)}
        if scans < settings.min_scans:
            values["state"] = f"window filling ({scans}/{settings.min_scans} scans)"
            held = self._report
            self._report = DriftReport(held.level, held.reasons, {**held.values, **values})
            return self._report
        measures = _compare(_Summary.of(self._window), self._baseline, settings.noise_floor)
        if kind == KIND_TRAINING:
            shift, unit = measures.range_shift_std, " baseline std"
            range_thresholds = (
                settings.training_warn_range_shift,
                settings.training_error_range_shift,
            )
        else:
            shift, unit = measures.range_shift, " m"
            range_thresholds = (settings.warn_range_shift, settings.error_range_shift)
        checks = (
            (
                "dropout",
                measures.dropout_increase,
                (settings.warn_dropout, settings.error_dropout),
                lambda t: (
                    f"dropout rate {measures.live_dropout:.1%} is "
                    f"{measures.dropout_increase:+.1%} over the {kind} baseline's "
                    f"{measures.baseline_dropout:.1%} (threshold +{t:.1%})"
                ),
            ),
            (
                "noise",
                measures.noise_ratio - 1.0,
                (settings.warn_noise_ratio - 1.0, settings.error_noise_ratio - 1.0),
                lambda t: (
                    f"range noise {measures.live_noise * 1000:.1f} mm is "
                    f"{measures.noise_ratio:.1f}x the {kind} baseline's "
                    f"{measures.baseline_noise * 1000:.1f} mm (threshold {t + 1.0:.1f}x)"
                ),
            ),
            (
                "range",
                abs(shift),
                range_thresholds,
                lambda t: (
                    f"ranges shifted {shift:+.3f}{unit} from the {kind} baseline "
                    f"(median over sectors; threshold {t:.3f}{unit})"
                ),
            ),
        )
        reasons = []
        for name, excess, thresholds, describe in checks:
            level = _hysteresis(self._levels[name], excess, thresholds, settings.release)
            self._levels[name] = level
            values[f"{name}_level"] = LEVEL_NAMES[level]
            if level > OK:
                reasons.append(f"{LEVEL_NAMES[level]}: {describe(thresholds[level - 1])}")
        values.update(_measure_values(measures))
        self._report = DriftReport(max(self._levels.values()), tuple(reasons), values)
        return self._report


def _hysteresis(
    current: int, excess: float, thresholds: tuple[float, float], release: float
) -> int:
    """The new level of one measure: up at a threshold, down below release * threshold.

    A measure that cannot be taken (NaN: e.g. no valid triples for the noise) keeps its level.
    """
    if math.isnan(excess):
        return current
    raised = sum(excess >= t for t in thresholds)
    if raised >= current:
        return raised
    kept = sum(excess >= release * t for t in thresholds)
    return max(raised, min(current, kept))


def _measure_values(m: DriftMeasures) -> dict[str, str]:
    def number(value: float, pattern: str) -> str:
        return "n/a" if math.isnan(value) else format(value, pattern)

    return {
        "dropout_rate": number(m.live_dropout, ".4f"),
        "baseline_dropout_rate": number(m.baseline_dropout, ".4f"),
        "dropout_increase": number(m.dropout_increase, "+.4f"),
        "noise_m": number(m.live_noise, ".4f"),
        "baseline_noise_m": number(m.baseline_noise, ".4f"),
        "noise_ratio": number(m.noise_ratio, ".2f"),
        "range_shift_m": number(m.range_shift, "+.3f"),
        "range_shift_std": number(m.range_shift_std, "+.2f"),
        "sectors_compared": str(m.sectors_compared),
        "worst_dropout_sector": str(m.worst_dropout_sector),
        "worst_noise_sector": str(m.worst_noise_sector),
        "worst_shift_sector": str(m.worst_shift_sector),
    }


# ---------------------------------------------------------------------- capture


class BaselineCapture:
    """Records a calibration baseline from the scans of the next `duration` seconds.

    Started at `now_s` (the ``policy/capture_baseline`` request); feed it every scan with
    `add`, and call `poll` from a timer so it also ends when scans stop. It finishes once
    `duration` has passed: with at least `min_scans` scans `baseline` is the calibration
    statistics, otherwise `error` says why it failed. A clock that goes backwards fails it.
    """

    def __init__(
        self,
        spec: ScanSpec,
        now_s: float,
        duration: float = _default("capture_duration"),
        min_scans: int = _default("capture_min_scans"),
        description: str = "",
    ) -> None:
        self.started = float(now_s)
        self.duration = float(duration)
        self.min_scans = int(min_scans)
        self._stats = ScanStatistics.for_scan_spec(spec, KIND_CALIBRATION, description)
        self.finished = False
        self.baseline: ScanStatistics | None = None
        self.error = ""

    @staticmethod
    def from_settings(
        spec: ScanSpec, now_s: float, settings: DriftSettings, description: str = ""
    ) -> BaselineCapture:
        """A capture with the duration and minimum scan count of `settings`."""
        return BaselineCapture(
            spec, now_s, settings.capture_duration, settings.capture_min_scans, description
        )

    @property
    def scans(self) -> int:
        """Scans recorded so far."""
        return self._stats.scans

    def add(self, scan: ScanLike, now_s: float) -> bool:
        """Record a scan received at `now_s`; True when this call finished the capture."""
        if self.finished:
            return False
        if self.poll(now_s):
            return True
        self._stats.add(scan)
        return False

    def poll(self, now_s: float) -> bool:
        """Finish the capture if its time is up; True when this call finished it."""
        if self.finished:
            return False
        if now_s < self.started:
            return self._finish("the clock went backwards during the capture")
        if now_s - self.started < self.duration:
            return False
        if self._stats.scans < self.min_scans:
            return self._finish(
                f"only {self._stats.scans} scans in {self.duration:g} s "
                f"(at least {self.min_scans} needed)"
            )
        self.baseline = self._stats
        return self._finish("")

    def _finish(self, error: str) -> bool:
        self.finished = True
        self.error = error
        return True
