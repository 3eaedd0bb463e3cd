"""The hybrid_fallback node over DDS: a separate process fed by scripted publishers."""

import math
import time
from collections.abc import Callable

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String

from hybrid_fallback.hybrid_config import PARAMETERS, build_hybrid_config, fallback_controller
from hybrid_fallback.hybrid_node import HybridFallbackNode
from rlguard_common.parameters import parameter_defaults

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
PERIOD = 0.05


class Probe:
    """Publishes scan, odom and (while `policy_on`) policy/cmd_vel at 20 Hz; records outputs."""

    def __init__(self, context: object) -> None:
        self.node = rclpy.create_node("hybrid_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        node = self.node
        self.policy_pub = node.create_publisher(Twist, "policy/cmd_vel", 1)
        self.active_pub = node.create_publisher(Bool, "policy/active", LATCHED)
        self.teleop_pub = node.create_publisher(Twist, "cmd_vel_teleop", 1)
        self.goal_pub = node.create_publisher(PoseStamped, "goal_pose", RELIABLE)
        self.scan_pub = node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self.odom_pub = node.create_publisher(Odometry, "odom", RELIABLE)
        self.modes: list[tuple[float, str]] = []
        self.reasons: list[tuple[float, str]] = []
        self.commands: list[tuple[float, float, float]] = []
        node.create_subscription(String, "hybrid/mode", self._on_mode, LATCHED)
        node.create_subscription(String, "hybrid/mode_reason", self._on_reason, LATCHED)
        node.create_subscription(Twist, "cmd_vel_nav", self._on_cmd, 10)
        self.diagnostics: list[dict[str, str]] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.policy_on = True
        self.teleop: tuple[float, float] | None = None
        node.create_timer(PERIOD, self._tick)

    def _on_mode(self, msg: String) -> None:
        self.modes.append((time.monotonic(), msg.data))

    def _on_reason(self, msg: String) -> None:
        self.reasons.append((time.monotonic(), msg.data))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "hybrid_fallback: arbiter":
                values = {kv.key: kv.value for kv in status.values}
                values["message"] = status.message
                self.diagnostics.append(values)

    def _on_cmd(self, msg: Twist) -> None:
        self.commands.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def _tick(self) -> None:
        scan = LaserScan()
        scan.header.frame_id = "base_scan"
        scan.angle_min, scan.angle_increment = -math.pi, 2 * math.pi / 360
        scan.angle_max = scan.angle_min + 359 * scan.angle_increment
        scan.range_min, scan.range_max = 0.12, 3.5
        scan.ranges = [math.inf] * 360  # open space: valid, nothing in range
        self.scan_pub.publish(scan)
        odom = Odometry()
        odom.header.frame_id = "odom"
        odom.pose.pose.orientation.w = 1.0
        self.odom_pub.publish(odom)
        if self.policy_on:
            command = Twist()
            command.linear.x, command.angular.z = 0.1, 0.2
            self.policy_pub.publish(command)
        if self.teleop is not None:
            command = Twist()
            command.linear.x, command.angular.z = self.teleop
            self.teleop_pub.publish(command)

    def set_active(self, active: bool) -> float:
        self.active_pub.publish(Bool(data=active))
        return time.monotonic()

    def send_goal(self, x: float, y: float) -> None:
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x, goal.pose.position.y = x, y
        goal.pose.orientation.w = 1.0
        self.goal_pub.publish(goal)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)
            if condition():
                return True
        return False

    def mode(self) -> str | None:
        return self.modes[-1][1] if self.modes else None

    def reason_time(self, text: str, after: float) -> float | None:
        for stamp, reason in self.reasons:
            if stamp >= after and reason == text:
                return stamp
        return None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.mark.integration
