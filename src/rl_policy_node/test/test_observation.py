import math

import numpy as np
import pytest
from rl_policy_node_test_support import small_card

from rl_policy_node.observation import ObservationBuilder, ObservationError, ScanInput
from rl_policy_node.policy_card import GoalSpec, ObservationSpec, ScanSpec, implicit_card

ORIGIN = (0.0, 0.0, 0.0)
STILL = (0.0, 0.0)


def make_scan(beams: int, fov_deg: float, ranges=None, range_min=0.1, range_max=12.0):
    """A scan of `beams` beams spanning `fov_deg` centred on +x (LaserScan layout)."""
    fov = math.radians(fov_deg)
    full_circle = math.isclose(fov_deg, 360.0)
    increment = fov / beams if full_circle else fov / (beams - 1)
    angle_min = -math.pi if full_circle else -fov / 2
    if ranges is None:
        ranges = np.full(beams, 2.0)
    return ScanInput(np.asarray(ranges, float), angle_min, increment, range_min, range_max)


def beam_angles(scan: ScanInput) -> np.ndarray:
    return scan.angle_min + scan.angle_increment * np.arange(len(scan.ranges))


def scan_only(sectors: int, fov_deg: float, reduction: str = "min", cap: float = 4.0):
    return ObservationSpec(
        scan=ScanSpec(sectors, fov_deg, cap, reduction), velocity=None, goal=GoalSpec(10.0)
    )


@pytest.mark.parametrize("beams", [360, 720, 1081])
@pytest.mark.parametrize("scan_fov", [270.0, 360.0])
def test_obstacle_lands_in_the_sector_of_its_angle(beams, scan_fov):
    """One close obstacle at +40 deg shows in the same sector whatever the lidar."""
    scan = make_scan(beams, scan_fov)
    angles = beam_angles(scan)
    ranges = np.where(np.abs(angles - math.radians(40.0)) < math.radians(2.0), 0.5, 2.0)
    scan = ScanInput(ranges, scan.angle_min, scan.angle_increment, scan.range_min, scan.range_max)
    builder = ObservationBuilder(scan_only(sectors=27, fov_deg=270.0))
    sectors = builder.build(scan, ORIGIN, STILL, (1.0, 0.0))[:27]
    # sector k covers [-135 + 10k, -135 + 10(k+1)) deg: +40 deg lies in sector 17
    expected = np.full(27, 2.0 / 4.0)
    expected[17] = 0.5 / 4.0
    np.testing.assert_allclose(sectors, expected, atol=1e-6)


@pytest.mark.parametrize("beams", [360, 720, 1081])
def test_full_circle_card_on_full_circle_scan(beams):
    scan = make_scan(beams, 360.0)
    angles = beam_angles(scan)
    behind = np.abs(np.abs(angles) - math.pi) < math.radians(3.0)
    ranges = np.where(behind, 1.0, 3.0)
    scan = ScanInput(ranges, scan.angle_min, scan.angle_increment, 0.1, 12.0)
    values = ObservationBuilder(scan_only(36, 360.0)).build(scan, ORIGIN, STILL, (1, 0))[:36]
    assert values[0] == pytest.approx(0.25) and values[35] == pytest.approx(0.25)
    assert np.allclose(values[1:35], 0.75)


def test_scan_starting_at_zero_angle_is_resampled_by_angle():
    """A lidar reporting 0..2pi (TurtleBot3 LDS style) gives the same sectors as -pi..pi."""
    beams = 360
    shifted = ScanInput(np.arange(beams) / 100.0 + 0.2, 0.0, 2 * math.pi / beams, 0.1, 12.0)
    angles = (np.arange(beams) * 2 * math.pi / beams + math.pi) % (2 * math.pi) - math.pi
    order = np.argsort(angles)
    centred = ScanInput(shifted.ranges[order], -math.pi, 2 * math.pi / beams, 0.1, 12.0)
    spec = scan_only(24, 360.0)
    a = ObservationBuilder(spec).build(shifted, ORIGIN, STILL, (1, 0))
    b = ObservationBuilder(spec).build(centred, ORIGIN, STILL, (1, 0))
    np.testing.assert_allclose(a, b, atol=1e-7)


def test_card_needing_more_field_of_view_is_refused_with_reason():
    scan = make_scan(1081, 270.0)
    builder = ObservationBuilder(scan_only(64, 360.0))
    with pytest.raises(ObservationError, match="cannot cover") as info:
        builder.build(scan, ORIGIN, STILL, (1, 0))
    assert "360.0 deg field of view" in str(info.value)


