"""The fault-injection matrix (issue #9): one fault per test, over the real node processes.

Every row starts the stack with `StackRunner` (simulator, policy, arbiter and safety
controller, each its own process over DDS) in the `empty` world, injects one fault and
checks what the contract in ARCHITECTURE.md says must happen. Events are timed in sim
time as the probe sees it on /clock (`StackProbe.sim_mono`, which a backward clock jump
does not move back). Bounds are behavioural: the stack's own timeouts plus a slack for
DDS delivery and scheduling on a loaded machine; the benchmarks measure latencies.

Rows that kill a process get a stack of their own (they come first in the file, so the
shared stack starts once); the others share one stack, which each row leaves as it found
it (fault removed) and which is restarted if a row broke it. Only one stack runs at a
time: they would share the test's DDS domain.

Each row records what the stack did, the sim time to a safe state and the RSS of every
node process before and after (growth must stay under `RSS_GROWTH_KIB`). With
RLGUARD_FAULT_MATRIX_OUT naming a directory, the rows are written there as
`fault_matrix.json` when the module ends; without it nothing is written.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from rclpy.context import Context
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rlguard_tools_test_support import StackProbe, configured, rss_kib, seeker_policy

from rlguard_common.robot_parameters import robot_parameter_overrides
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from rlguard_tools.stack_runner import StackOptions, StackRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUT_ENV = "RLGUARD_FAULT_MATRIX_OUT"
WORLD = "empty"
RTF = 1.0
# The stack's timings the bounds are built from, in sim seconds, as config/*.yaml sets them.
PERIOD = 1.0 / configured("hybrid_fallback", "control_rate_hz")  # control period
POLICY_TIMEOUT = configured("hybrid_fallback", "policy_timeout")
TELEOP_TIMEOUT = configured("hybrid_fallback", "teleop_timeout")
VELOCITY_TIMEOUT = configured("safety_controller", "velocity_timeout")
SOURCE_TIMEOUT = configured("safety_controller", "source_timeout")
ODOM_TIMEOUT = configured("hybrid_fallback", "odom_timeout")
SCAN_PERIOD = 1.0 / load_robot_profile("default").lidar.rate_hz
# The stack runs with the robot profile's limits (robot_parameters), not the YAML defaults.
MAX_VELOCITY = tuple(robot_parameter_overrides("default")["safety_controller"]["max_velocity"])
EMERGENCY_DECEL = -configured("safety_controller", "emergency_decel")[0]  # m/s^2, blind/stale
MAX_DECEL = -configured("safety_controller", "max_decel")[0]  # m/s^2, a zero request
JUMP = 5.0  # s that /clock jumps back in row 6
SLACK = 0.3  # s: DDS delivery and scheduling on a loaded 2-core machine
RSS_GROWTH_KIB = 30 * 1024  # generous: a leak per message or per fault would exceed it
STARTUP_TIMEOUT = 90.0  # wall s for a stack to come up and drive (torch import is slow)

# The shared stack: a goal-seeking policy that rarely hands over by itself.
SHARED_PARAMETERS = {
    "mujoco_sim": {"loop_goals": True},
    "hybrid_fallback": {"stall_window": 60.0, "retry_after": 1.0, "max_intervention_rate": 1.0},
    "rl_policy_node": {"max_inference_ms": 500.0},  # an overrun on a loaded CPU is no fault here
}
FLOOD_QOS = QoSProfile(depth=2100, reliability=ReliabilityPolicy.RELIABLE)
STOP_RAMP = MAX_VELOCITY[0] / EMERGENCY_DECEL  # s to brake from full speed
# Names of the diagnostics statuses the rows read.
ARBITER, POLICY, SIMULATOR = (
    "hybrid_fallback: arbiter",
    "rl_policy_node: policy",
    "mujoco_sim: simulator",
)


# ---------------------------------------------------------------------------- records


@dataclass
class RowRecord:
    """What one row of the matrix observed (written to the JSON summary)."""

    row: str
    fault: str
    behaviour: str = ""
    time_to_safe_s: float | None = None
    rss_before_kib: dict[str, int | None] = field(default_factory=dict)
    rss_after_kib: dict[str, int | None] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)
    passed: bool = False


ROWS: list[RowRecord] = []


def _rss(runner: StackRunner) -> dict[str, int | None]:
    sizes: dict[str, int | None] = {}
    for process in runner.processes:
        try:
            sizes[process.spec.name] = rss_kib(process.pid) if process.is_running() else None
        except (FileNotFoundError, ValueError):
            sizes[process.spec.name] = None
    return sizes


def check_rss(record: RowRecord, runner: StackRunner) -> None:
    """Record the RSS after the row; no surviving process may have grown by much."""
    record.rss_after_kib = _rss(runner)
    for name, before in record.rss_before_kib.items():
        after = record.rss_after_kib.get(name)
        if before is not None and after is not None:
            assert after - before < RSS_GROWTH_KIB, f"{name} grew {before} -> {after} KiB"


@pytest.fixture(scope="module", autouse=True)
def summary(tmp_path_factory: pytest.TempPathFactory, workspace_root: Path) -> Iterator[None]:
    """Write the rows to $RLGUARD_FAULT_MATRIX_OUT/fault_matrix.json when the module ends.

    Paths of this machine in the rows (refusal reasons name files) are written relative:
    `<workspace>` and `<tmp>`, so the committed results do not depend on where they ran.
    """
    yield
    directory = os.environ.get(OUT_ENV)
    if not directory or not ROWS:
        return
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "format": "rlguard.fault_matrix/1",
        "world": WORLD,
        "real_time_factor": RTF,
        "rss_growth_bound_kib": RSS_GROWTH_KIB,
        "rows": [asdict(row) for row in ROWS],
    }
    places = {str(tmp_path_factory.getbasetemp()): "<tmp>", str(workspace_root): "<workspace>"}

    def relative(text: str) -> str:
        for place, name in places.items():
            text = text.replace(place, name)
        return text

    (out / "fault_matrix.json").write_text(relative(json.dumps(document, indent=2)) + "\n")
    (out / "fault_matrix.md").write_text(relative(markdown_rows(ROWS)) + "\n")


def markdown_rows(rows: list[RowRecord]) -> str:
    """The matrix as a Markdown table: fault, what the stack did, time to safe, RSS growth."""
    lines = [
        "| row | fault | what the stack did | time to safe state (sim s) | largest RSS growth "
        "(KiB) | passed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        growth = [
            row.rss_after_kib[name] - before
            for name, before in row.rss_before_kib.items()
            if before is not None and row.rss_after_kib.get(name) is not None
        ]
        lines.append(
            f"| {row.row} | {row.fault} | {row.behaviour} | {row.time_to_safe_s} | "
            f"{max(growth) if growth else '-'} | {'yes' if row.passed else 'no'} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- stacks


class Stacks:
    """Runs at most one stack at a time: the shared one, or a fresh one for one row."""

    def __init__(self, context: Context, base: Path, env: dict[str, str]) -> None:
        self.context, self.base, self.env = context, base, env
        self.model = str(seeker_policy(base / "seeker.pt"))
        self.runner: StackRunner | None = None
        self.probe: StackProbe | None = None
        self.is_shared = False
        self.count = 0

    def _start(self, extra: dict[str, dict[str, object]], shared: bool) -> None:
        self.stop()
        self.count += 1
        options = StackOptions(
            world=WORLD, real_time_factor=RTF, model_path=self.model, extra_parameters=extra
        )
        self.runner = StackRunner(options, self.base / f"stack{self.count}", self.env).start()
        world = load_world(WORLD)
        self.probe = StackProbe(
            self.context, list(world.goals), world.goal_tolerance, name=f"fault_probe{self.count}"
        )
        self.is_shared = shared
        # Records are stamped with the probe's sim time: wait until it has one.
        assert self.probe.spin_until(lambda: self.probe.sim_mono > 0.0, STARTUP_TIMEOUT)
        wait_driving(self.probe, self.runner, STARTUP_TIMEOUT)

    def fresh(self, **extra: dict[str, object]) -> tuple[StackRunner, StackProbe]:
        """A new stack for a row that breaks it (kills a process)."""
        parameters = {k: dict(v) for k, v in SHARED_PARAMETERS.items()}
        for node, values in extra.items():
            parameters.setdefault(node, {}).update(values)
        self._start(parameters, shared=False)
        assert self.runner is not None and self.probe is not None
        return self.runner, self.probe

    def shared(self) -> tuple[StackRunner, StackProbe]:
        """The shared stack, healthy and driving (restarted if a previous row broke it)."""
        if self.is_shared and self.runner is not None and self.probe is not None:
            if not self.runner.dead():
                try:
                    restore(self.probe)
                    wait_driving(self.probe, self.runner, 30.0)
                    return self.runner, self.probe
                except AssertionError:
                    pass
        self._start(SHARED_PARAMETERS, shared=True)
        assert self.runner is not None and self.probe is not None
        return self.runner, self.probe

    def stop(self, dump_logs: bool = False) -> None:
        """Stop the running stack, if any; with `dump_logs` print each node's log tail."""
        if self.probe is not None:
            self.probe.close()
        if self.runner is not None:
            self.runner.stop(timeout=3.0)
            for process in self.runner.processes if dump_logs else ():
                print(f"--- {process.spec.name} ---\n{process.output()[-2500:]}")
        self.runner, self.probe, self.is_shared = None, None, False


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """The module's stack manager, with its own rclpy context for the probes."""
    context = Context()
    rclpy.init(context=context)
    manager = Stacks(context, tmp_path_factory.mktemp("fault_matrix"), dict(os.environ))
    try:
        yield manager
    finally:
        manager.stop()
        context.try_shutdown()


