"""ROS 2 node `safety_controller`: the only publisher of `cmd_vel`.

Thin shell around `safety_filter.SafetyFilter`: converts messages, owns QoS, timers and
parameters. It publishes on every command, on e-stop events, and on its own timer, so
the output goes to zero even when every upstream node has died.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from rlguard_common import topics
from rlguard_common.node_support import declare_parameters, qos_profile, run_node
from rlguard_common.scan_validity import REASONS as SCAN_REASONS
from safety_controller.node_config import (
    NODE_NAME,
    PARAMETERS,
    WATCHDOG_THRESHOLD,
    WATCHDOG_TICKS,
    base_horizon_problem,
    build_safety_config,
)
from safety_controller.safety_filter import SafetyConfig, SafetyFilter
from safety_controller.scan_geometry import LidarMount
from safety_controller.scan_input import CONVERSION_FAILED, feed_scan

# The scan could not be turned into points (a bug or a message the validator let through).
SCAN_REJECTION_REASONS = (*SCAN_REASONS, CONVERSION_FAILED)
# Filter states in which the robot cannot see or must not move: diagnostics ERROR.
ERROR_STATES = frozenset(
    {"BLIND", "STALE_SCAN", "NO_SCAN", "EMPTY_SCAN", "INVALID_SCAN", "INVALID_TIME"}
)


class SafetyControllerNode(Node):
    """Limits, collision guard, latched e-stop and watchdogs between cmd_vel_nav and cmd_vel."""

    def __init__(self, **node_options: object) -> None:
        super().__init__(NODE_NAME, **node_options)
        self._values = declare_parameters(self, PARAMETERS)
        config, mount = self._build(self._values)  # a bad launch file fails loudly here
        self._mount = mount
        self._filter = SafetyFilter(config)
        self._rejected_scans = dict.fromkeys(SCAN_REJECTION_REASONS, 0)
        self._last_rejected_reason = ""
        self._dropped_odom = 0
        self._filter_errors = 0
        self._held_outputs = 0
        self._base_horizon_problem: str | None = None
        self._check_base_horizon()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)

        self._stamped = bool(self._values["enable_stamped_cmd_vel"])
        command, latched = qos_profile(topics.COMMAND), qos_profile(topics.LATCHED)
        reliable = qos_profile(topics.RELIABLE)
        self._cmd_pub = self.create_publisher(
            TwistStamped if self._stamped else Twist, topics.CMD_VEL, command
        )
        self._scale_pub = self.create_publisher(Float32, topics.SAFETY_SCALE, reliable)
        self._estop_pub = self.create_publisher(Bool, topics.ESTOP_ACTIVE, latched)
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable)

        self.create_subscription(Twist, topics.NAV_CMD_VEL, self._on_command, command)
        sensor_data = qos_profile(topics.SENSOR_DATA)
        self.create_subscription(LaserScan, topics.SCAN, self._on_scan, sensor_data)
        self.create_subscription(Odometry, topics.ODOM, self._on_odom, sensor_data)
        # Both durabilities, so volatile and transient-local publishers alike are heard;
        # a transient-local one is heard twice, which the latch ignores. A volatile
        # publisher (a script, `ros2 topic pub`, most hardware bridges) never matches the
        # transient-local subscription.
        self.create_subscription(
            Bool,
            topics.ESTOP,
            self._on_estop,
            latched,
            # A volatile publisher never matches this one (the other subscription hears
            # it): no incompatible-QoS warning from here.
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False),
        )
        self.create_subscription(
            Bool,
            topics.ESTOP,
            self._on_estop,
            reliable,
            event_callbacks=SubscriptionEventCallbacks(
                incompatible_qos=self._on_incompatible_estop_publisher,
                use_default_callbacks=False,
            ),
        )
        self.create_service(Trigger, topics.SAFETY_RESET, self._on_reset)
        self.create_service(Trigger, topics.SAFETY_TRIGGER_ESTOP, self._on_trigger_estop)

        self._estop_reported: bool | None = None
        self._publish_estop_state()
        self._period = 1.0 / float(self._values["publish_rate"])
        self._last_sent: float | None = None  # `now` of the last cmd_vel published
        self.create_timer(self._period / WATCHDOG_TICKS, self._on_timer)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info("safety_controller ready")

    # ---- parameters ---------------------------------------------------------------------

    @staticmethod
    def _build(values: dict[str, object]) -> tuple[SafetyConfig, LidarMount]:
        """A filter config from parameter values; raises ValueError with the reason."""
        return build_safety_config(values)

    def _candidate(self, parameters: list[Parameter]) -> dict[str, object]:
        candidate = dict(self._values)
        for parameter in parameters:
            if parameter.name in candidate:
                candidate[parameter.name] = parameter.value
        return candidate

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a parameter set (nothing changes here): refused with the reason."""
        try:
            self._build(self._candidate(parameters))
        except (ValueError, TypeError) as exc:
            self.get_logger().warning(f"parameter change rejected: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        """Apply a validated parameter set to the filter."""
        candidate = self._candidate(parameters)
        config, mount = self._build(candidate)
        self._values = candidate
        self._filter.configure(config)
        self._mount = mount
        self._check_base_horizon()

    def _check_base_horizon(self) -> None:
        """Warn (log and diagnostics) when the base may outrun the guard's reaction budget."""
        problem = base_horizon_problem(self._values)
        if problem is not None and problem != self._base_horizon_problem:
            self.get_logger().warning(problem)
        self._base_horizon_problem = problem

    # ---- inputs -------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_command(self, msg: Twist) -> None:
        now = self._now()
        if not self._filter.set_command(msg.linear.x, msg.angular.z, now):
            self.get_logger().warning(
                "non-finite cmd_vel_nav: publishing zero", throttle_duration_sec=1.0
            )
        self._publish(now)

    def _on_scan(self, msg: LaserScan) -> None:
        now = self._now()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        reason = feed_scan(self._filter, msg, stamp, now, self._mount)
        if reason is not None:
            self._count_rejected_scan(reason)

    def _count_rejected_scan(self, reason: str) -> None:
        """An unusable scan (the filter now brakes as if blind): count and say why."""
        self._rejected_scans[reason] = self._rejected_scans.get(reason, 0) + 1
        self._last_rejected_reason = reason
        self.get_logger().warning(
            f"scan rejected ({reason}): braking to zero until a valid scan arrives",
            throttle_duration_sec=1.0,
        )

    def _on_odom(self, msg: Odometry) -> None:
        twist = msg.twist.twist
        if not self._filter.set_odometry(twist.linear.x, twist.angular.z, self._now()):
            self._dropped_odom += 1

    def _on_incompatible_estop_publisher(self, event: object) -> None:
        self.get_logger().error(
            "a safety/estop publisher with incompatible QoS (best effort?) is not heard: "
            "e-stop publishers must be reliable",
            throttle_duration_sec=5.0,
        )

    def _on_estop(self, msg: Bool) -> None:
        now = self._now()
        if self._filter.set_estop_input(bool(msg.data), now):
            self.get_logger().warning("e-stop engaged by safety/estop")
        self._publish(now)

    def _on_trigger_estop(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        now = self._now()
        self._filter.trigger_estop(now)
        self._publish(now)
        self.get_logger().warning("e-stop engaged by safety/trigger_estop")
        response.success = True
        response.message = "e-stop latched"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        now = self._now()
        ok, message = self._filter.reset(now)
        response.success = ok
        response.message = message
        self.get_logger().info(f"safety/reset: {message}")
        self._publish(now)
        return response

    def _on_timer(self) -> None:
        now = self._now()
        last = self._last_sent
        if last is not None and 0.0 <= now - last < WATCHDOG_THRESHOLD * self._period:
            return  # commands are flowing: each goes out as it arrives
        self._publish(now)

    # ---- outputs ------------------------------------------------------------------------

    def _publish(self, now: float) -> None:
        try:
            output = self._filter.step(now)
            linear, angular, scale = output.linear, output.angular, output.scale
            hold = output.hold
        except Exception as exc:  # noqa: BLE001 - a filter bug must still end in a stop
            self._filter_errors += 1
            self.get_logger().error(f"safety filter failed, publishing zero: {exc!r}")
            linear, angular, scale, hold = 0.0, 0.0, 0.0, False
        if hold:
            # The same motion at no later time (a stalled clock): re-sending it would
            # refresh the base's command watchdog without a new guard check.
            self._held_outputs += 1
            self._publish_estop_state()
            return
        twist = Twist()
        twist.linear.x = float(linear)
        twist.angular.z = float(angular)
        if self._stamped:
            stamped = TwistStamped()
            stamped.header.stamp = self.get_clock().now().to_msg()
            stamped.header.frame_id = str(self._values["base_frame_id"])
            stamped.twist = twist
            self._cmd_pub.publish(stamped)
        else:
            self._cmd_pub.publish(twist)
        self._last_sent = now
        self._scale_pub.publish(Float32(data=float(scale)))
        self._publish_estop_state()

    def _publish_estop_state(self) -> None:
        active = self._filter.estop_latched
        if active != self._estop_reported:
            self._estop_pub.publish(Bool(data=active))
            self._estop_reported = active

    def _publish_diagnostics(self) -> None:
        status = self._filter.status
        if status.estop_latched or status.state in ERROR_STATES:
            level = DiagnosticStatus.ERROR
        elif (
            status.state not in ("OK", "IDLE")
            or (status.odom_stale and self._filter.config.closed_loop)
            or self._base_horizon_problem is not None
        ):
            level = DiagnosticStatus.WARN
        else:
            level = DiagnosticStatus.OK
        message = status.state
        if status.state == "INVALID_SCAN" and self._last_rejected_reason:
            message += f" ({self._last_rejected_reason})"
        if status.odom_stale and self._filter.config.closed_loop:
            message += ", odom stale: scans are dead-reckoned on the last output"
        if self._base_horizon_problem is not None:
            message += ", base_command_timeout > reaction_time"
        values = {
            "state": status.state,
            "estop_latched": status.estop_latched,
            "estop_input": status.estop_input,
            "reasons": ",".join(sorted(status.last_reasons)) or "none",
            "last_intervention": ",".join(sorted(status.last_intervention_reasons)) or "none",
            "intervention_rate": f"{status.intervention_rate:.3f}",
            "min_clearance_m": f"{status.min_clearance:.3f}",
            "odom_stale": status.odom_stale,
            "input_age_s": f"{status.input_age:.3f}",
            "scan_age_s": f"{status.scan_age:.3f}",
            "invalid_inputs": status.invalid_inputs,
            "invalid_times": status.invalid_times,
            "clock_jumps_back": status.clock_jumps_back,
            "empty_scans": status.empty_scans,
            "closing_speed_mps": f"{status.closing_speed:.3f}",
            "rejected_scans": sum(self._rejected_scans.values()),
            "last_rejected_reason": self._last_rejected_reason or "none",
            "dropped_odom": self._dropped_odom,
            "filter_errors": self._filter_errors,
            "held_outputs": self._held_outputs,
            "base_command_timeout_s": self._values["base_command_timeout"],
            "base_horizon_covered": self._base_horizon_problem is None,
            "steps": status.steps,
        }
        values.update(
            {f"rejected_scan_{reason}": count for reason, count in self._rejected_scans.items()}
        )
        values.update({f"count_{reason}": count for reason, count in status.counts.items()})
        diagnostic = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: safety filter",
            message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[diagnostic])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the safety controller until shutdown (Ctrl-C, even repeated, ends it with code 0)."""
    run_node(SafetyControllerNode, args)


if __name__ == "__main__":
    main()
