"""Stack reactions over DDS: e-stop to zero, upstream death to zero, model swap without gaps.

The stack runs as `make demo` runs it (separate processes, every node on sim time) on the
empty world at 20 Hz, with the benchmark policy of bench_stack_latency.py and the same
raised acceleration limits, so a stop is one step to zero (no braking ramp is measured).
A probe node in this process triggers the events and records cmd_vel with its DDS
timestamps; sent times are this machine's wall clock, the same clock as those timestamps.

- `e-stop (service)`: `safety/trigger_estop` request sent -> first zero cmd_vel received
  at the probe's reader; `e-stop (topic)`: `safety/estop` true published -> the same. The
  two alternate; each is reset with `safety/reset` and waits for the policy's commands.
  Target: p99 < 10 ms.
- `upstream death`: SIGKILL of hybrid_fallback -> first zero cmd_vel received (wall), and
  the watchdog's own span, the last cmd_vel_nav published -> the zero cmd_vel published;
  also in sim time (the probe's /clock). Target: < velocity_timeout + 50 ms.
  hybrid_fallback is restarted after each repetition. Measured on the stack above (every
  node on sim time), then on two more stacks with hybrid_fallback and safety_controller on
  the wall clock (as on a robot), with the safety controller's publish_rate at its default
  20 Hz and at 100 Hz (its watchdog runs on that timer).
- `model swap`: rl_policy_node's `model_path` set alternately to two valid models via
  `SetParameters`, SWAPS times (>= 100: rollback is a swap), in blocks that alternate with
  windows of the same length without swaps. Missed ticks (target 0 while swapping), from
  the node's own counters in its /diagnostics over each window: deadline misses (a tick
  more than 1.5 periods after the previous one on the node's clock, which is sim time, so
  a stalled simulator is no miss; or a tick whose work took a whole period) plus ticks
  that dropped their command (inference overrun, non-finite output). The probe's estimate
  is listed too: intervals > 1.5 periods between policy/cmd_vel messages, each stamped with
  the last /clock the probe had when it was published; on a loaded machine the /clock the
  probe and the node receive drift apart by tens of ms and that estimate counts misses
  that did not happen (also without swaps), so it is not the target's measure. Also the
  wall intervals. About 55 s of the benchmark's wall time (the 30 swaps before: 20 s).
- `scan age at decision (sim)`: an estimate, the probe's last /clock minus the header stamp
  of the last scan it had when a command was published (the node does not report it).

    python bench/bench_stack_faults.py --out bench/results [--only swap]
"""

from __future__ import annotations

import argparse
import bisect
import tempfile
import time
from pathlib import Path
from typing import Any

from rlguard_common.topics import (
    CMD_VEL,
    DIAGNOSTICS,
    ESTOP,
    LATCHED,
    NAV_CMD_VEL,
    POLICY_CMD_VEL,
    SAFETY_RESET,
    SAFETY_TRIGGER_ESTOP,
)
from rlguard_tools import stack_bench as sb
from rlguard_tools.benchlib import WORKSPACE_ROOT, summarize, write_results
from rlguard_tools.stack_bench.probe import PROBE_QOS

RATE_HZ = 20.0
PERIOD_MS = 1e3 / RATE_HZ
ESTOP_REPETITIONS = 50  # per trigger path, the two paths alternating
ESTOP_PATHS = ("service", "topic")
DEATH_REPETITIONS = 5
SWAPS = 120
SWAP_BLOCKS = 4  # swap blocks, each after a window of the same length without swaps
SWAP_SPACING_S = 0.2  # one swap every 4 ticks: 24 s of swapping, 24 s without
MISSED_TICK_PERIODS = 1.5  # a tick interval longer than this many periods missed a tick
VELOCITY_TIMEOUT_S = 0.5  # config/safety_controller.yaml
PARTS = ("estop", "swap", "death")
POLICY_DIAGNOSTICS = "rl_policy_node: policy"  # the policy node's /diagnostics status name


