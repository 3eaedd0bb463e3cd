"""The MJCF the simulator loads, and the inertias both simulators share (no MuJoCo needed)."""

import subprocess
import sys

import pytest

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.mjcf_builder import (
    PHYSICS_TIMESTEP,
    build_mjcf,
    chassis_inertial,
    wheel_inertia,
)


@pytest.fixture(scope="module")
def robot():
    return load_robot_profile("default")


def test_mjcf_has_a_real_differential_drive(robot):
    xml = build_mjcf(robot, load_world("dynamic"))
    assert xml.count('type="hinge"') == 2
    assert xml.count("<velocity ") == 2
    assert "freejoint" in xml and 'mocap="true"' in xml
    assert f'forcerange="{-robot.max_wheel_torque:g} {robot.max_wheel_torque:g}"' in xml


def test_every_obstacle_of_the_world_is_a_geom(robot):
    world = load_world("dynamic")
    xml = build_mjcf(robot, world)
    assert f'timestep="{PHYSICS_TIMESTEP}"' in xml
    assert xml.count('name="wall_') == len(world.all_walls())
    assert xml.count('name="box_') == len(world.boxes)
    assert xml.count('name="cylinder_') == len(world.cylinders)
    assert xml.count('<body name="moving_') == len(world.moving_cylinders)
    assert f"rlguard_{world.name}" in xml


def test_inertias_are_those_of_a_cylinder_and_solid_discs(robot):
    com_x, com_z, ixx, izz = chassis_inertial(robot)
    assert izz == pytest.approx(robot.mass * robot.footprint_radius**2 / 2.0)
    assert ixx > 0.0 and com_z > 0.0
    assert com_x == pytest.approx(robot.caster_x * 0.45)  # toward the caster
    across, axle = wheel_inertia(robot)
    assert axle == pytest.approx(robot.wheel_mass * robot.wheel_radius**2 / 2.0)
    assert across > 0.0


def test_the_builder_does_not_need_mujoco():
    # gazebo_gen (and `make lint`) import the builder on machines without MuJoCo.
    code = "import sys; sys.modules['mujoco'] = None; import sim_bringup.mjcf_builder"
    subprocess.run([sys.executable, "-c", code], check=True)
