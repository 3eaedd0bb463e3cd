"""The node shell without DDS: parameter validation (pure) and the fail-safe paths."""

import dataclasses
import math
import subprocess
import sys

import pytest
import yaml

from rlguard_common import scan_validity
from safety_controller.footprint import FootprintError
from safety_controller.limits import LimitsError
from safety_controller.node_config import (
    DEFAULTS,
    PARAMETERS,
    base_horizon_problem,
    build_safety_config,
    load_parameters,
    load_safety_config,
)
from safety_controller.safety_filter import FilterOutput
from safety_controller.safety_node import SafetyControllerNode


def build(**changes):
    return build_safety_config({**DEFAULTS, **changes})


def same(a, b) -> bool:
    """Two (SafetyConfig, LidarMount) pairs alike (footprints hold numpy arrays)."""
    (ca, ma), (cb, mb) = a, b
    names = [f.name for f in dataclasses.fields(ca) if f.name != "footprint"]
    return (
        ma == mb
        and all(getattr(ca, n) == getattr(cb, n) for n in names)
        and repr(ca.footprint) == repr(cb.footprint)
    )


def test_the_node_builds_through_the_one_builder():
    assert same(SafetyControllerNode._build(dict(DEFAULTS)), build())
    assert not same(build(memory_time=1.0), build())


def test_defaults_build_and_match_the_config_file(workspace_root):
    config, mount = build()
    assert config.closed_loop and mount.x == pytest.approx(-0.032)
    path = workspace_root / "config" / "safety_controller.yaml"
    params = yaml.safe_load(path.read_text())["safety_controller"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        if isinstance(value, (str, bool)):
            assert value == DEFAULTS[name], name
        else:
            assert value == pytest.approx(DEFAULTS[name]), name
    assert same(load_safety_config(path), build_safety_config(params))


def test_every_parameter_is_documented_and_defaults_lie_in_their_range():
    for name, spec in PARAMETERS.items():
        assert len(spec.description) > 10, name
        if spec.bounds is not None:
            assert spec.bounds[0] <= spec.default <= spec.bounds[1], name


def test_new_parameters_reach_the_filter_config():
    config, _ = build()
    assert (config.allow_empty_scans, config.memory_time, config.max_obstacle_speed) == (
        False,
        2.0,
        0.5,
    )
    config, _ = build(allow_empty_scans=True, memory_time=7.5, max_obstacle_speed=0.0)
    assert (config.allow_empty_scans, config.memory_time, config.max_obstacle_speed) == (
        True,
        7.5,
        0.0,
    )


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"max_decel": [-1.0, -3.2]}, LimitsError, "weaker than max_accel"),
        ({"emergency_decel": [-1.0, -5.0]}, LimitsError, "weaker than max_decel"),
        ({"max_velocity": [-0.1, 1.0]}, LimitsError, ">= 0"),
        ({"footprint": "[[0, 0], [1"}, FootprintError, "footprint"),
        ({"feedback": "SOMETIMES"}, ValueError, "feedback"),
        ({"reaction_time": 0.05}, ValueError, "longest gap between outputs"),
        ({"velocity_timeout": 0.01}, ValueError, "velocity_timeout"),
        ({"max_velocity": "fast"}, ValueError, "list of numbers"),
        ({"memory_time": 31.0}, ValueError, "memory_time"),
        ({"memory_time": -1.0}, ValueError, "memory_time"),
        ({"max_obstacle_speed": 3.5}, ValueError, "max_obstacle_speed"),
        ({"max_obstacle_speed": math.nan}, ValueError, "max_obstacle_speed"),
        ({"base_command_timeout": 0.0}, ValueError, "base_command_timeout"),
        ({"allow_empty_scans": "yes"}, ValueError, "allow_empty_scans"),
        ({"source_timeout": "slow"}, ValueError, "source_timeout"),
        ({"memory_tme": 2.0}, ValueError, "unknown .*memory_tme"),
    ],
)
def test_invalid_parameter_sets_are_rejected_with_a_reason(changes, error, message):
    with pytest.raises(error, match=message):
        build(**changes)


def test_missing_parameters_take_their_defaults():
    assert same(build_safety_config({"memory_time": 4.0}), build(memory_time=4.0))


