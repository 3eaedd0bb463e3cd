"""rl_policy_node: runs a TorchScript or ONNX navigation policy at a fixed rate, with hot swap.

Subscribes `scan`, `odom`, `goal_pose` and `policy/enable`; publishes `policy/cmd_vel`,
`policy/active`, optionally `policy/shadow/cmd_vel` and `policy/inference_ms`, and
`/diagnostics` at 1 Hz. The control timer has its own callback group, so parameter
calls (which load and check candidate models) never hold a tick up; the live models
are only ever called from that timer. All decisions live in `policy_runtime`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from rl_policy_node.observation import ScanInput
from rl_policy_node.policy_loader import cuda_available, set_inference_threads
from rl_policy_node.policy_runtime import (
    OdomSample,
    PolicyController,
    PolicySlot,
    RollingWindow,
    ScanSample,
    TickMonitor,
    device_problem,
    models_directory,
    prepare_policy,
    reason_level,
    resolve_model_path,
    velocity_limits_problem,
    with_implicit_limits,
    yaw_from_quaternion,
)
from rl_policy_node.threaded_executor import StartedTaskExecutor
from rlguard_common.node_shutdown import interrupts_end_quietly
from rlguard_common.scan_validity import REASONS as SCAN_REASONS
from rlguard_common.scan_validity import validate_scan_message

NODE_NAME = "rl_policy_node"

RELIABLE_LAST = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
)
LATCHED = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
GOAL_QOS = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
)
ODOM_QOS = QoSProfile(
    depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST
)

DIAGNOSTIC_LEVELS = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR)


def _stamp_ns(stamp: object) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec  # type: ignore[attr-defined]


def _float_range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class PolicyNode(Node):
    """The policy inference node (see the module docstring)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(NODE_NAME, **kwargs)
        # One thread per inference; torch (imported only for a .pt file) and ONNX Runtime.
        set_inference_threads(1)
        self._declare_parameters()
        p = self._param
        self._max_velocity = list(p("max_velocity"))
        problem = velocity_limits_problem(self._max_velocity)
        if problem:
            self.get_logger().error(f"{problem}; using [0.26, 1.82]")
            self._max_velocity = [0.26, 1.82]
        self._device = str(p("device"))
        problem = device_problem(self._device, cuda_available)
        if problem:
            self.get_logger().error(f"{problem}; running on cpu")
            self._device = "cpu"
        self._models_dir = str(p("models_dir"))
        self._warmup_runs = int(p("warmup_runs"))
        self._controller = PolicyController(
            source_timeout=float(p("source_timeout")),
            goal_tolerance=float(p("goal_tolerance")),
            max_inference_ms=float(p("max_inference_ms")),
            enabled=bool(p("enabled_on_start")),
        )
        self._period = 1.0 / float(p("control_rate_hz"))
        self._monitor = TickMonitor(self._period)
        self._dropped = {"scan": 0, "odom": 0, "goal_pose": 0}
        self._rejected_scans = dict.fromkeys(SCAN_REASONS, 0)
        self._odom_frame = ""
        self._twist = Twist()
        self._shadow_twist = Twist()
        self._inference_msg = Float32()
        self._published_active: bool | None = None
        self._logged_reason: str | None = None
        self._staged: dict[str, object] = {}

        control_group = MutuallyExclusiveCallbackGroup()
        input_group = MutuallyExclusiveCallbackGroup()
        self._cmd_pub = self._publisher(Twist, "policy/cmd_vel", RELIABLE_LAST)
        self._active_pub = self._publisher(Bool, "policy/active", LATCHED)
        self._diagnostics_pub = self._publisher(DiagnosticArray, "/diagnostics", 10)
        self._shadow_pub = None
        self._inference_pub = None
        self._ensure_optional_publishers(
            bool(p("shadow_model_path")), bool(p("publish_inference_ms"))
        )
        for message_type, topic, callback, qos in (
            (LaserScan, "scan", self._on_scan, qos_profile_sensor_data),
            (Odometry, "odom", self._on_odom, ODOM_QOS),
            (PoseStamped, "goal_pose", self._on_goal, GOAL_QOS),
            (Bool, "policy/enable", self._on_enable, LATCHED),
        ):
            self.create_subscription(
                message_type,
                topic,
                callback,
                qos,
                callback_group=input_group,
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=self._incompatible_qos_warning(topic),
                    use_default_callbacks=False,
                ),
            )
        self.create_service(Trigger, "policy/reload", self._on_reload)

        self._load_at_start("model_path", str(p("model_path")))
        self._load_at_start("shadow_model_path", str(p("shadow_model_path")))
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._publish_active(False)
        self.create_timer(self._period, self._on_control_tick, callback_group=control_group)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"running at {1.0 / self._period:g} Hz on {self._device}, "
            f"{'enabled' if self._controller.enabled else 'disabled'}"
        )

    # ------------------------------------------------------------------ parameters

    def _param(self, name: str) -> object:
        return self.get_parameter(name).value

    def _declare_parameters(self) -> None:
        def declare(name: str, default: object, description: str, **extra: object) -> None:
            self.declare_parameter(
                name, default, ParameterDescriptor(description=description, **extra)
            )

        declare(
            "model_path",
            "",
            "Policy file (TorchScript with card); relative paths resolve against models_dir. "
            "Empty: no model, the node stays inactive. Setting it loads, checks and swaps.",
        )
        declare(
            "shadow_model_path",
            "",
            "Optional second policy run on the same observation; publishes "
            "policy/shadow/cmd_vel and its divergence, never drives. Empty: off.",
        )
        declare(
            "models_dir",
            "",
            "Directory for relative model paths. Empty: $RLGUARD_MODELS_DIR, else the installed "
            "share/rl_policy_node/models, else $RLGUARD_WORKSPACE/models, else ./models.",
        )
        declare(
            "enabled_on_start",
            True,
            "Produce commands from start-up (policy/enable switches at run time).",
            read_only=True,
        )
        declare(
            "control_rate_hz",
            20.0,
            "Control loop rate (Hz).",
            read_only=True,
            floating_point_range=_float_range(1.0, 1000.0),
        )
        declare(
            "source_timeout",
            0.5,
            "scan/odom older than this (header stamp or arrival, s) stop the policy.",
            floating_point_range=_float_range(0.01, 10.0),
        )
        declare(
            "goal_tolerance",
            0.08,
            "Distance to the goal (m) at which it counts as reached: one zero, then inactive.",
            floating_point_range=_float_range(0.0, 10.0),
        )
        declare(
            "max_velocity",
            [0.26, 1.82],
            "[linear m/s, angular rad/s]: a card exceeding these is refused; card-less "
            "policies map -1..1 to -max..max.",
        )
        declare(
            "max_inference_ms",
            25.0,
            "An inference slower than this (ms) is an overrun: its command is dropped.",
            floating_point_range=_float_range(0.001, 1000.0),
        )
        declare("device", "cpu", "Torch device: cpu, or cuda / cuda:N when CUDA is available.")
        declare(
            "warmup_runs",
            10,
            "Inferences run on a candidate model before it may drive.",
            integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)],
        )
        declare(
            "publish_inference_ms", False, "Publish each inference time on policy/inference_ms."
        )

    def _prepare(
        self,
        requested: str,
        device: str,
        max_velocity: Sequence[float],
        models_dir: str | None = None,
    ) -> PolicySlot:
        base = models_directory(self._models_dir if models_dir is None else models_dir)
        path = resolve_model_path(requested, base)
        return prepare_policy(
            path,
            requested,
            max_velocity,
            device=device,
            live=self._controller.dry_run_inputs(),
            warmup_runs=self._warmup_runs,
        )

    def _load_at_start(self, name: str, requested: str) -> None:
        if not requested:
            return
        try:
            slot = self._prepare(requested, self._device, self._max_velocity)
        except ValueError as exc:
            self.get_logger().error(f"{name}: {exc}")
            if name == "model_path":
                self._controller.install(None, str(exc))
            return
        self.get_logger().info(f"{name}: loaded {slot.label} from {slot.policy.path}")
        if name == "model_path":
            self._controller.install(slot)
        else:
            self._controller.shadow = slot

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a parameter set; load and check new models (refused on any failure)."""
        new = {param.name: param.value for param in parameters}
        staged: dict[str, object] = {}
        try:
            max_velocity = list(new.get("max_velocity", self._max_velocity))
            problem = velocity_limits_problem(max_velocity)
            if problem:
                raise ValueError(problem)
            device = str(new.get("device", self._device))
            problem = device_problem(device, cuda_available)
            if problem:
                raise ValueError(problem)
            models_dir = str(new.get("models_dir", self._models_dir))
            reload_all = device != self._device
            for name, current in (
                ("model_path", self._controller.slot),
                ("shadow_model_path", self._controller.shadow),
            ):
                if name in new or (reload_all and current is not None):
                    requested = str(new.get(name, self._param(name)))
                    staged[name] = (
                        self._prepare(requested, device, max_velocity, models_dir)
                        if requested
                        else None
                    )
                elif "max_velocity" in new and current is not None:
                    staged[name] = with_implicit_limits(current, max_velocity)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        staged["max_velocity"] = max_velocity
        staged["device"] = device
        staged["models_dir"] = models_dir
        self._staged = staged
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        """Commit a validated set: swap models (one assignment each) and update settings."""
        staged, self._staged = self._staged, {}
        controller = self._controller
        self._max_velocity = staged.get("max_velocity", self._max_velocity)
        self._device = str(staged.get("device", self._device))
        self._models_dir = str(staged.get("models_dir", self._models_dir))
        if "model_path" in staged:
            slot = staged["model_path"]
            controller.install(slot)  # type: ignore[arg-type]
            label = slot.label if slot is not None else "none"  # type: ignore[union-attr]
            self.get_logger().info(f"model swapped to {label}")
        if "shadow_model_path" in staged:
            self._ensure_optional_publishers(staged["shadow_model_path"] is not None, False)
            controller.shadow = staged["shadow_model_path"]  # type: ignore[assignment]
            controller.divergence = RollingWindow()
        for param in parameters:
            if param.name == "source_timeout":
                controller.source_timeout_ns = int(param.value * 1e9)
            elif param.name == "goal_tolerance":
                controller.goal_tolerance = float(param.value)
            elif param.name == "max_inference_ms":
                controller.max_inference_ms = float(param.value)
            elif param.name == "warmup_runs":
                self._warmup_runs = int(param.value)
            elif param.name == "publish_inference_ms":
                self._ensure_optional_publishers(False, bool(param.value))

    def _publisher(self, message_type: type, topic: str, qos: QoSProfile | int) -> Publisher:
        # Without the default QoS-event handlers: each is an entity the executor adds to
        # every wait set, and the subscriber side reports an incompatible QoS anyway.
        return self.create_publisher(
            message_type,
            topic,
            qos,
            event_callbacks=PublisherEventCallbacks(use_default_callbacks=False),
        )

    def _incompatible_qos_warning(self, topic: str) -> Callable[[object], None]:
        def warn(event: object) -> None:
            self.get_logger().warning(
                f"a publisher of {topic!r} offers an incompatible QoS; its messages are not "
                "received (see the QoS table in ARCHITECTURE.md)"
            )

        return warn

    def _ensure_optional_publishers(self, shadow: bool, inference_ms: bool) -> None:
        if shadow and self._shadow_pub is None:
            self._shadow_pub = self._publisher(Twist, "policy/shadow/cmd_vel", RELIABLE_LAST)
        if inference_ms and self._inference_pub is None:
            self._inference_pub = self._publisher(Float32, "policy/inference_ms", 10)

    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Re-read the current model_path (and shadow_model_path) from disk."""
        messages = []
        try:
            requested = str(self._param("model_path"))
            slot = self._prepare(requested, self._device, self._max_velocity) if requested else None
            shadow_requested = str(self._param("shadow_model_path"))
            shadow = (
                self._prepare(shadow_requested, self._device, self._max_velocity)
                if shadow_requested
                else None
            )
        except ValueError as exc:
            response.success = False
            response.message = str(exc)
            self.get_logger().error(f"reload refused: {exc}")
            return response
        self._controller.install(slot)
        self._controller.shadow = shadow
        messages.append(f"model {slot.label if slot else 'none'}")
        if shadow is not None:
            messages.append(f"shadow {shadow.label}")
        response.success = True
        response.message = "reloaded " + ", ".join(messages)
        self.get_logger().info(response.message)
        return response

    # -------------------------------------------------------------------- inputs

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_scan(self, msg: LaserScan) -> None:
        reason = validate_scan_message(msg)
        if reason is not None:
            # The last valid scan ages out after source_timeout: the policy then stops.
            self._dropped["scan"] += 1
            self._rejected_scans[reason] += 1
            self.get_logger().warning(f"scan rejected ({reason})", throttle_duration_sec=5.0)
            return
        scan = ScanInput(
            np.frombuffer(msg.ranges, dtype=np.float32),
            msg.angle_min,
            msg.angle_increment,
            msg.range_min,
            msg.range_max,
        )
        self._controller.scan = ScanSample(scan, _stamp_ns(msg.header.stamp), self._now_ns())

    def _on_odom(self, msg: Odometry) -> None:
        position = msg.pose.pose.position
        q = msg.pose.pose.orientation
        twist = msg.twist.twist
        values = (position.x, position.y, q.x, q.y, q.z, q.w, twist.linear.x, twist.angular.z)
        if not all(math.isfinite(v) for v in values):
            self._dropped["odom"] += 1
            return
        self._odom_frame = msg.header.frame_id
        self._controller.odom = OdomSample(
            (position.x, position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)),
            (twist.linear.x, twist.angular.z),
            _stamp_ns(msg.header.stamp),
            self._now_ns(),
        )

    def _on_goal(self, msg: PoseStamped) -> None:
        x, y = msg.pose.position.x, msg.pose.position.y
        frame = msg.header.frame_id
        wrong_frame = frame and self._odom_frame and frame != self._odom_frame
        if not (math.isfinite(x) and math.isfinite(y)) or wrong_frame:
            self._dropped["goal_pose"] += 1
            self.get_logger().warning(
                f"goal dropped: ({x}, {y}) in frame {frame!r} "
                f"(needs finite values in the odom frame {self._odom_frame!r})"
            )
            return
        if self._controller.goal == (x, y):
            return  # the same goal re-sent (for late joiners): not a new goal
        self._controller.set_goal(x, y)
        self.get_logger().info(f"new goal ({x:.2f}, {y:.2f})")

    def _on_enable(self, msg: Bool) -> None:
        if msg.data != self._controller.enabled:
            self.get_logger().info("policy enabled" if msg.data else "policy disabled")
        self._controller.enabled = bool(msg.data)

    # ---------------------------------------------------------------------- tick

    def _on_control_tick(self) -> None:
        started = time.perf_counter_ns()
        now_ns = self._now_ns()
        controller = self._controller
        result = controller.step(now_ns)
        if result.command is not None:
            twist = self._twist
            twist.linear.x, twist.angular.z = result.command
            self._cmd_pub.publish(twist)
        if result.active is not self._published_active:
            self._publish_active(result.active)
        if result.inference_ms is not None and self._inference_pub is not None:
            self._inference_msg.data = result.inference_ms
            self._inference_pub.publish(self._inference_msg)
        if controller.shadow is not None and self._shadow_pub is not None:
            shadow = controller.shadow_step()
            if shadow is not None and shadow.command is not None:
                twist = self._shadow_twist
                twist.linear.x, twist.angular.z = shadow.command
                self._shadow_pub.publish(twist)
        self._monitor.record(now_ns, time.perf_counter_ns() - started)
        if result.reason != self._logged_reason:
            self._log_reason(result.reason)

    def _publish_active(self, active: bool) -> None:
        self._active_pub.publish(Bool(data=active))
        self._published_active = active

    def _log_reason(self, reason: str) -> None:
        previous = self._logged_reason
        self._logged_reason = reason
        if previous is None or reason.split(":", 1)[0] != previous.split(":", 1)[0]:
            self.get_logger().info("active" if not reason else f"inactive: {reason}")

    # --------------------------------------------------------------- diagnostics

    def diagnostic_values(self) -> dict[str, str]:
        """Everything the 1 Hz diagnostics report, as strings."""
        controller, monitor = self._controller, self._monitor
        goal = controller.goal
        values = {
            "active": str(controller.active).lower(),
            "enabled": str(controller.enabled).lower(),
            "reason": controller.reason,
            "commands": str(controller.commands),
            "goal": "none" if goal is None else f"{goal[0]:.3f}, {goal[1]:.3f}",
        }
        slot = controller.slot
        if slot is not None:
            card = slot.policy.card
            values.update(
                {
                    "model_name": card.name,
                    "model_version": card.version,
                    "model_sha256": slot.policy.sha256,
                    "model_path": str(slot.policy.path),
                    "model_has_card": str(slot.policy.has_card).lower(),
                    "observation_size": str(slot.policy.observation_size),
                }
            )
        inference = controller.inference_ms.summary()
        values.update(
            {
                "inference_ms_mean": _fmt(inference.get("mean")),
                "inference_ms_p99": _fmt(inference.get("p99")),
                "inference_ms_max": _fmt(inference.get("max")),
                "tick_period_ms_mean": _fmt(monitor.periods_ms.summary().get("mean")),
                "tick_jitter_ms": _fmt(monitor.jitter_ms()),
                "tick_period_error_ms_max": _fmt(monitor.max_period_error_ms()),
                "tick_compute_ms_p99": _fmt(monitor.compute_ms.summary().get("p99")),
                "ticks": str(monitor.ticks),
                "deadline_misses": str(monitor.deadline_misses),
                "non_finite_outputs": str(controller.non_finite_outputs),
                "inference_overruns": str(controller.overruns),
                "device": self._device,
            }
        )
        for topic, count in self._dropped.items():
            values[f"dropped_{topic}"] = str(count)
        for rejection, count in self._rejected_scans.items():
            values[f"rejected_scan_{rejection}"] = str(count)
        shadow = controller.shadow
        if shadow is not None:
            divergence = controller.divergence.summary((95.0,))
            values.update(
                {
                    "shadow_model_name": shadow.policy.card.name,
                    "shadow_model_version": shadow.policy.card.version,
                    "shadow_model_sha256": shadow.policy.sha256,
                    "shadow_divergence_mean": _fmt(divergence.get("mean"), 6),
                    "shadow_divergence_p95": _fmt(divergence.get("p95"), 6),
                    "shadow_divergence_max": _fmt(divergence.get("max"), 6),
                    "shadow_samples": str(len(controller.divergence)),
                }
            )
        return values

    def _publish_diagnostics(self) -> None:
        reason = self._controller.reason
        status = DiagnosticStatus(
            level=DIAGNOSTIC_LEVELS[reason_level(reason)],
            name=f"{self.get_name()}: policy",
            hardware_id=NODE_NAME,
            message="active" if not reason else f"inactive: {reason}",
            values=[KeyValue(key=k, value=v) for k, v in self.diagnostic_values().items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the node with a threaded executor (control timer, inputs, everything else)."""
    with interrupts_end_quietly():  # Ctrl-C, even repeated, ends the node with code 0
        rclpy.init(args=args)
        set_inference_threads(1)  # before any inference: torch's inter-op pool stays at 1
        node = None
        try:
            node = PolicyNode()
            # One worker per callback group: control tick, inputs, parameters/services.
            executor = StartedTaskExecutor(num_threads=3)
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