@pytest.fixture
def row(stacks: Stacks) -> Iterator[Callable[..., RowRecord]]:
    """``record = row(name, fault, runner)``: a record with the RSS before, kept for the JSON."""
    made: list[RowRecord] = []

    def _make(name: str, fault: str, runner: StackRunner) -> RowRecord:
        record = RowRecord(row=name, fault=fault, rss_before_kib=_rss(runner))
        made.append(record)
        return record

    yield _make
    ROWS.extend(made)
    if not made or any(not record.passed for record in made):
        stacks.stop(dump_logs=True)  # the next row starts a clean stack


# ---------------------------------------------------------------------------- helpers


def wait_driving(probe: StackProbe, runner: StackRunner, timeout: float) -> None:
    """Wait until the policy drives (POLICY and a moving cmd_vel) with every node alive."""

    def driving() -> bool:
        recent = probe.commands_since(probe.sim_mono - 0.5)
        return probe.mode == "POLICY" and any(abs(v) > 0.05 for _, v, _ in recent)

    reached = probe.spin_until(lambda: driving() or bool(runner.dead()), timeout)
    assert not runner.dead(), [p.spec.name for p in runner.dead()]
    assert reached, (probe.modes[-5:], probe.reasons[-5:])


def wait_sim_time(probe: StackProbe, seconds: float) -> None:
    """Wait until /clock reads at least `seconds` (a jump back must not go below 0)."""
    assert probe.spin_until(lambda: probe.sim_now >= seconds, 60.0), probe.sim_now


