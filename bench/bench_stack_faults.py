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
  `SetParameters`, in blocks that alternate with windows of the same length without swaps.
  Missed ticks: intervals > 1.5 periods between consecutive policy/cmd_vel ticks in sim
  time (each tick's time is the last /clock the probe had when the command was published;
  sim time is the clock the node's timer runs on, so a stalled simulator is no miss), in
  the swap blocks (target 0) and in the windows without swaps; also the wall intervals.
- `scan age at decision (sim)`: an estimate, the probe's last /clock minus the header stamp
  of the last scan it had when a command was published (the node does not report it).

    python bench/bench_stack_faults.py --out bench/results
"""

from __future__ import annotations

import bisect
import tempfile
import time
from pathlib import Path
from typing import Any

from rlguard_common.topics import (
    CMD_VEL,
    ESTOP,
    LATCHED,
    NAV_CMD_VEL,
    POLICY_CMD_VEL,
    SAFETY_RESET,
    SAFETY_TRIGGER_ESTOP,
)
from rlguard_tools import stack_bench as sb
from rlguard_tools.benchlib import bench_arguments, summarize, write_results

RATE_HZ = 20.0
PERIOD_MS = 1e3 / RATE_HZ
ESTOP_REPETITIONS = 50  # per trigger path, the two paths alternating
ESTOP_PATHS = ("service", "topic")
DEATH_REPETITIONS = 5
SWAPS = 30
SWAP_BLOCKS = 3  # swap blocks, each after a window of the same length without swaps
SWAP_SPACING_S = 0.3
VELOCITY_TIMEOUT_S = 0.5  # config/safety_controller.yaml


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


def measure_swaps(run: sb.StackRun, models: list[Path], swaps: int) -> dict[str, Any]:
    """Swap model_path between `models` `swaps` times, in blocks alternating with windows
    of the same length without swaps; policy/cmd_vel intervals in both (wall and sim ms)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    probe = run.probe
    policy = probe.samples[POLICY_CMD_VEL]
    client = probe.node.create_client(SetParameters, "/rl_policy_node/set_parameters")
    client.wait_for_service(timeout_sec=10.0)
    per_block = swaps // SWAP_BLOCKS
    block_s = per_block * SWAP_SPACING_S
    result: dict[str, Any] = {"call_ms": [], "refused": 0, "window_s": SWAP_BLOCKS * block_s}
    for kind in ("during", "baseline"):
        result[f"gaps_{kind}"], result[f"sim_gaps_{kind}"] = [], []
    result["baseline_decisions"] = []
    swap_index = 0

    def window(kind: str, start: int, end: int) -> None:
        decisions = [s for s in policy if start <= s.source_ns <= end]
        result[f"gaps_{kind}"] += sb.gaps_ms(decisions)
        ticks = _tick_sim_ns(decisions, probe.clock)
        result[f"sim_gaps_{kind}"] += [
            (b - a) / 1e6 for a, b in zip(ticks, ticks[1:], strict=False)
        ]
        if kind == "baseline":
            result["baseline_decisions"] += decisions

    probe.spin_for(1.0)
    for _ in range(SWAP_BLOCKS):
        start = time.time_ns()
        probe.spin_for(block_s)
        window("baseline", start, time.time_ns())
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
        window("during", start, time.time_ns())
    result["swaps"] = swap_index
    result["clock"], result["scans"] = list(probe.clock), list(probe.scans)
    return result


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


def main() -> None:
    """Run the e-stop, swap and upstream-death measurements; print and write the results."""
    args = bench_arguments(__doc__.splitlines()[0])
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
        for path, spans in measure_estop(run, ESTOP_REPETITIONS).items():
            name = "safety/trigger_estop service" if path == "service" else "safety/estop topic"
            figures[f"e-stop ({name}) -> first zero cmd_vel received"] = summarize(
                spans["received"], "ms (target p99 < 10)"
            )
            figures[f"e-stop ({name}) -> zero cmd_vel published"] = summarize(
                spans["published"], "ms"
            )
        swaps = measure_swaps(run, models, SWAPS)
        sim_ms, _ = sb.scan_ages(swaps["baseline_decisions"], swaps["clock"], swaps["scans"])
        figures["scan age at decision (sim, estimate)"] = summarize(sim_ms, "ms")
        limit = 1.5 * PERIOD_MS
        window = f"{swaps['window_s']:.1f} s"
        figures["model swap: SetParameters call (load, checks, warm-up, swap)"] = summarize(
            swaps["call_ms"], "ms"
        )
        figures["model swap: swaps refused"] = {
            "value": swaps["refused"],
            "unit": f"of {swaps['swaps']}",
        }
        for kind, text in (
            ("during", f"while swapping ({swaps['swaps']} swaps)"),
            ("baseline", "no swaps"),
        ):
            figures[f"model swap: missed ticks (sim-time gap > 1.5 periods), {text}"] = {
                "value": sum(1 for g in swaps[f"sim_gaps_{kind}"] if g > limit),
                "unit": f"in {window}" + ("; target 0" if kind == "during" else ""),
            }
            figures[f"model swap: wall gaps > 1.5 periods in policy/cmd_vel, {text}"] = {
                "value": sum(1 for g in swaps[f"gaps_{kind}"] if g > limit),
                "unit": f"in {window}",
            }
            figures[f"model swap: policy/cmd_vel interval (wall), {text}"] = summarize(
                swaps[f"gaps_{kind}"], "ms"
            )
        figures.update(death_figures(measure_death(run, DEATH_REPETITIONS), "sim time"))
    finally:
        run.stop()
    # The watchdog on the wall clock (as on a robot), at its default and a higher rate.
    for publish_rate in (20.0, 100.0):
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
    write_results("stack_faults", figures, args.out)


if __name__ == "__main__":
    main()
