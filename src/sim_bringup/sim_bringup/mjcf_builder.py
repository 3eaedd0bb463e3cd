"""The MuJoCo model (MJCF) of a differential-drive robot in a world (no rclpy, no MuJoCo).

`build_mjcf` writes the XML the `Simulator` loads: a free-floating chassis on two hinge
wheels driven by velocity actuators with torque limits and tyre friction, a frictionless
ball caster, static walls/boxes/cylinders and mocap cylinders for the moving obstacles.
The chassis and wheel inertias (`chassis_inertial`, `wheel_inertia`) are shared with the
Gazebo model (`gazebo_gen`), so both simulators carry the same robot.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import quoteattr

import numpy as np

from rlguard_common.robot_profile import RobotProfile
from rlguard_common.world import World

PHYSICS_TIMESTEP = 0.005  # s; implicitfast integration keeps the stiff wheel actuators stable
CASTER_RADIUS = 0.012
CHASSIS_CLEARANCE = 0.012  # gap between the floor and the bottom of the chassis cylinder
WHEEL_VELOCITY_GAIN = 0.3  # N m s / rad: velocity actuator gain (torque per speed error)
WHEEL_ARMATURE = 1e-3  # kg m^2: gearbox-reflected motor inertia of an XL430-class servo

# Geom groups: lidar rays see static obstacles (0) and moving obstacles (1) only.
GROUP_STATIC, GROUP_MOVING, GROUP_FLOOR, GROUP_ROBOT = 0, 1, 2, 3
LIDAR_GEOMGROUP = np.array([1, 1, 0, 0, 0, 0], dtype=np.uint8)
# Collision bits (1 robot, 2 obstacle, 4 floor contact): the robot touches obstacles,
# only wheels and caster touch the floor, obstacles and the floor never touch each other.
# The wheels (inside the chassis outline) touch the floor only.
# Pairs that cannot touch are skipped before the (costly) narrow phase.
ROBOT_COLLISION = 'contype="1" conaffinity="2"'
ROLLING_COLLISION = 'contype="5" conaffinity="6"'
WHEEL_COLLISION = 'contype="4" conaffinity="4"'
WORLD_COLLISION = 'contype="2" conaffinity="1"'
FLOOR_COLLISION = 'contype="4" conaffinity="4"'
NO_COLLISION = 'contype="0" conaffinity="0"'


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def build_mjcf(robot: RobotProfile, world: World) -> str:
    """The MJCF model (XML text) of `robot` standing at the world's start pose."""
    h = world.obstacle_height
    floor_x = world.arena_size[0] / 2.0 + 2.0 * world.wall_thickness + 1.0
    floor_y = world.arena_size[1] / 2.0 + 2.0 * world.wall_thickness + 1.0
    parts = [
        f"<mujoco model={quoteattr('rlguard_' + world.name)}>",
        '  <compiler angle="radian" autolimits="true"/>',
        f'  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast" cone="pyramidal"/>',
        "  <worldbody>",
        f'    <geom name="floor" type="plane" size="{_fmt(floor_x, floor_y, 0.1)}" '
        f'group="{GROUP_FLOOR}" {FLOOR_COLLISION} friction="1 0.005 0.0001"/>',
    ]
    for i, wall in enumerate(world.all_walls()):
        (x0, y0), (x1, y1) = wall.start, wall.end
        length = math.hypot(x1 - x0, y1 - y0)
        yaw = math.atan2(y1 - y0, x1 - x0)
        parts.append(
            f'    <geom name="wall_{i}" type="box" '
            f'pos="{_fmt((x0 + x1) / 2, (y0 + y1) / 2, h / 2)}" '
            f'size="{_fmt(length / 2, wall.thickness / 2, h / 2)}" euler="0 0 {yaw:.6g}" '
            f'group="{GROUP_STATIC}" {WORLD_COLLISION}/>'
        )
    for i, box in enumerate(world.boxes):
        parts.append(
            f'    <geom name="box_{i}" type="box" pos="{_fmt(*box.center, h / 2)}" '
            f'size="{_fmt(box.size[0] / 2, box.size[1] / 2, h / 2)}" euler="0 0 {box.yaw:.6g}" '
            f'group="{GROUP_STATIC}" {WORLD_COLLISION}/>'
        )
    for i, cyl in enumerate(world.cylinders):
        parts.append(
            f'    <geom name="cylinder_{i}" type="cylinder" pos="{_fmt(*cyl.center, h / 2)}" '
            f'size="{_fmt(cyl.radius, h / 2)}" group="{GROUP_STATIC}" {WORLD_COLLISION}/>'
        )
    for i, mover in enumerate(world.moving_cylinders):
        parts.append(
            f'    <body name="moving_{i}" mocap="true" pos="{_fmt(*mover.waypoints[0], h / 2)}">'
            f'<geom name="moving_{i}" type="cylinder" size="{_fmt(mover.radius, h / 2)}" '
            f'group="{GROUP_MOVING}" {WORLD_COLLISION}/></body>'
        )
    parts.extend(_robot_mjcf(robot, world.start))
    parts += ["  </worldbody>", "  <actuator>"]
    for side in ("left", "right"):
        parts.append(
            f'    <velocity name="{side}_motor" joint="wheel_{side}_joint" '
            f'kv="{WHEEL_VELOCITY_GAIN}" '
            f'ctrlrange="{_fmt(-robot.max_wheel_speed, robot.max_wheel_speed)}" '
            f'forcerange="{_fmt(-robot.max_wheel_torque, robot.max_wheel_torque)}"/>'
        )
    parts += ["  </actuator>", "</mujoco>"]
    return "\n".join(parts) + "\n"


