"""What the simulator node reports: collision counts and the diagnostic status."""

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.goal_schedule import GoalSchedule
from sim_bringup.sim_core import Simulator
from sim_bringup.sim_pacing import CommandPacer, RealTimePacing
from sim_bringup.sim_runner import CommandLatch
from sim_bringup.sim_status import CollisionReport, simulator_status


def test_counts_go_out_on_a_change_and_every_tenth_event():
    report = CollisionReport(every=10)
    due = [report.due((0, 0)) for _ in range(20)]
    assert due[0] and sum(due) == 3  # the first, the 10th and the 20th
    assert due[9] and due[19]
    assert report.due((1, 0)) and report.due((1, 1))  # every change at once
    assert not report.due((1, 1))


def test_status_reports_time_pacing_collisions_goals_and_commands():
    world = load_world("empty")
    sim = Simulator(load_robot_profile("default"), world)
    pacing = RealTimePacing(1.0, CommandPacer(lead=0.1, patience=1.0), wall_now=0.0)
    goals = GoalSchedule(world.goals, world.goal_tolerance)
    latch = CommandLatch(timeout=0.15)
    status = simulator_status(sim, pacing, goals, latch, clock_offset=-2.0, wall_now=0.5)
    values = status.values
    assert status.warn and status.message == "slower than real_time_factor"  # nothing measured
    assert values["sim_time"] == "0.000" and values["clock_offset"] == "-2.000"
    assert values["world"] == "empty" and values["pacing"] == "free (no cmd_vel)"
    assert values["collisions"] == "0" and values["at_fault_collisions"] == "0"
    goal = world.goals[0]
    assert values["current_goal"] == f"{goal[0]:.2f},{goal[1]:.2f}"
    assert values["goals_reached"] == "0" and values["cmd_vel_timed_out"] == "True"
    assert set(values) >= {"max_command_lead", "pacing_releases", "cmd_vel_non_finite"}
    pacing.measure(sim_time=1.0, wall_now=1.0)
    ok = simulator_status(sim, pacing, goals, latch, clock_offset=0.0, wall_now=1.0)
    assert not ok.warn and ok.message == "running"
