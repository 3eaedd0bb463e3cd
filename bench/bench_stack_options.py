"""Executor and process-layout options for the command chain, against the relay floor.

The same measurement as bench_stack_latency.py (`policy/cmd_vel publish -> cmd_vel
received`, benchmark policy, raised acceleration limits, hybrid_fallback and
safety_controller on the wall clock), for these layouts of the three stack nodes:

- `separate`: one process per node with the node's own main (rl_policy_node:
  MultiThreadedExecutor with 2 threads; hybrid_fallback, safety_controller:
  SingleThreadedExecutor) -- the default, as `make demo` runs them;
- `one process, single`: the three node classes in one process
  (`rlguard_tools.composed_stack`) on one SingleThreadedExecutor;
- `one process, multi`: the same on one MultiThreadedExecutor with 2 threads.

The simulator is its own process in every layout; no node's default is changed. The
machine is shared, so the floor and the layouts run interleaved in rounds (floor,
separate, single, multi, floor, ...), each stack started fresh, and each configuration's
windows are pooled. Default: 2 rounds at 20 Hz (~3.5 min); `--rates 20,100` adds 100 Hz.

    python bench/bench_stack_options.py --out bench/results [--rates 20,100] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rlguard_tools import stack_bench as sb
from rlguard_tools.benchlib import WORKSPACE_ROOT, write_results

NODES = ["rl_policy_node", "hybrid_fallback", "safety_controller"]
LAYOUTS = (
    ("separate", None),
    ("one process, single", sb.composed_factory([NODES], "single")),
    ("one process, multi", sb.composed_factory([NODES], "multi", threads=2)),
)
WINDOW_S = 12.0
FLOOR_NAMES = ("source", "relay_1", "relay_2")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WORKSPACE_ROOT / "bench" / "results"))
    parser.add_argument("--rates", default="20", help="comma-separated rates (Hz)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per rate")
    return parser.parse_args()


def main() -> None:
    """Measure every layout and the floor in interleaved rounds; print and write the results."""
    args = _arguments()
    env = sb.bench_environment()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-stack-options-"))
    model = sb.write_cycling_policy(work / "cycling.pt")
    figures: dict[str, dict] = sb.load_figure("start")
    for rate in (float(r) for r in args.rates.split(",") if r):
        parameters = sb.merge_parameters(sb.PASS_THROUGH, sb.rate_parameters(rate), sb.WALL_CLOCK)
        floors: list[sb.FloorResult] = []
        windows: dict[str, list[sb.ChainMeasurement]] = {layout: [] for layout, _ in LAYOUTS}
        for round_index in range(args.rounds):
            floors.append(sb.run_floor(2, rate, WINDOW_S, env))
            for layout, factory in LAYOUTS:
                slug = layout.replace(" ", "").replace(",", "-")
                log_dir = work / f"logs-{rate:g}-{slug}-{round_index}"
                run = sb.start_stack(
                    model, parameters, env, log_dir, runner_factory=factory, clock=False
                )
                try:
                    windows[layout].append(sb.measure_chain(run, WINDOW_S))
                finally:
                    run.stop()
        floor_label = f"floor @ {rate:g} Hz"
        floor = sb.combine_floors(floors)
        floor_figures = sb.chain_figures(floor.stages, floor_label, FLOOR_NAMES)
        key = sb.end_to_end_key(floor_label, FLOOR_NAMES)
        figures[key] = floor_figures[key]
        for layout, _ in LAYOUTS:
            label = f"{layout} @ {rate:g} Hz"
            measurement = sb.combine_measurements(windows[layout])
            figures.update(sb.stack_latency_figures(measurement, label, figures[key].get("p99")))
    figures.update(sb.load_figure("end"))
    figures["wall time of this benchmark"] = {"value": time.monotonic() - started, "unit": "s"}
    write_results("stack_options", figures, args.out)


if __name__ == "__main__":
    main()
