"""The simulator node's parameters and their rules (no rclpy).

One table (`PARAMETERS`) declares the `mujoco_sim` node's parameters (names, defaults,
descriptions, ranges) and `parameter_problem` is the one check of a set of values: the
node refuses a change it objects to (keeping the old values) and logs it for start values;
ROS-free users read the same table and the node's YAML (`config/mujoco_sim.yaml`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from rlguard_common.geometry import BASE_FRAME_ID, ODOM_FRAME_ID, SCAN_FRAME_ID, WORLD_FRAME_ID
from rlguard_common.parameters import ParameterSpec
from rlguard_common.profile_yaml import ProfileError
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.sim_faults import clock_offset_problem, sensor_fault_problem

NODE_NAME = "mujoco_sim"

PARAMETERS: dict[str, ParameterSpec] = {
    "world": ParameterSpec("warehouse", "World name (worlds/<name>.yaml) or a world YAML path."),
    "robot": ParameterSpec(
        "default", "Robot profile name (config/robots/<name>.yaml) or a YAML path."
    ),
    "seed": ParameterSpec(
        0, "Seed of the episode: physics randomization and sensor noise.", (0, 2**31 - 1)
    ),
    "randomize": ParameterSpec(False, "Domain randomization within the robot profile's ranges."),
    "real_time_factor": ParameterSpec(
        1.0, "Sim seconds per wall second (runs as fast as it can if higher).", (0.01, 10000.0)
    ),
    "publish_goals": ParameterSpec(
        False, "Publish the world's goals on goal_pose, the next when reached."
    ),
    "loop_goals": ParameterSpec(
        False, "Start over with the first goal after the last one is reached."
    ),
    "goal_republish_period": ParameterSpec(
        1.0,
        "Re-send the current goal this often (sim s) so late or restarted nodes get it; 0: "
        "only when it changes.",
        (0.0, 3600.0),
    ),
    "enable_stamped_cmd_vel": ParameterSpec(
        False, "Subscribe to cmd_vel as TwistStamped instead of Twist.", read_only=True
    ),
    "velocity_timeout": ParameterSpec(
        0.15,
        "A cmd_vel older than this (sim s) stops the wheels. The default is the safety "
        "controller's reaction_time: the guard's budget covers every command the base runs.",
        (0.01, 10.0),
    ),
    "max_command_lead": ParameterSpec(
        0.1,
        "Lockstep: sim time runs at most this far (sim s) past the last cmd_vel received, "
        "so a loaded CPU slows the simulation instead of the stack falling behind it; "
        "0 disables. Must be shorter than velocity_timeout.",
        (0.0, 10.0),
    ),
    "command_patience": ParameterSpec(
        1.0,
        "Wall seconds without any cmd_vel after which the simulation stops waiting for "
        "commands and runs at real_time_factor (a dead controller: the base timeout stops "
        "the robot); the next cmd_vel resumes lockstep.",
        (0.01, 3600.0),
    ),
    "odom_rate_hz": ParameterSpec(
        50.0, "Rate of odom and sim/ground_truth (sim time).", (1.0, 200.0)
    ),
    "clock_rate_hz": ParameterSpec(100.0, "Rate of /clock messages (sim time).", (1.0, 200.0)),
    "sensor_fault": ParameterSpec(
        "none",
        "Fault injection: 'none', 'no_scan' (lidar silent), 'nan_scan' (every range NaN) or "
        "'no_odom' (base driver silent).",
    ),
    "clock_offset": ParameterSpec(
        0.0,
        "Fault injection: seconds added to every published time (/clock and stamps); "
        "lowering it by N makes /clock jump back N s while the physics runs on. Refused "
        "if it would put /clock before 0.",
        (-86400.0, 86400.0),
    ),
    "lidar_noise_std": ParameterSpec(
        0.0,
        "Fault injection: extra Gaussian noise (m, std) on every measured range, on top of "
        "the robot profile's own.",
        (0.0, 1.0),
    ),
    "lidar_bias": ParameterSpec(
        0.0, "Fault injection: metres added to every measured range.", (-1.0, 1.0)
    ),
    "lidar_dropout": ParameterSpec(
        0.0, "Fault injection: probability that a beam reads NaN (no measurement).", (0.0, 1.0)
    ),
    "odom_frame_id": ParameterSpec(ODOM_FRAME_ID, "Frame of odom and goal_pose."),
    "base_frame_id": ParameterSpec(BASE_FRAME_ID, "Child frame of odom."),
    "scan_frame_id": ParameterSpec(SCAN_FRAME_ID, "Frame of scan."),
    "world_frame_id": ParameterSpec(WORLD_FRAME_ID, "Frame of sim/ground_truth."),
}
# Changing these rebuilds the simulator (a new episode) on the next tick.
REBUILD_PARAMETERS = frozenset(
    {"world", "robot", "seed", "randomize", "odom_rate_hz", "clock_rate_hz"}
)
FRAME_PARAMETERS = ("odom_frame_id", "base_frame_id", "scan_frame_id", "world_frame_id")


def known_changes(changes: Mapping[str, object]) -> dict[str, object]:
    """The changes to parameters of the table (others, like use_sim_time, are not ours)."""
    return {name: value for name, value in changes.items() if name in PARAMETERS}


def needs_rebuild(changed: Collection[str]) -> bool:
    """True when a change of these parameters needs a new simulator (a new episode)."""
    return not REBUILD_PARAMETERS.isdisjoint(changed)


def _positive_problem(name: str, value: object) -> str:
    if not isinstance(value, float) or not math.isfinite(value) or value <= 0.0:
        return f"{name} must be a finite number > 0, got {value!r}"
    return ""


def _non_negative_problem(name: str, value: object) -> str:
    if not isinstance(value, float) or not math.isfinite(value) or value < 0.0:
        return f"{name} must be a finite number >= 0, got {value!r}"
    return ""


def _value_problems(values: Mapping[str, Any]) -> Iterator[str]:
    """Each check of the values in turn: "" when it passes, else why not."""
    yield clock_offset_problem(values["clock_offset"])
    for name in ("real_time_factor", "velocity_timeout", "odom_rate_hz", "clock_rate_hz"):
        yield _positive_problem(name, values[name])
    lead = values["max_command_lead"]
    yield _non_negative_problem("max_command_lead", lead)
    if lead >= values["velocity_timeout"]:
        yield (
            f"max_command_lead {lead!r} must be shorter than velocity_timeout "
            f"{values['velocity_timeout']!r} (0 disables lockstep)"
        )
    yield _positive_problem("command_patience", values["command_patience"])
    yield sensor_fault_problem(values["sensor_fault"])
    yield _non_negative_problem("goal_republish_period", values["goal_republish_period"])
    for name in FRAME_PARAMETERS:
        if not isinstance(values[name], str) or not values[name]:
            yield f"{name} must be a non-empty frame name"
    seed = values["seed"]
    if not isinstance(seed, int) or seed < 0:
        yield f"seed must be a non-negative integer, got {seed!r}"
    for name, spec in PARAMETERS.items():
        yield spec.out_of_bounds(name, values[name]) or ""


def parameter_problem(
    values: Mapping[str, Any], changed: Collection[str] = (), sim_time: float | None = None
) -> str:
    """Why a full set of parameter values is invalid, or "" when it is valid.

    The checks run in order and the first failure is the answer. The world and robot are
    loaded (and must load) only when they are among `changed`. With `sim_time`, a clock
    offset that would put /clock before 0 now is refused too.
    """
    problem = next((problem for problem in _value_problems(values) if problem), "")
    if problem:
        return problem
    try:
        if "world" in changed:
            load_world(values["world"])
        if "robot" in changed:
            load_robot_profile(values["robot"])
    except ProfileError as error:
        return str(error)
    if sim_time is not None:
        return clock_offset_problem(values["clock_offset"], sim_time)
    return ""
