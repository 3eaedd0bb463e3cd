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

The model comes from `mjcf_builder`, the moving obstacles' motion from `movers`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import mujoco
import numpy as np

from rlguard_common.geometry import quaternion_from_yaw, yaw_from_quaternion
from rlguard_common.robot_profile import RobotProfile
from rlguard_common.world import World
from sim_bringup.mjcf_builder import LIDAR_GEOMGROUP, PHYSICS_TIMESTEP, build_mjcf
from sim_bringup.movers import WaypointLoop

CHECK_INTERVAL_STEPS = 5  # physics steps between obstacle updates and contact checks
COLLISION_RELEASE_TIME = 0.1  # s without contact that ends a collision episode
# An at-fault contact: the robot's own velocity at the contact point, projected on the
# contact normal from the robot into the obstacle, exceeds this (m/s). Above the
# numerical jitter of a robot standing against an obstacle (~1e-4 m/s), far below any
# commanded speed.
AT_FAULT_SPEED = 0.005


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
        qx, qy, qz, qw = quaternion_from_yaw(yaw)
        d.qpos[3:7] = (qw, qx, qy, qz)  # MuJoCo orders a quaternion w, x, y, z
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
        return (float(q[0]), float(q[1]), yaw_from_quaternion(q[4], q[5], q[6], q[3]))

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
