"""Every node's defaults and YAML describe the robot the default profile describes.

The robot profile is the one description of the robot; the launch files and the runners
lay `robot_parameter_overrides` over each node's YAML. A node started without them (a bare
`ros2 run`, a unit test, evaluation) must still agree with the default robot, so a default
that drifts from the profile fails here.
"""

from __future__ import annotations

import math

import pytest

from hybrid_fallback import hybrid_config
from rl_policy_node import node_config as policy_config
from rlguard_common.parameters import load_node_parameters
from rlguard_common.robot_parameters import robot_parameter_overrides
from safety_controller import node_config as safety_config
from sim_bringup import node_config as sim_config

# Known and reported (issue 20 note): the velocity limits of the node tables and YAML are
# the Nav2 TurtleBot3 values (0.26 m/s, 1.82 rad/s), the default profile's come from its
# wheel speed (0.22 m/s, 2.75 rad/s). Under the launch files and runners the profile's win;
# changing the bare defaults changes behaviour, so it waits for its own issue. Any other
# drift fails.
KNOWN_DIFFERENCES = {
    ("rl_policy_node", "max_velocity"),
    ("safety_controller", "max_velocity"),
    ("safety_controller", "min_velocity"),
    ("hybrid_fallback", "max_velocity"),
    ("hybrid_fallback", "min_velocity"),
}
TABLES = {
    "rl_policy_node": policy_config.PARAMETERS,
    "safety_controller": safety_config.PARAMETERS,
    "hybrid_fallback": hybrid_config.PARAMETERS,
    "mujoco_sim": sim_config.PARAMETERS,
}


def _same(a: object, b: object) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@pytest.mark.parametrize("node", sorted(TABLES))
def test_defaults_and_yaml_agree_with_the_default_robot(node, workspace_root):
    overrides = robot_parameter_overrides("default")[node]
    table = TABLES[node]
    yaml_values = load_node_parameters(workspace_root / "config" / f"{node}.yaml", node)
    for name, value in overrides.items():
        assert name in table, f"{node} has no parameter {name}"
        if (node, name) in KNOWN_DIFFERENCES:
            assert _same(table[name].default, yaml_values.get(name, table[name].default))
            continue
        assert _same(table[name].default, value), (node, name, table[name].default, value)
        if name in yaml_values:
            assert _same(yaml_values[name], value), (node, name, yaml_values[name], value)
