"""The safety controller's parameters and how they become a filter config (no rclpy).

One table (`PARAMETERS`) and one builder (`build_safety_config`) serve the node, the
adversarial campaign and evaluation, so each builds its `SafetyFilter` from the same YAML
(`config/safety_controller.yaml`, loaded by `load_parameters`) by the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rlguard_common.parameters import ParameterSpec, load_node_parameters, parameter_defaults
from safety_controller.footprint import Footprint
from safety_controller.limits import VelocityLimits
from safety_controller.safety_filter import SafetyConfig
from safety_controller.scan_geometry import LidarMount

NODE_NAME = "safety_controller"
FEEDBACK_MODES = ("OPEN_LOOP", "CLOSED_LOOP")
# cmd_vel goes out on every command; the node's own timer only fills in once nothing has
# gone out for WATCHDOG_THRESHOLD control periods. A timer at the control rate would race
# the forwarded commands of the same tick (a zero-elapsed step holds the new request back a
# whole period), so it ticks WATCHDOG_TICKS times per period, and the longest time between
# two outputs is WATCHDOG_GAP periods.
WATCHDOG_TICKS = 2
WATCHDOG_THRESHOLD = 1.25
WATCHDOG_GAP = 1.5

PARAMETERS: dict[str, ParameterSpec] = {
    "max_velocity": ParameterSpec([0.26, 1.82], "max [linear m/s, angular rad/s], each >= 0"),
    "min_velocity": ParameterSpec(
        [-0.26, -1.82], "min [linear m/s, angular rad/s], each <= 0; negative linear allows reverse"
    ),
    "max_accel": ParameterSpec([1.5, 3.2], "max acceleration [m/s^2, rad/s^2], > 0"),
    "max_decel": ParameterSpec(
        [-1.5, -3.2],
        "normal deceleration [m/s^2, rad/s^2], negative, at least as strong as max_accel",
    ),
    "emergency_decel": ParameterSpec(
        [-1.6, -5.0],
        "deceleration for safety stops [m/s^2, rad/s^2], negative, at least max_decel; "
        "must be what the base can really do",
    ),
    "velocity_timeout": ParameterSpec(
        0.5, "s without cmd_vel_nav before braking to zero", bounds=(0.05, 10.0)
    ),
    "source_timeout": ParameterSpec(
        0.5, "s without scan before the robot counts as blind", bounds=(0.05, 10.0)
    ),
    "odom_timeout": ParameterSpec(
        0.5, "s without odom before the last output is used", bounds=(0.05, 10.0)
    ),
    "feedback": ParameterSpec(
        "CLOSED_LOOP",
        "CLOSED_LOOP: scans are dead-reckoned on odom velocity while fresh; OPEN_LOOP: on "
        "the last output",
    ),
    "reaction_time": ParameterSpec(
        0.15,
        "s the guard assumes a command runs before braking; >= 1.5 times the longest gap "
        "between outputs (WATCHDOG_GAP / publish_rate)",
        bounds=(0.0, 2.0),
    ),
    "base_command_timeout": ParameterSpec(
        0.15,
        "s the robot base keeps executing a command without a new one (its command "
        "watchdog, e.g. diff_drive_controller cmd_vel_timeout); warned about when longer "
        "than reaction_time, since the guard's reaction budget then does not cover it",
        bounds=(0.01, 10.0),
    ),
    "robot_radius": ParameterSpec(
        0.11, "m, circular footprint when footprint is empty", bounds=(0.01, 5.0)
    ),
    "footprint": ParameterSpec("", "polygon '[[x, y], ...]' in the base frame (m); empty: circle"),
    "safety_margin": ParameterSpec(0.05, "m added around the footprint", bounds=(0.0, 1.0)),
    "lidar_x": ParameterSpec(-0.032, "m, lidar position in the base frame", bounds=(-5.0, 5.0)),
    "lidar_y": ParameterSpec(0.0, "m, lidar position in the base frame", bounds=(-5.0, 5.0)),
    "lidar_yaw": ParameterSpec(0.0, "rad, lidar yaw in the base frame", bounds=(-math.pi, math.pi)),
    "allow_empty_scans": ParameterSpec(
        False,
        "true: a scan without any return is an empty hall; false: once that lasts "
        "source_timeout the robot counts as blind (a covered or broken lidar looks exactly "
        "like an empty hall)",
    ),
    "memory_time": ParameterSpec(
        2.0,
        "s an earlier scan may prove a direction the lidar does not see now free",
        bounds=(0.0, 30.0),
    ),
    "max_obstacle_speed": ParameterSpec(
        0.5,
        "m/s cap on the estimated closing speed of moving obstacles; 0 treats every scan "
        "point as static",
        bounds=(0.0, 3.0),
    ),
    "intervention_window": ParameterSpec(
        5.0, "s over which the intervention rate is taken", bounds=(0.1, 600.0)
    ),
    "base_frame_id": ParameterSpec("base_footprint", "frame of TwistStamped cmd_vel"),
    "enable_stamped_cmd_vel": ParameterSpec(
        False, "publish TwistStamped instead of Twist", read_only=True
    ),
    "publish_rate": ParameterSpec(
        20.0,
        "Hz of the control period: cmd_vel goes out on every command, and when commands stop "
        "at least every WATCHDOG_GAP periods",
        bounds=(20.0, 200.0),
        read_only=True,
    ),
}

DEFAULTS: dict[str, object] = parameter_defaults(PARAMETERS)


def floats(value: object) -> tuple[float, ...]:
    """A list parameter as a tuple of floats; ValueError for anything else."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"expected a list of numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    bounds = PARAMETERS[name].bounds
    if not math.isfinite(number) or (bounds is not None and not bounds[0] <= number <= bounds[1]):
        where = f" in [{bounds[0]}, {bounds[1]}]" if bounds is not None else ""
        raise ValueError(f"{name} must be finite{where}, got {value!r}")
    return number


