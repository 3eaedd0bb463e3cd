"""ROS 2 node `hybrid_fallback`: arbiter between policy, DWA fallback, teleop and stop.

Converts messages to the ROS-free cores (`arbiter`, `fallback`), publishes the selected
command on `cmd_vel_nav` every period and at once on a mode switch, the mode on
`hybrid/mode` (transient local; the bare mode name, per the architecture contract), the
mode with its reason on `hybrid/mode_reason`, and diagnostics at 1 Hz.

The arbiter owns the goal: every valid `goal_pose` is handed on, unchanged, on
`hybrid/goal` (reliable, transient local, depth 1), which the launch files remap the policy
node's `goal_pose` to, so a goal published once (`ros2 topic pub --once`) reaches both.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import astuple, fields

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
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Float32, String

from hybrid_fallback.arbiter import (
    ON_POLICY_DISABLED_CHOICES,
    Arbiter,
    ArbiterConfig,
    ArbiterInputs,
    CommandSource,
    Decision,
    Mode,
)
from hybrid_fallback.dwa import DwaConfig, DwaPlanner, ObservedSector
from hybrid_fallback.fallback import FallbackController, GuidanceConfig
from hybrid_fallback.nav_grid import NavGridConfig, NavigationGrid
from rlguard_common.node_shutdown import interrupts_end_quietly
from rlguard_common.scan_validity import REASONS as SCAN_REASONS
from rlguard_common.scan_validity import validate_scan_message
from safety_controller.scan_geometry import LidarMount, ScanPoints, scan_to_points

LATCHED = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
RELIABLE_1 = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT_5 = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)

LEVEL_OF_MODE = {
    Mode.POLICY: DiagnosticStatus.OK,
    Mode.TELEOP: DiagnosticStatus.OK,
    Mode.IDLE: DiagnosticStatus.OK,
    Mode.FALLBACK: DiagnosticStatus.WARN,
    Mode.STOPPED: DiagnosticStatus.ERROR,
}


def _float_range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


def _int_range(low: int, high: int) -> list[IntegerRange]:
    return [IntegerRange(from_value=low, to_value=high, step=1)]


# name: (default, description, range); a range of None means no range applies.
PARAMETERS: dict[str, tuple[object, str, tuple[float, float] | None]] = {
    "control_rate_hz": (20.0, "Rate of the control loop and of cmd_vel_nav (Hz)", (1.0, 100.0)),
    "policy_timeout": (0.5, "policy/cmd_vel older than this is silent (s)", (0.01, 10.0)),
    "teleop_timeout": (0.5, "cmd_vel_teleop overrides while younger than this (s)", (0.01, 10.0)),
    "goal_tolerance": (0.1, "Goal reached within this distance (m)", (0.01, 5.0)),
    "stall_window": (10.0, "Window of the no-progress check (s)", (0.5, 600.0)),
    "min_progress": (0.2, "Progress toward the goal required per stall_window (m)", (0.0, 10.0)),
    "intervention_window": (5.0, "Window of the safety intervention rate (s)", (0.1, 600.0)),
    "intervention_scale_threshold": (
        0.9,
        "A safety/scale sample below this counts as an intervention",
        (0.0, 1.0),
    ),
    "max_intervention_rate": (
        0.5,
        "POLICY -> FALLBACK above this intervention rate",
        (0.0, 1.0),
    ),
    "intervention_min_samples": (
        10,
        "Samples needed in the window before the rate is judged",
        (1, 10000),
    ),
    "retry_after": (3.0, "Healthy policy time before a return to POLICY (s)", (0.0, 600.0)),
    "max_retry_delay": (60.0, "Cap of the exponential retry back-off (s)", (0.0, 3600.0)),
    "max_retries": (5, "Returns to POLICY allowed after failures, per goal", (0, 1000)),
    "healthy_age_fraction": (
        0.5,
        "Hysteresis: a return needs policy/cmd_vel younger than this * policy_timeout",
        (0.01, 1.0),
    ),
    "fallback_recover_time": (
        0.5,
        "STOPPED -> FALLBACK needs the fallback healthy this long (s)",
        (0.0, 60.0),
    ),
    "on_policy_disabled": (
        "fallback",
        "What to do when policy/active is false: 'fallback' (DWA) or 'stop'",
        None,
    ),
    "source_timeout": (0.5, "scan older than this makes the fallback unhealthy (s)", (0.01, 10.0)),
    "odom_timeout": (0.5, "odom older than this makes the fallback unhealthy (s)", (0.01, 10.0)),
    "odom_frame_id": ("odom", "Frame goal_pose must be in ('' is accepted as odom)", None),
    "max_velocity": ([0.26, 1.82], "DWA [linear m/s, angular rad/s] upper limits", None),
    "min_velocity": ([0.0, -1.82], "DWA [linear m/s, angular rad/s] lower limits", None),
    "max_accel": ([1.0, 3.2], "DWA [linear m/s^2, angular rad/s^2] window limits", None),
    "robot_radius": (0.11, "Circular footprint radius (m)", (0.01, 2.0)),
    "safety_margin": (0.03, "Clearance the DWA keeps beyond the footprint (m)", (0.0, 1.0)),
    "sim_time": (1.5, "DWA rollout horizon (s)", (0.1, 10.0)),
    "rollout_dt": (0.1, "Time between DWA rollout poses (s)", (0.01, 1.0)),
    "linear_samples": (7, "DWA linear velocity samples", (2, 51)),
    "angular_samples": (15, "DWA angular velocity samples", (3, 101)),
    "point_resolution": (0.02, "Grid cell reducing hittable scan points (m)", (0.001, 0.2)),
    "clearance_cap": (0.5, "Clearance beyond this scores the same (m)", (0.01, 5.0)),
    "heading_weight": (0.5, "DWA weight of heading to the look-ahead point", (0.0, 100.0)),
    "goal_distance_weight": (1.5, "DWA weight of progress in cost-to-goal", (0.0, 100.0)),
    "clearance_weight": (0.4, "DWA weight of clearance", (0.0, 100.0)),
    "speed_weight": (0.3, "DWA weight of forward speed", (0.0, 100.0)),
    "goal_slowdown_gain": (0.8, "Near the goal v <= gain * distance (1/s)", (0.01, 100.0)),
    "use_navigation_grid": (True, "Guide the DWA with the remembered-obstacle grid", None),
    "lookahead": (0.8, "Look-ahead along the grid path for the heading score (m)", (0.05, 10.0)),
    "replan_period": (1.0, "Seconds between cost-to-goal recomputations", (0.05, 60.0)),
    "grid_resolution": (0.1, "Navigation grid cell (m)", (0.02, 1.0)),
    "grid_size": (40.0, "Side of the square navigation grid (m)", (1.0, 400.0)),
    "lidar_x": (-0.032, "Lidar x in the base frame (m)", (-10.0, 10.0)),
    "lidar_y": (0.0, "Lidar y in the base frame (m)", (-10.0, 10.0)),
    "lidar_yaw": (0.0, "Lidar yaw in the base frame (rad)", (-math.pi, math.pi)),
}
READ_ONLY = {"control_rate_hz", "grid_resolution", "grid_size"}


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _twist_tuple(msg: Twist) -> tuple[float, float]:
    return float(msg.linear.x), float(msg.angular.z)


def _yaw(qx: float, qy: float, qz: float, qw: float) -> float:
    return math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


def build_configs(
    values: dict[str, object],
) -> tuple[ArbiterConfig, DwaConfig, NavGridConfig, GuidanceConfig]:
    """Core configurations from parameter values; raises ValueError when inconsistent."""
    max_v = [float(x) for x in values["max_velocity"]]  # type: ignore[union-attr]
    min_v = [float(x) for x in values["min_velocity"]]  # type: ignore[union-attr]
    accel = [float(x) for x in values["max_accel"]]  # type: ignore[union-attr]
    for name, vector in (("max_velocity", max_v), ("min_velocity", min_v), ("max_accel", accel)):
        if len(vector) != 2 or not _finite(*vector):
            raise ValueError(f"{name} must be two finite numbers [linear, angular]")
    arbiter_fields = {f.name for f in fields(ArbiterConfig)}
    arbiter = ArbiterConfig(**{k: values[k] for k in arbiter_fields})  # type: ignore[arg-type]
    rate = float(values["control_rate_hz"])  # type: ignore[arg-type]
    dwa = DwaConfig(
        max_linear_velocity=max_v[0],
        min_linear_velocity=min_v[0],
        max_angular_velocity=max_v[1],
        min_angular_velocity=min_v[1],
        max_linear_accel=accel[0],
        max_angular_accel=accel[1],
        control_period=1.0 / rate,
        sim_time=float(values["sim_time"]),  # type: ignore[arg-type]
        rollout_dt=float(values["rollout_dt"]),  # type: ignore[arg-type]
        linear_samples=int(values["linear_samples"]),  # type: ignore[call-overload]
        angular_samples=int(values["angular_samples"]),  # type: ignore[call-overload]
        footprint_radius=float(values["robot_radius"]),  # type: ignore[arg-type]
        safety_margin=float(values["safety_margin"]),  # type: ignore[arg-type]
        point_resolution=float(values["point_resolution"]),  # type: ignore[arg-type]
        clearance_cap=float(values["clearance_cap"]),  # type: ignore[arg-type]
        heading_weight=float(values["heading_weight"]),  # type: ignore[arg-type]
        goal_distance_weight=float(values["goal_distance_weight"]),  # type: ignore[arg-type]
        clearance_weight=float(values["clearance_weight"]),  # type: ignore[arg-type]
        speed_weight=float(values["speed_weight"]),  # type: ignore[arg-type]
        goal_slowdown_gain=float(values["goal_slowdown_gain"]),  # type: ignore[arg-type]
    )
    # The grid path keeps a little more than the DWA's clearance from obstacles, so the
    # DWA is never led along a line it must refuse.
    inflation = dwa.collision_radius + 0.05
    grid = NavGridConfig(
        resolution=float(values["grid_resolution"]),  # type: ignore[arg-type]
        size=float(values["grid_size"]),  # type: ignore[arg-type]
        inflation_radius=inflation,
        proximity_radius=inflation + 0.26,
    )
    guidance = GuidanceConfig(
        enabled=bool(values["use_navigation_grid"]),
        lookahead=float(values["lookahead"]),  # type: ignore[arg-type]
        replan_period=float(values["replan_period"]),  # type: ignore[arg-type]
    )
    arbiter.validate()
    dwa.validate()
    grid.validate()
    guidance.validate()
    return arbiter, dwa, grid, guidance


class HybridFallbackNode(Node):
    """Picks policy, DWA fallback, teleop or stop and publishes the command on cmd_vel_nav."""

    def __init__(self, node_name: str = "hybrid_fallback", **node_kwargs: object) -> None:
        super().__init__(node_name, **node_kwargs)  # type: ignore[arg-type]
        for name, (default, description, bounds) in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description, read_only=name in READ_ONLY)
            if bounds is not None:
                if isinstance(default, int) and not isinstance(default, bool):
                    descriptor.integer_range = _int_range(int(bounds[0]), int(bounds[1]))
                else:
                    descriptor.floating_point_range = _float_range(
                        float(bounds[0]), float(bounds[1])
                    )
            self.declare_parameter(name, default, descriptor)
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}
        arbiter_cfg, dwa_cfg, grid_cfg, guidance_cfg = build_configs(self._values)
        self._mount = self._lidar_mount(self._values)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        now = self._now()
        self.arbiter = Arbiter(arbiter_cfg, now=now)
        self.controller = FallbackController(dwa_cfg, grid_cfg, guidance_cfg)

        self._policy_cmd: tuple[float, float] | None = None
        self._policy_cmd_time: float | None = None
        self._policy_active = False
        self._teleop_cmd: tuple[float, float] | None = None
        self._teleop_time: float | None = None
        self._goal: tuple[float, float] | None = None
        self._goal_id: int | None = None
        self._scan: ScanPoints | None = None
        self._observed_sector: ObservedSector | None = None  # None: the full circle
        self._scan_time: float | None = None
        self._pose: tuple[float, float, float] | None = None
        self._velocity = (0.0, 0.0)
        self._odom_time: float | None = None
        self.dropped: Counter[str] = Counter()
        self.rejected_scans: dict[str, int] = dict.fromkeys(SCAN_REASONS, 0)
        self._last_dwa_reason = "not run"
        self._dwa_time_last = 0.0
        self._dwa_time_max = 0.0
        self._fallback_status = "no scan"
        self._decision: Decision | None = None
        self._last_step_time = now

        self.cmd_pub = self.create_publisher(Twist, "cmd_vel_nav", RELIABLE_1)
        self.mode_pub = self.create_publisher(String, "hybrid/mode", LATCHED)
        self.reason_pub = self.create_publisher(String, "hybrid/mode_reason", LATCHED)
        self.goal_pub = self.create_publisher(PoseStamped, "hybrid/goal", LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.create_subscription(Twist, "policy/cmd_vel", self._on_policy_cmd, RELIABLE_1)
        self.create_subscription(Bool, "policy/active", self._on_policy_active, LATCHED)
        self.create_subscription(Twist, "cmd_vel_teleop", self._on_teleop, RELIABLE_1)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal, RELIABLE_10)
        self.create_subscription(LaserScan, "scan", self._on_scan, qos_profile_sensor_data)
        self.create_subscription(Odometry, "odom", self._on_odom, BEST_EFFORT_5)
        self.create_subscription(Float32, "safety/scale", self._on_scale, RELIABLE_10)

        period = 1.0 / float(self._values["control_rate_hz"])  # type: ignore[arg-type]
        self.create_timer(period, self._on_timer)
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_mode(self.arbiter.mode, "no goal")

    # ------------------------------------------------------------------ parameters

    @staticmethod
    def _lidar_mount(values: dict[str, object]) -> LidarMount:
        return LidarMount(
            float(values["lidar_x"]),  # type: ignore[arg-type]
            float(values["lidar_y"]),  # type: ignore[arg-type]
            float(values["lidar_yaw"]),  # type: ignore[arg-type]
        )

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        candidate = dict(self._values)
        for parameter in parameters:
            if parameter.name not in PARAMETERS:
                continue
            value = parameter.value
            if isinstance(value, float) and not math.isfinite(value):
                return SetParametersResult(successful=False, reason=f"{parameter.name}: not finite")
            candidate[parameter.name] = list(value) if isinstance(value, (list, tuple)) else value
        if candidate["on_policy_disabled"] not in ON_POLICY_DISABLED_CHOICES:
            return SetParametersResult(
                successful=False,
                reason=f"on_policy_disabled must be one of {ON_POLICY_DISABLED_CHOICES}",
            )
        try:
            arbiter_cfg, dwa_cfg, grid_cfg, guidance_cfg = build_configs(candidate)
        except (ValueError, TypeError, KeyError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        self._values = candidate
        self.arbiter.config = arbiter_cfg
        self.controller.guidance = guidance_cfg
        self.controller.planner = DwaPlanner(dwa_cfg)
        if grid_cfg != self.controller.grid.config:
            # The inflation follows the footprint: rebuild (the obstacle memory refills).
            self.controller.grid = NavigationGrid(grid_cfg)
            self.controller.reset()
        self._mount = self._lidar_mount(candidate)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ inputs

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_policy_cmd(self, msg: Twist) -> None:
        command = _twist_tuple(msg)
        if not _finite(*command):
            self.dropped["policy/cmd_vel"] += 1
            return
        self._policy_cmd, self._policy_cmd_time = command, self._now()
        # Forward a policy command on arrival, not on the next timer tick: waiting for the
        # timer would add up to one control period of latency between policy and wheels.
        if self._decision is not None and self._decision.source is CommandSource.POLICY:
            self._step(on_event=False)

    def _on_policy_active(self, msg: Bool) -> None:
        changed = bool(msg.data) != self._policy_active
        self._policy_active = bool(msg.data)
        if changed:
            self._step(on_event=True)

    def _on_teleop(self, msg: Twist) -> None:
        command = _twist_tuple(msg)
        if not _finite(*command):
            self.dropped["cmd_vel_teleop"] += 1
            return
        self._teleop_cmd, self._teleop_time = command, self._now()
        self._step(on_event=True)

    def _on_goal(self, msg: PoseStamped) -> None:
        frame = msg.header.frame_id
        x, y = float(msg.pose.position.x), float(msg.pose.position.y)
        if frame not in ("", self._values["odom_frame_id"]) or not _finite(x, y):
            self.dropped["goal_pose"] += 1
            self.get_logger().warn(f"goal_pose dropped (frame '{frame}', x={x}, y={y})")
            return
        self.goal_pub.publish(msg)  # hand the goal on to the policy node (hybrid/goal)
        if self._goal == (x, y):
            return  # the same goal re-sent (for late joiners): not a new goal
        self._goal = (x, y)
        self._goal_id = 1 if self._goal_id is None else self._goal_id + 1
        self.get_logger().info(f"new goal ({x:.2f}, {y:.2f})")
        self._step(on_event=True)

    def _on_scan(self, msg: LaserScan) -> None:
        reason = validate_scan_message(msg)
        if reason is not None:
            # The last valid scan ages out after source_timeout: the fallback is then
            # unhealthy (it cannot see).
            self.dropped["scan"] += 1
            self.rejected_scans[reason] += 1
            self.get_logger().warning(f"scan rejected ({reason})", throttle_duration_sec=5.0)
            return
        header = (msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max)
        ranges = np.asarray(msg.ranges, dtype=np.float64)
        self._scan = scan_to_points(ranges, *header, mount=self._mount)
        self._observed_sector = ObservedSector.from_scan(
            msg.angle_min, msg.angle_increment, len(msg.ranges), *astuple(self._mount)
        )
        self._scan_time = self._now()

    def _on_odom(self, msg: Odometry) -> None:
        p, q, t = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
        values = (p.x, p.y, q.x, q.y, q.z, q.w, t.linear.x, t.angular.z)
        if not _finite(*values):
            self.dropped["odom"] += 1
            return
        self._pose = (float(p.x), float(p.y), _yaw(q.x, q.y, q.z, q.w))
        self._velocity = (float(t.linear.x), float(t.angular.z))
        self._odom_time = self._now()

    def _on_scale(self, msg: Float32) -> None:
        if not math.isfinite(msg.data):
            self.dropped["safety/scale"] += 1
            return
        self.arbiter.record_safety_scale(float(msg.data), self._now())

    # ------------------------------------------------------------------ control

    def _fallback_health(self, now: float) -> tuple[bool, str]:
        if self._scan is None or self._scan_time is None:
            return False, "no scan"
        if now - self._scan_time > float(self._values["source_timeout"]):  # type: ignore[arg-type]
            return False, f"scan stale ({now - self._scan_time:.2f} s)"
        if self._scan.blind:
            return False, "scan blind (no usable beam)"
        if self._pose is None or self._odom_time is None:
            return False, "no odom"
        if now - self._odom_time > float(self._values["odom_timeout"]):  # type: ignore[arg-type]
            return False, f"odom stale ({now - self._odom_time:.2f} s)"
        return True, "ok"

    def _on_timer(self) -> None:
        self._step(on_event=False)

    def _cap_input_times(self, now: float) -> None:
        """The clock went back: inputs received "after" `now` count as received at `now`.

        Their timeouts then run on the new clock (a policy that died at the jump is
        silent after policy_timeout), instead of reading as fresh until it catches up.
        """
        for name in ("_policy_cmd_time", "_teleop_time", "_scan_time", "_odom_time"):
            received = getattr(self, name)
            if received is not None and received > now:
                setattr(self, name, now)

    def _step(self, on_event: bool) -> None:
        """Update the arbiter; publish on every timer tick and on any switch."""
        now = self._now()
        if now < self._last_step_time:
            self._cap_input_times(now)
        self._last_step_time = now
        healthy, status = self._fallback_health(now)
        self._fallback_status = status
        distance = math.nan
        if self._goal is not None and self._pose is not None:
            distance = math.hypot(self._goal[0] - self._pose[0], self._goal[1] - self._pose[1])
        inputs = ArbiterInputs(
            goal_id=self._goal_id,
            goal_distance=distance,
            policy_active=self._policy_active,
            last_policy_cmd_time=self._policy_cmd_time,
            last_teleop_time=self._teleop_time,
            fallback_healthy=healthy,
            fallback_status=status,
        )
        decision = self.arbiter.update(inputs, now)
        self._decision = decision
        if decision.switched:
            self._publish_mode(decision.mode, decision.reason)
            self.get_logger().info(
                f"{decision.previous.value} -> {decision.mode.value}: {decision.reason}"
            )
        if on_event and not decision.switched:
            return
        self.cmd_pub.publish(self._command(decision, now))

    def _command(self, decision: Decision, now: float) -> Twist:
        linear, angular = 0.0, 0.0
        if decision.source is CommandSource.POLICY and self._policy_cmd is not None:
            linear, angular = self._policy_cmd
        elif decision.source is CommandSource.TELEOP and self._teleop_cmd is not None:
            linear, angular = self._teleop_cmd
        elif decision.source is CommandSource.FALLBACK:
            linear, angular = self._fallback_command(now)
        msg = Twist()
        msg.linear.x, msg.angular.z = float(linear), float(angular)
        return msg

    def _fallback_command(self, now: float) -> tuple[float, float]:
        if self._scan is None or self._pose is None or self._goal is None:
            return 0.0, 0.0
        started = time.perf_counter()
        result = self.controller.compute(
            self._scan.points,
            self._pose,
            self._goal,
            self._velocity,
            now,
            observed_sector=self._observed_sector,
            unobserved_edges=self._scan.frontier,
        )
        elapsed = time.perf_counter() - started
        self._dwa_time_last = elapsed
        self._dwa_time_max = max(self._dwa_time_max, elapsed)
        self._last_dwa_reason = result.reason
        if not _finite(result.linear, result.angular):
            return 0.0, 0.0
        return result.linear, result.angular

    # ------------------------------------------------------------------ outputs

    def _publish_mode(self, mode: Mode, reason: str) -> None:
        self.mode_pub.publish(String(data=mode.value))
        self.reason_pub.publish(String(data=f"{mode.value}: {reason}"))

    def _publish_diagnostics(self) -> None:
        now = self._now()
        arbiter = self.arbiter
        decision = self._decision
        reason = decision.reason if decision is not None else "no update yet"
        values = {
            "mode": arbiter.mode.value,
            "reason": reason,
            "goal": "none" if self._goal is None else f"{self._goal[0]:.3f}, {self._goal[1]:.3f}",
            "policy_failures": str(arbiter.failures),
            "retries_exhausted": str(arbiter.retries_exhausted),
            "next_retry_delay_s": f"{arbiter.retry_delay():.2f}",
            "intervention_rate": f"{arbiter.intervention_rate(now)[0]:.3f}",
            "fallback_status": self._fallback_status,
            "dwa_last_reason": self._last_dwa_reason,
            "dwa_time_last_ms": f"{self._dwa_time_last * 1e3:.2f}",
            "dwa_time_max_ms": f"{self._dwa_time_max * 1e3:.2f}",
            "switches_total": str(sum(arbiter.switch_counts.values())),
        }
        for key, count in sorted(arbiter.switch_counts.items()):
            values[f"switches {key}"] = str(count)
        for mode, seconds in arbiter.time_in_mode.items():
            values[f"time_in {mode.value}_s"] = f"{seconds:.1f}"
        for index, record in enumerate(reversed(arbiter.history)):
            values[f"last_switch_{index}"] = (
                f"t={record.time:.2f} {record.from_mode.value}->{record.to_mode.value}: "
                f"{record.reason}"
            )
        for topic, count in sorted(self.dropped.items()):
            values[f"dropped {topic}"] = str(count)
        for rejection, count in self.rejected_scans.items():
            values[f"rejected_scan_{rejection}"] = str(count)
        status = DiagnosticStatus(
            level=LEVEL_OF_MODE[arbiter.mode],
            name=f"{self.get_name()}: arbiter",
            message=f"{arbiter.mode.value}: {reason}",
            hardware_id=self.get_name(),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Run the hybrid_fallback node until shutdown (Ctrl-C, even repeated, ends it with code 0)."""
    with interrupts_end_quietly():
        rclpy.init(args=args)
        node = None
        try:
            node = HybridFallbackNode()
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
