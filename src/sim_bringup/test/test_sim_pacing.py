"""Real-time pacing: sim time against wall time, in lockstep with the commands."""

import math
import random

import pytest

from sim_bringup.sim_pacing import (
    MAX_LAG,
    MAX_TICK_WALL_BUDGET,
    PACING_FREE,
    PACING_LOCKSTEP,
    PACING_OFF,
    STEP_SLICE,
    WALL_TICK,
    CommandPacer,
    RealTimePacing,
    TickPlan,
)
from sim_bringup.sim_runner import CommandLatch


def test_pacer_runs_free_before_the_first_command_and_when_disabled():
    pacer = CommandPacer(lead=0.05, patience=1.0)
    assert pacer.free(0.0) and pacer.limit(10.0, 0.0) == 10.0
    off = CommandPacer(lead=0.0, patience=1.0)
    off.command(1.0, 0.0)
    assert not off.enabled and off.limit(10.0, 0.1) == 10.0


def test_pacer_holds_sim_time_to_the_last_command_plus_lead():
    pacer = CommandPacer(lead=0.05, patience=1.0)
    pacer.command(sim_time=2.0, wall_time=100.0)
    assert pacer.limit(3.0, 100.5) == pytest.approx(2.05)
    assert pacer.limit(2.01, 100.5) == pytest.approx(2.01)  # the real-time target is lower
    pacer.command(sim_time=2.05, wall_time=100.6)
    assert pacer.limit(3.0, 100.6) == pytest.approx(2.10)


def test_pacer_lets_go_after_patience_and_resumes_on_the_next_command():
    pacer = CommandPacer(lead=0.05, patience=1.0)
    pacer.command(sim_time=2.0, wall_time=100.0)
    assert pacer.limit(3.0, 100.9) == pytest.approx(2.05)
    assert pacer.limit(3.0, 101.1) == 3.0  # the controller is silent: run free
    assert pacer.limit(4.0, 101.2) == 4.0 and pacer.releases == 1
    pacer.command(sim_time=4.0, wall_time=101.3)
    assert pacer.limit(5.0, 101.3) == pytest.approx(4.05)  # lockstep again
    pacer.waited(0.25)
    pacer.waited(-1.0)  # nonsense is not booked
    assert pacer.waited_wall == pytest.approx(0.25)
    pacer.reset()
    assert pacer.free(101.4)


@pytest.mark.parametrize(("lead", "patience"), [(-0.01, 1.0), (math.nan, 1.0), (0.05, 0.0)])
def test_pacer_rejects_bad_parameters(lead, patience):
    with pytest.raises(ValueError):
        CommandPacer(lead=lead, patience=patience)


def run_loaded_stack(
    lead: float, seconds: float = 30.0, dies_at: float = math.inf, seed: int = 3
) -> dict:
    """The sim node's pacing (`RealTimePacing`) against a stack that answers late under load.

    Wall time is simulated: the sim ticks every 10 ms wall at real-time factor 2 (the
    node's tick, without rclpy) and publishes /clock every 10 ms of sim time. The stack is
    one busy process on sim time, as rclpy runs it: when idle it reads the latest /clock
    and, once its 50 ms control timer is due, computes a command for that time, which
    reaches the base 5-300 ms of wall time later (a loaded CPU). It dies (sends nothing
    more) at wall time `dies_at`. Returns the oldest command the base ran (sim time minus
    the sim time it was computed at) from 2 s of wall time on (until the first command
    arrives the sim runs free, so the stack's first answer is late by construction), the
    base's timeouts while the stack lived, the sim time reached, and how long after the
    last command the base stopped once it died.
    """
    rng = random.Random(seed)
    pacing = RealTimePacing(2.0, CommandPacer(lead=lead, patience=1.0), wall_now=0.0)
    latch = CommandLatch(timeout=0.15)
    tick, clock_period, control_period = WALL_TICK, 0.01, 0.05
    wall, sim_time, clock = 0.0, 0.0, 0.0
    stack_busy: tuple[float, float] | None = None  # (delivery wall time, computed at)
    next_control = control_period
    oldest, timeouts_alive, computed_at = 0.0, 0, -math.inf
    last_command_sim, stopped_at = -math.inf, None
    while wall < seconds:
        if stack_busy is not None and stack_busy[0] <= wall:  # delivery: the node's _on_cmd
            computed_at = stack_busy[1]
            stack_busy = None
            latch.set(0.2, 0.0, sim_time)
            pacing.commands.command(sim_time, wall)
            last_command_sim = sim_time
        if stack_busy is None and wall < dies_at and clock + 1e-9 >= next_control:
            stack_busy = (wall + rng.uniform(0.005, 0.3), clock)
            next_control = (math.floor(clock / control_period + 1e-9) + 1) * control_period
        plan = pacing.start_tick(wall)
        while (end := plan.next_slice(sim_time, wall)) is not None:
            while sim_time < end - 1e-9:  # physics, stopping at every /clock
                v, _ = latch.get(sim_time)
                if v != 0.0 and wall >= 2.0:  # judged once lockstep holds (see below)
                    oldest = max(oldest, sim_time - computed_at)
                elif wall < dies_at and computed_at > -math.inf:
                    timeouts_alive = latch.timeouts
                if v == 0.0 and wall >= dies_at and stopped_at is None:
                    stopped_at = sim_time
                sim_time = clock = round(sim_time + clock_period, 9)
        pacing.end_tick(plan, sim_time, wall)
        wall = round(wall + tick, 9)
    return {
        "oldest": oldest,
        "timeouts_alive": timeouts_alive,
        "sim_time": sim_time,
        "stop_after": None if stopped_at is None else stopped_at - last_command_sim,
    }


