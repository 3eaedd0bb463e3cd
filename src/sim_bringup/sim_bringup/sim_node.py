"""`mujoco_sim`: the embedded MuJoCo simulator as a ROS 2 node speaking a real robot's topics.

Publishes `/clock`, `odom` (wheel odometry, 50 Hz), `scan` (lidar rate, sensor-data QoS),
`sim/ground_truth`, `sim/collisions`, `sim/at_fault_collisions` and, with `publish_goals`,
the world's goals on `goal_pose` one after the other; consumes `cmd_vel` (Twist, or
TwistStamped with `enable_stamped_cmd_vel`). Sim time advances on a wall-clock timer at
`real_time_factor` at most, and in lockstep with the commands: never more than
`max_command_lead` past the last cmd_vel, unless none has come for `command_patience`
wall seconds (`CommandPacer`); every stamp is sim time (plus the `clock_offset` fault
injection, normally 0). All the scheduling logic lives in `sim_runner` (no rclpy).

    python -m sim_bringup.sim_node --ros-args -p world:=warehouse -p real_time_factor:=2.0
"""

from __future__ import annotations

import array
import math
import time
from dataclasses import replace

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import LaserScan
from std_msgs.msg import UInt32

from rlguard_common.node_shutdown import interrupts_end_quietly
from rlguard_common.profile_yaml import ProfileError
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_runner import (
    EVENT_CLOCK,
    EVENT_ODOM,
    EVENT_SCAN,
    CommandLatch,
    CommandPacer,
    GoalSequencer,
    SimStepper,
    goal_in_odom,
    world_point_in_odom,
)

try:  # tf2_msgs is not installable from the Jazzy wheels; publish TF only where it exists.
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None

# Wheel odometry: good x/y/yaw, unobserved z/roll/pitch (REP-105 style large variances).
POSE_COVARIANCE = np.diag([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2]).ravel()
TWIST_COVARIANCE = np.diag([1e-4, 1e-4, 1e6, 1e6, 1e6, 1e-3]).ravel()
# Odometry drift (m) after which a goal is re-sent at its corrected odom coordinates, as a
# localized robot's goal would be: well below the worlds' goal tolerances.
GOAL_REISSUE_DRIFT = 0.1
WALL_TICK = 0.01  # s of wall time between stepping ticks
MAX_TICK_WALL_BUDGET = 0.05  # s of wall time one tick may spend stepping before yielding


def _float_range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


def _int_range(low: int, high: int) -> list[IntegerRange]:
    return [IntegerRange(from_value=low, to_value=high, step=1)]


