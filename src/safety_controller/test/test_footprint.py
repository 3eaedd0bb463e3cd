import numpy as np
import pytest

from safety_controller.footprint import Footprint, FootprintError, parse_polygon

SQUARE = "[[0.2, 0.1], [-0.1, 0.1], [-0.1, -0.1], [0.2, -0.1]]"


def test_parse_polygon_string():
    polygon = parse_polygon(SQUARE)
    assert polygon.shape == (4, 2)
    assert polygon[0].tolist() == [0.2, 0.1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[0.2, 0.1], [0.1", "not a list"),
        ("[[0.2, 0.1, 3], [0, 0], [1, 1]]", "pairs"),
        ('[["a", 0.1], [0, 0], [1, 1]]', "pairs"),
        ("[[0.2, 0.1], [0, 0]]", "at least 3"),
        ("[[0, 0], [1, 1], [2, 2]]", "no area"),
        ("[[0, 0], [2, 1], [2, 0], [0, 2]]", "cross"),
        ("[[0, 0], [1, NaN], [1, 0]]", "non-finite"),
    ],
)
def test_bad_polygon_strings_raise_with_a_reason(text, message):
    with pytest.raises(FootprintError, match=message):
        parse_polygon(text)


def test_from_parameters_prefers_polygon_and_falls_back_to_radius():
    assert Footprint.from_parameters("", 0.11, 0.05).polygon is None
    assert Footprint.from_parameters("[]", 0.11, 0.05).radius == 0.11
    polygon = Footprint.from_parameters(SQUARE, 0.11, 0.05)
    assert polygon.polygon is not None
    assert polygon.bounding_radius == pytest.approx(np.hypot(0.2, 0.1) + 0.05)


def test_invalid_radius_or_margin_rejected():
    with pytest.raises(FootprintError):
        Footprint(radius=0.0)
    with pytest.raises(FootprintError):
        Footprint(radius=0.1, margin=-0.01)


def test_circle_clearance():
    footprint = Footprint(radius=0.1, margin=0.05)
    np.testing.assert_allclose(
        footprint.clearance(np.array([[1.0, 0.0], [0.0, 0.1]])), [0.85, -0.05]
    )


def test_polygon_clearance_is_signed_and_includes_margin():
    footprint = Footprint(polygon=parse_polygon(SQUARE), margin=0.05)
    points = np.array([[0.5, 0.0], [0.0, 0.0], [0.3, 0.2], [0.2, 0.1]])
    expected = [0.3 - 0.05, -0.1 - 0.05, np.hypot(0.1, 0.1) - 0.05, -0.05]
    np.testing.assert_allclose(footprint.clearance(points), expected, atol=1e-12)


def test_clockwise_polygon_gives_the_same_boundary():
    ccw = Footprint(polygon=parse_polygon(SQUARE), margin=0.05)
    cw = Footprint(polygon=parse_polygon(SQUARE)[::-1].copy(), margin=0.05)
    np.testing.assert_allclose(np.sort(ccw.segments.ravel()), np.sort(cw.segments.ravel()))


def test_min_clearance_equals_the_minimum_over_all_points():
    rng = np.random.default_rng(5)
    for footprint in (
        Footprint(radius=0.11, margin=0.05),
        Footprint(polygon=parse_polygon(SQUARE), margin=0.05),
        Footprint(polygon=parse_polygon("[[0.5, 0.5], [0.6, 0.5], [0.6, 0.7]]"), margin=0.0),
    ):
        for _ in range(50):
            points = rng.uniform(-2, 2, size=(rng.integers(1, 60), 2))
            expected = footprint.clearance(points).min()
            assert footprint.min_clearance(points) == pytest.approx(expected, abs=1e-12)
    assert footprint.min_clearance(np.zeros((0, 2))) == np.inf
