"""Scan statistics and lidar drift detection (rl_policy_node.scan_drift), without ROS.

The drift tests run on scans of the embedded simulator (the warehouse world), degraded by
the simulator's own lidar fault injection (`sim_bringup.sim_faults.degraded_lidar`);
time is the simulator's, one scan every 0.1 s as the lidar publishes them.
"""

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from rl_policy_node.observation import ScanInput
from rl_policy_node.policy_card import ScanSpec
from rl_policy_node.scan_drift import (
    DRIFT_PARAMETERS,
    ERROR,
    KIND_CALIBRATION,
    KIND_TRAINING,
    NOISE_SCALE,
    OK,
    STATISTICS_FORMAT,
    WARN,
    BaselineCapture,
    DriftDetector,
    DriftSettings,
    ScanStatistics,
    ScanStatisticsError,
    settings_from_parameters,
)
from rlguard_common.parameters import parameter_defaults
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_faults import degraded_lidar

BEAMS = 360
INCREMENT = 2.0 * math.pi / BEAMS
SPEC = ScanSpec(sectors=36, field_of_view_deg=360.0, range_cap=3.5)
SCAN_PERIOD = 0.1  # s: the default lidar's 10 Hz


def full_scan(ranges, range_min=0.12, range_max=3.5) -> ScanInput:
    """A 360-beam full-circle scan from -pi (sector k = beams 10k..10k+9 for 36 sectors)."""
    return ScanInput(np.asarray(ranges, float), -math.pi, INCREMENT, range_min, range_max)


def statistics(*scans: ScanInput, kind: str = KIND_CALIBRATION) -> ScanStatistics:
    stats = ScanStatistics.for_scan_spec(SPEC, kind)
    for scan in scans:
        stats.add(scan)
    return stats


# ---------------------------------------------------------------------- statistics


def test_rep117_readings_count_as_dropout_or_range_by_their_meaning():
    """NaN and < range_min are dropouts; +inf, beyond range_max and -inf are measurements."""
    ranges = np.full(BEAMS, 2.0)
    ranges[0:10] = np.nan  # sector 0: no measurement at all
    ranges[10:15] = 0.05  # sector 1: half below range_min (a driver's "0.0 = no return")
    ranges[20:30] = np.inf  # sector 2: nothing within range: free up to the cap
    ranges[30:40] = 6.0  # sector 3: beyond range_max: free up to the cap
    ranges[40:45] = -np.inf  # sector 4: half too close to measure: 0 m
    stats = statistics(full_scan(ranges), full_scan(ranges))

    assert stats.scans == 2
    np.testing.assert_array_equal(stats.beams, np.full(36, 20.0))
    assert stats.dropout_rate[0] == 1.0 and math.isnan(stats.range_mean[0])
    assert stats.dropout_rate[1] == 0.5 and stats.range_mean[1] == pytest.approx(2.0)
    assert stats.dropout_rate[2] == 0.0 and stats.range_mean[2] == pytest.approx(3.5)
    assert stats.dropout_rate[3] == 0.0 and stats.range_mean[3] == pytest.approx(3.5)
    assert stats.dropout_rate[4] == 0.0 and stats.range_mean[4] == pytest.approx(1.0)
    assert stats.range_std[4] == pytest.approx(1.0)  # half 0 m, half 2 m
    assert stats.range_mean[5:] == pytest.approx(2.0) and stats.range_std[5:] == pytest.approx(0.0)
    assert stats.overall_dropout_rate == pytest.approx(15 / 360)


def test_noise_estimate_reads_gaussian_sigma_and_ignores_scene_geometry():
    """A square room with boxes: noiseless it reads ~0; with noise sigma, about sigma."""
    angles = -math.pi + INCREMENT * np.arange(BEAMS)
    room = 1.5 / np.maximum(np.abs(np.cos(angles)), np.abs(np.sin(angles)))  # square walls
    for first in range(0, BEAMS, 30):
        room[first : first + 6] *= 0.6  # a box every 30 deg: two range steps
    clean = statistics(*[full_scan(room)] * 5)
    assert np.nanmax(clean.noise) < 0.002  # geometry leaves < 2 mm, 1/5 of a 1 cm lidar

    rng = np.random.default_rng(1)
    estimates = []
    for sigma in (0.01, 0.03):
        noisy = statistics(*[full_scan(room + rng.normal(0, sigma, BEAMS)) for _ in range(200)])
        estimates.append(float(np.nanmedian(noisy.noise)))
        # Edges inside a 10-beam sector and the median of 8 triples bias it up a little...
        assert estimates[-1] == pytest.approx(sigma, rel=0.25)
    # ...alike at every noise level: the ratio drift is judged by is right.
    assert estimates[1] / estimates[0] == pytest.approx(3.0, rel=0.1)
    assert NOISE_SCALE == pytest.approx(1.652, abs=1e-3)


