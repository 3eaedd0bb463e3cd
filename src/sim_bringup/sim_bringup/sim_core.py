"""Embedded MuJoCo simulator of a differential-drive robot with a planar lidar (no rclpy).

The model is built from a `RobotProfile` and a `World`: a free-floating chassis on two
hinge wheels driven by velocity actuators with torque limits and tyre friction, a
frictionless ball caster, static walls/boxes/cylinders and mocap cylinders that loop
through waypoints. Commands are body velocities converted to wheel speeds, so
acceleration, wheel slip and payload mass come out of the physics, not a kinematic model.

Collisions are counted in episodes (`collision_count`); `at_fault_collision_count` counts
those the robot caused: at the episode's first contact check, the robot's own velocity at
a contact point had a component toward the obstacle (`closing_speed`).

Frames: the world frame is the world YAML's frame. `odometry()` reports wheel odometry in
an ``odom`` frame that coincides with the world frame at reset (the driver is started at
the start pose), so goals from the world file are valid ``odom`` coordinates; it drifts
from `pose` with wheel slip and with a randomized wheel radius (odometry calibration).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, replace
from xml.sax.saxutils import quoteattr

import mujoco
import numpy as np

from rlguard_common.robot_profile import RobotProfile
from rlguard_common.world import World

PHYSICS_TIMESTEP = 0.005  # s; implicitfast integration keeps the stiff wheel actuators stable
CHECK_INTERVAL_STEPS = 5  # physics steps between obstacle updates and contact checks
COLLISION_RELEASE_TIME = 0.1  # s without contact that ends a collision episode
# An at-fault contact: the robot's own velocity at the contact point, projected on the
# contact normal from the robot into the obstacle, exceeds this (m/s). Above the
# numerical jitter of a robot standing against an obstacle (~1e-4 m/s), far below any
# commanded speed.
AT_FAULT_SPEED = 0.005
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


@dataclass(frozen=True)
class ScanData:
    """One lidar scan in REP-117 convention: +inf no return, -inf too close, NaN dropout."""

    ranges: np.ndarray  # float32, one range per beam (m)
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float
    stamp: float  # sim time (s)

    @property
    def angles(self) -> np.ndarray:
        """Beam angles (rad) in the sensor frame."""
        return self.angle_min + self.angle_increment * np.arange(self.ranges.size)


@dataclass(frozen=True)
class Odometry:
    """Pose (x, y, yaw) in the odom frame and body velocities (v, w) as a base driver reports."""

    x: float
    y: float
    yaw: float
    v: float
    w: float


@dataclass(frozen=True)
class SimParameters:
    """The physical parameters of the current episode (nominal or randomized)."""

    friction: float
    mass: float
    wheel_radius: float
    actuator_delay: float
    lidar_noise: float
    lidar_dropout: float


@dataclass(frozen=True)
class ObstacleGeometry:
    """Obstacles at the current time: boxes [cx, cy, sx, sy, yaw] and cylinders [cx, cy, r]."""

    boxes: np.ndarray  # (N, 5): walls and static boxes
    cylinders: np.ndarray  # (M, 3): static cylinders, then moving ones at current positions
    moving: np.ndarray  # (M,) bool, True for a moving cylinder


class WaypointLoop:
    """Position along a closed polyline (waypoints, back to the first) at constant speed."""

    def __init__(self, waypoints: tuple[tuple[float, float], ...], speed: float) -> None:
        points = [(float(x), float(y)) for x, y in waypoints]
        self.segments = []  # (start x, start y, dx, dy, length, distance along the loop)
        travelled = 0.0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
            length = math.hypot(x1 - x0, y1 - y0)
            self.segments.append((x0, y0, x1 - x0, y1 - y0, length, travelled))
            travelled += length
        self.starts = [segment[5] for segment in self.segments]
        self.perimeter = travelled
        self.speed = speed

    def _segment(self, time: float) -> tuple[tuple[float, ...], float]:
        s = (self.speed * time) % self.perimeter
        index = max(bisect.bisect_right(self.starts, s) - 1, 0)
        return self.segments[index], s

    def position(self, time: float) -> tuple[float, float]:
        """Where the obstacle is at `time` (s); it starts at the first waypoint."""
        x0, y0 = self.segments[0][0], self.segments[0][1]
        if self.perimeter <= 0.0 or self.speed <= 0.0:
            return (x0, y0)
        (x0, y0, dx, dy, length, start), s = self._segment(time)
        fraction = (s - start) / length if length > 0.0 else 0.0
        return (x0 + fraction * dx, y0 + fraction * dy)

    def positions(self, times: np.ndarray) -> np.ndarray:
        """`position` at many times at once: (T, 2), the same arithmetic element-wise."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        x0, y0 = self.segments[0][0], self.segments[0][1]
        if self.perimeter <= 0.0 or self.speed <= 0.0:
            return np.tile((x0, y0), (len(t), 1)).astype(np.float64)
        table = np.asarray(self.segments, dtype=np.float64)
        s = np.mod(self.speed * t, self.perimeter)
        index = np.maximum(np.searchsorted(self.starts, s, side="right") - 1, 0)
        start_x, start_y, dx, dy, length, start = table[index].T
        safe = np.where(length > 0.0, length, 1.0)
        fraction = np.where(length > 0.0, (s - start) / safe, 0.0)
        return np.column_stack((start_x + fraction * dx, start_y + fraction * dy))

    def velocity(self, time: float) -> tuple[float, float]:
        """The obstacle's velocity (m/s) at `time`: along its current segment."""
        if self.perimeter <= 0.0 or self.speed <= 0.0:
            return (0.0, 0.0)
        (_, _, dx, dy, length, _), _ = self._segment(time)
        if length <= 0.0:
            return (0.0, 0.0)
        return (self.speed * dx / length, self.speed * dy / length)


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


