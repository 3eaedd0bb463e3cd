"""Integration tests: the real safety_controller node as a separate process, over DDS."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

NODE = "safety_controller.safety_node"
PARAMS = {"velocity_timeout": 0.5, "source_timeout": 0.5, "publish_rate": 20.0}
PERIOD = 1.0 / 20.0
RAMP = 0.26 / 1.6  # braking from full speed at the default emergency_decel

UPSTREAM_SCRIPT = """
import rclpy
from geometry_msgs.msg import Twist
rclpy.init()
node = rclpy.create_node("fake_upstream")
pub = node.create_publisher(Twist, "cmd_vel_nav", 1)
msg = Twist()
msg.linear.x = 0.2
node.create_timer(0.05, lambda: pub.publish(msg))
print("upstream ready", flush=True)
rclpy.spin(node)
"""


class Probe:
    """The test's own node: feeds scans and commands, records what the controller sends."""

    def __init__(self, context, stamped: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist, TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import Bool, Float32

        self.node = rclpy.create_node("safety_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.cmd: list[tuple[float, float, float]] = []  # (receive time, v, w)
        self.stamped_frames: list[str] = []
        self.scale: list[float] = []
        self.estop_active: list[bool] = []
        self.diagnostics: list[object] = []
        self.twist_type = TwistStamped if stamped else Twist
        self.node.create_subscription(self.twist_type, "cmd_vel", self._on_cmd, 100)
        self.node.create_subscription(
            Float32, "safety/scale", lambda m: self.scale.append(m.data), 100
        )
        self.node.create_subscription(
            Bool, "safety/estop_active", lambda m: self.estop_active.append(m.data), latched
        )
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.append(m), 10
        )
        self.cmd_pub = self.node.create_publisher(Twist, "cmd_vel_nav", 1)
        self.scan_pub = self.node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self.estop_pub = self.node.create_publisher(Bool, "safety/estop", latched)
        self.command: tuple[float, float] | None = None
        self.scanning = True
        self.scan_changes: dict[str, object] = {}  # fields to corrupt in the scans sent
        self.node.create_timer(0.05, self._send_command)
        self.node.create_timer(0.1, self._send_scan)
        self._twist, self._scan, self._bool = Twist, LaserScan, Bool

    def _on_cmd(self, msg) -> None:
        if hasattr(msg, "header"):
            self.stamped_frames.append(msg.header.frame_id)
            msg = msg.twist
        self.cmd.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def _send_command(self) -> None:
        if self.command is not None:
            msg = self._twist()
            msg.linear.x, msg.angular.z = self.command
            self.cmd_pub.publish(msg)

    def _send_scan(self) -> None:
        if not self.scanning:
            return
        msg = self._scan()
        msg.header.frame_id = "base_scan"
        msg.angle_min, msg.angle_increment = -math.pi, 2 * math.pi / 360
        msg.angle_max = msg.angle_min + 359 * msg.angle_increment
        msg.range_min, msg.range_max = 0.12, 3.5
        msg.ranges = [3.0] * 360  # open space all around
        for name, value in self.scan_changes.items():
            setattr(msg, name, value)
        self.scan_pub.publish(msg)

    def set_estop(self, value: bool) -> None:
        self.estop_pub.publish(self._bool(data=value))

    def diagnostic_values(self) -> dict[str, str]:
        """The key/values of the controller's last diagnostics message (empty: none yet)."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith("safety_controller"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)
            if condition():
                return True
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f"{name} did not answer"
        return future.result()

    def trigger(self, name: str):
        from std_srvs.srv import Trigger

        return self.call(Trigger, name, Trigger.Request())

    def driving(self, speed: float = 0.2) -> bool:
        return bool(self.cmd) and abs(self.cmd[-1][1] - speed) < 1e-6

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def probe(rclpy_context):
    created = []

    def make(stamped: bool = False) -> Probe:
        created.append(Probe(rclpy_context, stamped))
        return created[-1]

    yield make
    for p in created:
        p.close()


def test_estop_zeroes_on_next_message_and_latches_until_reset(start_node, probe):
    proc = start_node(NODE, parameters=PARAMS)
    p = probe()
    p.command = (0.2, 0.0)
    assert p.spin_until(p.driving, 20.0), "controller never passed the command"

    sent = len(p.cmd)
    p.set_estop(True)
    assert p.spin_until(lambda: p.estop_active and p.estop_active[-1], 5.0)
    p.spin_for(0.5)
    after = [v for _, v, _ in p.cmd[sent:]]
    first_zero = after.index(0.0)
    # Only messages already on the wire when the e-stop arrived may still be non-zero.
    assert first_zero <= 2, after[:5]
    assert all(v == 0.0 for v in after[first_zero:])

    refused = p.trigger("safety/reset")
    assert not refused.success and "still true" in refused.message
    p.set_estop(False)
    p.spin_for(0.5)
    assert p.cmd[-1][1] == 0.0 and p.estop_active[-1], "must stay latched until reset"

    assert p.trigger("safety/reset").success
    assert p.spin_until(p.driving, 5.0)
    assert p.estop_active[-1] is False

    assert p.trigger("safety/trigger_estop").success
    answered = len(p.cmd)
    p.spin_for(0.3)
    after = [v for _, v, _ in p.cmd[answered:]]
    first_zero = after.index(0.0)
    assert first_zero <= 2 and all(v == 0.0 for v in after[first_zero:]), after[:5]
    assert proc.is_running()


def test_killing_the_upstream_publisher_brings_cmd_vel_to_zero(start_node, probe, ros_env):
    start_node(NODE, parameters=PARAMS)
    p = probe()
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_SCRIPT], env=ros_env, start_new_session=True
    )
    try:
        assert p.spin_until(p.driving, 20.0), "controller never passed the upstream command"
        p.spin_for(0.3)
        upstream.send_signal(signal.SIGKILL)
        upstream.wait(timeout=5.0)
        killed = time.monotonic()
        assert p.spin_until(lambda: p.cmd[-1][0] > killed and p.cmd[-1][1] == 0.0, 5.0)
        zero_at = next(t for t, v, _ in p.cmd if t > killed and v == 0.0)
        # velocity_timeout + one period + braking ramp, plus slack for a loaded machine.
        assert zero_at - killed <= 0.5 + PERIOD + RAMP + 0.5
        p.spin_for(0.3)
        assert p.cmd[-1][0] > zero_at and p.cmd[-1][1] == 0.0, "timer must keep publishing zero"
    finally:
        if upstream.poll() is None:
            upstream.kill()
            upstream.wait()


def test_stopping_scan_stops_the_robot(start_node, probe):
    start_node(NODE, parameters=PARAMS)
    p = probe()
    p.command = (0.2, 0.0)
    assert p.spin_until(p.driving, 20.0)
    p.scanning = False
    stopped = time.monotonic()
    assert p.spin_until(lambda: p.cmd[-1][0] > stopped and p.cmd[-1][1] == 0.0, 5.0)
    zero_at = next(t for t, v, _ in p.cmd if t > stopped and v == 0.0)
    assert zero_at - stopped <= 0.5 + PERIOD + RAMP + 0.5
    assert p.scale[-1] == 0.0

    def reports_stale_scan() -> bool:
        from diagnostic_msgs.msg import DiagnosticStatus

        return any(
            s.level == DiagnosticStatus.ERROR and "STALE_SCAN" in s.message
            for d in p.diagnostics
            for s in d.status
        )

    assert p.spin_until(reports_stale_scan, 3.0), "diagnostics should report the stale scan"


def _set(p: Probe, **values):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    request = SetParameters.Request()
    for name, value in values.items():
        if isinstance(value, str):
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        elif isinstance(value, list):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        request.parameters.append(Parameter(name=name, value=pv))
    response = p.call(SetParameters, "/safety_controller/set_parameters", request)
    return response.results


def test_bad_parameters_are_refused_and_the_node_keeps_running(start_node, probe):
    proc = start_node(NODE, parameters=PARAMS)
    p = probe()
    p.command = (0.2, 0.0)
    assert p.spin_until(p.driving, 20.0)

    (result,) = _set(p, max_decel=[-1.0, -3.2])
    assert not result.successful and "weaker than max_accel" in result.reason
    (result,) = _set(p, footprint="[[0.1, 0.1], [0.2")
    assert not result.successful and "footprint" in result.reason
    (result,) = _set(p, max_velocity=[-0.1, 1.0])
    assert not result.successful and ">= 0" in result.reason
    (result,) = _set(p, reaction_time=0.01)
    assert not result.successful and "reaction_time" in result.reason
    p.spin_for(0.3)
    assert proc.is_running() and p.driving(0.2), "old values must stay in force"

    (result,) = _set(p, max_velocity=[0.1, 1.0])
    assert result.successful
    assert p.spin_until(lambda: p.driving(0.1), 5.0)
    assert p.spin_until(lambda: abs(p.scale[-1] - 0.5) < 1e-6, 2.0), p.scale[-3:]

    p.command = (math.nan, 0.0)
    assert p.spin_until(lambda: p.cmd[-1][1] == 0.0, 5.0), "non-finite input must give zero"
    assert proc.is_running()


def test_stamped_output_carries_the_base_frame(start_node, probe):
    start_node(NODE, parameters={**PARAMS, "enable_stamped_cmd_vel": True, "base_frame_id": "base"})
    p = probe(stamped=True)
    p.command = (0.1, 0.5)
    assert p.spin_until(lambda: p.driving(0.1), 20.0)
    assert p.stamped_frames[-1] == "base"
    assert p.cmd[-1][2] == pytest.approx(0.5)


def _stays_zero(p: Probe, seconds: float) -> bool:
    """True when every command received during the next `seconds` is zero."""
    start = len(p.cmd)
    p.spin_for(seconds)
    return len(p.cmd) > start and all(v == 0.0 and w == 0.0 for _, v, w in p.cmd[start:])


def _engaged(p: Probe) -> bool:
    return bool(p.estop_active) and p.estop_active[-1] and bool(p.cmd) and p.cmd[-1][1] == 0.0


def test_estop_is_heard_from_volatile_and_transient_local_publishers(start_node, probe):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool

    proc = start_node(NODE, parameters=PARAMS)
    p = probe()
    p.command = (0.2, 0.0)
    assert p.spin_until(p.driving, 20.0), "controller never passed the command"
    # What `ros2 topic pub --once safety/estop std_msgs/msg/Bool "{data: true}"` creates.
    volatile = p.node.create_publisher(
        Bool,
        "safety/estop",
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
    )
    assert volatile.qos_profile.durability == DurabilityPolicy.VOLATILE
    assert p.spin_until(lambda: volatile.get_subscription_count() > 0, 10.0), (
        "no subscription on safety/estop matches a volatile publisher"
    )
    transient_local = p.estop_pub
    assert transient_local.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL

    for name, publisher in (("volatile", volatile), ("transient-local", transient_local)):
        assert p.spin_until(p.driving, 10.0), f"not driving before the {name} e-stop"
        publisher.publish(Bool(data=True))
        assert p.spin_until(lambda: _engaged(p), 5.0), f"{name} e-stop not heard"
        assert _stays_zero(p, 0.3), f"{name} e-stop must keep cmd_vel at zero"

        publisher.publish(Bool(data=False))
        reset = p.spin_until(lambda: p.trigger("safety/reset").success, 10.0)
        assert reset, f"reset refused after the {name} publisher released the e-stop"
        assert p.spin_until(lambda: p.estop_active and not p.estop_active[-1], 5.0)
    assert p.spin_until(p.driving, 10.0)
    assert proc.is_running()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"angle_increment": 0.0}, "angle_increment_not_positive"),
        ({"ranges": [3.0] * 720}, "beam_count_mismatch"),
        ({"range_min": 4.0}, "range_min_above_range_max"),
    ],
    ids=["zero-increment", "720-ranges-for-360-beams", "range_min-above-range_max"],
)
def test_an_invalid_scan_stops_the_robot_with_the_reason(start_node, probe, changes, reason):
    from diagnostic_msgs.msg import DiagnosticStatus

    proc = start_node(NODE, parameters=PARAMS)
    p = probe()
    p.command = (0.2, 0.0)
    assert p.spin_until(p.driving, 20.0), "controller never passed the command"

    p.scan_changes = changes  # every scan from now on is invalid, the request stays 0.2
    assert p.spin_until(lambda: p.cmd[-1][1] == 0.0, 5.0), "invalid scans must stop the robot"
    assert _stays_zero(p, 0.5)

    def reports_rejection() -> bool:
        values = p.diagnostic_values()
        return (
            int(values.get(f"rejected_scan_{reason}", "0")) > 0
            and values.get("last_rejected_reason") == reason
            and values.get("state") == "INVALID_SCAN"
        )

    assert p.spin_until(reports_rejection, 5.0), p.diagnostic_values()
    assert any(
        s.level == DiagnosticStatus.ERROR and reason in s.message
        for d in p.diagnostics
        for s in d.status
    )
    assert _stays_zero(p, 0.3)

    p.scan_changes = {}  # valid scans again: the robot may drive
    assert p.spin_until(p.driving, 5.0)
    assert proc.is_running()