def test_a_narrower_lidar_leaves_unseen_sectors_without_statistics():
    """A 270 deg lidar under a 360 deg layout: the sectors behind have no beams, no data."""
    fov = math.radians(270.0)
    scan = ScanInput(np.full(271, 2.0), -fov / 2, fov / 270, 0.12, 3.5)
    stats = statistics(scan)
    unseen = stats.beams == 0
    np.testing.assert_array_equal(np.flatnonzero(unseen), [0, 1, 2, 3, 32, 33, 34, 35])
    assert np.isnan(stats.range_mean[unseen]).all() and np.isnan(stats.dropout_rate[unseen]).all()
    assert stats.range_mean[~unseen] == pytest.approx(2.0)


def test_to_dict_from_dict_round_trip_keeps_accumulating_exactly():
    rng = np.random.default_rng(2)
    scans = []
    for _ in range(30):
        ranges = rng.uniform(0.3, 4.0, BEAMS)
        ranges[rng.random(BEAMS) < 0.05] = np.nan
        ranges[rng.random(BEAMS) < 0.05] = np.inf
        scans.append(full_scan(ranges))
    first, rest = scans[:20], scans[20:]
    stats = statistics(*first, kind=KIND_TRAINING)
    stats.description = "20 random scans"

    data = json.loads(json.dumps(stats.to_dict()))
    assert data["format"] == STATISTICS_FORMAT and data["kind"] == KIND_TRAINING
    back = ScanStatistics.from_dict(data)
    assert back.to_dict() == data
    assert (back.sectors, back.field_of_view_deg, back.range_cap) == (36, 360.0, 3.5)
    assert back.description == "20 random scans" and back.scans == 20

    for scan in rest:
        back.add(scan)
        stats.add(scan)
    for name in ("dropout_rate", "range_mean", "range_std", "noise"):
        np.testing.assert_allclose(getattr(back, name), getattr(stats, name), atol=2e-6)


def _bad(path, value):
    """A valid statistics dict with one field replaced (path: keys separated by '.')."""
    data = copy.deepcopy(statistics(full_scan(np.full(BEAMS, 2.0))).to_dict())
    *parents, key = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not a dict", "must be an object"),
        (_bad("format", "rlguard.scan_statistics/9"), "format: unsupported"),
        (_bad("kind", "factory"), "kind must be one of training, calibration"),
        (_bad("sectors", 0), "sectors: must be an integer >= 1"),
        (_bad("range_cap", -1.0), "range_cap must be finite and > 0"),
        (_bad("colour", "red"), "unknown field(s) colour"),
        (_bad("per_sector", KeyError), "per_sector: must be an object"),
        (_bad("per_sector.range_mean", [2.0] * 35), "range_mean: must be a list of 36 values"),
        (_bad("per_sector.beams", [-1] * 36), "beams[0]: must be an integer >= 0"),
        (_bad("per_sector.dropouts", [1] * 36), "dropouts + range_count must equal beams"),
        (_bad("per_sector.range_mean", [9.0] * 36), "range_mean[0]: must be in [0, 3.5]"),
        (_bad("per_sector.range_std", [None] * 36), "range_std[0]: must be a finite number"),
        (_bad("per_sector.noise_count", [5] * 36), "noise_count exceeds scans"),
    ],
)
def test_a_bad_baseline_dict_is_refused_with_the_field_named(data, message):
    with pytest.raises(ScanStatisticsError) as error:
        ScanStatistics.from_dict(data, source="card scan_statistics")
    assert str(error.value).startswith("card scan_statistics")
    assert message in str(error.value)


# ---------------------------------------------------------------------- settings


def test_parameters_are_the_settings_with_drift_prefix():
    names = {f"drift_{name}" for name in DriftSettings.__dataclass_fields__}
    assert set(DRIFT_PARAMETERS) == names
    assert settings_from_parameters(parameter_defaults(DRIFT_PARAMETERS)) == DriftSettings()
    assert settings_from_parameters({"model_path": "x"}) == DriftSettings()  # others ignored
    chosen = settings_from_parameters({"drift_window": 2, "drift_deactivates_policy": True})
    assert chosen.window == 2.0 and chosen.deactivates_policy
    assert DriftSettings().deactivates_policy is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"drift_warn_dropout": 0.3}, "drift_warn_dropout (0.3) must be below drift_error_dropout"),
        ({"drift_error_noise_ratio": 1.5}, "drift_warn_noise_ratio (2.0) must be below"),
        ({"drift_window": 0.0}, "drift_window must be in [0.5, 600.0]"),
        ({"drift_min_scans": 2.5}, "drift_min_scans must be an integer"),
        ({"drift_deactivates_policy": 1}, "drift_deactivates_policy must be true or false"),
        ({"drift_noise_floor": math.nan}, "drift_noise_floor must be finite"),
    ],
)
def test_bad_parameters_are_refused_with_the_name(values, message):
    with pytest.raises(ValueError, match=None) as error:
        settings_from_parameters(values)
    assert message in str(error.value)