def _first_after(samples: list[sb.Sample], condition: Any, after_ns: int) -> sb.Sample | None:
    """The first sample received after `after_ns` that meets `condition`.

    Scans back from the newest sample (the lists grow all run long) until 100 ms before
    `after_ns` (arrival order and received timestamps may differ slightly).
    """
    found = None
    for sample in reversed(samples):
        if sample.received_ns < after_ns - 100_000_000:
            break
        if sample.received_ns > after_ns and condition(sample):
            found = sample
    return found


def _is_zero(sample: sb.Sample) -> bool:
    return sample.linear == 0.0 and sample.angular == 0.0


def _wait_for_policy_commands(probe: sb.Probe, after_ns: int, timeout: float = 30.0) -> bool:
    """Wait until cmd_vel carries the policy's codes again (after `after_ns`)."""
    out = probe.samples[CMD_VEL]
    return probe.spin_until(
        lambda: sum(1 for s in out[-10:] if s.code is not None and s.received_ns > after_ns) >= 3,
        timeout,
    )


def measure_estop(run: sb.StackRun, repetitions: int) -> dict[str, dict[str, list[float]]]:
    """E-stops alternately via the service and the topic: ms to the first zero cmd_vel.

    Per path, `received` (at the probe's reader) and `published` (the safety controller's
    publish call), each from the moment the request was sent.
    """
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    from rlguard_common.node_support import qos_profile

    probe = run.probe
    node = probe.node
    trigger = node.create_client(Trigger, SAFETY_TRIGGER_ESTOP)
    reset = node.create_client(Trigger, SAFETY_RESET)
    estop = node.create_publisher(Bool, ESTOP, qos_profile(LATCHED))
    trigger.wait_for_service(timeout_sec=10.0)
    reset.wait_for_service(timeout_sec=10.0)
    probe.spin_until(lambda: estop.get_subscription_count() > 0, 10.0)
    spans = {path: {"received": [], "published": []} for path in ESTOP_PATHS}
    out = probe.samples[CMD_VEL]
    for repetition in range(repetitions + 1):  # the first round warms both paths up
        for path in ESTOP_PATHS:
            _wait_for_policy_commands(probe, time.time_ns())
            sent = time.time_ns()
            future = None
            if path == "service":
                future = trigger.call_async(Trigger.Request())
            else:
                estop.publish(Bool(data=True))
            probe.spin_until(lambda sent=sent: _first_after(out, _is_zero, sent) is not None, 3.0)
            zero = _first_after(out, _is_zero, sent)
            if future is not None:
                probe.spin_until(future.done, 3.0)
            if path == "topic":
                estop.publish(Bool(data=False))
            for _ in range(20):  # the reset is refused until safety/estop false has arrived
                response = probe.call(reset, Trigger.Request(), timeout=3.0)
                if response is not None and response.success:
                    break
                probe.spin_for(0.05)
            if zero is not None and repetition > 0:
                spans[path]["received"].append((zero.received_ns - sent) / 1e6)
                spans[path]["published"].append((zero.source_ns - sent) / 1e6)
    return spans


def measure_death(run: sb.StackRun, repetitions: int) -> dict[str, list[float]]:
    """SIGKILL hybrid_fallback, time the zero cmd_vel, restart it; ms per repetition."""
    probe = run.probe
    out, nav = probe.samples[CMD_VEL], probe.samples[NAV_CMD_VEL]
    hybrid = run.runner.process("hybrid_fallback")
    spans: dict[str, list[float]] = {"kill_to_zero": [], "last_nav_to_zero": [], "sim": []}
    for _ in range(repetitions):
        restarted = time.time_ns()
        # After a restart the new node's modes arrive; "KILLED" marks the old one's end.
        probe.spin_until(lambda: probe.mode == "POLICY", 60.0)
        _wait_for_policy_commands(probe, restarted)
        probe.spin_for(0.5)
        sim_before = probe.sim_ns
        killed = time.time_ns()
        hybrid.kill()
        probe.spin_until(lambda killed=killed: _first_after(out, _is_zero, killed) is not None, 5.0)
        zero = _first_after(out, _is_zero, killed)
        last_nav = max((s.source_ns for s in nav if s.source_ns < killed), default=None)
        if zero is not None:
            spans["kill_to_zero"].append((zero.received_ns - killed) / 1e6)
            spans["sim"].append((zero.sim_ns - sim_before) / 1e6)
            if last_nav is not None:
                spans["last_nav_to_zero"].append((zero.source_ns - last_nav) / 1e6)
        probe.modes.append((time.time_ns(), "KILLED"))
        hybrid.start()
    probe.spin_until(lambda: probe.mode == "POLICY", 60.0)
    return spans