def restore(probe: StackProbe) -> None:
    """Undo what a shared-stack row may have left (it normally restores it itself)."""
    ok, reason = probe.set_parameters("mujoco_sim", {"sensor_fault": "none", "publish_goals": True})
    assert ok, reason


def within_limits(v: float, w: float) -> bool:
    """A command the safety controller may publish: finite and inside its limits."""
    return (
        math.isfinite(v)
        and math.isfinite(w)
        and abs(v) <= MAX_VELOCITY[0] + 1e-9
        and abs(w) <= MAX_VELOCITY[1] + 1e-9
    )


def assert_bounded(commands: list[tuple[float, float, float]]) -> float:
    """Every command finite and within the limits; returns the largest |linear|."""
    bad = [(t, v, w) for t, v, w in commands if not within_limits(v, w)]
    assert not bad, bad[:5]
    return max((abs(v) for _, v, _ in commands), default=0.0)


def final_zero_run(commands: list[tuple[float, float, float]]) -> float | None:
    """Start time of the run of exact zeros that lasts to the last command (None: moving)."""
    start = None
    for t, v, w in commands:
        if v == 0.0 and w == 0.0:
            start = t if start is None else start
        else:
            start = None
    return start


def wait_zero_held(probe: StackProbe, since: float, hold: float, timeout: float) -> float:
    """Wait until cmd_vel has been exactly zero for `hold` sim s; the start of that run."""

    def held() -> bool:
        start = final_zero_run(probe.commands_since(since))
        return start is not None and probe.sim_mono - start >= hold

    assert probe.spin_until(held, timeout), probe.commands_since(since)[-10:]
    start = final_zero_run(probe.commands_since(since))
    assert start is not None
    return start


def mode_after(probe: StackProbe, since: float, modes: set[str]) -> float | None:
    """Sim time of the first switch into one of `modes` after `since`."""
    for t, mode in probe.modes:
        if t >= since and mode in modes:
            return t
    return None


def assert_alive(runner: StackRunner, *names: str) -> None:
    """The named node processes (all if none named) are still running."""
    wanted = names or tuple(p.spec.name for p in runner.processes)
    dead = [p.spec.name for p in runner.processes if p.spec.name in wanted and not p.is_running()]
    assert not dead, f"crashed: {dead}"


# ---------------------------------------------------------------------------- rows


def test_row01_kill_policy_falls_back_with_reason_silent(stacks, row):
    runner, probe = stacks.fresh()
    record = row("01_kill_policy", "SIGKILL rl_policy_node while it drives", runner)
    killed = probe.sim_mono
    runner.process("rl_policy_node").kill()
    assert probe.spin_until(lambda: mode_after(probe, killed, {"FALLBACK"}) is not None, 10.0)
    took = mode_after(probe, killed, {"FALLBACK"}) - killed
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "silent" in probe.reasons[-1], probe.reasons[-3:]
    assert took < POLICY_TIMEOUT + PERIOD + SLACK, f"FALLBACK after {took:.3f} s"
    probe.spin_for_sim(3.0)
    top = assert_bounded(probe.commands_since(killed - 0.5))
    # The DWA drives on: the fallback is a safe state that still makes way.
    assert any(abs(v) > 0.02 for _, v, _ in probe.commands_since(killed + took + 0.5))
    assert_alive(runner, "mujoco_sim", "safety_controller", "hybrid_fallback")
    record.time_to_safe_s = round(took, 3)
    record.behaviour = f"FALLBACK ({probe.reasons[-1]}); cmd_vel bounded, max |v| {top:.3f}"
    check_rss(record, runner)
    record.passed = True


def test_row02_kill_arbiter_zeroes_cmd_vel_and_holds_it(stacks, row):
    runner, probe = stacks.fresh()
    record = row("02_kill_arbiter", "SIGKILL hybrid_fallback while the policy drives", runner)
    killed = probe.sim_mono
    runner.process("hybrid_fallback").kill()
    zero = wait_zero_held(probe, killed, hold=2.0, timeout=20.0)
    took = zero - killed
    # velocity_timeout, then the emergency ramp from at most full speed.
    assert took < VELOCITY_TIMEOUT + STOP_RAMP + PERIOD + SLACK, f"zero after {took:.3f} s"
    top = assert_bounded(probe.commands_since(killed - 0.5))
    ramp = [v for t, v, _ in probe.commands_since(killed) if t < zero]
    # A decelerating ramp, never speeding up once the request is stale.
    stale = [v for t, v, _ in probe.commands_since(killed + VELOCITY_TIMEOUT + SLACK) if t < zero]
    assert all(abs(b) <= abs(a) + 1e-9 for a, b in zip(stale, stale[1:], strict=False)), stale
    assert_alive(runner, "mujoco_sim", "safety_controller", "rl_policy_node")
    record.time_to_safe_s = round(took, 3)
    record.behaviour = (
        f"cmd_vel zero after {took:.2f} s ({len(ramp)} commands on the way down from "
        f"{top:.3f} m/s), held zero"
    )
    check_rss(record, runner)
    record.passed = True


