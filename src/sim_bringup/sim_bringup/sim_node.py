"""`mujoco_sim`: the embedded MuJoCo simulator as a ROS 2 node speaking a real robot's topics.

Publishes `/clock`, `odom` (wheel odometry, 50 Hz), `scan` (lidar rate, sensor-data QoS),
`sim/ground_truth`, `sim/collisions`, `sim/at_fault_collisions` and, with `publish_goals`,
the world's goals on `goal_pose` one after the other; consumes `cmd_vel` (Twist, or
TwistStamped with `enable_stamped_cmd_vel`). Sim time advances on a wall-clock timer at
`real_time_factor` at most, and in lockstep with the commands: never more than
`max_command_lead` past the last cmd_vel, unless none has come for `command_patience`
wall seconds; every stamp is sim time (plus the `clock_offset` fault injection, normally 0).

This module is the ROS shell only: the parameters and their rules are in `node_config`,
stepping in `sim_runner`, pacing in `sim_pacing`, goals in `goal_schedule`, fault
injection in `sim_faults` and the diagnostics' content in `sim_status` (all without rclpy).

    python -m sim_bringup.sim_node --ros-args -p world:=warehouse -p real_time_factor:=2.0
"""

from __future__ import annotations

import array
import time

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Quaternion, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import LaserScan
from std_msgs.msg import UInt32

from rlguard_common import topics
from rlguard_common.geometry import quaternion_from_yaw
from rlguard_common.node_support import declare_parameters, qos_profile, run_node
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.goal_schedule import GoalIssue, GoalSchedule
from sim_bringup.node_config import (
    NODE_NAME,
    PARAMETERS,
    known_changes,
    needs_rebuild,
    parameter_problem,
)
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_faults import fault_injection
from sim_bringup.sim_pacing import WALL_TICK, CommandPacer, RealTimePacing
from sim_bringup.sim_runner import EVENT_CLOCK, EVENT_ODOM, EVENT_SCAN, CommandLatch, SimStepper
from sim_bringup.sim_status import CollisionReport, simulator_status

try:  # tf2_msgs is not installable from the Jazzy wheels; publish TF only where it exists.
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None

# Wheel odometry: good x/y/yaw, unobserved z/roll/pitch (REP-105 style large variances).
POSE_COVARIANCE = np.diag([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2]).ravel()
TWIST_COVARIANCE = np.diag([1e-4, 1e-4, 1e6, 1e6, 1e6, 1e-3]).ravel()
# goal_pose keeps the last goals for late joiners that ask for them (RViz-style readers
# are volatile and get the periodic re-send instead).


def sim_stamp(seconds: float) -> Time:
    """A builtin_interfaces/Time for a sim time in seconds."""
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def _set_yaw(target: Quaternion, yaw: float) -> None:
    target.x, target.y, target.z, target.w = quaternion_from_yaw(yaw)