def test_handover_timing_and_teleop_override_over_dds(start_node, rclpy_context, workspace_root):
    node = start_node(
        "hybrid_fallback.hybrid_node",
        params_files=[workspace_root / "config" / "hybrid_fallback.yaml"],
        parameters={"policy_timeout": 0.5, "retry_after": 0.5, "teleop_timeout": 0.3},
    )
    probe = Probe(rclpy_context)
    try:
        assert probe.spin_until(lambda: probe.mode() == "IDLE", 15.0), "node did not come up"
        probe.set_active(True)
        # Re-send the goal until the node has it (discovery of the goal publisher).
        deadline = time.monotonic() + 10.0
        while probe.mode() != "POLICY" and time.monotonic() < deadline:
            probe.send_goal(5.0, 0.0)
            probe.spin_until(lambda: probe.mode() == "POLICY", 0.5)
        assert probe.mode() == "POLICY"
        assert probe.spin_until(lambda: any(c[1:] == (0.1, 0.2) for c in probe.commands), 2.0), (
            "policy command not forwarded on cmd_vel_nav"
        )
        # The goal may arrive before the first scan (discovery): wait until the fallback
        # can drive, so the hand-over below goes to FALLBACK, not STOPPED.
        assert probe.spin_until(
            lambda: bool(probe.diagnostics) and probe.diagnostics[-1]["fallback_status"] == "ok",
            3.0,
        ), "the fallback never became healthy (no scan or odom reached the node)"

        # policy/active false -> FALLBACK within one period, with the reason.
        sent = probe.set_active(False)
        expected = "FALLBACK: policy/active false"
        assert probe.spin_until(lambda: probe.reason_time(expected, sent) is not None, 2.0)
        latency = probe.reason_time(expected, sent) - sent
        assert latency < PERIOD + 0.25, f"hand-over took {latency:.3f} s"
        assert probe.mode() == "FALLBACK"
        # The DWA drives toward the goal (open space ahead, starting from rest).
        switched = probe.reason_time(expected, sent)

        def dwa_driving() -> bool:
            latest = [c for c in probe.commands if c[0] > switched + 2 * PERIOD]
            return bool(latest) and latest[-1][1] > 0.0 and latest[-1][1:] != (0.1, 0.2)

        assert probe.spin_until(dwa_driving, 1.0)

        # Healthy again -> back to POLICY after retry_after.
        probe.set_active(True)
        assert probe.spin_until(lambda: probe.mode() == "POLICY", 3.0)

        # policy/cmd_vel stops -> FALLBACK within policy_timeout + one period.
        probe.policy_on = False
        stopped = time.monotonic()
        assert probe.spin_until(lambda: probe.mode() == "FALLBACK", 3.0)
        silent_latency = probe.modes[-1][0] - stopped
        assert 0.3 < silent_latency < 0.5 + PERIOD + 0.3, f"silent switch {silent_latency:.3f} s"
        assert probe.spin_until(lambda: "policy/cmd_vel silent" in probe.reasons[-1][1], 1.0)

        # Fresh teleop overrides; a NaN teleop command is dropped; release returns.
        probe.teleop = (math.nan, 0.0)
        probe.spin_until(lambda: False, 0.5)
        assert probe.mode() == "FALLBACK"
        probe.teleop = (0.05, -0.3)
        assert probe.spin_until(lambda: probe.mode() == "TELEOP", 2.0)
        assert probe.spin_until(lambda: probe.commands[-1][1:] == (0.05, -0.3), 1.0), (
            "teleop command not forwarded"
        )
        probe.teleop = None
        assert probe.spin_until(lambda: probe.mode() == "FALLBACK", 2.0)
        assert probe.spin_until(
            lambda: probe.reasons[-1][1].startswith("FALLBACK: teleop released; "), 1.0
        )
        probe.diagnostics.clear()
        assert probe.spin_until(lambda: bool(probe.diagnostics), 3.0), "no diagnostics"
        report = probe.diagnostics[-1]
        assert report["mode"] == "FALLBACK"
        assert report["message"].startswith("FALLBACK: teleop released; ")
        assert int(report["switches POLICY->FALLBACK"]) == 2
        assert int(report["switches FALLBACK->TELEOP"]) == 1
        assert int(report["dropped cmd_vel_teleop"]) >= 1  # the NaN commands
        assert float(report["time_in POLICY_s"]) > 0.0
        assert "last_switch_0" in report
        assert node.is_running()
    finally:
        probe.close()