def test_lockstep_keeps_every_command_fresh_under_load():
    paced = run_loaded_stack(lead=0.05)
    # The base never runs a command longer than the guard's reaction budget (0.15 s)
    # after the sim time it was computed at, however late the stack answers, so its
    # timeout never fires while the stack lives.
    assert paced["oldest"] <= 0.15 + 1e-9
    assert paced["timeouts_alive"] == 0
    assert paced["sim_time"] > 5.0  # and the simulation still makes progress
    # Without pacing the same load makes the base run stale commands and time out.
    free = run_loaded_stack(lead=0.0)
    assert free["oldest"] > 0.15
    assert free["timeouts_alive"] > 0


def test_lockstep_lets_a_dead_stack_end_in_the_base_timeout():
    dead = run_loaded_stack(lead=0.05, seconds=10.0, dies_at=4.0)
    # The simulation waits one patience for the dead stack, then runs free; the base's
    # timeout stops the wheels 0.15 s (sim) after the last command arrived.
    assert dead["stop_after"] is not None
    assert dead["stop_after"] == pytest.approx(0.15, abs=0.011)
    assert dead["sim_time"] > 4.0


def pacing(lead: float = 0.05, factor: float = 2.0, wall_now: float = 100.0) -> RealTimePacing:
    return RealTimePacing(factor, CommandPacer(lead=lead, patience=1.0), wall_now=wall_now)


def test_the_target_follows_wall_time_at_the_real_time_factor():
    paced = pacing(factor=2.0, wall_now=100.0)
    assert paced.target(100.0) == 0.0 and paced.target(101.5) == pytest.approx(3.0)
    paced.set_real_time_factor(0.5, sim_time=3.0, wall_now=101.5)  # counted from now
    assert paced.target(103.5) == pytest.approx(4.0)


def test_a_tick_steps_in_slices_until_the_limit_or_the_wall_budget():
    plan = TickPlan(target=1.0, limit=0.25, deadline=10.0)
    assert plan.held_back
    assert plan.next_slice(0.0, 9.0) == pytest.approx(STEP_SLICE)
    assert plan.next_slice(0.2, 9.0) == pytest.approx(0.25)
    assert plan.next_slice(0.25, 9.0) is None  # the limit is reached
    assert plan.next_slice(0.1, 10.0) is None  # out of wall budget: yield to the executor
    assert not TickPlan(target=1.0, limit=1.0, deadline=10.0).held_back
    assert pacing().start_tick(100.0).deadline == pytest.approx(100.0 + MAX_TICK_WALL_BUDGET)


def test_a_command_holds_the_simulation_and_the_hold_is_booked():
    paced = pacing(lead=0.05)
    paced.commands.command(sim_time=0.0, wall_time=100.0)
    plan = paced.start_tick(100.5)  # real time asks for 1.0 s, the command allows 0.05
    assert plan.target == pytest.approx(1.0) and plan.limit == pytest.approx(0.05)
    paced.end_tick(plan, sim_time=0.05, wall_now=100.51)
    assert paced.held and paced.held_since == 100.51
    paced.start_tick(100.81)
    assert not paced.held
    assert paced.commands.waited_wall == pytest.approx(0.3)


def test_a_simulation_far_behind_runs_on_from_where_it_is():
    paced = pacing(lead=0.0, factor=1.0)  # no lockstep
    plan = paced.start_tick(101.0)  # asks for 1.0 s
    paced.end_tick(plan, sim_time=1.0 - MAX_LAG / 2, wall_now=101.0)  # a little behind
    assert paced.target(101.0) == pytest.approx(1.0)  # it may catch up
    plan = paced.start_tick(102.0)
    paced.end_tick(plan, sim_time=1.0, wall_now=102.0)  # a second behind
    assert not paced.held
    assert paced.target(102.5) == pytest.approx(1.5)  # no catching up


def test_restart_forgets_commands_and_hold():
    paced = pacing()
    paced.commands.command(sim_time=5.0, wall_time=100.0)
    paced.held_since = 100.2
    paced.restart(wall_now=200.0)
    assert not paced.held and paced.commands.free(200.0)
    assert paced.target(201.0) == pytest.approx(2.0)


def test_achieved_rate_waiting_share_and_status():
    paced = pacing(factor=2.0, wall_now=0.0)
    paced.measure(sim_time=0.5, wall_now=0.5)  # the window is not over yet
    assert paced.achieved_rtf == 0.0
    paced.commands.waited(0.6)
    paced.measure(sim_time=1.0, wall_now=1.0)
    assert paced.achieved_rtf == pytest.approx(1.0)
    assert paced.waiting_fraction == pytest.approx(0.6)
    assert paced.lagging
    assert paced.status_message() == "slower than real_time_factor: waiting for cmd_vel (lockstep)"
    paced.measure(sim_time=2.0, wall_now=2.0)
    assert paced.waiting_fraction == 0.0
    assert paced.status_message() == "slower than real_time_factor"
    paced.measure(sim_time=4.0, wall_now=3.0)
    assert not paced.lagging and paced.status_message() == "running"


def test_pacing_mode_for_the_diagnostics():
    assert pacing(lead=0.0).mode(100.0) == PACING_OFF
    paced = pacing(lead=0.05)
    assert paced.mode(100.0) == PACING_FREE  # no command yet
    paced.commands.command(sim_time=0.0, wall_time=100.0)
    assert paced.mode(100.5) == PACING_LOCKSTEP
    assert paced.mode(101.5) == PACING_FREE  # silent for longer than the patience
