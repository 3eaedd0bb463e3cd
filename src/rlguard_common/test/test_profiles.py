import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rlguard_common.profile_yaml import ProfileError, world_names
from rlguard_common.robot_profile import load_robot_profile, robot_profile_from_dict
from rlguard_common.world import load_world, world_from_dict

SHIPPED_WORLDS = ["corridor", "dynamic", "empty", "warehouse"]


def default_robot_dict() -> dict:
    return yaml.safe_load(Path(load_robot_profile("default").source).read_text())


def world_dict(name: str = "warehouse") -> dict:
    return yaml.safe_load(Path(load_world(name).source).read_text())


def test_default_robot_is_turtlebot3_burger_class():
    robot = load_robot_profile("default")
    assert robot.wheel_radius == pytest.approx(0.033)
    assert robot.wheel_separation == pytest.approx(0.16)
    assert 0.105 <= robot.footprint_radius <= 0.13
    assert 0.22 <= robot.max_linear_velocity <= 0.26
    assert robot.max_angular_velocity == pytest.approx(
        2 * robot.max_linear_velocity / robot.wheel_separation
    )
    assert robot.lidar.beams == 360
    assert robot.lidar.full_circle
    assert robot.lidar.angle_increment == pytest.approx(math.radians(1.0))
    assert robot.lidar.angle_min == pytest.approx(-math.pi)


def test_shipped_worlds_load_with_three_to_five_goals():
    assert world_names() == SHIPPED_WORLDS
    for name in SHIPPED_WORLDS:
        world = load_world(name)
        assert world.name == name
        assert 3 <= len(world.goals) <= 5
        assert len(world.all_walls()) >= 4
    assert load_world("dynamic").moving_cylinders
    assert len(load_world("warehouse").boxes) >= 8


def test_load_by_path(tmp_path):
    path = tmp_path / "my_world.yaml"
    path.write_text(yaml.safe_dump(world_dict("empty")))
    assert load_world(path).name == "empty"
    assert load_world(str(path)).source == str(path)


def write(tmp_path: Path, data: dict, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d.pop("wheel_radius"), "wheel_radius", "missing"),
        (lambda d: d.update(mass="heavy"), "mass", "expected a number"),
        (lambda d: d.update(max_wheel_speed=-1.0), "max_wheel_speed", "must be > 0"),
        (lambda d: d["lidar"].update(beams=2.5), "lidar.beams", "expected an integer"),
        (lambda d: d["lidar"].update(range_max=0.1), "lidar.range_max", "above range_min"),
        (lambda d: d["lidar"].pop("fov"), "lidar.fov", "missing"),
        (lambda d: d["randomization"].update(mass=[2.0, 1.0]), "randomization.mass", "above"),
        (
            lambda d: d["randomization"].update(friction=[1.0]),
            "randomization.friction",
            "2 numbers",
        ),
        (lambda d: d.update(wheel_separation=0.5), "wheel_separation", "footprint"),
        (lambda d: d.update(footprint_radius=float("nan")), "footprint_radius", "finite"),
    ],
)
def test_bad_robot_yaml_names_file_field_and_reason(tmp_path, mutate, field, reason):
    data = default_robot_dict()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_robot_profile(path)
    assert info.value.file == str(path)
    assert info.value.field == field
    assert reason in info.value.reason
    assert str(path) in str(info.value) and field in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d.pop("goals"), "goals", "missing"),
        (lambda d: d.update(goals=[[1.0, 1.0], [99.0, 0.0]]), "goals[1]", "outside the arena"),
        (lambda d: d["start"].pop("x"), "start.x", "missing"),
        (lambda d: d["boxes"][0].update(size=[1.0, -2.0]), "boxes[0].size", "must be > 0"),
        (lambda d: d["cylinders"][1].update(radius="big"), "cylinders[1].radius", "number"),
        (lambda d: d["arena"].update(size=[3.0]), "arena.size", "2 numbers"),
        (lambda d: d.update(goal_tolerance=0), "goal_tolerance", "must be > 0"),
        (lambda d: d.update(boxes={"a": 1}), "boxes", "expected a list"),
    ],
)
def test_bad_world_yaml_names_file_field_and_reason(tmp_path, mutate, field, reason):
    data = world_dict("warehouse")
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_world(path)
    assert (info.value.file, info.value.field) == (str(path), field)
    assert reason in info.value.reason


def test_moving_cylinder_needs_two_waypoints(tmp_path):
    data = world_dict("dynamic")
    data["moving_cylinders"][0]["waypoints"] = [[0.0, 0.0]]
    with pytest.raises(ProfileError, match=r"moving_cylinders\[0\]\.waypoints"):
        load_world(write(tmp_path, data))


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_world("no_such_world")
    with pytest.raises(ProfileError, match="not found"):
        load_robot_profile("no_such_robot")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="invalid YAML"):
        load_world(broken)
    with pytest.raises(ProfileError, match="expected a mapping"):
        world_from_dict([1, 2], "list.yaml")
    with pytest.raises(ProfileError, match="cannot read"):
        load_robot_profile(tmp_path / "missing.yaml")


def test_from_dict_round_trip():
    robot = robot_profile_from_dict(default_robot_dict(), "inline")
    assert robot.source == "inline"
    assert replace(robot, source="x") == replace(load_robot_profile("default"), source="x")


def test_lidar270_is_the_default_body_with_a_270_degree_front_lidar():
    import numpy as np

    robot = load_robot_profile("lidar270")
    default = load_robot_profile("default")
    # Same body: everything but the name, the file and the lidar's field of view.
    same = ("name", "source", "lidar")
    for field in default.__dataclass_fields__:
        if field not in same:
            assert getattr(robot, field) == getattr(default, field), field
    lidar = robot.lidar
    assert replace(lidar, beams=360, fov=2.0 * math.pi) == default.lidar  # mounted alike
    assert not lidar.full_circle
    assert lidar.beams == 271
    assert lidar.angle_increment == pytest.approx(math.radians(1.0))
    assert lidar.angle_min == pytest.approx(-0.75 * math.pi)
    assert lidar.angle_max == pytest.approx(0.75 * math.pi)
    # The header the sim node publishes (float32 fields) implies its own beam count.
    f32 = np.float32
    implied = (f32(lidar.angle_max) - f32(lidar.angle_min)) / f32(lidar.angle_increment) + 1
    assert abs(float(implied) - lidar.beams) < 0.01
