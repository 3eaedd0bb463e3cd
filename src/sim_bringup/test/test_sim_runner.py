import math
import random

import pytest

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_runner import (
    EVENT_CLOCK,
    EVENT_ODOM,
    EVENT_SCAN,
    CommandLatch,
    CommandPacer,
    GoalSequencer,
    PeriodicSchedule,
    SimStepper,
    world_point_in_odom,
)


def test_periodic_schedule_fires_once_per_period():
    schedule = PeriodicSchedule(50.0)
    assert schedule.period == pytest.approx(0.02)
    fired = [t for t in (0.005 * k for k in range(1, 201)) if schedule.due(t)]
    assert len(fired) == 50
    assert fired[0] == pytest.approx(0.02)


def test_command_latch_times_out_and_zeroes_non_finite():
    latch = CommandLatch(timeout=0.5)
    assert latch.get(0.0) == (0.0, 0.0)
    assert latch.set(0.2, 0.1, now=1.0)
    assert latch.get(1.4) == (0.2, 0.1)
    assert latch.get(1.51) == (0.0, 0.0)
    assert latch.timed_out and latch.timeouts == 1
    assert not latch.set(math.nan, 0.3, now=2.0)
    assert latch.get(2.0) == (0.0, 0.0)
    assert latch.non_finite_count == 1


def test_goal_sequencer_advances_within_tolerance():
    goals = GoalSequencer(((1.0, 0.0), (2.0, 0.0)), tolerance=0.2)
    assert goals.update(0.5, 0.0) is None
    assert goals.update(0.9, 0.1) == (2.0, 0.0)
    assert goals.update(2.1, 0.0) is None and goals.current is None
    assert goals.reached == 2
    looping = GoalSequencer(((1.0, 0.0), (2.0, 0.0)), tolerance=0.2, loop=True)
    looping.update(1.0, 0.0)
    assert looping.update(2.0, 0.0) == (1.0, 0.0)


def test_stepper_emits_events_at_their_rates_and_applies_commands():
    sim = Simulator(load_robot_profile("default"), load_world("empty"))
    stepper = SimStepper(sim, odom_rate_hz=50.0, scan_rate_hz=10.0, clock_rate_hz=100.0)
    latch = CommandLatch(timeout=0.5)
    latch.set(0.2, 0.0, now=0.0)
    events = list(stepper.advance_to(1.0, latch))
    assert sim.time == pytest.approx(1.0)
    assert events.count(EVENT_CLOCK) == 100
    assert events.count(EVENT_ODOM) == 50
    assert events.count(EVENT_SCAN) == 10
    start_x = sim.world.start[0]
    assert sim.pose[0] - start_x > 0.1  # moving for the first 0.5 s
    moved = sim.pose[0]
    list(stepper.advance_to(2.0, latch))
    assert sim.pose[0] - moved < 0.01  # command went stale at 0.5 s: stopped


def test_world_point_in_odom_follows_the_odometry_drift():
    # Odometry agrees with the truth: the point is unchanged.
    assert world_point_in_odom((2.0, 1.0), (0.5, 0.5, 0.3), (0.5, 0.5, 0.3)) == pytest.approx(
        (2.0, 1.0)
    )
    # Odometry believes the robot is 1 m further along x and turned by 90 degrees: a point
    # 1 m ahead of the robot is 1 m ahead of the odometry pose.
    true_pose, odom_pose = (0.0, 0.0, 0.0), (1.0, 0.0, math.pi / 2)
    assert world_point_in_odom((1.0, 0.0), true_pose, odom_pose) == pytest.approx((1.0, 1.0))
    # And back: the point keeps its offset from the robot in the robot's own frame.
    x, y = world_point_in_odom((3.0, -2.0), (1.0, 2.0, 0.7), (-0.4, 0.9, -1.1))
    bx, by = 3.0 - 1.0, -2.0 - 2.0
    local = (math.cos(0.7) * bx + math.sin(0.7) * by, -math.sin(0.7) * bx + math.cos(0.7) * by)
    ox, oy = x + 0.4, y - 0.9
    odom_local = (
        math.cos(-1.1) * ox + math.sin(-1.1) * oy,
        -math.sin(-1.1) * ox + math.cos(-1.1) * oy,
    )
    assert odom_local == pytest.approx(local)


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
    """The sim node's pacing loop against a stack that answers late under load.

    Wall time is simulated: the sim ticks every 10 ms wall at real-time factor 2 (the
    node's rule, without rclpy) and publishes /clock every 10 ms of sim time. The stack is
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
    pacer = CommandPacer(lead=lead, patience=1.0)
    latch = CommandLatch(timeout=0.15)
    rtf, tick, clock_period, control_period = 2.0, 0.01, 0.01, 0.05
    wall, sim_time, clock, anchor = 0.0, 0.0, 0.0, (0.0, 0.0)
    stack_busy: tuple[float, float] | None = None  # (delivery wall time, computed at)
    next_control = control_period
    oldest, timeouts_alive, computed_at = 0.0, 0, -math.inf
    last_command_sim, stopped_at = -math.inf, None
    while wall < seconds:
        if stack_busy is not None and stack_busy[0] <= wall:  # delivery: the node's _on_cmd
            computed_at = stack_busy[1]
            stack_busy = None
            latch.set(0.2, 0.0, sim_time)
            pacer.command(sim_time, wall)
            last_command_sim = sim_time
        if stack_busy is None and wall < dies_at and clock + 1e-9 >= next_control:
            stack_busy = (wall + rng.uniform(0.005, 0.3), clock)
            next_control = (math.floor(clock / control_period + 1e-9) + 1) * control_period
        target = anchor[1] + rtf * (wall - anchor[0])
        limit = pacer.limit(target, wall)
        while sim_time < limit - 1e-9:  # physics, stopping at every /clock
            v, _ = latch.get(sim_time)
            if v != 0.0 and wall >= 2.0:  # judged once lockstep holds (see below)
                oldest = max(oldest, sim_time - computed_at)
            elif wall < dies_at and computed_at > -math.inf:
                timeouts_alive = latch.timeouts
            if v == 0.0 and wall >= dies_at and stopped_at is None:
                stopped_at = sim_time
            sim_time = clock = round(sim_time + clock_period, 9)
        if sim_time < target - 0.2:
            anchor = (wall, sim_time)
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


def test_a_goal_keeps_its_odom_coordinates_until_odometry_drifts_past_the_bound():
    from sim_bringup.sim_runner import goal_in_odom

    assert goal_in_odom(None, (1.0, 2.0), 0.1) == (1.0, 2.0)  # first issue
    assert goal_in_odom((1.0, 2.0), (1.05, 2.0), 0.1) == (1.0, 2.0)  # the same goal
    assert goal_in_odom((1.0, 2.0), (1.0, 2.15), 0.1) == (1.0, 2.15)  # corrected