def wheel_speeds(
    v: float, w: float, wheel_radius: float, wheel_separation: float, max_wheel_speed: float
) -> tuple[float, float]:
    """Left and right wheel speeds (rad/s) for body velocities (v, w).

    Non-finite inputs count as zero. When a wheel would exceed `max_wheel_speed`, both
    are scaled down together, which keeps the commanded turn radius.
    """
    v = v if math.isfinite(v) else 0.0
    w = w if math.isfinite(w) else 0.0
    left = (v - w * wheel_separation / 2.0) / wheel_radius
    right = (v + w * wheel_separation / 2.0) / wheel_radius
    largest = max(abs(left), abs(right))
    if largest > max_wheel_speed:
        scale = max_wheel_speed / largest
        left, right = left * scale, right * scale
    return (left, right)


def _yaw_from_quat(q: np.ndarray) -> float:
    w, x, y, z = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class Simulator:
    """A MuJoCo differential-drive robot in a world; see the module docstring."""

    def __init__(
        self, robot: RobotProfile, world: World, seed: int = 0, randomize: bool = False
    ) -> None:
        self.robot = robot
        self.world = world
        self.randomize = randomize
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(robot, world))
        self.data = mujoco.MjData(self.model)
        m = self.model
        name2id = mujoco.mj_name2id
        self._base_body = name2id(m, mujoco.mjtObj.mjOBJ_BODY, "base")
        self._floor_geom = name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self._wheel_geoms = [
            name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"wheel_{side}") for side in ("left", "right")
        ]
        self._wheel_bodies = [
            name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"wheel_{side}") for side in ("left", "right")
        ]
        wheel_joints = [
            name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"wheel_{side}_joint")
            for side in ("left", "right")
        ]
        self._wheel_qpos = [int(m.jnt_qposadr[j]) for j in wheel_joints]
        self._wheel_qvel = [int(m.jnt_dofadr[j]) for j in wheel_joints]
        robot_geom = np.isin(m.geom_bodyid, [self._base_body, *self._wheel_bodies])
        not_floor = np.arange(m.ngeom) != self._floor_geom
        # Geom pairs whose contact is a robot collision (floor excluded), as a set of
        # tuples: testing a handful of contacts in Python beats numpy's per-call overhead.
        counts = (robot_geom[:, None] | robot_geom[None, :]) & (
            not_floor[:, None] & not_floor[None, :]
        )
        self._collision_pairs = {(int(a), int(b)) for a, b in zip(*np.nonzero(counts), strict=True)}
        self._robot_geom = robot_geom
        self._base_velocity = np.zeros(6, dtype=np.float64)
        self._loops = [WaypointLoop(c.waypoints, c.speed) for c in world.moving_cylinders]
        self._nominal_mass = float(m.body_mass[self._base_body])
        self._nominal_inertia = m.body_inertia[self._base_body].copy()
        lidar = robot.lidar
        angles = lidar.angle_min + lidar.angle_increment * np.arange(lidar.beams) + lidar.mount_yaw
        self._ray_local = np.column_stack((np.cos(angles), np.sin(angles), np.zeros(lidar.beams)))
        self._ray_world = np.zeros((lidar.beams, 3), dtype=np.float64)
        self._ray_geomid = np.zeros(lidar.beams, dtype=np.int32)
        self._ray_dist = np.zeros(lidar.beams, dtype=np.float64)
        self._mount = np.array([lidar.mount_x, lidar.mount_y, lidar.mount_z])
        self._master_rng = np.random.default_rng(seed)
        self.params = self.nominal_parameters()
        self.reset(seed=seed)

    # ------------------------------------------------------------------ episode set-up

    def nominal_parameters(self) -> SimParameters:
        """The profile's nominal physical parameters (used when randomization is off)."""
        robot = self.robot
        return SimParameters(
            friction=robot.wheel_friction,
            mass=robot.mass,
            wheel_radius=robot.wheel_radius,
            actuator_delay=robot.actuator_delay,
            lidar_noise=robot.lidar.noise_std,
            lidar_dropout=robot.lidar.dropout,
        )

    def sample_parameters(self, rng: np.random.Generator) -> SimParameters:
        """Parameters drawn uniformly from the profile's randomization ranges."""
        ranges = self.robot.randomization

        def draw(bounds: tuple[float, float]) -> float:
            return float(rng.uniform(bounds[0], bounds[1]))

        return SimParameters(
            friction=draw(ranges.friction),
            mass=draw(ranges.mass),
            wheel_radius=draw(ranges.wheel_radius),
            actuator_delay=draw(ranges.actuator_delay),
            lidar_noise=draw(ranges.lidar_noise),
            lidar_dropout=draw(ranges.lidar_dropout),
        )

    def _apply_parameters(self, params: SimParameters) -> None:
        m = self.model
        for geom in self._wheel_geoms:
            m.geom_friction[geom, 0] = params.friction
            m.geom_size[geom, 0] = params.wheel_radius
            m.geom_rbound[geom] = params.wheel_radius
            m.geom_aabb[geom, 3:] = params.wheel_radius
        for body in self._wheel_bodies:
            m.body_pos[body, 2] = params.wheel_radius
        scale = params.mass / self._nominal_mass
        m.body_mass[self._base_body] = params.mass
        m.body_inertia[self._base_body] = self._nominal_inertia * scale
        self.params = params

    def reset(
        self, seed: int | None = None, start: tuple[float, float, float] | None = None
    ) -> None:
        """Start a new episode: robot at `start` (default: the world's), time 0.

        With a `seed` the episode (randomized parameters, sensor noise) is a function of
        the seed alone; without one the next episode seed comes from the previous state.
        """
        if seed is not None:
            self._master_rng = np.random.default_rng(seed)
        episode_seed = int(self._master_rng.integers(0, 2**63 - 1))
        param_rng = np.random.default_rng([episode_seed, 0])
        self._sensor_rng = np.random.default_rng([episode_seed, 1])
        params = self.sample_parameters(param_rng) if self.randomize else self.nominal_parameters()
        self._apply_parameters(params)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        x, y, yaw = start if start is not None else self.world.start
        d.qpos[0:3] = (x, y, 0.0)
        d.qpos[3:7] = (math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0))
        self._update_moving(0.0)
        mujoco.mj_forward(m, d)
        self._steps = 0
        self._target_steps = 0
        self._command_queue: deque[tuple[float, float, float]] = deque()
        self._odom = (float(x), float(y), float(yaw))
        self._last_wheel_angles = (
            float(d.qpos[self._wheel_qpos[0]]),
            float(d.qpos[self._wheel_qpos[1]]),
        )
        self._in_collision = False
        self._collision_count = 0
        self._at_fault_count = 0
        self._last_closing_speed = 0.0
        self._last_contact_time = -math.inf
        self._last_command = (0.0, 0.0)

    # ------------------------------------------------------------------ stepping

    @property
    def time(self) -> float:
        """Simulated time since reset (s)."""
        return self._steps * PHYSICS_TIMESTEP

    def wheel_command(self, v: float, w: float) -> tuple[float, float]:
        """Wheel speed targets (rad/s) for body velocities, using the nominal wheel radius."""
        robot = self.robot
        return wheel_speeds(v, w, robot.wheel_radius, robot.wheel_separation, robot.max_wheel_speed)

    def step(self, v_cmd: float, w_cmd: float, duration: float) -> None:
        """Advance `duration` s with the body velocity command (v_cmd m/s, w_cmd rad/s).

        The command reaches the wheels after the actuator delay; NaN/inf count as zero and
        wheel speeds are clamped to the wheel limit. Time advances in physics steps and
        never drifts: the step count follows the sum of the requested durations.
        """
        if not math.isfinite(duration) or duration <= 0.0:
            return
        self._last_command = self.wheel_command(float(v_cmd), float(w_cmd))
        self._command_queue.append((self.time + self.params.actuator_delay, *self._last_command))
        self._target_steps += duration / PHYSICS_TIMESTEP
        target = int(round(self._target_steps))
        m, d = self.model, self.data
        while self._steps < target:
            self._apply_due_commands()
            chunk = min(CHECK_INTERVAL_STEPS, target - self._steps)
            if self._loops:
                self._update_moving(self.time)
            mujoco.mj_step(m, d, chunk)
            self._steps += chunk
            self._integrate_odometry()
            self._check_collisions()

    def _apply_due_commands(self) -> None:
        queue = self._command_queue
        now = self.time + 1e-9
        while queue and queue[0][0] <= now:
            _, left, right = queue.popleft()
            self.data.ctrl[0] = left
            self.data.ctrl[1] = right

    def _update_moving(self, time: float) -> None:
        for i, loop in enumerate(self._loops):
            x, y = loop.position(time)
            self.data.mocap_pos[i, 0] = x
            self.data.mocap_pos[i, 1] = y

    def _integrate_odometry(self) -> None:
        qpos = self.data.qpos
        left, right = float(qpos[self._wheel_qpos[0]]), float(qpos[self._wheel_qpos[1]])
        last_left, last_right = self._last_wheel_angles
        self._last_wheel_angles = (left, right)
        r, sep = self.robot.wheel_radius, self.robot.wheel_separation
        distance = r * ((left - last_left) + (right - last_right)) / 2.0
        turn = r * ((right - last_right) - (left - last_left)) / sep
        x, y, yaw = self._odom
        heading = yaw + turn / 2.0
        self._odom = (
            x + distance * math.cos(heading),
            y + distance * math.sin(heading),
            math.remainder(yaw + turn, 2.0 * math.pi),
        )

    def _check_collisions(self) -> None:
        d = self.data
        touching = False
        if d.ncon:
            pairs = self._collision_pairs
            touching = any((a, b) in pairs for a, b in d.contact.geom.tolist())
        now = self.time
        if touching:
            if now - self._last_contact_time > COLLISION_RELEASE_TIME:
                self._collision_count += 1
                # The episode's fault is judged on its first contact check.
                self._last_closing_speed = self.closing_speed()
                if self._last_closing_speed > AT_FAULT_SPEED:
                    self._at_fault_count += 1
            self._last_contact_time = now
        self._in_collision = touching

    def closing_speed(self) -> float:
        """The robot's fastest approach to anything it touches now (m/s; 0 without contact).

        For every robot contact (floor excluded) the velocity of the base body at the
        contact point (translation plus rotation) is projected on the contact normal
        oriented from the robot into the other geom; the largest projection is returned.
        Positive means the robot itself moves into the contact; an obstacle pushing into
        a still or retreating robot gives zero or less.
        """
        d, m = self.data, self.model
        if not d.ncon:
            return 0.0
        pairs = self._collision_pairs
        mujoco.mj_objectVelocity(
            m, d, mujoco.mjtObj.mjOBJ_BODY, self._base_body, self._base_velocity, 0
        )
        omega, linear = self._base_velocity[:3], self._base_velocity[3:]
        origin = d.xpos[self._base_body]
        contacts = d.contact
        fastest = -math.inf
        for i, (a, b) in enumerate(contacts.geom.tolist()):
            if (a, b) not in pairs:
                continue
            normal = contacts.frame[i, :3]  # MuJoCo: from geom1 (a) to geom2 (b)
            if not self._robot_geom[a]:
                normal = -normal
            point_velocity = linear + np.cross(omega, contacts.pos[i] - origin)
            fastest = max(fastest, float(point_velocity @ normal))
        return fastest if math.isfinite(fastest) else 0.0

    # ------------------------------------------------------------------ state

    @property
    def pose(self) -> tuple[float, float, float]:
        """Ground-truth pose (x, y, yaw) of the base in the world frame."""
        q = self.data.qpos
        return (float(q[0]), float(q[1]), _yaw_from_quat(q[3:7]))

    @property
    def velocity(self) -> tuple[float, float]:
        """Measured body velocities (v forward m/s, w yaw rate rad/s)."""
        qvel = self.data.qvel
        yaw = self.pose[2]
        v = qvel[0] * math.cos(yaw) + qvel[1] * math.sin(yaw)
        return (float(v), float(qvel[5]))

    def odometry(self) -> Odometry:
        """Wheel odometry (nominal wheel radius) as a base driver would report it."""
        left, right = self.wheel_velocities
        r, sep = self.robot.wheel_radius, self.robot.wheel_separation
        return Odometry(
            x=float(self._odom[0]),
            y=float(self._odom[1]),
            yaw=float(self._odom[2]),
            v=r * (left + right) / 2.0,
            w=r * (right - left) / sep,
        )

    @property
    def wheel_velocities(self) -> tuple[float, float]:
        """Measured left and right wheel speeds (rad/s)."""
        qvel = self.data.qvel
        return (float(qvel[self._wheel_qvel[0]]), float(qvel[self._wheel_qvel[1]]))

    @property
    def in_collision(self) -> bool:
        """True while any robot geom touches anything but the floor."""
        return self._in_collision

    @property
    def collision_count(self) -> int:
        """Collision episodes since reset (a contact that starts after 0.1 s free counts once)."""
        return self._collision_count

    @property
    def at_fault_collision_count(self) -> int:
        """Collision episodes since reset in which the robot drove into the contact.

        An episode is at fault when, at its first contact check, the robot's velocity at
        a contact point has a component of more than `AT_FAULT_SPEED` toward the obstacle
        (see `closing_speed`); hit while still or while moving away is not at fault.
        Later contact checks in the same episode do not change its verdict.
        """
        return self._at_fault_count

    @property
    def goals(self) -> tuple[tuple[float, float], ...]:
        """The world's goal sequence (world/odom frame)."""
        return self.world.goals

    def scan(self) -> ScanData:
        """Ray-cast the lidar now (robot geoms excluded), with noise and dropout."""
        m, d = self.model, self.data
        mujoco.mj_kinematics(m, d)
        rotation = d.xmat[self._base_body].reshape(3, 3)
        origin = d.xpos[self._base_body] + rotation @ self._mount
        np.matmul(self._ray_local, rotation.T, out=self._ray_world)
        lidar = self.robot.lidar
        mujoco.mj_multiRay(
            m,
            d,
            origin,
            self._ray_world.reshape(-1),
            LIDAR_GEOMGROUP,
            1,
            self._base_body,
            self._ray_geomid,
            self._ray_dist,
            None,
            lidar.beams,
            lidar.range_max,
        )
        ranges = self._ray_dist.astype(np.float32)
        ranges[self._ray_geomid < 0] = np.inf  # no return within range_max
        params = self.params
        if params.lidar_noise > 0.0:
            noise = self._sensor_rng.standard_normal(lidar.beams, dtype=np.float32)
            ranges += noise * np.float32(params.lidar_noise)
        ranges[ranges > lidar.range_max] = np.inf
        ranges[ranges < lidar.range_min] = -np.inf
        if params.lidar_dropout > 0.0:
            ranges[
                self._sensor_rng.random(lidar.beams, dtype=np.float32) < params.lidar_dropout
            ] = np.nan
        return ScanData(
            ranges=ranges,
            angle_min=lidar.angle_min,
            angle_increment=lidar.angle_increment,
            range_min=lidar.range_min,
            range_max=lidar.range_max,
            stamp=self.time,
        )

    def obstacles(self) -> ObstacleGeometry:
        """Obstacle geometry at the current time (for plotting, tests and planners)."""
        world = self.world
        boxes = []
        for wall in world.all_walls():
            (x0, y0), (x1, y1) = wall.start, wall.end
            length = math.hypot(x1 - x0, y1 - y0)
            yaw = math.atan2(y1 - y0, x1 - x0)
            boxes.append(((x0 + x1) / 2, (y0 + y1) / 2, length, wall.thickness, yaw))
        boxes += [(*b.center, *b.size, b.yaw) for b in world.boxes]
        cylinders = [(*c.center, c.radius) for c in world.cylinders]
        cylinders += [
            (*loop.position(self.time), mover.radius)
            for loop, mover in zip(self._loops, world.moving_cylinders, strict=True)
        ]
        moving = [False] * len(world.cylinders) + [True] * len(self._loops)
        return ObstacleGeometry(
            boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 5),
            cylinders=np.asarray(cylinders, dtype=np.float64).reshape(-1, 3),
            moving=np.asarray(moving, dtype=bool),
        )

    def moving_obstacles(self) -> np.ndarray:
        """The moving obstacles now, rows (x, y, vx, vy, radius) in the world frame.

        Ground truth a real robot does not have: for privileged experts and tests.
        """
        rows = [
            (*loop.position(self.time), *loop.velocity(self.time), mover.radius)
            for loop, mover in zip(self._loops, self.world.moving_cylinders, strict=True)
        ]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def without_sensor_noise(robot: RobotProfile) -> RobotProfile:
    """A copy of `robot` whose lidar has no noise and no dropout (for exact checks)."""
    return replace(robot, lidar=replace(robot.lidar, noise_std=0.0, dropout=0.0))
