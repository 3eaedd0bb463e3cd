"""The end-to-end stack benchmarks' harness: environment, policy, probe, matching, CPU, floor.

The stack runs as separate processes over DDS (`rlguard_tools.stack_runner`). A probe node
in the benchmark process (`probe`) records every `policy/cmd_vel`, `cmd_vel_nav` and
`cmd_vel` with the DDS timestamps of its message info, so latencies across processes are
meaningful. The benchmark policy (`cycling_policy`) makes every command identifiable after
the arbiter and the safety filter. The modules:

- `environment`: the bench DDS domain and the parameter layers (pass-through, wall clock, rate);
- `cycling_policy`: the benchmark policy and the decoding of its commands;
- `samples`: received commands and statistics over them (matching, gaps, scan ages);
- `cpu`: CPU of processes over a window; `probe`: the probe node;
- `floor`, `floor_nodes`, `relay_node`: the latency floor of bare relays;
- `stack`: the stack started (as processes or composed) and measured; `figures`: the figures.

The names below are re-exported so a bench script can ``from rlguard_tools import
stack_bench as sb`` and use ``sb.<name>``.
"""

from rlguard_tools.stack_bench.cpu import CpuMeter, cpu_seconds, mean_cpu
from rlguard_tools.stack_bench.cycling_policy import (
    ANGULAR_RANGE,
    CODE_TOLERANCE,
    CODE_VALUES,
    CODES,
    code_angular,
    decode,
    write_cycling_policy,
)
from rlguard_tools.stack_bench.environment import (
    PASS_THROUGH,
    WALL_CLOCK,
    bench_environment,
    merge_parameters,
    rate_parameters,
)
from rlguard_tools.stack_bench.figures import (
    chain_figures,
    end_to_end_key,
    load_figure,
    percent_figures,
    stack_latency_figures,
)
from rlguard_tools.stack_bench.floor import FloorResult, combine_floors, floor_decode, run_floor
from rlguard_tools.stack_bench.probe import Probe
from rlguard_tools.stack_bench.samples import (
    Sample,
    gaps_ms,
    match_first,
    pass_through_fraction,
    scan_ages,
    scan_publish_to_decision,
)
from rlguard_tools.stack_bench.stack import (
    CHAIN,
    ChainMeasurement,
    ComposedRunner,
    StackRun,
    combine_measurements,
    composed_factory,
    measure_chain,
    process_label,
    start_stack,
)

__all__ = [
    "ANGULAR_RANGE",
    "CHAIN",
    "CODES",
    "CODE_TOLERANCE",
    "CODE_VALUES",
    "PASS_THROUGH",
    "WALL_CLOCK",
    "ChainMeasurement",
    "ComposedRunner",
    "CpuMeter",
    "FloorResult",
    "Probe",
    "Sample",
    "StackRun",
    "bench_environment",
    "chain_figures",
    "code_angular",
    "combine_floors",
    "combine_measurements",
    "composed_factory",
    "cpu_seconds",
    "decode",
    "end_to_end_key",
    "floor_decode",
    "gaps_ms",
    "load_figure",
    "match_first",
    "mean_cpu",
    "measure_chain",
    "merge_parameters",
    "pass_through_fraction",
    "percent_figures",
    "process_label",
    "rate_parameters",
    "run_floor",
    "scan_ages",
    "scan_publish_to_decision",
    "stack_latency_figures",
    "start_stack",
    "write_cycling_policy",
]