PARAMETERS: dict[str, tuple[object, str, dict]] = {
    "world": ("warehouse", "World name (worlds/<name>.yaml) or a world YAML path.", {}),
    "robot": ("default", "Robot profile name (config/robots/<name>.yaml) or a YAML path.", {}),
    "seed": (
        0,
        "Seed of the episode: physics randomization and sensor noise.",
        {"integer_range": _int_range(0, 2**31 - 1)},
    ),
    "randomize": (False, "Domain randomization within the robot profile's ranges.", {}),
    "real_time_factor": (
        1.0,
        "Sim seconds per wall second (runs as fast as it can if higher).",
        {"floating_point_range": _float_range(0.01, 10000.0)},
    ),
    "publish_goals": (False, "Publish the world's goals on goal_pose, the next when reached.", {}),
    "loop_goals": (False, "Start over with the first goal after the last one is reached.", {}),
    "goal_republish_period": (
        1.0,
        "Re-send the current goal this often (sim s) so late or restarted nodes get it; 0: "
        "only when it changes.",
        {"floating_point_range": _float_range(0.0, 3600.0)},
    ),
    "enable_stamped_cmd_vel": (False, "Subscribe to cmd_vel as TwistStamped instead of Twist.", {}),
    "velocity_timeout": (
        0.15,
        "A cmd_vel older than this (sim s) stops the wheels. The default is the safety "
        "controller's reaction_time: the guard's budget covers every command the base runs.",
        {"floating_point_range": _float_range(0.01, 10.0)},
    ),
    "max_command_lead": (
        0.1,
        "Lockstep: sim time runs at most this far (sim s) past the last cmd_vel received, "
        "so a loaded CPU slows the simulation instead of the stack falling behind it; "
        "0 disables. Must be shorter than velocity_timeout.",
        {"floating_point_range": _float_range(0.0, 10.0)},
    ),
    "command_patience": (
        1.0,
        "Wall seconds without any cmd_vel after which the simulation stops waiting for "
        "commands and runs at real_time_factor (a dead controller: the base timeout stops "
        "the robot); the next cmd_vel resumes lockstep.",
        {"floating_point_range": _float_range(0.01, 3600.0)},
    ),
    "odom_rate_hz": (
        50.0,
        "Rate of odom and sim/ground_truth (sim time).",
        {"floating_point_range": _float_range(1.0, 200.0)},
    ),
    "clock_rate_hz": (
        100.0,
        "Rate of /clock messages (sim time).",
        {"floating_point_range": _float_range(1.0, 200.0)},
    ),
    "sensor_fault": (
        "none",
        "Fault injection: 'none', 'no_scan' (lidar silent), 'nan_scan' (every range NaN) or "
        "'no_odom' (base driver silent).",
        {},
    ),
    "clock_offset": (
        0.0,
        "Fault injection: seconds added to every published time (/clock and stamps); "
        "lowering it by N makes /clock jump back N s while the physics runs on. Refused "
        "if it would put /clock before 0.",
        {"floating_point_range": _float_range(-86400.0, 86400.0)},
    ),
    "odom_frame_id": ("odom", "Frame of odom and goal_pose.", {}),
    "base_frame_id": ("base_footprint", "Child frame of odom.", {}),
    "scan_frame_id": ("base_scan", "Frame of scan.", {}),
    "world_frame_id": ("world", "Frame of sim/ground_truth.", {}),
}
# Changing these rebuilds the simulator (a new episode) on the next tick.
REBUILD_PARAMETERS = {"world", "robot", "seed", "randomize", "odom_rate_hz", "clock_rate_hz"}
READ_ONLY = {"enable_stamped_cmd_vel"}
FRAME_PARAMETERS = {"odom_frame_id", "base_frame_id", "scan_frame_id", "world_frame_id"}
SENSOR_FAULTS = ("none", "no_scan", "nan_scan", "no_odom")


def sim_stamp(seconds: float) -> Time:
    """A builtin_interfaces/Time for a sim time in seconds."""
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def _yaw_quaternion(yaw: float, target: object) -> None:
    target.x, target.y = 0.0, 0.0
    target.z, target.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)


