"""The hybrid fallback's parameter table and config builder (no rclpy)."""

import math
import re

import pytest

from hybrid_fallback.arbiter import ArbiterConfig
from hybrid_fallback.dwa import DwaConfig
from hybrid_fallback.fallback import FallbackController, GuidanceConfig
from hybrid_fallback.hybrid_config import (
    NODE_NAME,
    PARAMETERS,
    HybridConfig,
    build_hybrid_config,
    fallback_controller,
)
from hybrid_fallback.mover_tracker import TrackerConfig
from hybrid_fallback.nav_grid import NavGridConfig
from rlguard_common.parameters import load_node_parameters, parameter_defaults
from safety_controller.scan_geometry import LidarMount


def defaults() -> dict[str, object]:
    return parameter_defaults(PARAMETERS)


def test_the_defaults_build_the_deployed_cores():
    config = build_hybrid_config(defaults())
    assert isinstance(config, HybridConfig)
    assert config.arbiter == ArbiterConfig()  # the table's arbiter defaults are the core's
    assert config.dwa == DwaConfig(
        max_linear_velocity=0.26,
        min_linear_velocity=0.0,
        max_angular_velocity=1.82,
        min_angular_velocity=-1.82,
        max_linear_accel=1.0,
        max_angular_accel=3.2,
        control_period=1.0 / 20.0,
        sim_time=1.5,
        rollout_dt=0.1,
        linear_samples=7,
        angular_samples=15,
        footprint_radius=0.11,
        safety_margin=0.03,
        point_resolution=0.02,
        clearance_cap=0.5,
        heading_weight=0.5,
        goal_distance_weight=1.5,
        clearance_weight=0.4,
        speed_weight=0.3,
        goal_slowdown_gain=0.8,
        moving_horizon=4.0,
    )
    assert config.tracker == TrackerConfig(enabled=False)  # opt-in (models/README.md)
    inflation = 0.11 + 0.03 + 0.05  # the DWA's collision radius + 5 cm
    assert config.grid == NavGridConfig(
        resolution=0.1, size=40.0, inflation_radius=inflation, proximity_radius=inflation + 0.26
    )
    assert config.guidance == GuidanceConfig(enabled=True, lookahead=0.8, replan_period=1.0)
    assert config.control_period == pytest.approx(0.05)
    assert (config.source_timeout, config.odom_timeout) == (0.5, 0.5)
    assert config.odom_frame_id == "odom"
    assert config.lidar_mount == LidarMount(-0.032, 0.0, 0.0)


def test_the_node_yaml_holds_the_table_defaults(workspace_root):
    path = workspace_root / "config" / f"{NODE_NAME}.yaml"
    values = load_node_parameters(path, NODE_NAME, PARAMETERS)
    assert values == defaults()
    assert build_hybrid_config(values) == build_hybrid_config(defaults())


def test_the_parameter_table():
    read_only = {name for name, spec in PARAMETERS.items() if spec.read_only}
    assert read_only == {"control_rate_hz", "grid_resolution", "grid_size"}
    for name, spec in PARAMETERS.items():
        assert spec.description, name
        if spec.bounds is not None:
            low, high = spec.bounds
            assert low <= spec.default <= high, name
            if isinstance(spec.default, int) and not isinstance(spec.default, bool):
                assert isinstance(low, int) and isinstance(high, int), name
    assert PARAMETERS["lidar_yaw"].bounds == (-math.pi, math.pi)
    assert PARAMETERS["on_policy_disabled"].bounds is None


def test_unknown_names_are_ignored_and_ints_count_as_floats():
    values = {**defaults(), "use_sim_time": True, "grid_size": 40, "max_accel": [1, 3]}
    config = build_hybrid_config(values)
    assert config.grid.size == 40.0
    assert (config.dwa.max_linear_accel, config.dwa.max_angular_accel) == (1.0, 3.0)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("max_velocity", [0.2], "max_velocity must be two finite numbers"),
        ("min_velocity", [0.0, math.nan], "min_velocity must be two finite numbers"),
        ("max_accel", "fast", "max_accel must be two finite numbers"),
        ("min_velocity", [0.5, -1.0], "min_linear_velocity must be <= max_linear_velocity"),
        ("on_policy_disabled", "halt", "on_policy_disabled must be one of"),
        ("retry_after", 100.0, "max_retry_delay must be >= retry_after"),
        ("policy_timeout", math.nan, "policy_timeout must be finite"),
        ("policy_timeout", 20.0, "policy_timeout must be in [0.01, 10.0]"),
        ("policy_timeout", "0.5", "policy_timeout must be a number"),
        ("policy_timeout", True, "policy_timeout must be a number"),
        ("linear_samples", 7.5, "linear_samples must be an integer"),
        ("angular_samples", 2, "angular_samples must be in [3, 101]"),
        ("use_navigation_grid", 1, "use_navigation_grid must be true or false"),
        ("odom_frame_id", 3, "odom_frame_id must be a string"),
        ("min_velocity", [0.0, 0.5], "min_angular_velocity must be < 0"),
        ("lidar_yaw", 4.0, "lidar_yaw must be in"),
        ("moving_horizon", -1.0, "moving_horizon must be in"),
        ("track_moving_obstacles", "yes", "track_moving_obstacles must be true or false"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(name, value, reason):
    values = {**defaults(), name: value}
    with pytest.raises(ValueError, match=re.escape(reason)) as refused:
        build_hybrid_config(values)
    assert str(refused.value)


def test_a_missing_value_is_named():
    values = defaults()
    del values["lookahead"]
    with pytest.raises(ValueError, match="lookahead is missing"):
        build_hybrid_config(values)


def test_the_grid_follows_the_footprint():
    config = build_hybrid_config({**defaults(), "robot_radius": 0.2, "safety_margin": 0.05})
    assert config.grid.inflation_radius == pytest.approx(0.2 + 0.05 + 0.05)
    assert config.grid.proximity_radius == pytest.approx(0.2 + 0.05 + 0.05 + 0.26)


def test_fallback_controller_runs_the_configured_cores():
    config = build_hybrid_config(
        {
            **defaults(),
            "use_navigation_grid": False,
            "lookahead": 1.2,
            "track_moving_obstacles": False,
        }
    )
    controller = fallback_controller(config)
    assert isinstance(controller, FallbackController)
    reference = FallbackController(config.dwa, config.grid, config.guidance)
    assert controller.planner.config == reference.planner.config == config.dwa
    assert controller.grid.config == reference.grid.config == config.grid
    assert controller.guidance == reference.guidance == config.guidance
    assert controller.tracker.config == config.tracker
    assert not controller.tracker.config.enabled
    assert fallback_controller(config) is not controller  # a fresh controller each call
