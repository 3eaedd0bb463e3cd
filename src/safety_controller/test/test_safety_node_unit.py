"""The node shell without DDS: parameter validation (pure) and the fail-safe publish path."""

import pytest
import yaml

from safety_controller.footprint import FootprintError
from safety_controller.limits import LimitsError
from safety_controller.safety_node import PARAMETERS, SafetyControllerNode

DEFAULTS = {name: spec[0] for name, spec in PARAMETERS.items()}


def build(**changes):
    return SafetyControllerNode._build({**DEFAULTS, **changes})


def test_defaults_build_and_match_the_config_file(workspace_root):
    config, mount = build()
    assert config.closed_loop and mount.x == pytest.approx(-0.032)
    text = (workspace_root / "config" / "safety_controller.yaml").read_text()
    params = yaml.safe_load(text)["safety_controller"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        if isinstance(value, (str, bool)):
            assert value == DEFAULTS[name], name
        else:
            assert value == pytest.approx(DEFAULTS[name]), name
    SafetyControllerNode._build({**DEFAULTS, **params})


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"max_decel": [-1.0, -3.2]}, LimitsError, "weaker than max_accel"),
        ({"emergency_decel": [-1.0, -5.0]}, LimitsError, "weaker than max_decel"),
        ({"max_velocity": [-0.1, 1.0]}, LimitsError, ">= 0"),
        ({"footprint": "[[0, 0], [1"}, FootprintError, "footprint"),
        ({"feedback": "SOMETIMES"}, ValueError, "feedback"),
        ({"reaction_time": 0.05}, ValueError, "1.5 control periods"),
        ({"velocity_timeout": 0.01}, ValueError, "velocity_timeout"),
        ({"max_velocity": "fast"}, ValueError, "list of numbers"),
    ],
)
def test_invalid_parameter_sets_are_rejected_with_a_reason(changes, error, message):
    with pytest.raises(error, match=message):
        build(**changes)


def test_polygon_footprint_parameter():
    config, _ = build(footprint="[[0.14, 0.14], [-0.14, 0.14], [-0.14, -0.14], [0.14, -0.14]]")
    assert config.footprint.polygon is not None
    assert config.footprint.bounding_radius == pytest.approx(0.14 * 2**0.5 + 0.05)


class Recorder:
    def __init__(self):
        self.messages = []

    def publish(self, msg):
        self.messages.append(msg)


def test_a_failing_filter_still_publishes_zero(rclpy_context):
    node = SafetyControllerNode(context=rclpy_context)
    try:
        node._filter.set_command(0.2, 0.0, 0.0)

        def broken(now):
            raise RuntimeError("bug")

        node._filter.step = broken
        node._cmd_pub, node._scale_pub = Recorder(), Recorder()
        node._publish(1.0)
        (twist,) = node._cmd_pub.messages
        assert (twist.linear.x, twist.angular.z) == (0.0, 0.0)
        assert node._scale_pub.messages[0].data == 0.0
        assert node._filter_errors == 1
    finally:
        node.destroy_node()