def test_scan_with_fewer_beams_than_sectors_is_refused():
    with pytest.raises(ObservationError, match="without a beam"):
        ObservationBuilder(scan_only(64, 360.0)).check_scan(32, -math.pi, 2 * math.pi / 32)


def test_rep117_special_values():
    """Each special reading has its own meaning (sectors of 4 beams, cap 4 m)."""
    beams = 32
    ranges = np.full(beams, 2.0)
    ranges[0:4] = [np.nan, 1.0, np.nan, 3.0]  # NaN ignored -> min of the rest
    ranges[4:8] = np.nan  # nothing usable -> reads as free (cap)
    ranges[8:12] = [np.inf, np.inf, np.inf, np.inf]  # no return within range -> free
    ranges[12:16] = [3.0, -np.inf, 3.0, 3.0]  # too close to measure -> 0
    ranges[16:20] = [0.05, 0.0, 3.0, 3.0]  # below range_min: invalid -> ignored
    ranges[20:24] = [20.0, 30.0, 15.0, 13.0]  # beyond range_max: free
    scan = ScanInput(ranges, -math.pi, 2 * math.pi / beams, 0.1, 12.0)
    values = ObservationBuilder(scan_only(8, 360.0)).build(scan, ORIGIN, STILL, (1, 0))[:8]
    np.testing.assert_allclose(values, [0.25, 1.0, 1.0, 0.0, 0.75, 1.0, 0.5, 0.5])


def test_ranges_are_capped_and_scaled():
    scan = make_scan(360, 360.0, ranges=np.full(360, 9.0))
    values = ObservationBuilder(scan_only(8, 360.0, cap=4.0)).build(scan, ORIGIN, STILL, (1, 0))
    np.testing.assert_allclose(values[:8], 1.0)


def test_stride_takes_the_beam_nearest_each_sector_centre():
    beams = 360
    ranges = np.full(beams, 3.0)
    scan = make_scan(beams, 360.0, ranges)
    angles = beam_angles(scan)
    spec = scan_only(4, 360.0, reduction="stride")
    # sector centres at -135, -45, 45, 135 deg; mark the beams there
    for k, centre in enumerate([-135.0, -45.0, 45.0, 135.0]):
        ranges[np.argmin(np.abs(angles - math.radians(centre)))] = 1.0 + 0.5 * k
    # a close reading off-centre must not show with stride (it does with min)
    ranges[np.argmin(np.abs(angles - math.radians(10.0)))] = 0.2
    values = ObservationBuilder(spec).build(scan, ORIGIN, STILL, (1, 0))[:4]
    np.testing.assert_allclose(values, np.array([1.0, 1.5, 2.0, 2.5]) / 4.0)
    mins = ObservationBuilder(scan_only(4, 360.0)).build(scan, ORIGIN, STILL, (1, 0))[:4]
    assert mins[2] == pytest.approx(0.2 / 4.0)


@pytest.mark.parametrize(
    ("pose", "goal", "expected"),
    [
        ((0, 0, 0), (2, 0), (2.0, 1.0, 0.0)),
        ((0, 0, 0), (0, 3), (3.0, 0.0, 1.0)),
        ((1, 1, math.pi / 2), (1, 3), (2.0, 1.0, 0.0)),  # goal straight ahead of a rotated robot
        ((1, 1, math.pi / 2), (2, 1), (1.0, 0.0, -1.0)),  # goal on its right
        ((0, 0, 0), (0, 0), (0.0, 1.0, 0.0)),  # at the goal
    ],
)
def test_goal_is_encoded_in_the_robot_frame(pose, goal, expected):
    spec = ObservationSpec(scan=ScanSpec(4, 360.0, 4.0), goal=GoalSpec(None), velocity=None)
    obs = ObservationBuilder(spec).build(make_scan(360, 360.0), pose, STILL, goal)
    np.testing.assert_allclose(obs[4:7], expected, atol=1e-6)


def test_goal_distance_cap_scales_to_unit_range():
    spec = ObservationSpec(scan=ScanSpec(4, 360.0, 4.0), goal=GoalSpec(5.0), velocity=None)
    builder = ObservationBuilder(spec)
    assert builder.build(make_scan(360, 360.0), ORIGIN, STILL, (2.5, 0))[4] == pytest.approx(0.5)
    assert builder.build(make_scan(360, 360.0), ORIGIN, STILL, (50, 0))[4] == pytest.approx(1.0)


