"""ROS 2 node `safety_controller`: the only publisher of `cmd_vel`.

Thin shell around `safety_filter.SafetyFilter`: converts messages, owns QoS, timers and
parameters. It publishes on every command, on e-stop events, and on its own timer, so
the output goes to zero even when every upstream node has died.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from safety_controller.footprint import Footprint
from safety_controller.limits import VelocityLimits
from safety_controller.safety_filter import SafetyConfig, SafetyFilter
from safety_controller.scan_geometry import LidarMount, scan_to_points

FEEDBACK_MODES = ("OPEN_LOOP", "CLOSED_LOOP")
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


# name -> (default, description, range or None, read_only)
PARAMETERS: dict[str, tuple[object, str, tuple[float, float] | None, bool]] = {
    "max_velocity": ([0.26, 1.82], "max [linear m/s, angular rad/s], each >= 0", None, False),
    "min_velocity": (
        [-0.26, -1.82],
        "min [linear m/s, angular rad/s], each <= 0; negative linear allows reverse",
        None,
        False,
    ),
    "max_accel": ([1.5, 3.2], "max acceleration [m/s^2, rad/s^2], > 0", None, False),
    "max_decel": (
        [-1.5, -3.2],
        "normal deceleration [m/s^2, rad/s^2], negative, at least as strong as max_accel",
        None,
        False,
    ),
    "emergency_decel": (
        [-1.6, -5.0],
        "deceleration for safety stops [m/s^2, rad/s^2], negative, at least max_decel; "
        "must be what the base can really do",
        None,
        False,
    ),
    "velocity_timeout": (0.5, "s without cmd_vel_nav before braking to zero", (0.05, 10.0), False),
    "source_timeout": (0.5, "s without scan before the robot counts as blind", (0.05, 10.0), False),
    "odom_timeout": (0.5, "s without odom before the last output is used", (0.05, 10.0), False),
    "feedback": (
        "CLOSED_LOOP",
        "CLOSED_LOOP: limits and braking start from odom velocity while fresh; OPEN_LOOP: "
        "from the last output",
        None,
        False,
    ),
    "reaction_time": (
        0.15,
        "s the guard assumes a command runs before braking; >= 1.5 control periods",
        (0.0, 2.0),
        False,
    ),
    "robot_radius": (0.11, "m, circular footprint when footprint is empty", (0.01, 5.0), False),
    "footprint": ("", "polygon '[[x, y], ...]' in the base frame (m); empty: circle", None, False),
    "safety_margin": (0.05, "m added around the footprint", (0.0, 1.0), False),
    "lidar_x": (-0.032, "m, lidar position in the base frame", (-5.0, 5.0), False),
    "lidar_y": (0.0, "m, lidar position in the base frame", (-5.0, 5.0), False),
    "lidar_yaw": (0.0, "rad, lidar yaw in the base frame", (-math.pi, math.pi), False),
    "intervention_window": (
        5.0,
        "s over which the intervention rate is taken",
        (0.1, 600.0),
        False,
    ),
    "base_frame_id": ("base_link", "frame of TwistStamped cmd_vel", None, False),
    "enable_stamped_cmd_vel": (False, "publish TwistStamped instead of Twist", None, True),
    "publish_rate": (20.0, "Hz of the watchdog timer publishing cmd_vel", (20.0, 200.0), True),
}


class SafetyControllerNode(Node):
    """Limits, collision guard, latched e-stop and watchdogs between cmd_vel_nav and cmd_vel."""

    def __init__(self, **node_options: object) -> None:
        super().__init__("safety_controller", **node_options)
        for name, (default, description, bounds, read_only) in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description, read_only=read_only)
            if bounds is not None:
                descriptor.floating_point_range = _range(*bounds)
            self.declare_parameter(name, default, descriptor)
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}
        config, mount = self._build(self._values)  # a bad launch file fails loudly here
        self._mount = mount
        self._filter = SafetyFilter(config)
        self._dropped_scans = 0
        self._dropped_odom = 0
        self._filter_errors = 0
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._stamped = bool(self._values["enable_stamped_cmd_vel"])
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._cmd_pub = self.create_publisher(
            TwistStamped if self._stamped else Twist, "cmd_vel", reliable
        )
        self._scale_pub = self.create_publisher(Float32, "safety/scale", 10)
        self._estop_pub = self.create_publisher(Bool, "safety/estop_active", LATCHED)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.create_subscription(Twist, "cmd_vel_nav", self._on_command, reliable)
        self.create_subscription(LaserScan, "scan", self._on_scan, qos_profile_sensor_data)
        best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Odometry, "odom", self._on_odom, best_effort)
        self.create_subscription(Bool, "safety/estop", self._on_estop, LATCHED)
        self.create_service(Trigger, "safety/reset", self._on_reset)
        self.create_service(Trigger, "safety/trigger_estop", self._on_trigger_estop)

        self._estop_reported: bool | None = None
        self._publish_estop_state()
        self.create_timer(1.0 / float(self._values["publish_rate"]), self._on_timer)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info("safety_controller ready")

    # ---- parameters ---------------------------------------------------------------------

    @staticmethod
    def _build(values: dict[str, object]) -> tuple[SafetyConfig, LidarMount]:
        """A filter config from parameter values; raises ValueError with the reason."""
        feedback = str(values["feedback"])
        if feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {feedback!r}")
        period = 1.0 / float(values["publish_rate"])
        reaction = float(values["reaction_time"])
        if reaction < 1.5 * period:
            raise ValueError(
                f"reaction_time {reaction} s is shorter than 1.5 control periods "
                f"({1.5 * period:.3f} s): the guard could not cover the time between outputs"
            )
        if float(values["velocity_timeout"]) < period:
            raise ValueError("velocity_timeout must be at least one control period")
        limits = VelocityLimits(
            max_velocity=_floats(values["max_velocity"]),
            min_velocity=_floats(values["min_velocity"]),
            max_accel=_floats(values["max_accel"]),
            max_decel=_floats(values["max_decel"]),
            emergency_decel=_floats(values["emergency_decel"]),
        )
        footprint = Footprint.from_parameters(
            str(values["footprint"]), float(values["robot_radius"]), float(values["safety_margin"])
        )
        config = SafetyConfig(
            limits=limits,
            footprint=footprint,
            reaction_time=reaction,
            velocity_timeout=float(values["velocity_timeout"]),
            source_timeout=float(values["source_timeout"]),
            odom_timeout=float(values["odom_timeout"]),
            closed_loop=feedback == "CLOSED_LOOP",
            intervention_window=float(values["intervention_window"]),
            max_step=max(0.25, 2.0 * period),
        )
        mount = LidarMount(
            x=float(values["lidar_x"]), y=float(values["lidar_y"]), yaw=float(values["lidar_yaw"])
        )
        return config, mount

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        candidate = dict(self._values)
        for parameter in parameters:
            if parameter.name in candidate:
                candidate[parameter.name] = parameter.value
        try:
            config, mount = self._build(candidate)
        except (ValueError, TypeError) as exc:
            self.get_logger().warning(f"parameter change rejected: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = candidate
        self._filter.configure(config)
        self._mount = mount
        return SetParametersResult(successful=True)

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
        header_ok = all(
            math.isfinite(value)
            for value in (msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max)
        )
        if not header_ok or msg.range_max <= 0.0:
            self._dropped_scans += 1
            return
        points = scan_to_points(
            np.asarray(msg.ranges, dtype=np.float64),
            msg.angle_min,
            msg.angle_increment,
            msg.range_min,
            msg.range_max,
            self._mount,
        )
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self._filter.set_scan(points, self._now(), stamp if stamp > 0.0 else None)

    def _on_odom(self, msg: Odometry) -> None:
        twist = msg.twist.twist
        if not self._filter.set_odometry(twist.linear.x, twist.angular.z, self._now()):
            self._dropped_odom += 1

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
        self._publish(self._now())

    # ---- outputs ------------------------------------------------------------------------

    def _publish(self, now: float) -> None:
        try:
            output = self._filter.step(now)
            linear, angular, scale = output.linear, output.angular, output.scale
        except Exception as exc:  # noqa: BLE001 - a filter bug must still end in a stop
            self._filter_errors += 1
            self.get_logger().error(f"safety filter failed, publishing zero: {exc!r}")
            linear, angular, scale = 0.0, 0.0, 0.0
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
        self._scale_pub.publish(Float32(data=float(scale)))
        self._publish_estop_state()

    def _publish_estop_state(self) -> None:
        active = self._filter.estop_latched
        if active != self._estop_reported:
            self._estop_pub.publish(Bool(data=active))
            self._estop_reported = active

    def _publish_diagnostics(self) -> None:
        status = self._filter.status
        if status.estop_latched or status.state in ("BLIND", "STALE_SCAN", "NO_SCAN"):
            level = DiagnosticStatus.ERROR
        elif status.state not in ("OK", "IDLE") or (
            status.odom_stale and self._filter.config.closed_loop
        ):
            level = DiagnosticStatus.WARN
        else:
            level = DiagnosticStatus.OK
        message = status.state
        if status.odom_stale and self._filter.config.closed_loop:
            message += ", odom stale: limits use the last output"
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
            "dropped_scans": self._dropped_scans,
            "dropped_odom": self._dropped_odom,
            "filter_errors": self._filter_errors,
            "steps": status.steps,
        }
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


def _floats(value: object) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"expected a list of numbers, got {value!r}")
    return tuple(float(v) for v in value)


def main(args: list[str] | None = None) -> None:
    """Run the safety controller until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = SafetyControllerNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
