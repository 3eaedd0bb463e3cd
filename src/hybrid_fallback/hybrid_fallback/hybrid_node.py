"""ROS 2 node `hybrid_fallback`: arbiter between policy, DWA fallback, teleop and stop.

A thin shell over `supervisor.HybridSupervisor` (inputs, fallback health, the arbiter and
the command it picks) configured by `hybrid_config`: it converts messages to plain
numbers, publishes the selected command on `cmd_vel_nav` every period and at once on a
mode switch, the mode on `hybrid/mode` (transient local; the bare mode name, per the
architecture contract), the mode with its reason on `hybrid/mode_reason`, and diagnostics
at 1 Hz.

The arbiter owns the goal: every valid `goal_pose` is handed on, unchanged, on
`hybrid/goal` (reliable, transient local, depth 1), which the launch files remap the policy
node's `goal_pose` to, so a goal published once (`ros2 topic pub --once`) reaches both.
The current goal is handed on again every second, for readers that matched late.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32, String

from hybrid_fallback.arbiter import Arbiter, Mode
from hybrid_fallback.fallback import FallbackController
from hybrid_fallback.hybrid_config import (
    NODE_NAME,
    PARAMETERS,
    HybridConfig,
    build_hybrid_config,
)
from hybrid_fallback.supervisor import GoalUpdate, HybridSupervisor
from rlguard_common import topics
from rlguard_common.node_support import declare_parameters, qos_profile, run_node
from rlguard_common.scan_validity import validate_scan_message

LEVEL_OF_MODE = {
    Mode.POLICY: DiagnosticStatus.OK,
    Mode.TELEOP: DiagnosticStatus.OK,
    Mode.IDLE: DiagnosticStatus.OK,
    Mode.FALLBACK: DiagnosticStatus.WARN,
    Mode.STOPPED: DiagnosticStatus.ERROR,
}


class HybridFallbackNode(Node):
    """Picks policy, DWA fallback, teleop or stop and publishes the command on cmd_vel_nav."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._values = declare_parameters(self, PARAMETERS)
        config = build_hybrid_config(self._values)  # a bad launch file fails loudly here
        self.supervisor = HybridSupervisor(config, now=self._now())
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        latched = qos_profile(topics.LATCHED)
        command = qos_profile(topics.COMMAND)
        reliable = qos_profile(topics.RELIABLE)
        sensor = qos_profile(topics.SENSOR_DATA)
        self.cmd_pub = self.create_publisher(Twist, topics.NAV_CMD_VEL, command)
        self.mode_pub = self.create_publisher(String, topics.HYBRID_MODE, latched)
        self.reason_pub = self.create_publisher(String, topics.HYBRID_MODE_REASON, latched)
        self.goal_pub = self.create_publisher(PoseStamped, topics.HYBRID_GOAL, latched)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable)

        for message_type, topic, callback, qos in (
            (Twist, topics.POLICY_CMD_VEL, self._on_policy_cmd, command),
            (Bool, topics.POLICY_ACTIVE, self._on_policy_active, latched),
            (Twist, topics.TELEOP_CMD_VEL, self._on_teleop, command),
            (PoseStamped, topics.GOAL_POSE, self._on_goal, reliable),
            (LaserScan, topics.SCAN, self._on_scan, sensor),
            (Odometry, topics.ODOM, self._on_odom, sensor),
            (Float32, topics.SAFETY_SCALE, self._on_scale, reliable),
        ):
            self.create_subscription(message_type, topic, callback, qos)

        self.create_timer(config.control_period, self._on_timer)
        self._goal_msg: PoseStamped | None = None
        self.create_timer(1.0, self._on_slow_timer)
        self._publish_mode(self.arbiter.mode, "no goal")

    @property
    def arbiter(self) -> Arbiter:
        """The mode state machine."""
        return self.supervisor.arbiter

    @property
    def controller(self) -> FallbackController:
        """The DWA fallback controller."""
        return self.supervisor.controller

    # ------------------------------------------------------------------ parameters

    def _candidate(self, parameters: list[Parameter]) -> dict[str, object]:
        """The current values with a parameter set's changes laid over them."""
        values = dict(self._values)
        for parameter in parameters:
            if parameter.name in PARAMETERS:
                values[parameter.name] = parameter.value
        return values

    def _build(self, parameters: list[Parameter]) -> HybridConfig:
        return build_hybrid_config(self._candidate(parameters))

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a parameter set (nothing changes here): refused with the reason."""
        try:
            self._build(parameters)
        except ValueError as error:
            self.get_logger().warning(f"parameter change rejected: {error}")
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        """Apply a validated parameter set."""
        config = self._build(parameters)
        self._values = self._candidate(parameters)
        self.supervisor.configure(config)

    # ------------------------------------------------------------------ inputs

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_policy_cmd(self, msg: Twist) -> None:
        if not self.supervisor.receive_policy_cmd(msg.linear.x, msg.angular.z, self._now()):
            return
        # Forward a policy command on arrival, not on the next timer tick: waiting for the
        # timer would add up to one control period of latency between policy and wheels.
        if self.supervisor.policy_driving:
            self._step(on_event=False)

    def _on_policy_active(self, msg: Bool) -> None:
        if self.supervisor.receive_policy_active(msg.data):
            self._step(on_event=True)

    def _on_teleop(self, msg: Twist) -> None:
        if self.supervisor.receive_teleop(msg.linear.x, msg.angular.z, self._now()):
            self._step(on_event=True)

    def _on_goal(self, msg: PoseStamped) -> None:
        frame, position = msg.header.frame_id, msg.pose.position
        x, y = float(position.x), float(position.y)
        update = self.supervisor.receive_goal(frame, x, y)
        if update is GoalUpdate.DROPPED:
            self.get_logger().warning(f"goal_pose dropped (frame '{frame}', x={x}, y={y})")
            return
        self._goal_msg = msg
        self.goal_pub.publish(msg)  # hand the goal on to the policy node (hybrid/goal)
        if update is GoalUpdate.NEW:
            self.get_logger().info(f"new goal ({x:.2f}, {y:.2f})")
            self._step(on_event=True)
        elif update is GoalUpdate.MOVED:
            self.get_logger().info(f"goal corrected to ({x:.2f}, {y:.2f})")
            self._step(on_event=True)

    def _on_scan(self, msg: LaserScan) -> None:
        reason = validate_scan_message(msg)
        if reason is not None:
            self.supervisor.reject_scan(reason)
            self.get_logger().warning(f"scan rejected ({reason})", throttle_duration_sec=5.0)
            return
        self.supervisor.receive_scan(
            msg.ranges,
            msg.angle_min,
            msg.angle_increment,
            msg.range_min,
            msg.range_max,
            self._now(),
        )

    def _on_odom(self, msg: Odometry) -> None:
        p, q, t = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
        self.supervisor.receive_odom(
            (p.x, p.y), (q.x, q.y, q.z, q.w), (t.linear.x, t.angular.z), self._now()
        )

    def _on_scale(self, msg: Float32) -> None:
        self.supervisor.receive_safety_scale(msg.data, self._now())

    # ------------------------------------------------------------------ control

    def _on_timer(self) -> None:
        self._step(on_event=False)

    def _step(self, on_event: bool) -> None:
        """Update the arbiter; publish on every timer tick and on any switch."""
        now = self._now()
        decision = self.supervisor.step(now)
        if decision.switched:
            self._publish_mode(decision.mode, decision.reason)
            self.get_logger().info(
                f"{decision.previous.value} -> {decision.mode.value}: {decision.reason}"
            )
        if on_event and not decision.switched:
            return
        linear, angular = self.supervisor.command(decision, now)
        msg = Twist()
        msg.linear.x, msg.angular.z = float(linear), float(angular)
        self.cmd_pub.publish(msg)
        if not on_event:
            self.supervisor.update_route(now)

    # ------------------------------------------------------------------ outputs

    def _publish_mode(self, mode: Mode, reason: str) -> None:
        self.mode_pub.publish(String(data=mode.value))
        self.reason_pub.publish(String(data=f"{mode.value}: {reason}"))

    def _on_slow_timer(self) -> None:
        self._publish_diagnostics()
        # Latching alone is not enough: a volatile reader (the policy node's goal_pose is
        # one, so `ros2 topic pub` works without a remap) gets no history, and one that
        # matched only after the hand-over would never see the goal. Re-sent goals are
        # not new goals to either node.
        if self._goal_msg is not None:
            self.goal_pub.publish(self._goal_msg)

    def _publish_diagnostics(self) -> None:
        values = self.supervisor.diagnostic_values(self._now())
        mode = self.arbiter.mode
        status = DiagnosticStatus(
            level=LEVEL_OF_MODE[mode],
            name=f"{self.get_name()}: arbiter",
            message=f"{mode.value}: {self.supervisor.reason}",
            hardware_id=self.get_name(),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the hybrid_fallback node until shutdown (Ctrl-C, even repeated, ends it with code 0)."""
    run_node(HybridFallbackNode, args=args)


if __name__ == "__main__":
    main()