def _tick_sim_ns(decisions: list[sb.Sample], clock: list[tuple[int, int]]) -> list[int]:
    """Each command's tick in sim time: the last /clock the probe had when it was published."""
    times = [c[0] for c in clock]
    ticks = []
    for decision in decisions:
        i = bisect.bisect_right(times, decision.source_ns) - 1
        if i >= 0:
            ticks.append(clock[i][1])
    return ticks


class NodeCounters:
    """The policy node's tick counters from its 1 Hz /diagnostics, as the probe receives them.

    `ticks` (control timer callbacks), `deadline_misses` (a tick > 1.5 periods after the
    previous one on the node's own clock, or one whose work took > 1 period), and the
    ticks that dropped their command: `inference_overruns`, `non_finite_outputs`; all
    cumulative. (Not ticks - commands: the two are counted at different points of a tick,
    so a snapshot taken mid-tick is off by one.)
    """

    KEYS = ("ticks", "deadline_misses", "inference_overruns", "non_finite_outputs")

    def __init__(self, probe: sb.Probe) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from rlguard_common.node_support import qos_profile

        self.probe = probe
        self.snapshots: list[dict[str, int]] = []
        probe.node.create_subscription(
            DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, qos_profile(PROBE_QOS)
        )

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name == POLICY_DIAGNOSTICS:
                values = {kv.key: kv.value for kv in status.values}
                if all(key in values for key in self.KEYS):
                    self.snapshots.append({key: int(values[key]) for key in self.KEYS})

    def fresh(self, timeout: float = 5.0) -> dict[str, int] | None:
        """The first snapshot received after this call (None if none comes in time).

        Callers mark a window's start before its first swap and its end after its last
        swap returned, so a snapshot already under way (sent ms earlier) still fits.
        """
        seen = len(self.snapshots)
        self.probe.spin_until(lambda: len(self.snapshots) > seen, timeout)
        return self.snapshots[seen] if len(self.snapshots) > seen else None


def _missed_by_node(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int]:
    """Counter increments between two snapshots; missed = deadline misses + dropped commands."""
    if before is None or after is None:
        return {"ticks": 0, "missed": 0, "deadline_misses": 0, "silent_ticks": 0, "unknown": 1}
    delta = {key: after[key] - before[key] for key in NodeCounters.KEYS}
    silent = delta["inference_overruns"] + delta["non_finite_outputs"]
    return {
        "ticks": delta["ticks"],
        "deadline_misses": delta["deadline_misses"],
        "silent_ticks": silent,
        "missed": delta["deadline_misses"] + silent,
        "unknown": 0,
    }


