"""The one scan validator: every rule, the valid edge cases, and a property test."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlguard_common import scan_validity as sv
from rlguard_common.scan_validity import REASONS, validate_scan, validate_scan_message

INC_360 = 2.0 * math.pi / 360.0
# The default sim lidar as the sim node publishes it: 360 beams from -pi, angle_max is
# the last beam (LidarProfile.angle_max), and LaserScan carries float32 fields.
SIM_DEFAULT = {
    "angle_min": -math.pi,
    "angle_max": -math.pi + INC_360 * 359,
    "angle_increment": INC_360,
    "range_min": 0.12,
    "range_max": 3.5,
    "ranges_count": 360,
}


def f32(value: float) -> float:
    return float(np.float32(value))


def scan(**changes: float) -> dict:
    return {**SIM_DEFAULT, **changes}


def test_reason_constants_are_distinct_and_complete():
    assert len(set(REASONS)) == len(REASONS) == 11
    names = [v for k, v in vars(sv).items() if k.isupper() and isinstance(v, str)]
    assert sorted(names) == sorted(REASONS)
    assert all(r.isidentifier() and r == r.lower() for r in REASONS)


@pytest.mark.parametrize(
    "geometry",
    [
        pytest.param(SIM_DEFAULT, id="sim-default-360"),
        pytest.param(
            {k: f32(v) if isinstance(v, float) else v for k, v in SIM_DEFAULT.items()},
            id="sim-default-360-float32",
        ),
        # angle_max at the end of the sweep (+pi): the angles imply 361 beams, one beam off.
        pytest.param(scan(angle_max=math.pi), id="360-angle_max-end-of-sweep"),
        pytest.param(
            scan(angle_max=f32(math.pi), angle_min=f32(-math.pi), angle_increment=f32(INC_360)),
            id="360-end-of-sweep-float32",
        ),
        # 270 degrees, 1081 beams (a common safety-lidar layout), last beam at +135 deg.
        pytest.param(
            scan(
                angle_min=-0.75 * math.pi,
                angle_max=0.75 * math.pi,
                angle_increment=1.5 * math.pi / 1080,
                ranges_count=1081,
            ),
            id="270-1081-beams",
        ),
        pytest.param(
            scan(
                angle_min=-0.75 * math.pi,
                angle_max=0.75 * math.pi,
                angle_increment=1.5 * math.pi / 1080,
                ranges_count=1080,
            ),
            id="270-one-beam-short",
        ),
        # One beam: angle_min == angle_max, any positive increment.
        pytest.param(
            scan(angle_min=0.3, angle_max=0.3, angle_increment=0.01, ranges_count=1), id="one-beam"
        ),
        pytest.param(
            scan(angle_min=0.0, angle_max=0.004, angle_increment=0.01, ranges_count=1),
            id="one-beam-rounded",
        ),
        pytest.param(scan(range_min=0.0), id="range_min-zero"),
        pytest.param(scan(range_min=3.5), id="range_min-equals-range_max"),
        pytest.param({**SIM_DEFAULT, "intensities_count": 360}, id="intensities-same-length"),
        pytest.param({**SIM_DEFAULT, "intensities_count": 0}, id="no-intensities"),
        pytest.param({**SIM_DEFAULT, "stamp": 1.7e9}, id="wall-clock-stamp"),
    ],
)
def test_valid_geometries_pass(geometry):
    assert validate_scan(**geometry) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"stamp": math.nan}, sv.STAMP_NOT_FINITE),
        ({"stamp": math.inf}, sv.STAMP_NOT_FINITE),
        ({"angle_increment": math.nan}, sv.ANGLE_INCREMENT_NOT_FINITE),
        ({"angle_increment": math.inf}, sv.ANGLE_INCREMENT_NOT_FINITE),
        ({"angle_increment": 0.0}, sv.ANGLE_INCREMENT_NOT_POSITIVE),
        ({"angle_increment": -INC_360}, sv.ANGLE_INCREMENT_NOT_POSITIVE),
        ({"angle_min": math.nan}, sv.ANGLE_NOT_FINITE),
        ({"angle_max": -math.inf}, sv.ANGLE_NOT_FINITE),
        ({"range_max": math.inf}, sv.RANGE_MAX_NOT_FINITE),
        ({"range_max": math.nan}, sv.RANGE_MAX_NOT_FINITE),
        ({"range_max": 0.0}, sv.RANGE_MAX_NOT_POSITIVE),
        ({"range_max": -1.0, "range_min": -2.0}, sv.RANGE_MAX_NOT_POSITIVE),
        ({"range_min": math.nan}, sv.RANGE_MIN_NOT_FINITE),
        ({"range_min": -math.inf}, sv.RANGE_MIN_NOT_FINITE),
        ({"range_min": 3.6}, sv.RANGE_MIN_ABOVE_RANGE_MAX),
        ({"ranges_count": 0}, sv.EMPTY_RANGES),
        ({"ranges_count": 720}, sv.BEAM_COUNT_MISMATCH),  # twice the beams of the geometry
        ({"ranges_count": 358}, sv.BEAM_COUNT_MISMATCH),  # two beams short
        ({"ranges_count": 362}, sv.BEAM_COUNT_MISMATCH),  # two beams over
        ({"angle_increment": 1e-320}, sv.BEAM_COUNT_MISMATCH),  # the division overflows
        ({"angle_max": -4.0}, sv.BEAM_COUNT_MISMATCH),  # angle_max below angle_min
        ({"intensities_count": 359}, sv.INTENSITIES_LENGTH_MISMATCH),
        ({"intensities_count": 720}, sv.INTENSITIES_LENGTH_MISMATCH),
    ],
)
def test_each_rule_names_its_reason(changes, reason):
    assert validate_scan(**scan(**changes)) == reason


def test_every_reason_is_reachable():
    seen = {
        validate_scan(**scan(angle_increment=0.0)),
        validate_scan(**scan(angle_increment=math.nan)),
        validate_scan(**scan(angle_min=math.inf)),
        validate_scan(**scan(range_max=math.inf)),
        validate_scan(**scan(range_max=0.0)),
        validate_scan(**scan(range_min=math.nan)),
        validate_scan(**scan(range_min=4.0)),
        validate_scan(**scan(ranges_count=0)),
        validate_scan(**scan(ranges_count=720)),
        validate_scan(**scan(), intensities_count=1),
        validate_scan(**scan(), stamp=math.nan),
    }
    assert seen == set(REASONS)


def _message(**changes):
    fields = {
        "angle_min": SIM_DEFAULT["angle_min"],
        "angle_max": SIM_DEFAULT["angle_max"],
        "angle_increment": SIM_DEFAULT["angle_increment"],
        "range_min": 0.12,
        "range_max": 3.5,
        "ranges": [1.0] * 360,
        "intensities": [],
        "header": SimpleNamespace(stamp=SimpleNamespace(sec=12, nanosec=500_000_000)),
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_message_shaped_objects_are_read_field_by_field():
    assert validate_scan_message(_message()) is None
    assert validate_scan_message(_message(ranges=[1.0] * 720)) == sv.BEAM_COUNT_MISMATCH
    assert validate_scan_message(_message(intensities=[0.0] * 3)) == (
        sv.INTENSITIES_LENGTH_MISMATCH
    )
    assert validate_scan_message(_message(range_min=5.0)) == sv.RANGE_MIN_ABOVE_RANGE_MAX
    assert validate_scan_message(_message(ranges=[])) == sv.EMPTY_RANGES
    bare = _message()
    del bare.header, bare.intensities  # optional fields
    assert validate_scan_message(bare) is None


# ---- property: well-formed scans pass, each corruption is caught -----------------------


@st.composite
def well_formed(draw):
    """A scan geometry as a real driver would send it (either angle_max convention)."""
    beams = draw(st.integers(min_value=1, max_value=4000))
    # Increments from 1e-4 rad (0.006 deg, finer than any planar lidar) up.
    fov = draw(st.floats(min_value=max(1e-3, beams * 1e-4), max_value=2.0 * math.pi))
    increment = fov / beams if beams > 1 else draw(st.floats(min_value=1e-4, max_value=1.0))
    angle_min = draw(st.floats(min_value=-math.pi, max_value=math.pi))
    last_beam = draw(st.booleans())  # angle_max is the last beam, or the end of the sweep
    angle_max = angle_min + increment * ((beams - 1) if last_beam else beams)
    range_max = draw(st.floats(min_value=0.1, max_value=100.0))
    range_min = draw(st.floats(min_value=0.0, max_value=range_max))
    as_float32 = draw(st.booleans())
    values = {
        "angle_min": angle_min,
        "angle_max": angle_max,
        "angle_increment": increment,
        "range_min": range_min,
        "range_max": range_max,
    }
    if as_float32:
        values = {k: f32(v) for k, v in values.items()}
        if values["range_min"] > values["range_max"]:
            values["range_min"] = values["range_max"]
    intensities = draw(st.sampled_from([0, beams]))
    stamp = draw(st.floats(min_value=0.0, max_value=2e9))
    return {**values, "ranges_count": beams, "intensities_count": intensities, "stamp": stamp}


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def corruptions(geometry: dict):
    """(strategy of a corrupted copy, the reason it must give) for one well-formed scan."""
    g = geometry
    beams = g["ranges_count"]

    def with_(**changes):
        return {**g, **changes}

    yield st.builds(lambda v: with_(stamp=v), NON_FINITE), sv.STAMP_NOT_FINITE
    yield st.builds(lambda v: with_(angle_increment=v), NON_FINITE), sv.ANGLE_INCREMENT_NOT_FINITE
    yield (
        st.builds(
            lambda v: with_(angle_increment=v), st.floats(max_value=0.0, allow_infinity=False)
        ),
        sv.ANGLE_INCREMENT_NOT_POSITIVE,
    )
    yield (
        st.builds(
            lambda v, first: with_(**{"angle_min" if first else "angle_max": v}),
            NON_FINITE,
            st.booleans(),
        ),
        sv.ANGLE_NOT_FINITE,
    )
    yield st.builds(lambda v: with_(range_max=v), NON_FINITE), sv.RANGE_MAX_NOT_FINITE
    yield (
        st.builds(
            lambda v: with_(range_max=v, range_min=min(g["range_min"], v)),
            st.floats(max_value=0.0, allow_infinity=False, allow_nan=False),
        ),
        sv.RANGE_MAX_NOT_POSITIVE,
    )
    yield st.builds(lambda v: with_(range_min=v), NON_FINITE), sv.RANGE_MIN_NOT_FINITE
    yield (
        st.builds(
            lambda d: with_(range_min=g["range_max"] + d),
            st.floats(min_value=1e-3, max_value=1e3),
        ),
        sv.RANGE_MIN_ABOVE_RANGE_MAX,
    )
    yield st.just(with_(ranges_count=0, intensities_count=0)), sv.EMPTY_RANGES
    yield (
        st.builds(
            lambda extra, more: with_(
                ranges_count=beams + extra if more else max(1, beams - extra),
                intensities_count=0,
            ),
            st.integers(min_value=3, max_value=5000),
            st.booleans() if beams > 4 else st.just(True),
        ),
        sv.BEAM_COUNT_MISMATCH,
    )
    yield (
        st.builds(
            lambda n: with_(intensities_count=n),
            st.integers(min_value=1, max_value=10_000).filter(lambda n: n != beams),
        ),
        sv.INTENSITIES_LENGTH_MISMATCH,
    )


@settings(max_examples=300, deadline=None)
@given(well_formed())
def test_random_well_formed_scans_pass(geometry):
    assert validate_scan(**geometry) is None, geometry


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_each_corruption_of_a_well_formed_scan_is_caught(data):
    geometry = data.draw(well_formed())
    options = list(corruptions(geometry))
    index = data.draw(st.integers(min_value=0, max_value=len(options) - 1))
    strategy, reason = options[index]
    corrupted = data.draw(strategy)
    assert validate_scan(**corrupted) == reason, corrupted
