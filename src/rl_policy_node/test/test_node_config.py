"""The policy node's parameter table (no ROS) against the YAML the node is launched with."""

from __future__ import annotations

import subprocess
import sys

from rl_policy_node.node_config import NODE_NAME, PARAMETERS
from rlguard_common.parameters import load_node_parameters, parameter_defaults


def test_the_table_matches_the_config_file(workspace_root):
    path = workspace_root / "config" / f"{NODE_NAME}.yaml"
    values = load_node_parameters(path, NODE_NAME)
    assert set(values) == set(PARAMETERS)
    assert load_node_parameters(path, NODE_NAME, PARAMETERS) == parameter_defaults(PARAMETERS)


def test_every_parameter_is_documented_and_defaults_lie_in_their_range():
    for name, spec in PARAMETERS.items():
        assert len(spec.description) > 10, name
        assert spec.out_of_bounds(name, spec.default) is None, name
    assert PARAMETERS["control_rate_hz"].read_only and PARAMETERS["enabled_on_start"].read_only
    assert PARAMETERS["warmup_runs"].bounds == (1, 1000)


def test_the_config_module_stays_free_of_ros():
    probe = (
        "import sys, rl_policy_node.node_config; "
        "print(sorted(m for m in sys.modules if m.startswith('rclpy') or m.endswith('_msgs')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
