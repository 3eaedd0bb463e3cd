import math

import pytest

from sim_bringup.profiles import load_robot_profile, load_world
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_runner import (
    EVENT_CLOCK,
    EVENT_ODOM,
    EVENT_SCAN,
    CommandLatch,
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