def test_velocity_and_previous_action_terms():
    card = small_card(sectors=4)
    obs = ObservationBuilder(card.observation).build(
        make_scan(360, 360.0), ORIGIN, (0.13, -0.91), (1, 0), previous_action=(0.5, 3.0)
    )
    np.testing.assert_allclose(obs[7:9], [0.5, -0.5], atol=1e-6)
    np.testing.assert_allclose(obs[9:11], [0.5, 1.0])  # previous action clipped to [-1, 1]
    assert obs.dtype == np.float32 and obs.shape == (card.observation.size,)


def test_history_stacks_frames_newest_first():
    spec = ObservationSpec(
        scan=ScanSpec(4, 360.0, 4.0), goal=GoalSpec(None), velocity=None, history_length=3
    )
    builder = ObservationBuilder(spec)
    frames = [builder.build(make_scan(360, 360.0), ORIGIN, STILL, (d, 0)) for d in (1, 2, 3)]
    assert frames[0].shape == (21,)
    np.testing.assert_allclose(frames[0][[4, 11, 18]], [1, 1, 1])  # first call repeats the frame
    np.testing.assert_allclose(frames[2][[4, 11, 18]], [3, 2, 1])
    builder.reset()
    again = builder.build(make_scan(360, 360.0), ORIGIN, STILL, (5, 0))
    np.testing.assert_allclose(again[[4, 11, 18]], [5, 5, 5])


def test_history_stride_spaces_the_stacked_frames():
    spec = ObservationSpec(
        scan=ScanSpec(4, 360.0, 4.0),
        goal=GoalSpec(None),
        velocity=None,
        history_length=3,
        history_stride=2,
    )
    builder = ObservationBuilder(spec)
    built = [builder.build(make_scan(360, 360.0), ORIGIN, STILL, (d, 0)) for d in range(1, 8)]
    assert built[0].shape == (21,)
    np.testing.assert_allclose(built[0][[4, 11, 18]], [1, 1, 1])
    np.testing.assert_allclose(built[2][[4, 11, 18]], [3, 1, 1])  # steps 3, 1 and before
    np.testing.assert_allclose(built[6][[4, 11, 18]], [7, 5, 3])  # every second step


@pytest.mark.parametrize(
    ("pose", "velocity", "goal", "name"),
    [
        ((math.nan, 0, 0), STILL, (1, 0), "pose"),
        (ORIGIN, (math.inf, 0), (1, 0), "velocity"),
        (ORIGIN, STILL, (1, math.nan), "goal"),
        ((0, 0), STILL, (1, 0), "pose"),
    ],
)
def test_non_finite_or_misshapen_state_is_refused(pose, velocity, goal, name):
    with pytest.raises(ObservationError, match=name):
        ObservationBuilder(scan_only(4, 360.0)).build(make_scan(360, 360.0), pose, velocity, goal)


def test_scan_geometry_change_is_followed():
    builder = ObservationBuilder(scan_only(8, 360.0))
    a = builder.build(make_scan(360, 360.0, np.full(360, 1.0)), ORIGIN, STILL, (1, 0))
    b = builder.build(make_scan(720, 360.0, np.full(720, 2.0)), ORIGIN, STILL, (1, 0))
    assert a[0] == pytest.approx(0.25) and b[0] == pytest.approx(0.5)


def test_implicit_card_builds_69_values():
    obs = ObservationBuilder(implicit_card(0.26, 1.82).observation).build(
        make_scan(360, 360.0), ORIGIN, (0.1, 0.2), (3, 4)
    )
    assert obs.shape == (69,)
    np.testing.assert_allclose(obs[:64], 0.2)
    np.testing.assert_allclose(obs[64:], [5.0, 0.6, 0.8, 0.1, 0.2], atol=1e-6)


@pytest.mark.parametrize(("beams", "sectors"), [(360, 60), (360, 24), (720, 40), (1081, 36)])
def test_float32_and_float64_angles_give_the_same_observation(beams, sectors):
    """The simulator's float64 angles and LaserScan's float32 ones must not move beams."""
    rng = np.random.default_rng(beams)
    ranges = rng.uniform(0.2, 3.0, beams)
    increment = 2 * math.pi / beams
    spec = scan_only(sectors, 360.0)
    wide = ScanInput(ranges, -math.pi, increment, 0.1, 12.0)
    narrow = ScanInput(ranges, float(np.float32(-math.pi)), float(np.float32(increment)), 0.1, 12.0)
    a = ObservationBuilder(spec).build(wide, ORIGIN, STILL, (1, 0))
    b = ObservationBuilder(spec).build(narrow, ORIGIN, STILL, (1, 0))
    np.testing.assert_array_equal(a, b)