def complete(values: Mapping[str, object]) -> dict[str, Any]:
    """`values` over the defaults; ValueError naming any unknown parameter."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown safety_controller parameter(s): {', '.join(unknown)}")
    return {**DEFAULTS, **values}


def build_safety_config(values: Mapping[str, object]) -> tuple[SafetyConfig, LidarMount]:
    """The filter config and lidar mount from parameter values; ValueError with the reason.

    Missing names take their defaults; unknown names are an error (a typo in a YAML file
    must not pass silently). Footprint and limit errors are ValueError subclasses.
    """
    v = complete(values)
    numbers = {
        name: _number(name, v[name])
        for name, spec in PARAMETERS.items()
        if isinstance(spec.default, float)
    }
    feedback = str(v["feedback"])
    if feedback not in FEEDBACK_MODES:
        raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {feedback!r}")
    period = 1.0 / numbers["publish_rate"]
    gap = WATCHDOG_GAP * period  # the longest time between two outputs
    reaction = numbers["reaction_time"]
    if reaction < 1.5 * gap:
        raise ValueError(
            f"reaction_time {reaction} s is shorter than 1.5 times the longest gap between "
            f"outputs ({1.5 * gap:.3f} s): the guard could not cover the time between them"
        )
    if numbers["velocity_timeout"] < period:
        raise ValueError("velocity_timeout must be at least one control period")
    limits = VelocityLimits(
        max_velocity=floats(v["max_velocity"]),
        min_velocity=floats(v["min_velocity"]),
        max_accel=floats(v["max_accel"]),
        max_decel=floats(v["max_decel"]),
        emergency_decel=floats(v["emergency_decel"]),
    )
    footprint = Footprint.from_parameters(
        str(v["footprint"]), numbers["robot_radius"], numbers["safety_margin"]
    )
    config = SafetyConfig(
        limits=limits,
        footprint=footprint,
        reaction_time=reaction,
        velocity_timeout=numbers["velocity_timeout"],
        source_timeout=numbers["source_timeout"],
        odom_timeout=numbers["odom_timeout"],
        closed_loop=feedback == "CLOSED_LOOP",
        intervention_window=numbers["intervention_window"],
        max_step=max(0.25, 2.0 * period),
        allow_empty_scans=_flag("allow_empty_scans", v["allow_empty_scans"]),
        memory_time=numbers["memory_time"],
        max_obstacle_speed=numbers["max_obstacle_speed"],
    )
    mount = LidarMount(x=numbers["lidar_x"], y=numbers["lidar_y"], yaw=numbers["lidar_yaw"])
    return config, mount


def base_horizon_problem(values: Mapping[str, object]) -> str | None:
    """A warning when the base may run a command longer than the guard's budget covers."""
    v = complete(values)
    base = float(v["base_command_timeout"])
    reaction = float(v["reaction_time"])
    if base > reaction:
        return (
            f"base_command_timeout {base:g} s > reaction_time {reaction:g} s: the base may "
            "keep executing a stale command longer than the collision guard's reaction "
            "budget covers; set the base driver's command timeout (e.g. diff_drive_controller "
            "cmd_vel_timeout) to at most reaction_time, or raise reaction_time"
        )
    return None


def load_parameters(path: str | Path) -> dict[str, Any]:
    """The `safety_controller: ros__parameters:` mapping of a node YAML file, over defaults.

    ValueError (with the file named) when the file does not hold that mapping or names an
    unknown parameter. ``use_sim_time``, which every node accepts, is not a filter value
    and is left out.
    """
    values = load_node_parameters(path, NODE_NAME, PARAMETERS)
    values.pop("use_sim_time", None)
    return values


def load_safety_config(path: str | Path) -> tuple[SafetyConfig, LidarMount]:
    """`build_safety_config` of a node YAML file (e.g. config/safety_controller.yaml)."""
    return build_safety_config(load_parameters(path))
