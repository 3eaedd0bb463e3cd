"""Goal scheduling: the world's goals in order, in the odom frame, re-sent for late joiners."""

import math

import pytest

from sim_bringup.goal_schedule import (
    GOAL_REISSUE_DRIFT,
    GoalIssue,
    GoalSchedule,
    GoalSequencer,
    goal_in_odom,
    world_point_in_odom,
)

GOALS = ((1.0, 0.0), (2.0, 0.0))
AT_START = (0.0, 0.0, 0.0)


def schedule(**options) -> GoalSchedule:
    return GoalSchedule(GOALS, tolerance=0.2, **options)


def test_goal_sequencer_advances_within_tolerance():
    goals = GoalSequencer(((1.0, 0.0), (2.0, 0.0)), tolerance=0.2)
    assert goals.update(0.5, 0.0) is None
    assert goals.update(0.9, 0.1) == (2.0, 0.0)
    assert goals.update(2.1, 0.0) is None and goals.current is None
    assert goals.reached == 2
    looping = GoalSequencer(((1.0, 0.0), (2.0, 0.0)), tolerance=0.2, loop=True)
    looping.update(1.0, 0.0)
    assert looping.update(2.0, 0.0) == (1.0, 0.0)


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


def test_a_goal_keeps_its_odom_coordinates_until_odometry_drifts_past_the_bound():
    assert goal_in_odom(None, (1.0, 2.0), 0.1) == (1.0, 2.0)  # first issue
    assert goal_in_odom((1.0, 2.0), (1.05, 2.0), 0.1) == (1.0, 2.0)  # the same goal
    assert goal_in_odom((1.0, 2.0), (1.0, 2.15), 0.1) == (1.0, 2.15)  # corrected


def test_the_first_goal_goes_out_at_the_start_and_only_when_enabled():
    assert schedule().start(0.0, AT_START, AT_START) == GoalIssue((1.0, 0.0))
    off = schedule(enabled=False)
    assert off.start(0.0, AT_START, AT_START) == GoalIssue()
    assert off.update(5.0, (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)) == GoalIssue()
    assert off.reached == 0  # a disabled schedule does not advance either


def test_the_current_goal_is_re_sent_every_period_for_late_joiners():
    goals = schedule(republish_period=1.0)
    goals.start(0.0, AT_START, AT_START)
    assert goals.update(0.5, AT_START, AT_START) == GoalIssue()
    assert goals.update(1.0, AT_START, AT_START) == GoalIssue((1.0, 0.0))
    assert goals.sent_at == 1.0
    assert goals.update(1.98, AT_START, AT_START) == GoalIssue()
    quiet = schedule(republish_period=0.0)
    quiet.start(0.0, AT_START, AT_START)
    assert quiet.update(100.0, AT_START, AT_START) == GoalIssue()  # only on a change


def test_reaching_a_goal_sends_the_next_and_the_last_ends_the_sequence():
    goals = schedule()
    goals.start(0.0, AT_START, AT_START)
    near_first = (0.9, 0.05, 0.0)
    issue = goals.update(3.04, near_first, near_first)
    assert issue.goal == (2.0, 0.0) and issue.notes == ("goal 1 reached at t=3.0s",)
    assert goals.reached == 1 and goals.current == (2.0, 0.0)
    at_last = (2.0, 0.1, 0.0)
    issue = goals.update(6.0, at_last, at_last)
    assert issue == GoalIssue(None, ("goal 2 reached at t=6.0s", "all goals reached"))
    assert goals.current is None
    assert goals.update(60.0, at_last, at_last) == GoalIssue()  # nothing left to re-send


def test_a_looping_schedule_starts_over():
    goals = schedule(loop=True)
    goals.start(0.0, AT_START, AT_START)
    goals.update(1.0, (1.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    issue = goals.update(2.0, (2.0, 0.0, 0.0), (2.0, 0.0, 0.0))
    assert issue.goal == (1.0, 0.0) and goals.reached == 2
    goals.loop = False
    assert not goals.sequencer.loop


def test_goals_go_out_in_the_drifting_odom_frame():
    goals = schedule()
    # Odometry believes the robot is 0.05 m further along x: the goal moves with it...
    drifted = (0.05, 0.0, 0.0)
    assert goals.start(0.0, AT_START, drifted).goal == pytest.approx((1.05, 0.0))
    # ...and keeps those coordinates while the drift stays within the bound.
    assert goals.update(1.0, AT_START, (0.1, 0.0, 0.0)).goal == pytest.approx((1.05, 0.0))
    # Past the bound it is corrected, like a localization update, and says so.
    far = (0.05 + GOAL_REISSUE_DRIFT + 0.05, 0.0, 0.0)
    issue = goals.update(2.0, AT_START, far)
    assert issue.goal == pytest.approx((1.2, 0.0))
    assert len(issue.notes) == 1 and "goal 1 re-expressed in odom after 0.15 m" in issue.notes[0]
    turned = schedule()
    x, y = turned.start(0.0, AT_START, (0.0, 0.0, math.pi / 2)).goal
    assert (x, y) == pytest.approx((0.0, 1.0))
