"""End-to-end latency of the command chain over DDS, against a relay floor measured in the same run.

Every node is its own process (`rlguard_tools.stack_runner`: MuJoCo sim, rl_policy_node,
hybrid_fallback, safety_controller with config/*.yaml) on the empty world. The policy is a
benchmark TorchScript module whose angular output cycles through 16 values, one per tick,
so every command is identifiable downstream; the safety controller's acceleration limits
are raised so that its filter passes the commands unchanged. A probe node in this process
records `policy/cmd_vel`, `cmd_vel_nav` and `cmd_vel` with their DDS timestamps.

Figures, at 20 Hz and at 100 Hz (control_rate_hz of the policy and hybrid nodes,
publish_rate of the safety controller):

- `<stack>: policy/cmd_vel publish -> cmd_vel received`: from the policy node's publish
  call (DDS source timestamp of policy/cmd_vel) to the arrival of the first cmd_vel with the
  same code at the probe's reader (DDS received timestamp). It spans delivery to
  hybrid_fallback, its executor and callback, delivery to safety_controller, its executor
  and filter, and delivery to a reader in another process. It does not span the policy
  tick's own work before the publish (observation + inference: `policy tick compute`, from
  the node's diagnostics) nor the probe's executor. `hop` figures split it by publish times.
- the floor: the same span through a bare chain (a Twist source on a timer and 2 relay
  processes: as many processes as the stack has hops; same message, QoS, executor, rate),
  and the ratio stack p99 / floor p99 (target <= 1.25).
- `stack (wall clock)`: hybrid_fallback and safety_controller on the wall clock, as on a
  robot (the policy node stays on sim time: it judges the sim-stamped scan by its stamp).
  `stack (sim time)`: every node on sim time, as `make demo` runs them; there the filter's
  clock advances in /clock steps, so `cmd_vel carrying the code` shows how many outputs
  passed the request unchanged (see the report in the figures).
- `scan age at decision`: an estimate (the node does not report it): a command's publish
  time minus the publish time of the last scan the probe had received by then (both DDS
  source timestamps, wall clock). At real-time factor 1 the sim publishes a scan when sim
  time reaches its stamp, so this is the tick's now - stamp plus the tick's work before its
  publish. (bench_stack_faults.py also reports the sim-time version.)
- CPU per process over the measurement window (utime + stime, % of one core).

    python bench/bench_stack_latency.py --out bench/results
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rlguard_tools import stack_bench as sb
from rlguard_tools.benchlib import bench_arguments, summarize, write_results

# (rate Hz, floor window s, stack window s); the windows give >= 500 commands at 20 Hz.
RATES = ((20.0, 25.0, 30.0), (100.0, 15.0, 20.0))
VARIANTS = (("wall clock", sb.WALL_CLOCK), ("sim time", {}))
FLOOR_NAMES = ("source", "relay_1", "relay_2")


def policy_diagnostics(measurement: sb.ChainMeasurement, label: str) -> dict[str, dict]:
    """The policy node's own tick figures from its last /diagnostics."""
    values = measurement.diagnostics.get("rl_policy_node: policy", {})
    figures: dict[str, dict] = {}
    for key, unit in (
        ("tick_compute_ms_p99", "ms"),
        ("inference_ms_p99", "ms"),
        ("tick_jitter_ms", "ms"),
        ("deadline_misses", "ticks (since start)"),
    ):
        if key in values:
            try:
                figures[f"{label}: policy node {key}"] = {"value": float(values[key]), "unit": unit}
            except ValueError:
                pass
    return figures


def main() -> None:
    """Measure floor and stack at 20 and 100 Hz; print and write the results."""
    args = bench_arguments(__doc__.splitlines()[0])
    env = sb.bench_environment()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-stack-latency-"))
    model = sb.write_cycling_policy(work / "cycling.pt")
    figures: dict[str, dict] = sb.load_figure("start")
    for rate, floor_seconds, stack_seconds in RATES:
        floor_label = f"floor @ {rate:g} Hz"
        floor = sb.run_floor(2, rate, floor_seconds, env)
        figures.update(sb.chain_figures(floor.stages, floor_label, FLOOR_NAMES))
        figures.update(sb.percent_figures(floor.cpu, floor_label))
        floor_p99 = figures[sb.end_to_end_key(floor_label, FLOOR_NAMES)].get("p99")
        for variant, clock in VARIANTS:
            label = f"stack ({variant}) @ {rate:g} Hz"
            parameters = sb.merge_parameters(sb.PASS_THROUGH, sb.rate_parameters(rate), clock)
            log_dir = work / f"logs-{rate:g}-{variant.replace(' ', '-')}"
            run = sb.start_stack(model, parameters, env, log_dir, clock=False)
            try:
                measurement = sb.measure_chain(run, stack_seconds)
            finally:
                run.stop()
            figures.update(sb.stack_latency_figures(measurement, label, floor_p99))
            ages = sb.scan_publish_to_decision(measurement.stages[0], measurement.scans)
            figures[f"{label}: scan age at decision"] = summarize(ages, "ms")
            figures.update(policy_diagnostics(measurement, label))
    figures.update(sb.load_figure("end"))
    figures["wall time of this benchmark"] = {"value": time.monotonic() - started, "unit": "s"}
    write_results("stack_latency", figures, args.out)


if __name__ == "__main__":
    main()
