"""The stack benchmarks' harness without DDS: codes, matching, statistics, figures, layers."""

from __future__ import annotations

import math
import os

import pytest

from rlguard_common.topics import CMD_VEL, NAV_CMD_VEL, POLICY_CMD_VEL
from rlguard_tools import stack_bench as sb
from rlguard_tools.stack_bench.cpu import cpu_seconds, mean_cpu
from rlguard_tools.stack_bench.samples import Sample


def sample(code: int | None, source_ms: float, received_ms: float | None = None) -> Sample:
    """A sample carrying `code` (None: not a benchmark command), times in ms."""
    angular = sb.CODE_VALUES[code] if code is not None else 0.7
    received = source_ms if received_ms is None else received_ms
    return Sample(0.0, angular, code, int(source_ms * 1e6), int(received * 1e6), 0)


def test_every_code_decodes_to_itself_and_nothing_else_does():
    assert [sb.decode(0.0, value) for value in sb.CODE_VALUES] == list(range(sb.CODES))
    assert len(set(sb.CODE_VALUES)) == sb.CODES
    assert sb.decode(0.1, sb.CODE_VALUES[3]) is None  # a linear part: not the policy's
    assert sb.decode(0.0, sb.CODE_VALUES[3] + 10 * sb.CODE_TOLERANCE) is None
    assert sb.decode(0.0, math.nan) is None
    low, high = sb.ANGULAR_RANGE
    assert all(low < value < high for value in sb.CODE_VALUES)


def test_match_first_pairs_each_command_with_its_first_later_copy():
    upstream = [sample(1, 0.0), sample(2, 50.0), sample(1, 800.0), sample(None, 900.0)]
    downstream = [
        sample(1, 1.0),
        sample(1, 2.0),  # a repeat: the first copy counts
        sample(2, 49.0),  # published before its command: not its copy
        sample(1, 801.5),
    ]
    pairs = sb.match_first(upstream, downstream)
    assert [(up.source_ns, None if d is None else d.source_ns) for up, d in pairs] == [
        (0, 1_000_000),
        (50_000_000, None),
        (800_000_000, 801_500_000),
    ]


def test_gaps_and_scan_ages():
    decisions = [sample(0, 100.0), sample(1, 150.0), sample(2, 260.0)]
    assert sb.gaps_ms(decisions) == pytest.approx([50.0, 110.0])
    # (source_ns, received_ns, stamp_ns) of scans; (received_ns, sim_ns) of /clock.
    scans = [(90_000_000, 95_000_000, 1_000_000_000), (200_000_000, 205_000_000, 1_100_000_000)]
    clock = [(99_000_000, 1_020_000_000), (250_000_000, 1_150_000_000)]
    sim_ms, wall_ms = sb.scan_ages(decisions, clock, scans)
    assert sim_ms == pytest.approx([20.0, 20.0, 50.0])
    assert wall_ms == pytest.approx([10.0, 60.0, 60.0])
    assert sb.scan_publish_to_decision(decisions, scans) == pytest.approx([10.0, 60.0, 60.0])


def test_pass_through_fraction_counts_commands_carrying_a_code():
    assert sb.pass_through_fraction([sample(1, 0.0), sample(None, 1.0)]) == 0.5
    assert math.isnan(sb.pass_through_fraction([]))


def test_chain_figures_end_to_end_and_per_hop():
    origin = [sample(k, 50.0 * k) for k in range(4)]
    middle = [sample(k, 50.0 * k + 1.0) for k in range(4)]
    last = [sample(k, 50.0 * k + 3.0, 50.0 * k + 4.0) for k in range(3)]  # the last one lost
    figures = sb.chain_figures([origin, middle, last], "chain", ("a", "b", "c"))
    end_to_end = figures[sb.end_to_end_key("chain", ("a", "b", "c"))]
    assert end_to_end["median"] == pytest.approx(4.0)
    assert end_to_end["lost"] == 1
    assert figures["chain: hop a -> b publish"]["median"] == pytest.approx(1.0)
    assert figures["chain: hop b -> c publish"]["median"] == pytest.approx(2.0)
    assert figures["chain: c delivery to the probe"]["median"] == pytest.approx(1.0)


def test_parameter_layers_merge_left_to_right():
    merged = sb.merge_parameters(sb.PASS_THROUGH, sb.rate_parameters(100.0), sb.WALL_CLOCK)
    assert merged["safety_controller"]["publish_rate"] == 100.0
    assert merged["safety_controller"]["use_sim_time"] is False
    assert merged["safety_controller"]["max_accel"] == [1.0e4, 1.0e5]
    assert merged["rl_policy_node"] == {"control_rate_hz": 100.0}
    assert sb.rate_parameters(10.0)["safety_controller"]["publish_rate"] == 20.0  # its minimum


def test_the_chain_is_the_stacks_command_path():
    assert sb.CHAIN == (POLICY_CMD_VEL, NAV_CMD_VEL, CMD_VEL)


def test_cpu_of_this_process_and_the_mean_over_windows():
    assert cpu_seconds(os.getpid()) >= 0.0
    assert cpu_seconds(2**22 + 12345) is None  # no such process
    assert mean_cpu([{"a": 10.0, "b": 4.0}, {"a": 20.0}]) == {"a": 15.0, "b": 4.0}


def test_process_label_names_composed_processes_by_their_nodes(tmp_path):
    from rlguard_tools.process_runner import NodeProcess, NodeSpec

    composed = NodeSpec(
        module="rlguard_tools.composed_stack", extra_args=["--nodes", "a,b", "--executor", "x"]
    )
    assert sb.process_label(NodeProcess(composed, log_dir=tmp_path)) == "a+b"
    assert (
        sb.process_label(NodeProcess(NodeSpec(module="x.y", name="named"), log_dir=tmp_path))
        == "named"
    )
    assert (
        sb.process_label(NodeProcess(NodeSpec(module="pkg.node_module"), log_dir=tmp_path))
        == "node_module"
    )
