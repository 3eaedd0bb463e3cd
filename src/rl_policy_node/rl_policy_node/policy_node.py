"""rl_policy_node: runs a TorchScript or ONNX navigation policy at a fixed rate, with hot swap.

Subscribes `scan`, `odom`, `goal_pose` and `policy/enable`; publishes `policy/cmd_vel`,
`policy/active`, optionally `policy/shadow/cmd_vel` and `policy/inference_ms`, and
`/diagnostics` at 1 Hz. The control timer has its own callback group, so parameter
calls (which load and check candidate models) never hold a tick up; the live models
are only ever called from that timer. All decisions live in the ROS-free cores:
`policy_runtime` (the controller), `policy_inputs`, `policy_slots` (candidates and
swaps), `policy_diagnostics`, `tick_stats`, `model_paths` and `node_config` (parameters).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32, Float32MultiArray, MultiArrayDimension, String
from std_srvs.srv import Trigger

from rl_policy_node import live_monitor, policy_diagnostics, probation, scan_drift
from rl_policy_node.drift_watch import DriftWatch
from rl_policy_node.model_gate import gate_problem
from rl_policy_node.model_lifecycle import ModelLifecycle
from rl_policy_node.model_paths import models_directory, resolve_model_path
from rl_policy_node.node_config import NODE_NAME, PARAMETERS
from rl_policy_node.observation import ScanInput
from rl_policy_node.policy_diagnostics import reason_level, status_message
from rl_policy_node.policy_inputs import ScanSample, goal_problem, odom_sample
from rl_policy_node.policy_loader import cuda_available, set_inference_threads
from rl_policy_node.policy_runtime import PolicyController
from rl_policy_node.policy_slots import (
    MODEL_PARAMETERS,
    PolicySlot,
    device_problem,
    prepare_policy,
    staged_slots,
    velocity_limits_problem,
)
from rl_policy_node.probation import event_json, model_key
from rl_policy_node.threaded_executor import ClockGroupNode, StartedTaskExecutor
from rl_policy_node.tick_stats import RollingWindow, TickMonitor
from rl_policy_node.transition_record import TransitionRecord, closest_return, encode
from rlguard_common import topics
from rlguard_common.node_support import declare_parameters, qos_profile, run_node
from rlguard_common.scan_validity import REASONS as SCAN_REASONS
from rlguard_common.scan_validity import validate_scan_message
from safety_controller.scan_geometry import LidarMount

# One worker per callback group: control tick, inputs, grid planning, /clock,
# parameters/services.
EXECUTOR_THREADS = 5

DIAGNOSTIC_LEVELS = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR)


def _stamp_ns(stamp: Any) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def transition_message(record: TransitionRecord) -> Float32MultiArray:
    """A transition record as the policy/transition message (`transition_record` layout)."""
    labels, sizes, data = encode(record)
    message = Float32MultiArray()
    message.layout.dim = [
        MultiArrayDimension(label=label, size=size, stride=size)
        for label, size in zip(labels, sizes, strict=True)
    ]
    message.data = data
    return message


class PolicyNode(ClockGroupNode):
    """The policy inference node (see the module docstring)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(NODE_NAME, **kwargs)
        # One thread per inference; torch (imported only for a .pt file) and ONNX Runtime.
        set_inference_threads(1)
        values = declare_parameters(self, PARAMETERS)
        self._max_velocity = list(values["max_velocity"])
        problem = velocity_limits_problem(self._max_velocity)
        if problem:
            fallback = list(PARAMETERS["max_velocity"].default)
            self.get_logger().error(f"{problem}; using {fallback}")
            self._max_velocity = fallback
        self._device = str(values["device"])
        problem = device_problem(self._device, cuda_available)
        if problem:
            self.get_logger().error(f"{problem}; running on cpu")
            self._device = "cpu"
        self._models_dir = str(values["models_dir"])
        self._warmup_runs = int(values["warmup_runs"])
        self._require_gated = bool(values["require_gated_model"])
        self._record_transitions = bool(values["record_transitions"])
        self._transition_pub: Publisher | None = None
        self._internal_model_path: str | None = None  # model_path a rollback writes back
        self._controller = PolicyController(
            source_timeout=float(values["source_timeout"]),
            goal_tolerance=float(values["goal_tolerance"]),
            max_inference_ms=float(values["max_inference_ms"]),
            enabled=bool(values["enabled_on_start"]),
            lidar_mount=LidarMount(
                float(values["lidar_x"]), float(values["lidar_y"]), float(values["lidar_yaw"])
            ),
        )
        self._lifecycle = ModelLifecycle(
            self._controller,
            live_monitor.settings_from_parameters(values),
            probation.settings_from_parameters(values),
            float(values["intervention_scale_threshold"]),
        )
        self._drift = DriftWatch(self._controller, scan_drift.settings_from_parameters(values))
        self._period = 1.0 / float(values["control_rate_hz"])
        self._monitor = TickMonitor(self._period)
        self._dropped = {topics.SCAN: 0, topics.ODOM: 0, topics.GOAL_POSE: 0}
        self._rejected_scans = dict.fromkeys(SCAN_REASONS, 0)
        self._odom_frame = ""
        self._twist = Twist()
        self._shadow_twist = Twist()
        self._inference_msg = Float32()
        self._published_active: bool | None = None
        self._logged_reason: str | None = None
        # What the on-set callback validated, for the post-set callback to apply.
        self._staged_slots: dict[str, PolicySlot | None] = {}
        self._staged_settings: tuple[list[float], str, str] | None = None
        self._staged_drift: scan_drift.DriftSettings | None = None

        control_group = MutuallyExclusiveCallbackGroup()
        input_group = MutuallyExclusiveCallbackGroup()
        # Grid waypoint policies: mapping and replanning (up to ~100 ms on a busy machine)
        # run on their own worker, so the control tick only walks the last plan.
        planning_group = MutuallyExclusiveCallbackGroup()
        self._controller.plan_in_background = True
        self._cmd_pub = self._publisher(Twist, topics.POLICY_CMD_VEL, topics.COMMAND)
        self._active_pub = self._publisher(Bool, topics.POLICY_ACTIVE, topics.LATCHED)
        self._diagnostics_pub = self._publisher(
            DiagnosticArray, topics.DIAGNOSTICS, topics.RELIABLE
        )
        self._events_pub = self._publisher(String, topics.POLICY_EVENTS, topics.EVENTS)
        self._shadow_pub = None
        self._inference_pub = None
        self._ensure_optional_publishers(
            bool(values["shadow_model_path"]), bool(values["publish_inference_ms"])
        )
        self._ensure_transition_publisher()
        for message_type, topic, callback, qos in (
            (LaserScan, topics.SCAN, self._on_scan, topics.SENSOR_DATA),
            (Odometry, topics.ODOM, self._on_odom, topics.SENSOR_DATA),
            (PoseStamped, topics.GOAL_POSE, self._on_goal, topics.RELIABLE),
            (Bool, topics.POLICY_ENABLE, self._on_enable, topics.LATCHED),
            (Float32, topics.SAFETY_SCALE, self._on_scale, topics.RELIABLE),
            (String, topics.HYBRID_MODE, self._on_mode, topics.LATCHED),
        ):
            self.create_subscription(
                message_type,
                topic,
                callback,
                qos_profile(qos),
                callback_group=input_group,
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=self._incompatible_qos_warning(topic),
                    use_default_callbacks=False,
                ),
            )
        self.create_service(Trigger, topics.POLICY_RELOAD, self._on_reload)
        self.create_service(Trigger, topics.POLICY_CAPTURE_BASELINE, self._on_capture_baseline)
        self.create_service(Trigger, topics.POLICY_ROLLBACK, self._on_rollback)

        self._load_at_start("model_path", str(values["model_path"]))
        self._load_at_start("shadow_model_path", str(values["shadow_model_path"]))
        self._refresh_drift_baseline()
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._publish_active(False)
        self.create_timer(self._period, self._on_control_tick, callback_group=control_group)
        self.create_timer(self._period, self._on_planning_tick, callback_group=planning_group)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"running at {1.0 / self._period:g} Hz on {self._device}, "
            f"{'enabled' if self._controller.enabled else 'disabled'}"
        )

    # ------------------------------------------------------------------ parameters

    def _param(self, name: str) -> object:
        return self.get_parameter(name).value

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

    def _settings(
        self, core: Any, table: Mapping[str, object], new: Mapping[str, object] | None = None
    ) -> Any:
        """`core.settings_from_parameters` over the node's values of `table`'s parameters,
        with `new` (a parameter set being checked) laid over them."""
        current = {name: self._param(name) for name in table}
        return core.settings_from_parameters({**current, **(new or {})})

    def _gate_refusal(self, slot: PolicySlot | None, require: bool | None = None) -> None:
        """Raise a ValueError when gated models are required and `slot` has no passed gate."""
        required = self._require_gated if require is None else require
        if slot is None or not required:
            return
        problem = gate_problem(slot.policy.card, slot.policy.sha256)
        if problem:
            raise ValueError(f"{slot.policy.path}: refused (require_gated_model): {problem}")

    def _load_at_start(self, name: str, requested: str) -> None:
        if not requested:
            return
        try:
            slot = self._prepare(requested, self._device, self._max_velocity)
            if name == "model_path":
                self._gate_refusal(slot)
        except ValueError as exc:
            self.get_logger().error(f"{name}: {exc}")
            if name == "model_path":
                self._controller.install(None, str(exc))
            return
        self.get_logger().info(f"{name}: loaded {slot.label} from {slot.policy.path}")
        if name == "model_path":
            self._controller.install(slot)
            self._lifecycle.swapped(slot, by_person=True, at_start=True)
        else:
            self._controller.shadow = slot

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a parameter set; load and check new models (refused on any failure)."""
        new = {param.name: param.value for param in parameters}
        if self._internal_model_path is not None and new == {
            "model_path": self._internal_model_path
        }:
            # The node records the model a rollback installed: nothing to load.
            self._staged_slots, self._staged_settings, self._staged_drift = {}, None, None
            return SetParametersResult(successful=True)
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
            drift_settings = self._drift.settings
            if not new.keys().isdisjoint(scan_drift.DRIFT_PARAMETERS):
                drift_settings = self._settings(scan_drift, scan_drift.DRIFT_PARAMETERS, new)
            controller = self._controller
            slots = staged_slots(
                new,
                {"model_path": controller.slot, "shadow_model_path": controller.shadow},
                {name: str(self._param(name)) for name in MODEL_PARAMETERS},
                reload_all=device != self._device,
                max_velocity=max_velocity,
                prepare=lambda requested: self._prepare(
                    requested, device, max_velocity, models_dir
                ),
            )
            for core, table in (
                (live_monitor, live_monitor.MONITOR_PARAMETERS),
                (probation, probation.PROBATION_PARAMETERS),
            ):
                if not new.keys().isdisjoint(table):
                    self._settings(core, table, new)  # raises the reason a value is refused
            require = bool(new.get("require_gated_model", self._require_gated))
            if "model_path" in slots:
                self._gate_refusal(slots["model_path"], require)
            elif require and not self._require_gated and controller.slot is not None:
                problem = gate_problem(controller.slot.policy.card, controller.slot.policy.sha256)
                if problem:
                    raise ValueError(
                        f"require_gated_model: the running model is not gated ({problem}); "
                        "set a gated model_path first or in the same call"
                    )
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._staged_slots = slots
        self._staged_settings = (max_velocity, device, models_dir)
        self._staged_drift = drift_settings
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        """Commit a validated set: swap models (one assignment each) and update settings."""
        slots, self._staged_slots = self._staged_slots, {}
        settings, self._staged_settings = self._staged_settings, None
        controller = self._controller
        if settings is not None:
            self._max_velocity, self._device, self._models_dir = settings
        self._internal_model_path = None
        drift_settings, self._staged_drift = self._staged_drift, None
        if drift_settings is not None and drift_settings != self._drift.settings:
            self._refresh_drift_baseline(drift_settings)
        if "model_path" in slots:
            slot = slots["model_path"]
            controller.install(slot)
            label = slot.label if slot is not None else "none"
            self.get_logger().info(f"model swapped to {label}")
            self._refresh_drift_baseline()
            self._lifecycle.swapped(slot, by_person=True)
        if "shadow_model_path" in slots:
            shadow = slots["shadow_model_path"]
            self._ensure_optional_publishers(shadow is not None, False)
            controller.shadow = shadow
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
            elif param.name in live_monitor.MONITOR_PARAMETERS:
                monitor_table = live_monitor.MONITOR_PARAMETERS
                self._lifecycle.monitor.settings = self._settings(live_monitor, monitor_table)
            elif param.name in probation.PROBATION_PARAMETERS:
                probation_table = probation.PROBATION_PARAMETERS
                self._lifecycle.history.settings = self._settings(probation, probation_table)
            elif param.name == "intervention_scale_threshold":
                self._lifecycle.intervention_threshold = float(param.value)
            elif param.name == "require_gated_model":
                self._require_gated = bool(param.value)
            elif param.name == "record_transitions":
                self._record_transitions = bool(param.value)
                self._ensure_transition_publisher()
            elif param.name in ("lidar_x", "lidar_y", "lidar_yaw"):
                field = param.name.removeprefix("lidar_")
                mount = dataclasses.replace(controller.lidar_mount, **{field: float(param.value)})
                controller.lidar_mount = mount

    def _publisher(self, message_type: type, topic: str, qos: topics.QosSpec) -> Publisher:
        # Without the default QoS-event handlers: each is an entity the executor adds to
        # every wait set, and the subscriber side reports an incompatible QoS anyway.
        return self.create_publisher(
            message_type,
            topic,
            qos_profile(qos),
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
            self._shadow_pub = self._publisher(Twist, topics.POLICY_SHADOW_CMD_VEL, topics.COMMAND)
        if inference_ms and self._inference_pub is None:
            self._inference_pub = self._publisher(
                Float32, topics.POLICY_INFERENCE_MS, topics.RELIABLE
            )

    def _ensure_transition_publisher(self) -> None:
        if self._record_transitions and self._transition_pub is None:
            self._transition_pub = self._publisher(
                Float32MultiArray, topics.POLICY_TRANSITION, topics.RELIABLE
            )

    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Re-read the current model_path (and shadow_model_path) from disk."""
        messages = []
        try:
            requested = str(self._param("model_path"))
            slot = self._prepare(requested, self._device, self._max_velocity) if requested else None
            self._gate_refusal(slot)
            if slot is not None:
                blocked = self._lifecycle.history.blocked_problem(
                    model_key(slot.requested_path, slot.policy.sha256), by_person=False
                )
                if blocked:
                    raise ValueError(blocked)
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
            self._dropped[topics.SCAN] += 1
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
        now_ns = self._now_ns()
        self._controller.scan = ScanSample(scan, _stamp_ns(msg.header.stamp), now_ns)
        self._publish_events(self._drift.on_scan(scan, now_ns / 1e9))

    def _on_odom(self, msg: Odometry) -> None:
        position = msg.pose.pose.position
        q = msg.pose.pose.orientation
        twist = msg.twist.twist
        sample = odom_sample(
            (position.x, position.y),
            (q.x, q.y, q.z, q.w),
            (twist.linear.x, twist.angular.z),
            _stamp_ns(msg.header.stamp),
            self._now_ns(),
        )
        if sample is None:
            self._dropped[topics.ODOM] += 1
            return
        self._odom_frame = msg.header.frame_id
        self._controller.odom = sample

    def _on_goal(self, msg: PoseStamped) -> None:
        x, y = msg.pose.position.x, msg.pose.position.y
        problem = goal_problem(x, y, msg.header.frame_id, self._odom_frame)
        if problem is not None:
            self._dropped[topics.GOAL_POSE] += 1
            self.get_logger().warning(problem)
            return
        previous = self._controller.goal
        if previous == (x, y):
            return  # the same goal re-sent (for late joiners): not a new goal
        self._controller.set_goal(x, y)
        self.get_logger().info(f"new goal ({x:.2f}, {y:.2f})")
        self._lifecycle.goal_changed(previous, self._now_ns() / 1e9)

    def _on_enable(self, msg: Bool) -> None:
        if msg.data != self._controller.enabled:
            self.get_logger().info("policy enabled" if msg.data else "policy disabled")
        self._controller.enabled = bool(msg.data)

    # ------------------------------------------------------- monitor and probation

    def _on_scale(self, msg: Float32) -> None:
        self._lifecycle.scale(msg.data, self._now_ns())

    def _on_mode(self, msg: String) -> None:
        self._lifecycle.mode_changed(msg.data, self._now_ns() / 1e9)

    def _on_rollback(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        """Swap back to the last model that completed probation, now (between two ticks)."""
        refusal, events = self._lifecycle.request_rollback(
            self._now_ns() / 1e9, "on policy/rollback"
        )
        self._publish_events(events)
        response.success = refusal is None
        response.message = f"refused: {refusal}" if refusal else "rolled back"
        return response

    def _publish_events(self, events: list[dict]) -> None:
        """policy/events messages (JSON); a rollback is also logged as a warning."""
        for event in events:
            text = event_json(event)
            self._events_pub.publish(String(data=text))
            if event.get("type") == "rollback":
                self.get_logger().warning(f"rolled back: {text}")
            else:
                self.get_logger().info(f"event: {text}")

    def _record_rollback_path(self) -> None:
        """After a rollback, model_path names the model that drives again."""
        path = self._lifecycle.take_rollback_path()
        if path is None:
            return
        self._internal_model_path = path
        result = self.set_parameters([Parameter("model_path", Parameter.Type.STRING, path)])[0]
        self._internal_model_path = None
        if not result.successful:
            self.get_logger().error(f"model_path not updated after the rollback: {result.reason}")
        self._refresh_drift_baseline()

    # ---------------------------------------------------------------- scan drift

    def _refresh_drift_baseline(self, settings: scan_drift.DriftSettings | None = None) -> None:
        problem = self._drift.refresh(settings)
        if problem:
            self.get_logger().error(f"no drift baseline: {problem}")

    def _on_capture_baseline(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        """Record a calibration baseline from the next drift_capture_duration s of scans."""
        response.success = True
        response.message = self._drift.start_capture(self._now_ns() / 1e9)
        self.get_logger().info(response.message)
        return response

    # ---------------------------------------------------------------------- tick

    def _on_planning_tick(self) -> None:
        self._controller.plan_goal_sources(self._now_ns())

    def _on_control_tick(self) -> None:
        started = time.perf_counter_ns()
        now_ns = self._now_ns()
        controller = self._controller
        result = controller.step(now_ns)
        if result.command is not None and self._record_transitions:
            self._publish_transition(now_ns, result.command)
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
        _, events = self._lifecycle.tick(now_ns, result)
        if events:
            self._publish_events(events)
        self._monitor.record(now_ns, time.perf_counter_ns() - started)
        if result.reason != self._logged_reason:
            self._log_reason(result.reason)

    def _publish_transition(self, now_ns: int, command: tuple[float, float]) -> None:
        """One transition record for this tick (before its command, so the arbiter's and
        the filter's replies are logged after it)."""
        controller = self._controller
        step, slot, odom, scan, goal = (
            controller.last_step(),
            controller.slot,
            controller.odom,
            controller.scan,
            controller.goal,
        )
        if step is None or slot is None or odom is None or scan is None or goal is None:
            return
        record = TransitionRecord(
            stamp_ns=now_ns,
            observation=step[0],
            action=step[1],
            command=command,
            weights_sha256=slot.policy.sha256,
            pose=odom.pose,
            goal=goal,
            closest_range=closest_return(scan.scan.ranges, scan.scan.range_min),
            goal_tolerance=controller.goal_tolerance,
        )
        assert self._transition_pub is not None
        self._transition_pub.publish(transition_message(record))

    def _publish_active(self, active: bool) -> None:
        self._active_pub.publish(Bool(data=active))
        self._published_active = active

    def _log_reason(self, reason: str) -> None:
        previous = self._logged_reason
        self._logged_reason = reason
        if previous is None or reason.split(":", 1)[0] != previous.split(":", 1)[0]:
            self.get_logger().info(status_message(reason))

    # --------------------------------------------------------------- diagnostics

    def diagnostic_values(self) -> dict[str, str]:
        """Everything the 1 Hz diagnostics report, as strings."""
        return policy_diagnostics.diagnostic_values(
            self._controller, self._monitor, self._device, self._dropped, self._rejected_scans
        )

    def _status(
        self, topic: str, level: int, message: str, values: dict[str, str]
    ) -> DiagnosticStatus:
        return DiagnosticStatus(
            level=DIAGNOSTIC_LEVELS[level],
            name=f"{self.get_name()}: {topic}",
            hardware_id=NODE_NAME,
            message=message,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )

    def _model_status(self) -> DiagnosticStatus:
        """The live model's life: its gate (WARN when ungated), the live monitor's
        verdict (OK / WARN / ERROR) and its probation."""
        slot = self._controller.slot
        report = self._lifecycle.report
        values: dict[str, str] = {"require_gated_model": str(self._require_gated).lower()}
        values.update(self._lifecycle.status(self._now_ns() / 1e9))
        if slot is None:
            return self._status("model", policy_diagnostics.LEVEL_OK, "no model", values)
        problem = gate_problem(slot.policy.card, slot.policy.sha256)
        gate = slot.policy.card.gate
        values["gate"] = problem or f"passed (gate version {gate.version if gate else '?'})"
        values["model_sha256"] = slot.policy.sha256
        level = report.level
        parts = []
        if problem:
            # Only reachable with require_gated_model false: the model drives, flagged.
            level = max(level, policy_diagnostics.LEVEL_WARN)
            parts.append("ungated model")
        else:
            parts.append("gated model")
        if report.breaches:
            parts.append("; ".join(report.breaches))
        return self._status("model", level, ": ".join(parts), values)

    def _publish_diagnostics(self) -> None:
        self._record_rollback_path()
        self._publish_events(self._drift.poll(self._now_ns() / 1e9))
        reason = self._controller.reason
        array = DiagnosticArray(
            status=[
                self._status(
                    "policy", reason_level(reason), status_message(reason), self.diagnostic_values()
                ),
                self._model_status(),
                self._status("scan drift", *self._drift.status(self._now_ns() / 1e9)),
            ]
        )
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the node with a threaded executor (control timer, inputs, everything else)."""
    run_node(
        PolicyNode,
        args,
        make_executor=functools.partial(StartedTaskExecutor, num_threads=EXECUTOR_THREADS),
        # before any inference: torch's inter-op pool stays at 1
        before_node=functools.partial(set_inference_threads, 1),
    )


if __name__ == "__main__":
    main()