def test_a_base_horizon_beyond_the_reaction_budget_is_named():
    assert base_horizon_problem(DEFAULTS) is None
    assert base_horizon_problem({"base_command_timeout": 0.15, "reaction_time": 0.15}) is None
    problem = base_horizon_problem({"base_command_timeout": 0.5})
    assert problem is not None and "cmd_vel_timeout" in problem and "0.5" in problem
    build(base_command_timeout=0.5)  # a warning, not an error


def test_yaml_files_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ValueError, match="no 'safety_controller"):
        load_parameters(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("safety_controller:\n  ros__parameters:\n    memory_tme: 1.0\n")
    with pytest.raises(ValueError, match=r"typo\.yaml.*memory_tme"):
        load_parameters(typo)
    partial = tmp_path / "partial.yaml"
    partial.write_text("safety_controller:\n  ros__parameters:\n    memory_time: 1.0\n")
    assert load_safety_config(partial)[0].memory_time == 1.0
    sim_time = tmp_path / "sim_time.yaml"
    sim_time.write_text("safety_controller:\n  ros__parameters:\n    use_sim_time: true\n")
    assert load_parameters(sim_time) == DEFAULTS  # every node takes it; not a filter value


def test_the_config_module_stays_free_of_ros():
    probe = (
        "import sys, safety_controller.node_config; "
        "print(sorted(m for m in sys.modules if m.startswith('rclpy') or m.endswith('_msgs')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_polygon_footprint_parameter():
    config, _ = build(footprint="[[0.14, 0.14], [-0.14, 0.14], [-0.14, -0.14], [0.14, -0.14]]")
    assert config.footprint.polygon is not None
    assert config.footprint.bounding_radius == pytest.approx(0.14 * 2**0.5 + 0.05)


# ---- the node object (rclpy initialised, nothing spun) ----------------------------------


class Recorder:
    def __init__(self):
        self.messages = []

    def publish(self, msg):
        self.messages.append(msg)


@pytest.fixture
def make_node(rclpy_context):
    from rclpy.parameter import Parameter

    nodes = []

    def make(**overrides):
        params = [Parameter(k, value=v) for k, v in overrides.items()]
        node = SafetyControllerNode(context=rclpy_context, parameter_overrides=params)
        node._cmd_pub, node._scale_pub, node._diag_pub = Recorder(), Recorder(), Recorder()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()


def laser_scan(**changes):
    from sensor_msgs.msg import LaserScan

    msg = LaserScan()
    msg.header.stamp.sec = 0
    msg.angle_min, msg.angle_increment = -math.pi, 2 * math.pi / 360
    msg.angle_max = msg.angle_min + 359 * msg.angle_increment
    msg.range_min, msg.range_max = 0.12, 3.5
    msg.ranges = [2.0] * 360
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def diagnostics(node):
    node._publish_diagnostics()
    (status,) = node._diag_pub.messages[-1].status
    return status, {kv.key: kv.value for kv in status.values}


def test_a_failing_filter_still_publishes_zero(make_node):
    node = make_node()
    node._filter.set_command(0.2, 0.0, 0.0)

    def broken(now):
        raise RuntimeError("bug")

    node._filter.step = broken
    node._publish(1.0)
    (twist,) = node._cmd_pub.messages
    assert (twist.linear.x, twist.angular.z) == (0.0, 0.0)
    assert node._scale_pub.messages[0].data == 0.0
    assert node._filter_errors == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"angle_increment": 0.0}, scan_validity.ANGLE_INCREMENT_NOT_POSITIVE),
        ({"ranges": [2.0] * 720}, scan_validity.BEAM_COUNT_MISMATCH),
        ({"range_min": 4.0}, scan_validity.RANGE_MIN_ABOVE_RANGE_MAX),
        ({"range_max": math.inf}, scan_validity.RANGE_MAX_NOT_FINITE),
        ({"ranges": []}, scan_validity.EMPTY_RANGES),
        ({"intensities": [1.0] * 10}, scan_validity.INTENSITIES_LENGTH_MISMATCH),
    ],
)
def test_an_invalid_scan_is_rejected_counted_and_stops_the_robot(make_node, changes, reason):
    node = make_node()
    node._on_scan(laser_scan())
    now = node._now()
    node._filter.set_command(0.2, 0.0, now)
    assert node._filter.step(now).state == "OK"

    node._on_scan(laser_scan(**changes))
    output = node._filter.step(node._now())
    assert output.state == "INVALID_SCAN" and output.linear < 0.2
    status, values = diagnostics(node)
    assert values[f"rejected_scan_{reason}"] == "1"
    assert values["rejected_scans"] == "1" and values["last_rejected_reason"] == reason
    assert reason in status.message and status.level == status.ERROR
    assert all(values[f"rejected_scan_{r}"] == "0" for r in scan_validity.REASONS if r != reason)

    node._on_scan(laser_scan())  # the next valid scan ends it
    assert node._filter.step(node._now()).state == "OK"