class MujocoSimNode(Node):
    """Steps the embedded simulator on a wall timer and publishes what a robot would."""

    def __init__(self) -> None:
        super().__init__("mujoco_sim")
        for name, (default, description, ranges) in PARAMETERS.items():
            descriptor = ParameterDescriptor(
                description=description, read_only=name in READ_ONLY, **ranges
            )
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched_goals = QoSProfile(
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", reliable)
        self._odom_pub = self.create_publisher(Odometry, "odom", reliable)
        self._truth_pub = self.create_publisher(Odometry, "sim/ground_truth", reliable)
        self._scan_pub = self.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self._collision_pub = self.create_publisher(UInt32, "sim/collisions", reliable)
        self._at_fault_pub = self.create_publisher(UInt32, "sim/at_fault_collisions", reliable)
        self._goal_pub = self.create_publisher(PoseStamped, "goal_pose", latched_goals)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)
        self._tf_pub = self.create_publisher(TFMessage, "tf", reliable) if TFMessage else None
        command_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        if self._values["enable_stamped_cmd_vel"]:
            self.create_subscription(TwistStamped, "cmd_vel", self._on_stamped_cmd, command_qos)
        else:
            self.create_subscription(Twist, "cmd_vel", self._on_cmd, command_qos)

        # Messages reused for every publish (constructing one costs more than publishing it).
        self._clock_msg = ClockMsg()
        self._odom_msg = Odometry()
        self._truth_msg = Odometry()
        self._latch = CommandLatch(timeout=self._values["velocity_timeout"])
        self._pacer = CommandPacer(
            self._values["max_command_lead"], self._values["command_patience"]
        )
        self._held_since: float | None = None  # wall time the simulation began to wait
        problem = self._validate(self._values, set())
        if problem:
            self.get_logger().error(f"invalid start parameters: {problem}")
        self._stepping = False
        self._build_simulator()
        self._rebuild_requested = False
        self._wall_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._wall_start = time.monotonic()
        self._sim_start = 0.0
        self._rtf_window = (time.monotonic(), 0.0, 0.0)
        self._achieved_rtf = 0.0
        self._waiting_fraction = 0.0
        self._timer = self.create_timer(WALL_TICK, self._on_tick, clock=self._wall_clock)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics, clock=self._wall_clock)
        self.get_logger().info(
            f"mujoco_sim ready: world '{self._world.name}', robot '{self._robot.name}', "
            f"seed {self._values['seed']}, randomize {self._values['randomize']}, "
            f"real_time_factor {self._values['real_time_factor']}, "
            f"max_command_lead {self._values['max_command_lead']}"
        )

    # ------------------------------------------------------------------ set-up

    def _build_simulator(self) -> None:
        values = self._values
        self._robot = load_robot_profile(values["robot"])
        self._world = load_world(values["world"])
        self.sim = Simulator(
            self._robot, self._world, seed=int(values["seed"]), randomize=values["randomize"]
        )
        self._stepper = SimStepper(
            self.sim,
            odom_rate_hz=values["odom_rate_hz"],
            scan_rate_hz=self._robot.lidar.rate_hz,
            clock_rate_hz=values["clock_rate_hz"],
        )
        self._goals = GoalSequencer(
            self._world.goals, self._world.goal_tolerance, loop=values["loop_goals"]
        )
        self._latch.stamp = -math.inf
        self._pacer.reset()
        self._held_since = None
        self._collisions_published = (-1, -1)
        self._odom_events = 0
        self._goal_sent_at = -math.inf
        self._goal_issued: tuple[int, tuple[float, float]] | None = None
        self._wall_start = time.monotonic()
        self._sim_start = 0.0
        if values["publish_goals"]:
            self._publish_goal()

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        proposed = dict(self._values)
        for parameter in parameters:
            if parameter.name in PARAMETERS:
                proposed[parameter.name] = parameter.value
        reason = self._validate(proposed, {p.name for p in parameters})
        if not reason and self.sim.time + proposed["clock_offset"] < 0.0:
            reason = (
                f"clock_offset {proposed['clock_offset']!r} would put /clock before 0 "
                f"(sim time is {self.sim.time:.3f} s)"
            )
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        changed = {p.name for p in parameters if p.name in PARAMETERS}
        self._values = proposed
        self._latch.timeout = proposed["velocity_timeout"]
        self._pacer.lead = proposed["max_command_lead"]
        self._pacer.patience = proposed["command_patience"]
        self._goals.loop = proposed["loop_goals"]
        if "real_time_factor" in changed:
            self._wall_start, self._sim_start = time.monotonic(), self.sim.time
        if changed & REBUILD_PARAMETERS:
            self._rebuild_requested = True
        return SetParametersResult(successful=True)

    @staticmethod
    def _validate(values: dict, names: set[str]) -> str:
        offset = values["clock_offset"]
        if not isinstance(offset, float) or not math.isfinite(offset):
            return f"clock_offset must be a finite number, got {offset!r}"
        for key in ("real_time_factor", "velocity_timeout", "odom_rate_hz", "clock_rate_hz"):
            value = values[key]
            if not isinstance(value, float) or not math.isfinite(value) or value <= 0.0:
                return f"{key} must be a finite number > 0, got {value!r}"
        lead = values["max_command_lead"]
        if not isinstance(lead, float) or not math.isfinite(lead) or lead < 0.0:
            return f"max_command_lead must be a finite number >= 0, got {lead!r}"
        if lead >= values["velocity_timeout"]:
            return (
                f"max_command_lead {lead!r} must be shorter than velocity_timeout "
                f"{values['velocity_timeout']!r} (0 disables lockstep)"
            )
        patience = values["command_patience"]
        if not isinstance(patience, float) or not math.isfinite(patience) or patience <= 0.0:
            return f"command_patience must be a finite number > 0, got {patience!r}"
        if values["sensor_fault"] not in SENSOR_FAULTS:
            return f"sensor_fault must be one of {SENSOR_FAULTS}, got {values['sensor_fault']!r}"
        period = values["goal_republish_period"]
        if not isinstance(period, float) or not math.isfinite(period) or period < 0.0:
            return f"goal_republish_period must be a finite number >= 0, got {period!r}"
        for key in FRAME_PARAMETERS:
            if not isinstance(values[key], str) or not values[key]:
                return f"{key} must be a non-empty frame name"
        if not isinstance(values["seed"], int) or values["seed"] < 0:
            return f"seed must be a non-negative integer, got {values['seed']!r}"
        try:
            if "world" in names:
                load_world(values["world"])
            if "robot" in names:
                load_robot_profile(values["robot"])
        except ProfileError as error:
            return str(error)
        return ""

    # ------------------------------------------------------------------ inputs

    def _on_cmd(self, msg: Twist) -> None:
        # Applied from the sim time it arrives at: the stepper re-reads the latch at every
        # stop, and a held simulation resumes right here, from this instant.
        self._latch.set(float(msg.linear.x), float(msg.angular.z), self.sim.time)
        self._pacer.command(self.sim.time, time.monotonic())
        if self._held_since is not None and not self._rebuild_requested:
            self._advance()

    def _on_stamped_cmd(self, msg: TwistStamped) -> None:
        self._on_cmd(msg.twist)

    # ------------------------------------------------------------------ stepping

    def _on_tick(self) -> None:
        if self._rebuild_requested:
            self._rebuild_requested = False
            self._build_simulator()
        self._advance()

    def _advance(self) -> None:
        """Step toward real time at `real_time_factor`, as far as the pacer allows."""
        if self._stepping:
            return  # a command arrived while stepping (not with this executor; be safe)
        self._stepping = True
        try:
            self._advance_paced()
        finally:
            self._stepping = False
        self._update_rtf()

    def _advance_paced(self) -> None:
        wall_now = time.monotonic()
        if self._held_since is not None:
            self._pacer.waited(wall_now - self._held_since)
            self._held_since = None
        rtf = self._values["real_time_factor"]
        target = self._sim_start + rtf * (wall_now - self._wall_start)
        limit = self._pacer.limit(target, wall_now)
        deadline = wall_now + MAX_TICK_WALL_BUDGET
        # Step in slices so a tick that cannot keep up gives the executor back
        # (commands keep arriving) instead of chasing an ever-growing target.
        while self.sim.time < limit - 1e-9 and time.monotonic() < deadline:
            if not self.context.ok():
                return  # shutting down (e.g. SIGTERM) while this tick runs
            slice_end = min(limit, self.sim.time + 0.1)
            for event in self._stepper.advance_to(slice_end, self._latch):
                self._publish(event)
        if limit < target - 1e-9 and self.sim.time >= limit - 1e-9:
            self._held_since = time.monotonic()  # waits for a command (resumes in _on_cmd)
        if self.sim.time < target - 0.2:
            # Behind by more than 0.2 s of sim time (held, or too slow): from here on run
            # at the ceiling again, do not catch up.
            self._wall_start, self._sim_start = time.monotonic(), self.sim.time

    def _update_rtf(self) -> None:
        wall_then, sim_then, waited_then = self._rtf_window
        wall_now = time.monotonic()
        if wall_now - wall_then >= 1.0:
            span = wall_now - wall_then
            self._achieved_rtf = (self.sim.time - sim_then) / span
            self._waiting_fraction = min(1.0, (self._pacer.waited_wall - waited_then) / span)
            self._rtf_window = (wall_now, self.sim.time, self._pacer.waited_wall)

    def _published_time(self) -> float:
        """Sim time as published: plus `clock_offset`, never before 0 (a new episode)."""
        return max(0.0, self.sim.time + self._values["clock_offset"])

    def _publish(self, event: str) -> None:
        stamp = sim_stamp(self._published_time())
        if event == EVENT_CLOCK:
            self._clock_msg.clock = stamp
            self._clock_pub.publish(self._clock_msg)
        elif event == EVENT_ODOM:
            self._publish_odometry(stamp)
            self._check_goal()
            # The running counts go out on every change and at 5 Hz for late joiners.
            counts = (self.sim.collision_count, self.sim.at_fault_collision_count)
            self._odom_events += 1
            if counts != self._collisions_published or self._odom_events % 10 == 0:
                self._collisions_published = counts
                self._collision_pub.publish(UInt32(data=counts[0]))
                self._at_fault_pub.publish(UInt32(data=counts[1]))
        elif event == EVENT_SCAN:
            self._publish_scan(stamp)

    def _publish_odometry(self, stamp: Time) -> None:
        values = self._values
        odom = self.sim.odometry()
        msg = self._odom_msg  # reused: publish() serializes immediately
        msg.header.stamp = stamp
        msg.header.frame_id = values["odom_frame_id"]
        msg.child_frame_id = values["base_frame_id"]
        msg.pose.pose.position.x, msg.pose.pose.position.y = odom.x, odom.y
        _yaw_quaternion(odom.yaw, msg.pose.pose.orientation)
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = odom.v, odom.w
        msg.pose.covariance = POSE_COVARIANCE
        msg.twist.covariance = TWIST_COVARIANCE
        if values["sensor_fault"] != "no_odom":
            self._odom_pub.publish(msg)

        truth = self._truth_msg
        truth.header.stamp = stamp
        truth.header.frame_id = values["world_frame_id"]
        truth.child_frame_id = values["base_frame_id"]
        x, y, yaw = self.sim.pose
        v, w = self.sim.velocity
        truth.pose.pose.position.x, truth.pose.pose.position.y = x, y
        _yaw_quaternion(yaw, truth.pose.pose.orientation)
        truth.twist.twist.linear.x, truth.twist.twist.angular.z = v, w
        self._truth_pub.publish(truth)

        if self._tf_pub is not None and values["sensor_fault"] != "no_odom":
            transform = TransformStamped()
            transform.header = msg.header
            transform.child_frame_id = msg.child_frame_id
            transform.transform.translation.x = odom.x
            transform.transform.translation.y = odom.y
            _yaw_quaternion(odom.yaw, transform.transform.rotation)
            self._tf_pub.publish(TFMessage(transforms=[transform]))

    def _publish_scan(self, stamp: Time) -> None:
        fault = self._values["sensor_fault"]
        if fault == "no_scan":
            return
        scan = self.sim.scan()
        if fault == "nan_scan":
            scan = replace(scan, ranges=np.full_like(scan.ranges, np.nan))
        lidar = self._robot.lidar
        msg = LaserScan()
        msg.header.stamp = stamp
        msg.header.frame_id = self._values["scan_frame_id"]
        msg.angle_min = scan.angle_min
        msg.angle_max = lidar.angle_max
        msg.angle_increment = scan.angle_increment
        msg.time_increment = 0.0
        msg.scan_time = 1.0 / lidar.rate_hz
        msg.range_min = scan.range_min
        msg.range_max = scan.range_max
        ranges = array.array("f")
        ranges.frombytes(scan.ranges.tobytes())  # 15x faster than assigning the ndarray
        msg.ranges = ranges
        self._scan_pub.publish(msg)

    def _check_goal(self) -> None:
        if not self._values["publish_goals"]:
            return
        x, y, _ = self.sim.pose
        before = self._goals.reached
        self._goals.update(x, y)
        if self._goals.reached != before:
            self.get_logger().info(f"goal {self._goals.reached} reached at t={self.sim.time:.1f}s")
            self._publish_goal()
            return
        # goal_pose is volatile for its subscribers (RViz publishes it so): a node that
        # starts or restarts after a goal was sent only learns it from a re-send.
        period = self._values["goal_republish_period"]
        if period > 0.0 and self.sim.time - self._goal_sent_at >= period - 1e-9:
            if self._goals.current is not None:
                self._publish_goal()

    def _publish_goal(self) -> None:
        goal = self._goals.current
        if goal is None:
            self.get_logger().info("all goals reached")
            return
        odom = self.sim.odometry()
        in_odom = world_point_in_odom(goal, self.sim.pose, (odom.x, odom.y, odom.yaw))
        issued = None if self._goal_issued is None else self._goal_issued[1]
        if self._goal_issued is None or self._goal_issued[0] != self._goals.reached:
            issued = None
        goal = goal_in_odom(issued, in_odom, GOAL_REISSUE_DRIFT)
        if goal != issued and issued is not None:
            self.get_logger().info(
                f"goal {self._goals.reached + 1} re-expressed in odom after "
                f"{math.dist(goal, issued):.2f} m of odometry drift"
            )
        self._goal_issued = (self._goals.reached, goal)
        msg = PoseStamped()
        msg.header.stamp = sim_stamp(self._published_time())
        msg.header.frame_id = self._values["odom_frame_id"]
        msg.pose.position.x, msg.pose.position.y = goal
        msg.pose.orientation.w = 1.0
        self._goal_pub.publish(msg)
        self._goal_sent_at = self.sim.time

    def _publish_diagnostics(self) -> None:
        sim = self.sim
        status = DiagnosticStatus(name=f"{self.get_name()}: simulator", hardware_id="mujoco")
        lagging = self._achieved_rtf < 0.8 * self._values["real_time_factor"]
        status.level = DiagnosticStatus.WARN if lagging else DiagnosticStatus.OK
        if not lagging:
            status.message = "running"
        elif self._waiting_fraction >= 0.5:
            status.message = "slower than real_time_factor: waiting for cmd_vel (lockstep)"
        else:
            status.message = "slower than real_time_factor"
        wall_now = time.monotonic()
        if not self._pacer.enabled:
            pacing = "off"
        elif self._pacer.free(wall_now):
            pacing = "free (no cmd_vel)"
        else:
            pacing = "lockstep"
        goal = self._goals.current
        values = {
            "sim_time": f"{sim.time:.3f}",
            "clock_offset": f"{self._values['clock_offset']:.3f}",
            "real_time_factor_achieved": f"{self._achieved_rtf:.2f}",
            "pacing": pacing,
            "max_command_lead": f"{self._pacer.lead:.3f}",
            "waiting_for_cmd_vel_fraction": f"{self._waiting_fraction:.2f}",
            "waiting_for_cmd_vel_wall_s": f"{self._pacer.waited_wall:.2f}",
            "pacing_releases": str(self._pacer.releases),
            "world": self._world.name,
            "collisions": str(sim.collision_count),
            "at_fault_collisions": str(sim.at_fault_collision_count),
            "in_collision": str(sim.in_collision),
            "goals_reached": str(self._goals.reached),
            "current_goal": "none" if goal is None else f"{goal[0]:.2f},{goal[1]:.2f}",
            "cmd_vel_timed_out": str(self._latch.timed_out),
            "cmd_vel_timeouts": str(self._latch.timeouts),
            "cmd_vel_non_finite": str(self._latch.non_finite_count),
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = sim_stamp(self._published_time())
        self._diag_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the simulator node until shutdown (Ctrl-C, even repeated, ends it with code 0)."""
    with interrupts_end_quietly():
        rclpy.init(args=args)
        node = None
        try:
            node = MujocoSimNode()
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            if rclpy.ok():
                raise
            # the signal shut the context down under the executor: that is the shutdown
        finally:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