def test_invalid_parameters_are_rejected_and_old_values_kept(rclpy_context):
    node = HybridFallbackNode(context=rclpy_context)
    try:
        cases = [
            Parameter("max_velocity", value=[0.2]),
            Parameter("min_velocity", value=[0.5, -1.0]),  # above max linear
            Parameter("on_policy_disabled", value="halt"),
            Parameter("retry_after", value=100.0),  # above max_retry_delay
            Parameter("policy_timeout", value=math.nan),
        ]
        for parameter in cases:
            result = node.set_parameters([parameter])[0]
            assert not result.successful, parameter.name
            assert result.reason
        assert list(node.get_parameter("max_velocity").value) == [0.26, 1.82]
        assert node.get_parameter("on_policy_disabled").value == "fallback"
        assert node.set_parameters([Parameter("on_policy_disabled", value="stop")])[0].successful
        assert node.arbiter.config.on_policy_disabled == "stop"
        assert node.set_parameters([Parameter("max_velocity", value=[0.2, 1.0])])[0].successful
        assert node.controller.planner.config.max_linear_velocity == 0.2
        assert node.set_parameters([Parameter("safety_margin", value=0.05)])[0].successful
        assert node.controller.planner.config.safety_margin == 0.05
        assert node.controller.grid.config.inflation_radius == pytest.approx(0.11 + 0.05 + 0.05)
    finally:
        node.destroy_node()


def test_the_node_builds_its_cores_as_the_table_and_builder_say(rclpy_context):
    node = HybridFallbackNode(context=rclpy_context)
    try:
        config = build_hybrid_config(parameter_defaults(PARAMETERS))
        assert node.supervisor.config == config
        assert node.arbiter.config == config.arbiter
        expected = fallback_controller(config)
        assert node.controller.planner.config == expected.planner.config
        assert node.controller.grid.config == expected.grid.config
        assert node.controller.guidance == expected.guidance
        for name, spec in PARAMETERS.items():
            descriptor = node.describe_parameter(name)
            assert descriptor.description == spec.description, name
            assert descriptor.read_only == spec.read_only, name
            ranges = [*descriptor.floating_point_range, *descriptor.integer_range]
            if spec.bounds is None:
                assert not ranges, name
            else:
                (declared,) = ranges
                assert (declared.from_value, declared.to_value) == spec.bounds, name
    finally:
        node.destroy_node()


def test_a_re_sent_goal_is_not_a_new_goal(rclpy_context):
    """The simulator re-sends the current goal for late joiners: same goal, same goal id."""
    node = HybridFallbackNode(context=rclpy_context)
    try:
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x, goal.pose.position.y = 1.0, 2.0
        node._on_goal(goal)
        node._on_goal(goal)
        assert node.supervisor.goal_id == 1
        goal.pose.position.y = 2.5
        node._on_goal(goal)
        assert node.supervisor.goal_id == 2
    finally:
        node.destroy_node()