class MujocoSimNode(Node):
    """Steps the embedded simulator on a wall timer and publishes what a robot would."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self._values = declare_parameters(self, PARAMETERS)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        values = self._values

        reliable = qos_profile(topics.RELIABLE)
        self._clock_pub = self.create_publisher(ClockMsg, topics.CLOCK, reliable)
        self._odom_pub = self.create_publisher(Odometry, topics.ODOM, reliable)
        self._truth_pub = self.create_publisher(Odometry, topics.SIM_GROUND_TRUTH, reliable)
        self._scan_pub = self.create_publisher(
            LaserScan, topics.SCAN, qos_profile(topics.SENSOR_DATA)
        )
        self._collision_pub = self.create_publisher(UInt32, topics.SIM_COLLISIONS, reliable)
        self._at_fault_pub = self.create_publisher(UInt32, topics.SIM_AT_FAULT_COLLISIONS, reliable)
        self._goal_pub = self.create_publisher(
            PoseStamped, topics.GOAL_POSE, qos_profile(topics.GOAL)
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable)
        self._tf_pub = self.create_publisher(TFMessage, topics.TF, reliable) if TFMessage else None
        command_qos = qos_profile(topics.COMMAND)
        if values["enable_stamped_cmd_vel"]:
            self.create_subscription(
                TwistStamped, topics.CMD_VEL, self._on_stamped_cmd, command_qos
            )
        else:
            self.create_subscription(Twist, topics.CMD_VEL, self._on_cmd, command_qos)

        # Messages reused for every publish (constructing one costs more than publishing it).
        self._clock_msg = ClockMsg()
        self._odom_msg = Odometry()
        self._truth_msg = Odometry()
        self._latch = CommandLatch(timeout=values["velocity_timeout"])
        commands = CommandPacer(values["max_command_lead"], values["command_patience"])
        self._faults = fault_injection(values, int(values["seed"]))
        problem = parameter_problem(values)
        if problem:
            self.get_logger().error(f"invalid start parameters: {problem}")
        self._stepping = False
        self._rebuild_requested = False
        self._build_simulator()
        self._pacing = RealTimePacing(values["real_time_factor"], commands, time.monotonic())
        wall_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(WALL_TICK, self._on_tick, clock=wall_clock)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics, clock=wall_clock)
        self.get_logger().info(
            f"mujoco_sim ready: world '{self._world.name}', robot '{self._robot.name}', "
            f"seed {values['seed']}, randomize {values['randomize']}, "
            f"real_time_factor {values['real_time_factor']}, "
            f"max_command_lead {values['max_command_lead']}"
        )

    # ------------------------------------------------------------------ set-up

    def _build_simulator(self) -> None:
        """A new simulator (a new episode) from the parameters; sends the first goal."""
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
        self._goals = GoalSchedule(
            self._world.goals,
            self._world.goal_tolerance,
            loop=values["loop_goals"],
            republish_period=values["goal_republish_period"],
            enabled=values["publish_goals"],
        )
        self._latch.stamp = float("-inf")
        self._collision_report = CollisionReport()
        odom = self.sim.odometry()
        self._send_goal(self._goals.start(self.sim.time, self.sim.pose, (odom.x, odom.y, odom.yaw)))

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a change against the current values; a refused one changes nothing."""
        changes = known_changes({p.name: p.value for p in parameters})
        proposed = {**self._values, **changes}
        reason = parameter_problem(proposed, {p.name for p in parameters}, self.sim.time)
        return SetParametersResult(successful=not reason, reason=reason)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        """Apply a validated change (a rebuild, if any, happens on the next tick)."""
        changes = known_changes({p.name: p.value for p in parameters})
        self._values = values = {**self._values, **changes}
        self._latch.timeout = values["velocity_timeout"]
        self._pacing.commands.lead = values["max_command_lead"]
        self._pacing.commands.patience = values["command_patience"]
        if "real_time_factor" in changes:
            self._pacing.set_real_time_factor(
                values["real_time_factor"], self.sim.time, time.monotonic()
            )
        self._goals.loop = values["loop_goals"]
        self._goals.republish_period = values["goal_republish_period"]
        self._goals.enabled = values["publish_goals"]
        self._faults = fault_injection(values, int(values["seed"]))
        if needs_rebuild(changes):
            self._rebuild_requested = True

    # ------------------------------------------------------------------ inputs

    def _on_cmd(self, msg: Twist) -> None:
        # Applied from the sim time it arrives at: the stepper re-reads the latch at every
        # stop, and a held simulation resumes right here, from this instant.
        self._latch.set(float(msg.linear.x), float(msg.angular.z), self.sim.time)
        self._pacing.commands.command(self.sim.time, time.monotonic())
        if self._pacing.held and not self._rebuild_requested:
            self._advance()

    def _on_stamped_cmd(self, msg: TwistStamped) -> None:
        self._on_cmd(msg.twist)

    # ------------------------------------------------------------------ stepping

    def _on_tick(self) -> None:
        if self._rebuild_requested:
            self._rebuild_requested = False
            self._build_simulator()
            self._pacing.restart(time.monotonic())
        self._advance()

    def _advance(self) -> None:
        """Step toward real time at `real_time_factor`, as far as the pacing allows."""
        if self._stepping:
            return  # a command arrived while stepping (not with this executor; be safe)
        self._stepping = True
        try:
            plan = self._pacing.start_tick(time.monotonic())
            while (end := plan.next_slice(self.sim.time, time.monotonic())) is not None:
                if not self.context.ok():
                    return  # shutting down (e.g. SIGTERM) while this tick runs
                for event in self._stepper.advance_to(end, self._latch):
                    self._publish(event)
            self._pacing.end_tick(plan, self.sim.time, time.monotonic())
        finally:
            self._stepping = False
            self._pacing.measure(self.sim.time, time.monotonic())

    # ------------------------------------------------------------------ outputs

    def _stamp(self) -> Time:
        return sim_stamp(self._faults.published_time(self.sim.time))

    def _publish(self, event: str) -> None:
        stamp = self._stamp()
        if event == EVENT_CLOCK:
            self._clock_msg.clock = stamp
            self._clock_pub.publish(self._clock_msg)
        elif event == EVENT_ODOM:
            odom = self.sim.odometry()
            odom_pose = (odom.x, odom.y, odom.yaw)
            self._publish_odometry(stamp, odom_pose, (odom.v, odom.w))
            self._send_goal(self._goals.update(self.sim.time, self.sim.pose, odom_pose))
            counts = (self.sim.collision_count, self.sim.at_fault_collision_count)
            if self._collision_report.due(counts):
                self._collision_pub.publish(UInt32(data=counts[0]))
                self._at_fault_pub.publish(UInt32(data=counts[1]))
        elif event == EVENT_SCAN:
            self._publish_scan(stamp)

    def _publish_odometry(
        self,
        stamp: Time,
        odom_pose: tuple[float, float, float],
        odom_velocity: tuple[float, float],
    ) -> None:
        values = self._values
        msg = self._odom_msg  # reused: publish() serializes immediately
        msg.header.stamp = stamp
        msg.header.frame_id = values["odom_frame_id"]
        msg.child_frame_id = values["base_frame_id"]
        msg.pose.pose.position.x, msg.pose.pose.position.y = odom_pose[0], odom_pose[1]
        _set_yaw(msg.pose.pose.orientation, odom_pose[2])
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = odom_velocity
        msg.pose.covariance = POSE_COVARIANCE
        msg.twist.covariance = TWIST_COVARIANCE
        if self._faults.publishes_odom:
            self._odom_pub.publish(msg)

        truth = self._truth_msg
        truth.header.stamp = stamp
        truth.header.frame_id = values["world_frame_id"]
        truth.child_frame_id = values["base_frame_id"]
        x, y, yaw = self.sim.pose
        truth.pose.pose.position.x, truth.pose.pose.position.y = x, y
        _set_yaw(truth.pose.pose.orientation, yaw)
        truth.twist.twist.linear.x, truth.twist.twist.angular.z = self.sim.velocity
        self._truth_pub.publish(truth)

        if self._tf_pub is not None and self._faults.publishes_odom:
            transform = TransformStamped()
            transform.header = msg.header
            transform.child_frame_id = msg.child_frame_id
            transform.transform.translation.x = odom_pose[0]
            transform.transform.translation.y = odom_pose[1]
            _set_yaw(transform.transform.rotation, odom_pose[2])
            self._tf_pub.publish(TFMessage(transforms=[transform]))

    def _publish_scan(self, stamp: Time) -> None:
        if not self._faults.publishes_scan:
            return
        scan = self._faults.scan(self.sim.scan())
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

    def _send_goal(self, issue: GoalIssue) -> None:
        for note in issue.notes:
            self.get_logger().info(note)
        if issue.goal is None:
            return
        msg = PoseStamped()
        msg.header.stamp = self._stamp()
        msg.header.frame_id = self._values["odom_frame_id"]
        msg.pose.position.x, msg.pose.position.y = issue.goal
        msg.pose.orientation.w = 1.0
        self._goal_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        status = simulator_status(
            self.sim,
            self._pacing,
            self._goals,
            self._latch,
            self._values["clock_offset"],
            time.monotonic(),
        )
        level = DiagnosticStatus.WARN if status.warn else DiagnosticStatus.OK
        message = DiagnosticStatus(
            name=f"{self.get_name()}: simulator",
            hardware_id="mujoco",
            level=level,
            message=status.message,
            values=[KeyValue(key=k, value=v) for k, v in status.values.items()],
        )
        diagnostics = DiagnosticArray(status=[message])
        diagnostics.header.stamp = self._stamp()
        self._diag_pub.publish(diagnostics)


def main(args: list[str] | None = None) -> None:
    """Run the simulator node until shutdown (Ctrl-C, even repeated, ends it with code 0)."""
    run_node(MujocoSimNode, args=args)


if __name__ == "__main__":
    main()