def test_row06b_clock_jump_back_does_not_hide_a_dead_policy(stacks, row):
    """The policy dies as /clock jumps back: its silence must still count from the jump.

    Before the fix the arbiter read the dead policy's last command as `JUMP` seconds
    younger than it was and forwarded it until the new clock caught up.
    """
    runner, probe = stacks.fresh(hybrid_fallback={"policy_timeout": 1.0})
    record = row("06b_clock_jump_back_policy_dies", "SIGKILL rl_policy_node + /clock back", runner)
    wait_sim_time(probe, JUMP + 1.0)
    killed = probe.sim_mono
    runner.process("rl_policy_node").kill()
    ok, reason = probe.set_parameters("mujoco_sim", {"clock_offset": -JUMP})
    assert ok, reason
    assert probe.spin_until(lambda: mode_after(probe, killed, {"FALLBACK"}) is not None, 20.0)
    switched = mode_after(probe, killed, {"FALLBACK"})
    took = switched - killed
    assert probe.clock_jumps, "no jump seen on /clock"
    jumped = probe.clock_jumps[0][0]
    assert jumped < switched, "the jump came after the hand-over: it tested nothing"
    assert probe.spin_until(lambda: probe.reasons[-1].startswith("FALLBACK"), 2.0)
    assert "silent" in probe.reasons[-1], probe.reasons[-3:]
    # Silence counts from the jump at the latest (the arbiter cannot tell older times
    # on the old clock), never from when the new clock reaches the old one.
    assert switched - jumped < 1.0 + PERIOD + SLACK, f"FALLBACK {switched - jumped:.3f} s after"
    record.details["kill_to_jump_s"] = round(jumped - killed, 3)
    probe.spin_for_sim(2.0)
    top = assert_bounded(probe.commands_since(killed - 0.5))
    assert_alive(runner, "mujoco_sim", "safety_controller", "hybrid_fallback")
    record.time_to_safe_s = round(took, 3)
    record.behaviour = f"FALLBACK after {took:.2f} s ({probe.reasons[-1]}); max |v| {top:.3f}"
    check_rss(record, runner)
    record.passed = True


def _sensor_fault_row(stacks: Stacks, row: Callable[..., RowRecord], fault: str) -> RowRecord:
    runner, probe = stacks.shared()
    record = row(f"sensor_fault_{fault}", f"mujoco_sim sensor_fault={fault}", runner)
    injected = probe.sim_mono
    try:
        ok, reason = probe.set_parameters("mujoco_sim", {"sensor_fault": fault})
        assert ok, reason
        zero = wait_zero_held(probe, injected, hold=1.5, timeout=20.0)
        record.time_to_safe_s = round(zero - injected, 3)
        record.details["max_linear_before_safe"] = assert_bounded(probe.commands_since(injected))
        record.details["modes"] = [m for t, m in probe.modes if t >= injected]
    finally:
        ok, reason = probe.set_parameters("mujoco_sim", {"sensor_fault": "none"})
    assert ok, reason
    assert_alive(runner)
    return record


def test_row03_no_scan_zeroes_cmd_vel(stacks, row):
    record = _sensor_fault_row(stacks, row, "no_scan")
    record.row = "03_no_scan"
    took = record.time_to_safe_s
    # The scan goes stale after source_timeout; then the emergency ramp.
    assert took < SOURCE_TIMEOUT + STOP_RAMP + PERIOD + SLACK, f"zero after {took:.3f} s"
    record.behaviour = f"safety controller braked to zero (stale scan) after {took:.2f} s"
    runner, probe = stacks.runner, stacks.probe
    wait_driving(probe, runner, 30.0)  # the stack drives again once the scan is back
    check_rss(record, runner)
    record.passed = True


