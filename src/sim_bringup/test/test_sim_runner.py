import math

import pytest

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_runner import (
    EVENT_CLOCK,
    EVENT_ODOM,
    EVENT_SCAN,
    CommandLatch,
    PeriodicSchedule,
    SimStepper,
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