# ---------------------------------------------------------------------- detection, synthetic


def _dropout_scan(fraction: float) -> ScanInput:
    """2 m everywhere, the first `fraction` of every sector's beams NaN (exact rates)."""
    ranges = np.full(BEAMS, 2.0)
    per_sector = round(10 * fraction)
    for sector in range(36):
        ranges[10 * sector : 10 * sector + per_sector] = np.nan
    return full_scan(ranges)


def test_hysteresis_holds_a_level_until_the_measure_falls_below_release():
    """Defaults: WARN at +5 %, ERROR at +20 % dropout; a level falls below 0.8 x its threshold."""
    detector = DriftDetector(statistics(*[_dropout_scan(0.0)] * 10), DriftSettings(window=1.0))
    levels = []
    now = 0.0
    for fraction in (0.3, 0.2, 0.1, 0.0):  # 30 % -> ERROR, 20 % >= 16 % holds, ...
        for _ in range(30):
            now += 0.05
            report = detector.update(_dropout_scan(fraction), now)
        levels.append(report.level)
    assert levels == [ERROR, ERROR, WARN, OK]
    assert detector.report() is report  # an unchanged window is not judged again
    assert report.reasons == () and report.values["dropout_level"] == "OK"


def test_the_level_holds_until_the_window_has_min_scans_and_a_clock_jump_back_empties_it():
    detector = DriftDetector(statistics(_dropout_scan(0.0)), DriftSettings(min_scans=5))
    for k in range(4):
        report = detector.update(_dropout_scan(0.5), k * 0.1)
        assert report.level == OK and "window filling" in report.values["state"]
    assert detector.update(_dropout_scan(0.5), 0.4).level == ERROR
    assert detector.blocks_policy is False  # drift_deactivates_policy defaults to false
    report = detector.update(_dropout_scan(0.0), 0.0)  # the clock went back: window emptied
    assert report.level == ERROR and report.values["window_scans"] == "1"
    deactivating = DriftDetector(statistics(_dropout_scan(0.0)), DriftSettings(min_scans=1))
    deactivating.settings = replace(deactivating.settings, deactivates_policy=True)
    deactivating.update(_dropout_scan(0.5), 0.0)
    assert deactivating.blocks_policy


# ---------------------------------------------------------------------- detection, simulator


@pytest.fixture(scope="module")
def robot():
    return load_robot_profile("default")


@pytest.fixture(scope="module")
def warehouse():
    return load_world("warehouse")


class StillRobot:
    """The simulated robot standing at one pose; `scans` yields its lidar scans at 10 Hz."""

    def __init__(self, robot, world, start=None, seed=0):
        self.sim = Simulator(robot, world, seed=seed)
        self.sim.reset(seed=seed, start=start)
        self.rng = np.random.default_rng(seed + 100)
        self.now = 0.0

    def scans(self, count, noise_std=0.0, bias=0.0, dropout=0.0):
        for _ in range(count):
            self.sim.step(0.0, 0.0, SCAN_PERIOD)
            self.now += SCAN_PERIOD
            scan = degraded_lidar(self.sim.scan(), self.rng, noise_std, bias, dropout)
            yield scan, self.now


def calibrate(robot, world, start=None, seed=0):
    """A calibration baseline captured with `BaselineCapture` (default 5 s, >= 20 scans)."""
    still = StillRobot(robot, world, start, seed)
    capture = BaselineCapture.from_settings(SPEC, still.now, DriftSettings(), "test bay")
    for scan, now in still.scans(60):
        if capture.add(scan, now):
            break
    assert capture.finished and capture.error == ""
    return capture.baseline, still


def run_phases(detector, still, phases):
    """Levels over fault phases: per phase (fault kwargs, seconds), every report's level."""
    history = []
    for fault, seconds in phases:
        scans = still.scans(round(seconds / SCAN_PERIOD), **fault)
        history.append([detector.update(scan, now).level for scan, now in scans])
    return history