def measure_swaps(run: sb.StackRun, models: list[Path], swaps: int) -> dict[str, Any]:
    """Swap model_path between `models` `swaps` times, in blocks alternating with windows
    of the same length without swaps; policy/cmd_vel intervals in both (wall and sim ms),
    and the node's own tick counters over each window.

    Each window's counters run from a /diagnostics published before its start to one
    published after its end (each waited for, <= 1 s without swaps): a swap window's
    count covers all its swaps, and a window without swaps holds none.
    """
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    probe = run.probe
    policy = probe.samples[POLICY_CMD_VEL]
    counters = NodeCounters(probe)
    client = probe.node.create_client(SetParameters, "/rl_policy_node/set_parameters")
    client.wait_for_service(timeout_sec=10.0)
    per_block = swaps // SWAP_BLOCKS
    block_s = per_block * SWAP_SPACING_S
    result: dict[str, Any] = {"call_ms": [], "refused": 0, "window_s": SWAP_BLOCKS * block_s}
    for kind in ("during", "baseline"):
        result[f"gaps_{kind}"], result[f"sim_gaps_{kind}"] = [], []
        result[f"node_{kind}"] = {
            "ticks": 0,
            "missed": 0,
            "deadline_misses": 0,
            "silent_ticks": 0,
            "unknown": 0,
        }
    result["baseline_decisions"] = []
    swap_index = 0

    def window(kind: str, start: int, end: int, before: dict | None, after: dict | None) -> None:
        decisions = [s for s in policy if start <= s.source_ns <= end]
        result[f"gaps_{kind}"] += sb.gaps_ms(decisions)
        ticks = _tick_sim_ns(decisions, probe.clock)
        result[f"sim_gaps_{kind}"] += [
            (b - a) / 1e6 for a, b in zip(ticks, ticks[1:], strict=False)
        ]
        if kind == "baseline":
            result["baseline_decisions"] += decisions
        for key, value in _missed_by_node(before, after).items():
            result[f"node_{kind}"][key] += value

    probe.spin_for(1.0)
    snapshot = counters.fresh()
    for _ in range(SWAP_BLOCKS):
        start = time.time_ns()
        probe.spin_for(block_s)
        end = time.time_ns()
        after = counters.fresh()
        window("baseline", start, end, snapshot, after)
        snapshot = after
        start = time.time_ns()
        for _ in range(per_block):
            began = time.perf_counter()
            path = str(models[(swap_index + 1) % 2])
            swap_index += 1
            parameter = Parameter("model_path", value=path).to_parameter_msg()
            response = probe.call(client, SetParameters.Request(parameters=[parameter]))
            result["call_ms"].append((time.perf_counter() - began) * 1e3)
            if response is None or not response.results[0].successful:
                result["refused"] += 1
            probe.spin_for(max(0.0, SWAP_SPACING_S - (time.perf_counter() - began)))
        end = time.time_ns()
        after = counters.fresh()
        window("during", start, end, snapshot, after)
        snapshot = after
    result["swaps"] = swap_index
    result["clock"], result["scans"] = list(probe.clock), list(probe.scans)
    return result


def swap_figures(swaps: dict[str, Any]) -> dict[str, dict]:
    """The model-swap figures; prints the missed-tick line of the issue's target."""
    limit = MISSED_TICK_PERIODS * PERIOD_MS
    count, window = swaps["swaps"], f"{swaps['window_s']:.1f} s"
    during, baseline = swaps["node_during"], swaps["node_baseline"]
    estimated = {
        kind: sum(1 for g in swaps[f"sim_gaps_{kind}"] if g > limit)
        for kind in ("during", "baseline")
    }
    unknown = (
        " (some windows' counters missing)" if during["unknown"] or baseline["unknown"] else ""
    )
    figures: dict[str, dict] = {
        "model swap: SetParameters call (load, checks, warm-up, swap)": summarize(
            swaps["call_ms"], "ms"
        ),
        "model swap: swaps refused": {"value": swaps["refused"], "unit": f"of {count}"},
        "model swap: missed ticks while swapping": {
            "value": during["missed"],
            "swaps": count,
            "ticks": during["ticks"],
            "deadline_misses": during["deadline_misses"],
            "silent_ticks": during["silent_ticks"],
            "unit": f"in {count} swaps, {during['ticks']} ticks; target 0{unknown}",
        },
        "model swap: missed ticks without swaps": {
            "value": baseline["missed"],
            "ticks": baseline["ticks"],
            "deadline_misses": baseline["deadline_misses"],
            "silent_ticks": baseline["silent_ticks"],
            "unit": f"in {baseline['ticks']} ticks without swaps{unknown}",
        },
    }
    for kind, text in (("during", f"while swapping ({count} swaps)"), ("baseline", "no swaps")):
        figures[
            f"model swap: intervals > {MISSED_TICK_PERIODS:g} periods (probe's sim time), {text}"
        ] = {
            "value": estimated[kind],
            "unit": f"in {window}",
        }
        figures[f"model swap: policy/cmd_vel interval (probe's sim time), {text}"] = summarize(
            swaps[f"sim_gaps_{kind}"], "ms (sim)"
        )
        figures[f"model swap: wall gaps > {MISSED_TICK_PERIODS:g} periods, {text}"] = {
            "value": sum(1 for g in swaps[f"gaps_{kind}"] if g > limit),
            "unit": f"in {window}",
        }
        figures[f"model swap: policy/cmd_vel interval (wall), {text}"] = summarize(
            swaps[f"gaps_{kind}"], "ms"
        )
    print(
        f"model swap: {during['missed']} missed ticks in {count} swaps ({during['ticks']} "
        f"ticks; target 0), {baseline['missed']} in {baseline['ticks']} ticks without swaps"
        f"{unknown}. Probe's estimate (policy/cmd_vel intervals > {limit:g} ms in its sim "
        f"time): {estimated['during']} while swapping, {estimated['baseline']} without."
    )
    return figures