def test_row04_no_odom_stops_the_arbiter_and_cmd_vel(stacks, row):
    runner, probe = stacks.shared()
    record = row("04_no_odom", "mujoco_sim sensor_fault=no_odom", runner)
    injected = probe.sim_mono
    try:
        ok, reason = probe.set_parameters("mujoco_sim", {"sensor_fault": "no_odom"})
        assert ok, reason
        zero = wait_zero_held(probe, injected, hold=1.5, timeout=20.0)
        assert probe.spin_until(lambda: mode_after(probe, injected, {"STOPPED"}), 5.0)
        stopped = mode_after(probe, injected, {"STOPPED"})
        reasons = [r for r in probe.reasons if r.startswith("STOPPED")]
        top = assert_bounded(probe.commands_since(injected))
        modes = [m for t, m in probe.modes if t >= injected]
    finally:
        ok, reason = probe.set_parameters("mujoco_sim", {"sensor_fault": "none"})
    assert ok, reason
    # The policy goes inactive (stale odom) and the DWA cannot run without odometry.
    assert "odom" in reasons[-1] and "fallback unhealthy" in reasons[-1], reasons[-1]
    assert modes[-1] == "STOPPED", modes
    took = zero - injected
    # odom goes stale (0.5 s), STOPPED sends zero, the safety controller ramps at max_decel.
    bound = max(SOURCE_TIMEOUT, ODOM_TIMEOUT) + MAX_VELOCITY[0] / MAX_DECEL + PERIOD + SLACK
    assert took < bound, f"zero after {took:.3f} s"
    assert_alive(runner)
    record.time_to_safe_s = round(took, 3)
    record.details.update({"stopped_after_s": round(stopped - injected, 3), "modes": modes})
    record.behaviour = f"{' -> '.join(modes)} ({reasons[-1]}); cmd_vel zero from {top:.3f} m/s"
    wait_driving(probe, runner, 30.0)  # STOPPED -> FALLBACK -> POLICY once odom is back
    check_rss(record, runner)
    record.passed = True


def test_row05_nan_scan_zeroes_cmd_vel(stacks, row):
    record = _sensor_fault_row(stacks, row, "nan_scan")
    record.row = "05_nan_scan"
    took = record.time_to_safe_s
    # The first all-NaN scan makes the robot blind: the emergency ramp starts at once.
    assert took < SCAN_PERIOD + STOP_RAMP + PERIOD + SLACK, f"zero after {took:.3f} s"
    record.behaviour = f"safety controller braked to zero (blind) after {took:.2f} s"
    runner, probe = stacks.runner, stacks.probe
    wait_driving(probe, runner, 30.0)  # the stack drives again once the scan is sane
    check_rss(record, runner)
    record.passed = True


def test_row06a_clock_jump_back_resumes(stacks, row):
    """/clock jumps 5 s back while the policy drives: nothing crashes, the stack drives on."""
    runner, probe = stacks.shared()
    record = row("06a_clock_jump_back", f"/clock jumps back {JUMP:g} s", runner)
    wait_sim_time(probe, JUMP + 1.0)
    offset = probe.get_parameters("mujoco_sim", ["clock_offset"])["clock_offset"]
    start_pose = probe.pose
    jumped = probe.sim_mono
    ok, reason = probe.set_parameters("mujoco_sim", {"clock_offset": offset - JUMP})
    assert ok, reason
    assert probe.spin_until(lambda: bool(probe.clock_jumps), 5.0), "no jump seen on /clock"
    assert probe.clock_jumps[-1][1] == pytest.approx(-JUMP, abs=0.05)
    probe.spin_for_sim(1.0)  # let every node see the jump before judging
    # Resumed: POLICY (again) and moving, well within the jump itself.
    wait_driving(probe, runner, 30.0)
    back = [t for t, m in probe.modes if t >= jumped and m == "POLICY"]
    settled = back[-1] - jumped if back else 0.0  # 0: POLICY never left
    # Drives on: covers ground again (it may first be turning toward a new goal).
    probe.spin_until(lambda: math.dist(start_pose, probe.pose) > 0.2, 20.0)
    assert_alive(runner)
    top = assert_bounded(probe.commands_since(jumped - 0.5))
    moved = math.dist(start_pose, probe.pose)
    assert moved > 0.2, (
        f"moved {moved:.2f} m since the jump",
        [(round(t - jumped, 2), m) for t, m in probe.modes[-6:]],
        probe.reasons[-4:],
        [(round(t - jumped, 2), round(v, 3)) for t, v, _ in probe.commands_since(jumped)][::10],
    )
    modes = [m for t, m in probe.modes if t >= jumped]
    assert settled < JUMP, f"took {settled:.2f} s to drive again: waited for the clock?"
    record.time_to_safe_s = round(settled, 3)
    record.details["modes"] = modes
    record.behaviour = (
        f"no crash; modes {' -> '.join(modes) or 'POLICY (unchanged)'}; driving again after "
        f"{settled:.2f} s; cmd_vel bounded (max |v| {top:.3f})"
    )
    check_rss(record, runner)
    record.passed = True


def _corrupt_files(directory: Path, model: Path) -> list[Path]:
    garbage = directory / "garbage.pt"
    garbage.write_bytes(b"\x00not a TorchScript archive\xff" * 64)
    truncated = directory / "truncated.pt"
    data = model.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return [garbage, truncated]