def chassis_inertial(robot: RobotProfile) -> tuple[float, float, float, float]:
    """Centre of mass (x, z) and inertia (ixx = iyy, izz) of the chassis (both simulators).

    The mass sits behind the axle, towards the caster, and low like a battery pack, so
    the base neither rests on its front edge nor tips over when braking hard.
    """
    com_x = robot.caster_x * 0.45
    com_z = CHASSIS_CLEARANCE + robot.base_height * 0.3
    ixx = robot.mass * (3 * robot.footprint_radius**2 + robot.base_height**2) / 12.0
    izz = robot.mass * robot.footprint_radius**2 / 2.0
    return com_x, com_z, ixx, izz


def wheel_inertia(robot: RobotProfile) -> tuple[float, float]:
    """Inertia of a wheel about a diameter and about its axle (solid disc)."""
    r = robot.wheel_radius
    across = robot.wheel_mass * (3 * r**2 + robot.wheel_width**2) / 12.0
    axle = robot.wheel_mass * r**2 / 2.0
    return across, axle


def _robot_mjcf(robot: RobotProfile, start: tuple[float, float, float]) -> list[str]:
    r = robot.wheel_radius
    chassis_half = robot.base_height / 2.0
    com_x, com_z, ixx, izz = chassis_inertial(robot)
    radius = robot.footprint_radius
    wheel_ixx, wheel_iyy = wheel_inertia(robot)
    lidar = robot.lidar
    lines = [
        f'    <body name="base" pos="{_fmt(start[0], start[1], 0.0)}" euler="0 0 {start[2]:.6g}">',
        '      <freejoint name="base_free"/>',
        f'      <inertial pos="{_fmt(com_x, 0.0, com_z)}" mass="{robot.mass:.6g}" '
        f'diaginertia="{_fmt(ixx, ixx, izz)}"/>',
        f'      <geom name="chassis" type="cylinder" size="{_fmt(radius, chassis_half)}" '
        f'pos="{_fmt(0.0, 0.0, CHASSIS_CLEARANCE + chassis_half)}" group="{GROUP_ROBOT}" '
        f"{ROBOT_COLLISION}/>",
        f'      <geom name="lidar_housing" type="cylinder" size="0.035 0.0125" '
        f'pos="{_fmt(lidar.mount_x, lidar.mount_y, lidar.mount_z)}" group="{GROUP_ROBOT}" '
        f"{NO_COLLISION}/>",  # inside the chassis footprint: visual only
        f'      <geom name="caster" type="sphere" size="{CASTER_RADIUS}" '
        f'pos="{_fmt(robot.caster_x, 0.0, CASTER_RADIUS)}" condim="1" priority="1" '
        f'group="{GROUP_ROBOT}" {ROLLING_COLLISION}/>',
    ]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lines += [
            f'      <body name="wheel_{side}" '
            f'pos="{_fmt(0.0, sign * robot.wheel_separation / 2, r)}">',
            f'        <joint name="wheel_{side}_joint" type="hinge" axis="0 1 0" '
            f'armature="{WHEEL_ARMATURE}"/>',
            f'        <inertial pos="0 0 0" mass="{robot.wheel_mass:.6g}" '
            f'diaginertia="{_fmt(wheel_ixx, wheel_iyy, wheel_ixx)}"/>',
            # A sphere touches the floor in one point on the tyre's mid-plane, which is
            # where the odometry's wheel separation assumes it; a cylinder lying on the
            # floor makes contacts at both rim edges and scrubs when turning.
            f'        <geom name="wheel_{side}" type="sphere" size="{_fmt(r)}" '
            f'friction="{robot.wheel_friction:.6g} 0.005 0.0001" '
            f'condim="3" priority="1" group="{GROUP_ROBOT}" {WHEEL_COLLISION}/>',
            "      </body>",
        ]
    lines.append("    </body>")
    return lines
