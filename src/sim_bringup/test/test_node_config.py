"""The simulator node's parameter table and its one validity check (no rclpy)."""

from pathlib import Path

import pytest

from rlguard_common.geometry import BASE_FRAME_ID, ODOM_FRAME_ID
from rlguard_common.parameters import load_node_parameters, parameter_defaults
from sim_bringup.node_config import (
    NODE_NAME,
    PARAMETERS,
    REBUILD_PARAMETERS,
    known_changes,
    needs_rebuild,
    parameter_problem,
)

CONFIG = Path(__file__).resolve().parents[3] / "config" / "mujoco_sim.yaml"


def defaults(**changes) -> dict:
    return {**parameter_defaults(PARAMETERS), **changes}


def test_the_defaults_are_valid_and_the_shipped_yaml_loads_against_the_table():
    assert parameter_problem(defaults(), changed=PARAMETERS) == ""
    shipped = load_node_parameters(CONFIG, NODE_NAME, PARAMETERS)
    assert parameter_problem(shipped, changed=PARAMETERS) == ""
    assert (PARAMETERS["odom_frame_id"].default, PARAMETERS["base_frame_id"].default) == (
        ODOM_FRAME_ID,
        BASE_FRAME_ID,
    )
    assert PARAMETERS["enable_stamped_cmd_vel"].read_only
    assert all(spec.description for spec in PARAMETERS.values())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"real_time_factor": float("nan")}, "real_time_factor must be a finite number > 0"),
        ({"velocity_timeout": 0.0}, "velocity_timeout must be a finite number > 0"),
        ({"max_command_lead": -0.1}, "max_command_lead must be a finite number >= 0"),
        ({"max_command_lead": 0.2}, "must be shorter than velocity_timeout"),
        ({"command_patience": 0.0}, "command_patience must be a finite number > 0"),
        ({"sensor_fault": "smoke"}, "sensor_fault must be one of"),
        ({"goal_republish_period": -1.0}, "goal_republish_period must be a finite number >= 0"),
        ({"scan_frame_id": ""}, "scan_frame_id must be a non-empty frame name"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"clock_offset": float("inf")}, "clock_offset must be a finite number"),
        ({"odom_rate_hz": 500.0}, "odom_rate_hz must be in [1.0, 200.0]"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(changes, reason):
    assert reason in parameter_problem(defaults(**changes), changed=changes)


def test_lockstep_may_be_disabled():
    assert parameter_problem(defaults(max_command_lead=0.0)) == ""


def test_world_and_robot_must_load_when_they_change():
    unknown = defaults(world="no_such_world")
    assert "no_such_world" in parameter_problem(unknown, changed={"world"})
    assert parameter_problem(unknown, changed={"seed"}) == ""  # not loaded when unchanged
    assert "no_such_robot" in parameter_problem(defaults(robot="no_such_robot"), changed={"robot"})
    assert parameter_problem(defaults(world="corridor"), changed={"world"}) == ""


def test_a_clock_offset_that_would_put_the_clock_before_zero_is_refused_at_sim_time():
    values = defaults(clock_offset=-5.0)
    assert parameter_problem(values) == ""
    assert parameter_problem(values, sim_time=10.0) == ""
    assert "before 0" in parameter_problem(values, sim_time=3.0)


def test_changes_to_other_names_are_not_ours_and_some_changes_rebuild():
    assert known_changes({"use_sim_time": True, "seed": 3}) == {"seed": 3}
    assert needs_rebuild({"world"}) and needs_rebuild(["clock_rate_hz", "loop_goals"])
    assert not needs_rebuild({"real_time_factor", "sensor_fault", "clock_offset"})
    assert set(PARAMETERS) >= REBUILD_PARAMETERS