def test_row07_corrupt_model_swap_is_refused_and_the_model_keeps_driving(stacks, row):
    runner, probe = stacks.shared()
    record = row("07_corrupt_model_swap", "set model_path to a corrupt file", runner)
    before = probe.get_parameters("rl_policy_node", ["model_path"])["model_path"]
    probe.spin_until(lambda: probe.diagnostic(POLICY, "model_sha256"), 5.0)
    sha = probe.diagnostic(POLICY, "model_sha256")
    probe.spin_for_sim(1.5)  # a baseline of policy/cmd_vel gaps without a swap
    started = probe.sim_mono
    reasons = []
    for path in _corrupt_files(stacks.base, Path(stacks.model)):
        ok, reason = probe.set_parameters("rl_policy_node", {"model_path": str(path)})
        assert not ok, f"{path.name} accepted"
        assert reason and path.name in reason, reason
        reasons.append(reason)
    ended = probe.sim_mono
    probe.spin_for_sim(1.5)
    assert probe.get_parameters("rl_policy_node", ["model_path"])["model_path"] == before
    assert probe.spin_until(
        lambda: probe.diagnostic(POLICY, "model_sha256", since=ended + 1.0), 5.0
    )
    assert probe.diagnostic(POLICY, "model_sha256") == sha
    assert probe.diagnostic(POLICY, "model_path") == stacks.model
    # The running model drove throughout: POLICY never left, and policy/cmd_vel kept
    # coming every period (a missed period would leave a gap of two).
    assert [m for t, m in probe.modes if t >= started] == [], probe.modes[-3:]

    def largest_gap(start: float, end: float) -> float:
        times = [t for t, _, _ in probe.policy_cmd if start <= t <= end]
        assert len(times) > 5, f"no policy/cmd_vel between {start:.2f} and {end:.2f}"
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    baseline = largest_gap(started - 1.5, started)
    during = largest_gap(started - PERIOD, ended + 1.0)
    assert during < 2 * PERIOD + SLACK, f"largest gap {during:.3f} s (baseline {baseline:.3f})"
    assert any(abs(v) > 0.05 for _, v, _ in probe.commands_since(ended))
    assert_alive(runner)
    record.time_to_safe_s = 0.0  # never unsafe: the swap is refused before it happens
    record.details.update(
        {
            "reasons": reasons,
            "largest_policy_cmd_gap_s": round(during, 3),
            "baseline_policy_cmd_gap_s": round(baseline, 3),
            "swap_attempts_s": round(ended - started, 3),
        }
    )
    record.behaviour = (
        f"both files refused with a reason, model {sha[:12]} kept, POLICY throughout, "
        f"largest policy/cmd_vel gap {during:.3f} s (baseline {baseline:.3f} s)"
    )
    check_rss(record, runner)
    record.passed = True


# node -> (single invalid values, an atomic set mixing a valid and an invalid value)
INVALID_SETS: dict[str, tuple[list[tuple[str, object]], dict[str, object]]] = {
    "rl_policy_node": (
        [
            ("max_velocity", [0.2]),
            ("max_velocity", [0.1, 1.0]),  # below the running card's 0.2 m/s
            ("device", "tpu"),
            ("source_timeout", 50.0),
            ("goal_tolerance", math.nan),
            ("control_rate_hz", 10.0),  # read-only
            ("warmup_runs", "many"),  # wrong type
            ("model_path", "/nonexistent/policy.pt"),
        ],
        {"goal_tolerance": 0.2, "max_velocity": [0.2]},
    ),
    "hybrid_fallback": (
        [
            ("max_velocity", [0.2]),
            ("min_velocity", [0.5, -1.0]),
            ("on_policy_disabled", "halt"),
            ("retry_after", 100.0),  # above max_retry_delay
            ("policy_timeout", math.nan),
            ("control_rate_hz", 10.0),  # read-only
            ("stall_window", "long"),  # wrong type
        ],
        {"min_progress": 0.5, "max_velocity": [0.2]},
    ),
    "safety_controller": (
        [
            ("max_decel", [-1.0, -3.2]),  # weaker than max_accel
            ("max_velocity", [-0.1, 1.0]),
            ("feedback", "SOMETIMES"),
            ("footprint", "[[0, 0], [1"),
            ("reaction_time", 0.05),  # shorter than 1.5 control periods
            ("velocity_timeout", math.inf),
            ("publish_rate", 50.0),  # read-only
            ("max_velocity", "fast"),  # wrong type
        ],
        {"safety_margin": 0.1, "emergency_decel": [-1.0, -5.0]},
    ),
    "mujoco_sim": (
        [
            ("world", "no_such_world"),
            ("sensor_fault", "smoke"),
            ("real_time_factor", math.nan),
            ("velocity_timeout", 0.0),
            ("clock_offset", -10000.0),  # /clock before 0
            ("enable_stamped_cmd_vel", True),  # read-only
            ("seed", "abc"),  # wrong type
        ],
        {"loop_goals": False, "odom_rate_hz": -1.0},
    ),
}


def _plain(value: object) -> object:
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    return list(value)  # type: ignore[call-overload]


def test_row08_invalid_parameter_sets_are_refused_on_every_node(stacks, row):
    runner, probe = stacks.shared()
    record = row("08_invalid_parameters", "invalid parameter sets on every node", runner)
    started = probe.sim_mono
    refused: dict[str, list[str]] = {}
    for node, (singles, atomic) in INVALID_SETS.items():
        names = sorted({name for name, _ in singles} | set(atomic))
        before = {k: _plain(v) for k, v in probe.get_parameters(node, names).items()}
        for name, value in singles:
            ok, reason = probe.set_parameters(node, {name: value})
            assert not ok, f"{node}: {name}={value!r} accepted"
            assert reason, f"{node}: {name}={value!r} refused without a reason"
            refused.setdefault(node, []).append(f"{name}: {reason}")
        ok, reason = probe.set_parameters_atomically(node, atomic)
        assert not ok and reason, f"{node}: atomic {atomic} accepted"
        refused[node].append(f"atomic {sorted(atomic)}: {reason}")
        after = {k: _plain(v) for k, v in probe.get_parameters(node, names).items()}
        assert after == before, f"{node} changed: {before} -> {after}"
        assert_alive(runner, node)
    # Nothing noticed: still POLICY, still driving.
    probe.spin_for_sim(1.0)
    assert [m for t, m in probe.modes if t >= started] == [], probe.modes[-3:]
    assert any(abs(v) > 0.05 for _, v, _ in probe.commands_since(probe.sim_mono - 1.0))
    assert_alive(runner)
    record.time_to_safe_s = 0.0  # never unsafe: each change is refused before it applies
    record.details["refused"] = refused
    count = sum(len(v) for v in refused.values())
    record.behaviour = f"{count} invalid sets refused with reasons, old values kept, POLICY on"
    check_rss(record, runner)
    record.passed = True