def test_a_base_horizon_beyond_the_budget_is_reported(make_node):
    status, values = diagnostics(make_node())
    assert values["base_horizon_covered"] == "True"
    status, values = diagnostics(make_node(base_command_timeout=0.4))
    assert values["base_horizon_covered"] == "False"
    assert "base_command_timeout" in status.message and status.level >= status.WARN


def test_parameters_are_validated_first_and_applied_after(make_node):
    from rclpy.parameter import Parameter

    node = make_node()
    (result,) = node.set_parameters([Parameter("memory_time", value=50.0)])
    assert not result.successful and node._filter.config.memory_time == 2.0
    (result,) = node.set_parameters([Parameter("reaction_time", value=0.05)])
    assert not result.successful and "reaction_time" in result.reason
    assert node._filter.config.reaction_time == 0.15

    result = node.set_parameters_atomically(
        [Parameter("memory_time", value=5.0), Parameter("allow_empty_scans", value=True)]
    )
    assert result.successful
    assert node._filter.config.memory_time == 5.0 and node._filter.config.allow_empty_scans
    assert node._base_horizon_problem is None
    (result,) = node.set_parameters([Parameter("base_command_timeout", value=0.3)])
    assert result.successful and node._base_horizon_problem is not None


def test_a_held_output_is_not_re_sent(make_node):
    node = make_node()
    node._filter.step = lambda now: FilterOutput(0.1, 0.0, 1.0, frozenset(), 1.0, "OK", True)
    node._publish(1.0)
    assert node._cmd_pub.messages == [] and node._held_outputs == 1
    node._filter.step = lambda now: FilterOutput(0.1, 0.0, 1.0, frozenset(), 1.0, "OK", False)
    node._publish(1.1)
    assert len(node._cmd_pub.messages) == 1


def test_a_command_arriving_on_the_timer_tick_goes_out_in_the_same_step(make_node):
    """The timer only fills in: a forwarded command is never held back a period by it."""
    from geometry_msgs.msg import Twist

    node = make_node()
    node._now = lambda: now
    steps = []
    original = node._filter.step
    node._filter.step = lambda t: steps.append(t) or original(t)
    now = 0.0
    node._on_scan(laser_scan())
    for k in range(40):
        now = k * node._period
        node._on_scan(laser_scan())
        node._on_timer()  # the timer fires first on the shared tick ...
        command = Twist()
        command.linear.x = 0.2
        node._on_command(command)  # ... and the forwarded command arrives on the same tick
        node._on_timer()  # the half-period tick between commands
    sent = node._cmd_pub.messages
    # The timer speaks once at start; after that every output comes from a command, a
    # whole period after the one before.
    assert len(sent) == 41
    assert all(
        b - a == pytest.approx(node._period) for a, b in zip(steps[1:], steps[2:], strict=False)
    )
    ramp = [m.linear.x for m in sent]
    assert ramp[2] == pytest.approx(1.5 * node._period)  # max_accel 1.5 m/s^2 over one period
    assert ramp[-1] == pytest.approx(0.2)


def test_when_commands_stop_the_timer_keeps_cmd_vel_going(make_node):
    node = make_node()
    now = 0.0
    node._now = lambda: now
    for k in range(40):
        now = k * node._period / 2  # the timer's own ticks
        node._on_timer()
    times = [k * node._period / 2 for k in range(40)]
    assert len(node._cmd_pub.messages) >= len(times) // 3
