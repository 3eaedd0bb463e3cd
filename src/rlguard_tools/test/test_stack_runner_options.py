"""The stack runner's options as node parameters (no processes started)."""

from __future__ import annotations

from rlguard_tools.stack_runner import StackOptions, stack_node_specs


def policy_parameters(options: StackOptions) -> dict:
    (spec,) = [s for s in stack_node_specs(options) if s.name == "rl_policy_node"]
    return dict(spec.parameters)


def test_record_transitions_sets_the_policy_node_parameter_only_when_asked():
    assert "record_transitions" not in policy_parameters(StackOptions())
    assert policy_parameters(StackOptions(record_transitions=True))["record_transitions"] is True
    others = [s for s in stack_node_specs(StackOptions(record_transitions=True))]
    assert all(
        "record_transitions" not in s.parameters for s in others if s.name != "rl_policy_node"
    )