@pytest.mark.parametrize(
    ("fault", "mild", "severe"),
    [
        ("noise_std", 0.025, 0.06),  # on the profile's own 1 cm noise: 2.7x, then 6x
        ("bias", 0.08, 0.25),  # m: WARN beyond 0.05 m, ERROR beyond 0.15 m
        ("dropout", 0.1, 0.3),  # WARN beyond +5 % of beams, ERROR beyond +20 %
    ],
)
def test_injected_fault_raises_warn_then_error_and_clears_when_it_stops(
    robot, warehouse, fault, mild, severe
):
    baseline, still = calibrate(robot, warehouse)
    assert baseline.kind == KIND_CALIBRATION and baseline.scans >= 20
    detector = DriftDetector(baseline, DriftSettings())
    window = detector.settings.window
    clean, mild_levels, severe_levels, stopped = run_phases(
        detector,
        still,
        [
            ({}, 2 * window),
            ({fault: mild}, 2 * window),
            ({fault: severe}, 2 * window),
            ({}, 2 * window),
        ],
    )
    measure = {"noise_std": "noise", "bias": "range", "dropout": "dropout"}[fault]

    assert set(clean) == {OK}
    assert mild_levels[-1] == WARN and ERROR not in mild_levels
    assert severe_levels[-1] == ERROR
    assert stopped[0] == ERROR  # the window still holds the faulty scans...
    assert stopped[-1] == OK  # ...and is clean again once refilled with clean scans
    assert stopped.index(OK) * SCAN_PERIOD <= window + SCAN_PERIOD
    assert detector.last_report.reasons == ()
    # The ERROR named the faulty measure, and only it.
    fresh = DriftDetector(baseline, DriftSettings())
    run_phases(fresh, still, [({fault: severe}, window)])
    levels = {k: v for k, v in fresh.last_report.values.items() if k.endswith("_level")}
    assert levels == {**dict.fromkeys(levels, "OK"), f"{measure}_level": "ERROR"}
    assert len(fresh.last_report.reasons) == 1 and fresh.last_report.reasons[0].startswith("ERROR")


def test_moving_the_robot_elsewhere_raises_no_noise_or_dropout_drift(robot, warehouse):
    """A calibration baseline from the start pose, live scans from every goal of the world."""
    baseline, _ = calibrate(robot, warehouse)
    for k, (x, y) in enumerate(warehouse.goals):
        still = StillRobot(robot, warehouse, start=(x, y, 0.5 * k), seed=k + 1)
        detector = DriftDetector(baseline, DriftSettings())
        run_phases(detector, still, [({}, 2 * detector.settings.window)])
        values = detector.last_report.values
        assert values["noise_level"] == "OK" and values["dropout_level"] == "OK", values
        assert 0.7 < float(values["noise_ratio"]) < 1.4


def test_range_shift_against_a_training_baseline_is_judged_in_its_std_units(robot, warehouse):
    """A 0.2 m bias is an ERROR against a calibration baseline of the same spot; against a
    scene mixture (a training-like baseline of six spots) neither the bias nor any one of
    its spots is far out of the distribution."""
    spots = [None] + [(x, y, 0.5 * k) for k, (x, y) in enumerate(warehouse.goals)]
    training = ScanStatistics.for_scan_spec(SPEC, KIND_TRAINING)
    for k, start in enumerate(spots):
        for scan, _ in StillRobot(robot, warehouse, start, seed=k).scans(30):
            training.add(scan)
    calibration, still = calibrate(robot, warehouse)
    against_calibration = DriftDetector(calibration, DriftSettings())
    against_training = DriftDetector(training, DriftSettings())
    for scan, now in still.scans(60, bias=0.2):
        against_calibration.update(scan, now)
        against_training.update(scan, now)
    assert against_calibration.level == ERROR
    assert against_calibration.last_report.values["range_level"] == "ERROR"
    values = against_training.last_report.values
    assert against_training.level == OK and values["baseline"] == KIND_TRAINING
    assert abs(float(values["range_shift_std"])) < DriftSettings().training_warn_range_shift

    for k, start in enumerate(spots):
        detector = DriftDetector(training, DriftSettings())
        run_phases(detector, StillRobot(robot, warehouse, start, seed=k + 10), [({}, 6.0)])
        assert detector.level == OK, detector.last_report


def test_capture_needs_min_scans_and_a_steady_clock():
    scan = _dropout_scan(0.0)
    capture = BaselineCapture(SPEC, now_s=10.0, duration=1.0, min_scans=5)
    for k in range(3):
        assert not capture.add(scan, 10.0 + 0.1 * k)
    assert not capture.poll(10.5)
    assert capture.poll(11.0) and capture.finished and capture.baseline is None
    assert "only 3 scans in 1 s (at least 5 needed)" in capture.error
    assert not capture.add(scan, 11.1)  # finished: later scans are ignored

    backwards = BaselineCapture(SPEC, now_s=10.0, duration=1.0, min_scans=1)
    assert backwards.add(scan, 9.0) and "clock went backwards" in backwards.error

    good = BaselineCapture(SPEC, now_s=0.0, duration=1.0, min_scans=5)
    finished = [good.add(scan, 0.1 * k) for k in range(12)]
    assert finished.count(True) == 1 and good.error == ""
    assert good.baseline.kind == KIND_CALIBRATION and good.baseline.scans == 10