PACED_BAD_GOALS = 10
# The robot drives to the winning goal: it comes this close (m). (The test policy does not
# settle on a goal behind the safety filter: it hovers 0.1-0.45 m around it.) Which goal
# won is read from the nodes' own diagnostics.
NEAR_TARGET = 0.45
FLOOD_CHUNK = 50  # goals published back to back between two short spins of the probe


def dropped_goals(probe: StackProbe, since: float) -> dict[str, int]:
    """The goal_pose drop counters of arbiter and policy in diagnostics after `since`."""
    arbiter = probe.diagnostic(ARBITER, "dropped goal_pose", since)
    policy = probe.diagnostic(POLICY, "dropped_goal_pose", since)
    if arbiter is None or policy is None:
        return {}
    return {"hybrid_fallback": int(arbiter), "rl_policy_node": int(policy)}


def goals_held(probe: StackProbe, since: float) -> dict[str, str]:
    """The goal arbiter and policy report in diagnostics after `since` ({} until both do)."""
    held = {POLICY: probe.diagnostic(POLICY, "goal", since)}
    held[ARBITER] = probe.diagnostic(ARBITER, "goal", since)
    return held if all(held.values()) else {}


def _goal(x: float, y: float, frame: str = "odom") -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x, msg.pose.position.y = x, y
    msg.pose.orientation.w = 1.0
    return msg


def test_row09_goal_flood_drops_and_counts_bad_goals_and_the_last_valid_wins(stacks, row):
    runner, probe = stacks.shared()
    record = row(
        "09_goal_flood", "2000 goal_pose in a burst, 3 in 4 NaN, inf or wrong frame", runner
    )
    ok, reason = probe.set_parameters("mujoco_sim", {"publish_goals": False})
    assert ok, reason
    # A deep history, so the whole burst reaches the nodes (their own depth-10 queues
    # may still drop what they cannot take in time).
    flood = probe.node.create_publisher(PoseStamped, "goal_pose", FLOOD_QOS)
    try:
        probe.spin_for_sim(1.5)  # no goal re-send of the simulator in flight
        # Goals are in the odom frame, so the target is placed and judged there (the
        # odometry of a long-running shared stack has drifted from the ground truth).
        x, y = probe.odom_pose
        distance = math.hypot(x, y)
        # The winner: 0.7 m toward the arena centre; decoys anywhere in the arena.
        target = (x - 0.7 * x / distance, y - 0.7 * y / distance) if distance > 0.7 else (0.0, 0.0)
        rng = random.Random(9)
        bad = 0
        # The arbiter is goal_pose's one reader; it hands valid goals on to the policy node.
        assert probe.spin_until(lambda: flood.get_subscription_count() >= 1, 10.0)
        sent = probe.sim_mono
        for i in range(2000):
            kind = i % 4
            if kind == 0:
                msg = _goal(rng.uniform(-2.5, 2.5), rng.uniform(-2.5, 2.5))
            elif kind == 1:
                msg = _goal(math.nan, 1.0)
            elif kind == 2:
                msg = _goal(1.0, 1.0, frame="map")
            else:
                msg = _goal(0.5, math.inf)
            bad += kind != 0
            flood.publish(msg)
            if i % FLOOD_CHUNK == FLOOD_CHUNK - 1:
                probe.executor.spin_once(timeout_sec=0.005)  # keep the probe's clock going
        flood.publish(_goal(*target))
        flood_end = probe.sim_mono
        for tail in (_goal(math.nan, 0.0), _goal(-1.0, -1.0, frame="base_link")) * 2:
            flood.publish(tail)
            bad += 1

        def arrived() -> bool:
            return math.dist(probe.odom_pose, target) < NEAR_TARGET

        def where() -> tuple:
            return (
                probe.odom_pose,
                target,
                probe.mode,
                probe.policy_cmd[-2:],
                probe.cmd_vel[-2:],
            )

        assert probe.spin_until(lambda: arrived() or bool(runner.dead()), 60.0), where()
        during = [t for t, _, _ in probe.cmd_vel if sent <= t <= flood_end + 0.5]
        record.details["flood_s"] = round(flood_end - sent, 3)
        record.details["largest_cmd_vel_gap_in_flood_s"] = round(
            max(b - a for a, b in zip(during, during[1:], strict=False)), 3
        )
        assert "STOPPED" not in [m for t, m in probe.modes if t >= sent], probe.modes[-5:]
        assert_alive(runner)
        reached = probe.sim_mono - sent
        # The last valid goal won in both nodes, and no later (stale) one took over.
        winner = f"{target[0]:.3f}, {target[1]:.3f}"
        expected_goals = {POLICY: winner, ARBITER: winner}
        arrived_at = probe.sim_mono
        probe.spin_until(lambda: bool(goals_held(probe, arrived_at)), 5.0)
        assert goals_held(probe, arrived_at) == expected_goals, (
            goals_held(probe, arrived_at),
            where(),
        )
        assert probe.spin_until(lambda: bool(dropped_goals(probe, sent + 1.0)), 5.0)
        dropped = dropped_goals(probe, sent + 1.0)
        assert 0 < dropped["hybrid_fallback"] <= bad, f"dropped {dropped} of {bad} bad goals"
        assert dropped["rl_policy_node"] == 0, "a bad goal got past the arbiter"
        # Paced, every bad goal arrives: each is counted, none moves the robot.
        for i in range(PACED_BAD_GOALS):
            flood.publish(_goal(math.nan, 0.0) if i % 2 else _goal(0.0, 0.0, frame="map"))
            probe.spin_for_sim(0.1, timeout=2.0)
        paced = probe.sim_mono
        probe.spin_for_sim(1.0)

        def increase() -> dict[str, int]:
            latest = dropped_goals(probe, paced + 1.0)
            return {k: v - dropped[k] for k, v in latest.items()}

        expected = {"hybrid_fallback": PACED_BAD_GOALS, "rl_policy_node": 0}
        probe.spin_until(lambda: increase() == expected, 5.0)
        assert increase() == expected, increase()
        assert goals_held(probe, paced + 1.0) == expected_goals, where()
        record.details["distance_to_target_m"] = round(math.dist(probe.odom_pose, target), 3)
        assert_bounded(probe.commands_since(sent))
    finally:
        probe.node.destroy_publisher(flood)
        ok, reason = probe.set_parameters("mujoco_sim", {"publish_goals": True})
    assert ok, reason
    record.time_to_safe_s = 0.0  # never unsafe: bad goals are dropped on arrival
    record.details.update(
        {"bad_sent": bad, "dropped_of_burst": dropped, "reached_target_s": round(reached, 3)}
    )
    record.behaviour = (
        f"all nodes up; of {bad} bad goals in the burst dropped and counted {dropped} (the "
        f"rest lost in depth-10 queues), {PACED_BAD_GOALS}/{PACED_BAD_GOALS} paced ones; "
        f"drove to the last valid goal in {reached:.1f} s; both nodes still hold it"
    )
    check_rss(record, runner)
    record.passed = True