def test_the_goal_reaches_a_volatile_reader_that_matched_after_the_hand_over(rclpy_context):
    """The policy node reads hybrid/goal volatile: latching alone would never reach it."""
    node = HybridFallbackNode(context=rclpy_context)
    reader = rclpy.create_node("late_goal_reader", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    executor.add_node(reader)
    try:
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x, goal.pose.position.y = 1.0, 2.0
        node._on_goal(goal)  # handed on before anyone reads hybrid/goal
        received: list[tuple[float, float]] = []
        reader.create_subscription(
            PoseStamped,
            "hybrid/goal",
            lambda msg: received.append((msg.pose.position.x, msg.pose.position.y)),
            RELIABLE,
        )
        for _ in range(300):  # bounded: the node re-sends every second
            executor.spin_once(timeout_sec=0.1)
            if received:
                break
        assert received and received[0] == (1.0, 2.0)
        assert node.supervisor.goal_id == 1
    finally:
        executor.shutdown()
        reader.destroy_node()
        node.destroy_node()


@pytest.mark.parametrize("source", ["policy", "teleop"])
def test_a_source_that_stops_at_a_clock_jump_back_still_times_out(rclpy_context, source):
    """/clock goes back 5 s as the policy (or teleop) stops: its timeout runs on the new clock.

    Receipt times from before the jump lie "in the future" of the new clock; read as
    ages they would be negative (fresh) for 5 s, and the node would keep forwarding the
    last command of a source that is gone.
    """
    from rclpy.time import Time

    node = HybridFallbackNode(
        context=rclpy_context, parameter_overrides=[Parameter("use_sim_time", value=True)]
    )
    clock = node.get_clock()
    try:
        scan = LaserScan()
        scan.angle_min, scan.angle_increment = -math.pi, 2 * math.pi / 360
        scan.angle_max = scan.angle_min + 359 * scan.angle_increment
        scan.range_min, scan.range_max = 0.12, 3.5
        scan.ranges = [math.inf] * 360
        odom = Odometry()
        odom.header.frame_id = "odom"
        odom.pose.pose.orientation.w = 1.0
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x = 5.0
        command = Twist()
        command.linear.x = 0.1

        def tick(now: float, alive: bool) -> None:
            clock.set_ros_time_override(Time(seconds=now, clock_type=clock.clock_type))
            node._on_scan(scan)
            node._on_odom(odom)
            if alive:
                (node._on_policy_cmd if source == "policy" else node._on_teleop)(command)
            node._on_timer()

        now = 100.0
        tick(now, alive=True)
        node._on_policy_active(Bool(data=source == "policy"))
        node._on_goal(goal)
        for _ in range(20):
            now += PERIOD
            tick(now, alive=True)
        driving = "POLICY" if source == "policy" else "TELEOP"
        assert node.arbiter.mode.value == driving
        now -= 5.0  # the jump back, as the source stops
        jumped = now
        while node.arbiter.mode.value == driving and now < jumped + 3.0:
            now += PERIOD
            tick(now, alive=False)
        assert node.arbiter.mode.value == "FALLBACK"
        assert now - jumped <= 0.5 + 2 * PERIOD, f"still {driving} {now - jumped:.2f} s after"
    finally:
        node.destroy_node()


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[object] = []

    def publish(self, msg: object) -> None:
        self.messages.append(msg)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("angle_increment", 0.0, "angle_increment_not_positive"),
        ("angle_max", 0.0, "beam_count_mismatch"),  # angle_max left unset: 181 beams implied
        ("range_min", 4.0, "range_min_above_range_max"),
        ("range_max", math.inf, "range_max_not_finite"),
        ("intensities", [1.0], "intensities_length_mismatch"),
    ],
)
def test_an_invalid_scan_is_dropped_and_counted_by_reason(rclpy_context, field, value, reason):
    node = HybridFallbackNode(context=rclpy_context)
    try:
        node.diag_pub = _Recorder()
        scan = LaserScan()
        scan.angle_min, scan.angle_increment = -math.pi, 2 * math.pi / 360
        scan.angle_max = scan.angle_min + 359 * scan.angle_increment
        scan.range_min, scan.range_max = 0.12, 3.5
        scan.ranges = [2.0] * 360
        node._on_scan(scan)
        accepted = node.supervisor.scan
        assert accepted is not None and not accepted.blind

        setattr(scan, field, value)
        node._on_scan(scan)
        assert node.supervisor.scan is accepted, (
            "an invalid scan must not replace the last valid one"
        )
        node._publish_diagnostics()
        (status,) = node.diag_pub.messages[-1].status
        values = {kv.key: kv.value for kv in status.values}
        assert values[f"rejected_scan_{reason}"] == "1"
        assert values["dropped scan"] == "1"
        assert sum(int(v) for k, v in values.items() if k.startswith("rejected_scan_")) == 1
    finally:
        node.destroy_node()