def death_figures(spans: dict[str, list[float]], variant: str) -> dict[str, dict]:
    """The upstream-death figures of one stack variant."""
    target = f"ms (target < velocity_timeout + 50 = {VELOCITY_TIMEOUT_S * 1e3 + 50:g})"
    return {
        f"upstream death ({variant}): SIGKILL hybrid_fallback -> zero cmd_vel received": (
            summarize(spans["kill_to_zero"], target)
        ),
        f"upstream death ({variant}): last cmd_vel_nav published -> zero cmd_vel published": (
            summarize(spans["last_nav_to_zero"], target)
        ),
        f"upstream death ({variant}): SIGKILL -> zero cmd_vel, sim time": summarize(
            spans["sim"], "ms (sim)"
        ),
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WORKSPACE_ROOT / "bench" / "results"))
    parser.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only this part (repeatable; default: all); results go to "
        "stack_faults_<parts>-DATE.json then",
    )
    return parser.parse_args()


def main() -> None:
    """Run the e-stop, swap and upstream-death measurements; print and write the results."""
    args = _arguments()
    parts = set(args.only or PARTS)
    env = sb.bench_environment()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-stack-faults-"))
    models = [
        sb.write_cycling_policy(work / "cycling_a.pt", phase=0, name="bench-cycling-a"),
        sb.write_cycling_policy(work / "cycling_b.pt", phase=7, name="bench-cycling-b"),
    ]
    parameters = sb.merge_parameters(sb.PASS_THROUGH, sb.rate_parameters(RATE_HZ))
    run = sb.start_stack(models[0], parameters, env, work / "logs")
    figures: dict[str, dict] = sb.load_figure("start")
    try:
        if "estop" in parts:
            for path, spans in measure_estop(run, ESTOP_REPETITIONS).items():
                name = "safety/trigger_estop service" if path == "service" else "safety/estop topic"
                figures[f"e-stop ({name}) -> first zero cmd_vel received"] = summarize(
                    spans["received"], "ms (target p99 < 10)"
                )
                figures[f"e-stop ({name}) -> zero cmd_vel published"] = summarize(
                    spans["published"], "ms"
                )
        if "swap" in parts:
            swaps = measure_swaps(run, models, SWAPS)
            sim_ms, _ = sb.scan_ages(swaps["baseline_decisions"], swaps["clock"], swaps["scans"])
            figures["scan age at decision (sim, estimate)"] = summarize(sim_ms, "ms")
            figures.update(swap_figures(swaps))
        if "death" in parts:
            figures.update(death_figures(measure_death(run, DEATH_REPETITIONS), "sim time"))
    finally:
        run.stop()
    # The watchdog on the wall clock (as on a robot), at its default and a higher rate.
    for publish_rate in (20.0, 100.0) if "death" in parts else ():
        variant = f"wall clock, safety publish_rate {publish_rate:g} Hz"
        rate = {"safety_controller": {"publish_rate": publish_rate}}
        run = sb.start_stack(
            models[0],
            sb.merge_parameters(parameters, sb.WALL_CLOCK, rate),
            env,
            work / f"logs-wall-{publish_rate:g}",
        )
        try:
            figures.update(death_figures(measure_death(run, DEATH_REPETITIONS), variant))
        finally:
            run.stop()
    figures.update(sb.load_figure("end"))
    figures["wall time of this benchmark"] = {"value": time.monotonic() - started, "unit": "s"}
    name = "stack_faults" if parts == set(PARTS) else "_".join(["stack_faults", *sorted(parts)])
    write_results(name, figures, args.out)


if __name__ == "__main__":
    main()