MALFORMED = [
    (math.nan, 0.0),
    (0.0, math.inf),
    (-math.inf, 0.0),
    (1e9, 0.0),
    (0.0, -1e9),
    (math.nan, math.nan),
    (-1e308, 1e308),
]


def test_row10_malformed_teleop_is_dropped_and_cmd_vel_stays_within_limits(stacks, row):
    runner, probe = stacks.shared()
    record = row("10_malformed_teleop", "cmd_vel_teleop NaN / inf / huge at 20 Hz", runner)
    counted = int(probe.diagnostic(ARBITER, "dropped cmd_vel_teleop") or 0)
    started = probe.sim_mono
    non_finite = 0
    msg = Twist()
    for i in range(60):  # 3 s at 20 Hz
        v, w = MALFORMED[i % len(MALFORMED)]
        msg.linear.x, msg.angular.z = v, w
        probe.teleop.publish(msg)
        non_finite += not (math.isfinite(v) and math.isfinite(w))
        probe.spin_for_sim(PERIOD, timeout=2.0)
    stopped = probe.sim_mono
    assert probe.spin_until(lambda: mode_after(probe, stopped, {"POLICY", "FALLBACK"}), 10.0)
    released = mode_after(probe, stopped, {"POLICY", "FALLBACK"}) - stopped
    assert released < TELEOP_TIMEOUT + PERIOD + SLACK, f"TELEOP {released:.2f} s after the last"
    assert probe.spin_until(
        lambda: probe.diagnostic(ARBITER, "dropped cmd_vel_teleop", stopped), 5.0
    )
    dropped = int(probe.diagnostic(ARBITER, "dropped cmd_vel_teleop")) - counted
    assert 0 < dropped <= non_finite, (dropped, non_finite)
    commands = probe.commands_since(started)
    top = assert_bounded(commands)
    assert "TELEOP" in [m for t, m in probe.modes if t >= started]  # the huge finite ones
    nan_seen = probe.diagnostic(SIMULATOR, "cmd_vel_non_finite")
    assert nan_seen == "0", nan_seen
    assert_alive(runner)
    record.time_to_safe_s = 0.0  # cmd_vel was never outside the limits
    record.details.update(
        {"non_finite_sent": non_finite, "dropped": dropped, "teleop_released_s": released}
    )
    record.behaviour = (
        f"{dropped} of {non_finite} non-finite dropped and counted; huge values clamped "
        f"(max |v| {top:.3f}); {len(commands)} cmd_vel all finite and within limits"
    )
    check_rss(record, runner)
    record.passed = True
