"""The hybrid fallback's parameters and how they become its core configs (no rclpy).

One table (`PARAMETERS`) and one builder (`build_hybrid_config`) serve the node and every
ROS-free user (evaluation, training), so each builds the arbiter and the DWA fallback from
the same YAML (``config/hybrid_fallback.yaml``) by the same rules; `fallback_controller`
builds the classical controller the way the node does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hybrid_fallback.arbiter import ArbiterConfig
from hybrid_fallback.dwa import DwaConfig
from hybrid_fallback.fallback import FallbackController, GuidanceConfig
from hybrid_fallback.mover_tracker import TrackerConfig
from hybrid_fallback.nav_grid import NavGridConfig
from rlguard_common.parameters import ParameterSpec
from safety_controller.scan_geometry import LidarMount

NODE_NAME = "hybrid_fallback"

# The grid path keeps a little more than the DWA's clearance from obstacles (m), so the DWA
# is never led along a line it must refuse; cells within PROXIMITY_BAND beyond that cost extra.
GRID_INFLATION_EXTRA = 0.05
PROXIMITY_BAND = 0.26

PARAMETERS: dict[str, ParameterSpec] = {
    "control_rate_hz": ParameterSpec(
        20.0, "Rate of the control loop and of cmd_vel_nav (Hz)", (1.0, 100.0), read_only=True
    ),
    "policy_timeout": ParameterSpec(
        0.5, "policy/cmd_vel older than this is silent (s)", (0.01, 10.0)
    ),
    "teleop_timeout": ParameterSpec(
        0.5, "cmd_vel_teleop overrides while younger than this (s)", (0.01, 10.0)
    ),
    "goal_tolerance": ParameterSpec(0.1, "Goal reached within this distance (m)", (0.01, 5.0)),
    "stall_window": ParameterSpec(5.0, "Window of the no-progress check (s)", (0.5, 600.0)),
    "min_progress": ParameterSpec(
        0.1, "Progress toward the goal required per stall_window (m)", (0.0, 10.0)
    ),
    "stall_along_route": ParameterSpec(
        True,
        "Measure the policy's progress along the fallback's navigation-grid route (a drive "
        "into a dead end toward the goal is no progress); false: in a straight line",
    ),
    "intervention_window": ParameterSpec(
        5.0, "Window of the safety intervention rate (s)", (0.1, 600.0)
    ),
    "intervention_scale_threshold": ParameterSpec(
        0.9, "A safety/scale sample below this counts as an intervention", (0.0, 1.0)
    ),
    "max_intervention_rate": ParameterSpec(
        0.2, "POLICY -> FALLBACK above this intervention rate", (0.0, 1.0)
    ),
    "intervention_min_samples": ParameterSpec(
        10, "Samples needed in the window before the rate is judged", (1, 10000)
    ),
    "retry_after": ParameterSpec(
        3.0, "Healthy policy time before a return to POLICY (s)", (0.0, 600.0)
    ),
    "max_retry_delay": ParameterSpec(
        60.0, "Cap of the exponential retry back-off (s)", (0.0, 3600.0)
    ),
    "max_retries": ParameterSpec(
        0, "Returns to POLICY allowed after failures, per goal", (0, 1000)
    ),
    "healthy_age_fraction": ParameterSpec(
        0.5,
        "Hysteresis: a return needs policy/cmd_vel younger than this * policy_timeout",
        (0.01, 1.0),
    ),
    "fallback_recover_time": ParameterSpec(
        0.5, "STOPPED -> FALLBACK needs the fallback healthy this long (s)", (0.0, 60.0)
    ),
    "on_policy_disabled": ParameterSpec(
        "fallback", "What to do when policy/active is false: 'fallback' (DWA) or 'stop'"
    ),
    "source_timeout": ParameterSpec(
        0.5, "scan older than this makes the fallback unhealthy (s)", (0.01, 10.0)
    ),
    "odom_timeout": ParameterSpec(
        0.5, "odom older than this makes the fallback unhealthy (s)", (0.01, 10.0)
    ),
    "odom_frame_id": ParameterSpec("odom", "Frame goal_pose must be in ('' is accepted as odom)"),
    "max_velocity": ParameterSpec([0.26, 1.82], "DWA [linear m/s, angular rad/s] upper limits"),
    "min_velocity": ParameterSpec([0.0, -1.82], "DWA [linear m/s, angular rad/s] lower limits"),
    "max_accel": ParameterSpec([1.0, 3.2], "DWA [linear m/s^2, angular rad/s^2] window limits"),
    "robot_radius": ParameterSpec(0.11, "Circular footprint radius (m)", (0.01, 2.0)),
    "safety_margin": ParameterSpec(
        0.03, "Clearance the DWA keeps beyond the footprint (m)", (0.0, 1.0)
    ),
    "sim_time": ParameterSpec(1.5, "DWA rollout horizon (s)", (0.1, 10.0)),
    "rollout_dt": ParameterSpec(0.1, "Time between DWA rollout poses (s)", (0.01, 1.0)),
    "linear_samples": ParameterSpec(7, "DWA linear velocity samples", (2, 51)),
    "angular_samples": ParameterSpec(15, "DWA angular velocity samples", (3, 101)),
    "point_resolution": ParameterSpec(
        0.02, "Grid cell reducing hittable scan points (m)", (0.001, 0.2)
    ),
    "clearance_cap": ParameterSpec(0.5, "Clearance beyond this scores the same (m)", (0.01, 5.0)),
    "heading_weight": ParameterSpec(
        0.5, "DWA weight of heading to the look-ahead point", (0.0, 100.0)
    ),
    "goal_distance_weight": ParameterSpec(
        1.5, "DWA weight of progress in cost-to-goal", (0.0, 100.0)
    ),
    "clearance_weight": ParameterSpec(0.4, "DWA weight of clearance", (0.0, 100.0)),
    "speed_weight": ParameterSpec(0.3, "DWA weight of forward speed", (0.0, 100.0)),
    "goal_slowdown_gain": ParameterSpec(
        0.8, "Near the goal v <= gain * distance (1/s)", (0.01, 100.0)
    ),
    "track_moving_obstacles": ParameterSpec(
        False,
        "Track obstacles that move from scan to scan; the DWA keeps out of where they go and "
        "the navigation grid forgets where they walked",
    ),
    "moving_horizon": ParameterSpec(
        4.0,
        "The DWA refuses a rollout whose end pose a tracked moving obstacle reaches within "
        "this time (s; at most sim_time: the rollout alone)",
        (0.0, 30.0),
    ),
    "fallback_for_movers": ParameterSpec(
        False,
        "POLICY -> FALLBACK while the policy's command would meet a tracked moving obstacle "
        "within moving_horizon (not a failure: the policy returns retry_after after it passed)",
    ),
    "use_navigation_grid": ParameterSpec(True, "Guide the DWA with the remembered-obstacle grid"),
    "lookahead": ParameterSpec(
        0.8, "Look-ahead along the grid path for the heading score (m)", (0.05, 10.0)
    ),
    "replan_period": ParameterSpec(
        1.0, "Seconds between cost-to-goal recomputations", (0.05, 60.0)
    ),
    "grid_resolution": ParameterSpec(0.1, "Navigation grid cell (m)", (0.02, 1.0), read_only=True),
    "grid_size": ParameterSpec(
        40.0, "Side of the square navigation grid (m)", (1.0, 400.0), read_only=True
    ),
    "lidar_x": ParameterSpec(-0.032, "Lidar x in the base frame (m)", (-10.0, 10.0)),
    "lidar_y": ParameterSpec(0.0, "Lidar y in the base frame (m)", (-10.0, 10.0)),
    "lidar_yaw": ParameterSpec(0.0, "Lidar yaw in the base frame (rad)", (-math.pi, math.pi)),
}


@dataclass(frozen=True)
class HybridConfig:
    """Everything the hybrid fallback runs with: its cores' configs and the node's timings."""

    arbiter: ArbiterConfig
    dwa: DwaConfig
    guidance: GuidanceConfig
    grid: NavGridConfig
    tracker: TrackerConfig
    control_period: float  # s between control steps (1 / control_rate_hz)
    source_timeout: float  # s: a scan older than this leaves the fallback unhealthy
    odom_timeout: float  # s: odometry older than this leaves the fallback unhealthy
    odom_frame_id: str  # the frame goal_pose must be in ('' counts as this frame)
    lidar_mount: LidarMount  # lidar pose in the base frame


def _value(values: Mapping[str, object], name: str) -> object:
    try:
        return values[name]
    except KeyError:
        raise ValueError(f"{name} is missing") from None


def _number(values: Mapping[str, object], name: str) -> float:
    """A finite number within the parameter's range."""
    value = _value(values, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    problem = PARAMETERS[name].out_of_bounds(name, number)
    if problem is not None:
        raise ValueError(problem)
    return number


def _integer(values: Mapping[str, object], name: str) -> int:
    """An integer within the parameter's range."""
    value = _value(values, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    problem = PARAMETERS[name].out_of_bounds(name, value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _flag(values: Mapping[str, object], name: str) -> bool:
    value = _value(values, name)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _text(values: Mapping[str, object], name: str) -> str:
    value = _value(values, name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _pair(values: Mapping[str, object], name: str) -> tuple[float, float]:
    """A [linear, angular] vector of two finite numbers."""
    value = _value(values, name)
    problem = f"{name} must be two finite numbers [linear, angular], got {value!r}"
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(problem)
    items = list(value)
    if len(items) != 2 or any(
        isinstance(item, bool) or not isinstance(item, int | float) for item in items
    ):
        raise ValueError(problem)
    linear, angular = float(items[0]), float(items[1])
    if not (math.isfinite(linear) and math.isfinite(angular)):
        raise ValueError(problem)
    return linear, angular


def build_hybrid_config(values: Mapping[str, object]) -> HybridConfig:
    """The hybrid fallback's config from parameter values (every name of `PARAMETERS`).

    Names not in the table are ignored. Raises ValueError with the reason when a value has
    the wrong type, lies outside its range or the values are inconsistent.
    """
    max_v = _pair(values, "max_velocity")
    min_v = _pair(values, "min_velocity")
    accel = _pair(values, "max_accel")
    arbiter = ArbiterConfig(
        policy_timeout=_number(values, "policy_timeout"),
        teleop_timeout=_number(values, "teleop_timeout"),
        goal_tolerance=_number(values, "goal_tolerance"),
        stall_window=_number(values, "stall_window"),
        min_progress=_number(values, "min_progress"),
        stall_along_route=_flag(values, "stall_along_route"),
        fallback_for_movers=_flag(values, "fallback_for_movers"),
        intervention_window=_number(values, "intervention_window"),
        intervention_scale_threshold=_number(values, "intervention_scale_threshold"),
        max_intervention_rate=_number(values, "max_intervention_rate"),
        intervention_min_samples=_integer(values, "intervention_min_samples"),
        retry_after=_number(values, "retry_after"),
        max_retry_delay=_number(values, "max_retry_delay"),
        max_retries=_integer(values, "max_retries"),
        healthy_age_fraction=_number(values, "healthy_age_fraction"),
        fallback_recover_time=_number(values, "fallback_recover_time"),
        on_policy_disabled=_text(values, "on_policy_disabled"),
    )
    control_period = 1.0 / _number(values, "control_rate_hz")
    dwa = DwaConfig(
        max_linear_velocity=max_v[0],
        min_linear_velocity=min_v[0],
        max_angular_velocity=max_v[1],
        min_angular_velocity=min_v[1],
        max_linear_accel=accel[0],
        max_angular_accel=accel[1],
        control_period=control_period,
        sim_time=_number(values, "sim_time"),
        rollout_dt=_number(values, "rollout_dt"),
        linear_samples=_integer(values, "linear_samples"),
        angular_samples=_integer(values, "angular_samples"),
        footprint_radius=_number(values, "robot_radius"),
        safety_margin=_number(values, "safety_margin"),
        point_resolution=_number(values, "point_resolution"),
        clearance_cap=_number(values, "clearance_cap"),
        heading_weight=_number(values, "heading_weight"),
        goal_distance_weight=_number(values, "goal_distance_weight"),
        clearance_weight=_number(values, "clearance_weight"),
        speed_weight=_number(values, "speed_weight"),
        goal_slowdown_gain=_number(values, "goal_slowdown_gain"),
        moving_horizon=_number(values, "moving_horizon"),
    )
    tracker = TrackerConfig(enabled=_flag(values, "track_moving_obstacles"))
    inflation = dwa.collision_radius + GRID_INFLATION_EXTRA
    grid = NavGridConfig(
        resolution=_number(values, "grid_resolution"),
        size=_number(values, "grid_size"),
        inflation_radius=inflation,
        proximity_radius=inflation + PROXIMITY_BAND,
    )
    guidance = GuidanceConfig(
        enabled=_flag(values, "use_navigation_grid"),
        lookahead=_number(values, "lookahead"),
        replan_period=_number(values, "replan_period"),
    )
    arbiter.validate()
    dwa.validate()
    grid.validate()
    guidance.validate()
    tracker.validate()
    return HybridConfig(
        arbiter=arbiter,
        dwa=dwa,
        guidance=guidance,
        grid=grid,
        tracker=tracker,
        control_period=control_period,
        source_timeout=_number(values, "source_timeout"),
        odom_timeout=_number(values, "odom_timeout"),
        odom_frame_id=_text(values, "odom_frame_id"),
        lidar_mount=LidarMount(
            _number(values, "lidar_x"), _number(values, "lidar_y"), _number(values, "lidar_yaw")
        ),
    )


def fallback_controller(config: HybridConfig) -> FallbackController:
    """The classical controller (DWA guided by the navigation grid) the node drives with."""
    return FallbackController(config.dwa, config.grid, config.guidance, config.tracker)
