"""Goal scheduling of the simulator node (no rclpy): the world's goals, one after the other.

`GoalSequencer` hands out the world's goals in order as the robot reaches them (judged on
the ground truth); `world_point_in_odom` expresses a world goal in the drifting odometry
frame and `goal_in_odom` keeps a goal's coordinates until the drift is worth a correction.
`GoalSchedule` puts them together for the node: which goal to send now (at start, when one
is reached, and again every `republish_period` for late joiners) and what to log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Odometry drift (m) after which a goal is re-sent at its corrected odom coordinates, as a
# localized robot's goal would be: well below the worlds' goal tolerances.
GOAL_REISSUE_DRIFT = 0.1

Pose = tuple[float, float, float]  # x, y, yaw
Point = tuple[float, float]


def world_point_in_odom(
    point: tuple[float, float],
    true_pose: tuple[float, float, float],
    odom_pose: tuple[float, float, float],
) -> tuple[float, float]:
    """A world-frame point in the odom frame, given the base's pose in both frames.

    The simulator knows both poses exactly, so it can do what localization does for a
    real robot: hand out a goal given in the world (map) in the frame the stack drives in.
    """
    tx, ty, tyaw = true_pose
    ox, oy, oyaw = odom_pose
    dx, dy = point[0] - tx, point[1] - ty
    # The point in the base frame, then from the base's odometry pose into odom.
    bx = math.cos(tyaw) * dx + math.sin(tyaw) * dy
    by = -math.sin(tyaw) * dx + math.cos(tyaw) * dy
    return (
        ox + math.cos(oyaw) * bx - math.sin(oyaw) * by,
        oy + math.sin(oyaw) * bx + math.cos(oyaw) * by,
    )


def goal_in_odom(
    issued: tuple[float, float] | None, current: tuple[float, float], drift: float
) -> tuple[float, float]:
    """The odom-frame coordinates to send for a goal.

    The goal keeps the coordinates it was issued with (re-sends are the same goal to the
    stack), until odometry has drifted more than `drift` from where the goal really is
    (`current`, from ground truth): then, like a localization correction, the corrected
    coordinates go out. Without it a leg that ends inside the stack's own tolerance in odom
    but outside the world's on the ground would never end.
    """
    if issued is None or math.dist(issued, current) > drift:
        return current
    return issued


class GoalSequencer:
    """The world's goals in order: the next one becomes current when the robot reaches it."""

    def __init__(
        self, goals: tuple[tuple[float, float], ...], tolerance: float, loop: bool = False
    ) -> None:
        self.goals = goals
        self.tolerance = tolerance
        self.loop = loop
        self.index = 0
        self.reached = 0

    @property
    def current(self) -> tuple[float, float] | None:
        """The goal to drive to, or None when all are reached."""
        return self.goals[self.index] if self.index < len(self.goals) else None

    def update(self, x: float, y: float) -> tuple[float, float] | None:
        """Advance when (x, y) is within tolerance; returns the new goal if it changed."""
        goal = self.current
        if goal is None or math.hypot(goal[0] - x, goal[1] - y) > self.tolerance:
            return None
        self.reached += 1
        self.index += 1
        if self.index >= len(self.goals) and self.loop:
            self.index = 0
        return self.current


@dataclass(frozen=True)
class GoalIssue:
    """What to do now: a goal to send (odom frame) or None, and lines for the log."""

    goal: Point | None = None
    notes: tuple[str, ...] = ()


class GoalSchedule:
    """When to send which goal on goal_pose, in the odom frame.

    A goal goes out when the schedule starts, when the current one is reached (the next,
    or "all goals reached") and again every `republish_period` s of sim time (0: only on
    a change), because goal_pose is volatile for its subscribers: a node that starts or
    restarts after a goal was sent learns it only from a re-send. While not `enabled`
    (the node's publish_goals) it sends nothing and does not advance.
    """

    def __init__(
        self,
        goals: tuple[Point, ...],
        tolerance: float,
        loop: bool = False,
        republish_period: float = 1.0,
        enabled: bool = True,
        reissue_drift: float = GOAL_REISSUE_DRIFT,
    ) -> None:
        self.sequencer = GoalSequencer(goals, tolerance, loop=loop)
        self.republish_period = republish_period
        self.enabled = enabled
        self.reissue_drift = reissue_drift
        self.sent_at = -math.inf  # sim time the last goal went out
        self._issued: tuple[int, Point] | None = None  # (goals reached then, odom coordinates)

    @property
    def loop(self) -> bool:
        """Start over with the first goal after the last one is reached."""
        return self.sequencer.loop

    @loop.setter
    def loop(self, value: bool) -> None:
        self.sequencer.loop = value

    @property
    def reached(self) -> int:
        """Goals reached so far."""
        return self.sequencer.reached

    @property
    def current(self) -> Point | None:
        """The goal to drive to (world frame), or None when all are reached."""
        return self.sequencer.current

    def start(self, sim_time: float, true_pose: Pose, odom_pose: Pose) -> GoalIssue:
        """The first goal, sent as the episode starts (nothing while not enabled)."""
        if not self.enabled:
            return GoalIssue()
        return self.issue(sim_time, true_pose, odom_pose)

    def update(self, sim_time: float, true_pose: Pose, odom_pose: Pose) -> GoalIssue:
        """After a new pose: advance when the goal is reached, re-send when it is time."""
        if not self.enabled:
            return GoalIssue()
        before = self.sequencer.reached
        self.sequencer.update(true_pose[0], true_pose[1])
        if self.sequencer.reached != before:
            issue = self.issue(sim_time, true_pose, odom_pose)
            reached = f"goal {self.sequencer.reached} reached at t={sim_time:.1f}s"
            return GoalIssue(issue.goal, (reached, *issue.notes))
        period = self.republish_period
        if period > 0.0 and sim_time - self.sent_at >= period - 1e-9:
            if self.sequencer.current is not None:
                return self.issue(sim_time, true_pose, odom_pose)
        return GoalIssue()

    def issue(self, sim_time: float, true_pose: Pose, odom_pose: Pose) -> GoalIssue:
        """The current goal in odom now (kept from its last issue unless odometry drifted)."""
        goal = self.sequencer.current
        if goal is None:
            return GoalIssue(notes=("all goals reached",))
        reached = self.sequencer.reached
        in_odom = world_point_in_odom(goal, true_pose, odom_pose)
        issued = None
        if self._issued is not None and self._issued[0] == reached:
            issued = self._issued[1]
        sent = goal_in_odom(issued, in_odom, self.reissue_drift)
        notes: tuple[str, ...] = ()
        if issued is not None and sent != issued:
            notes = (
                f"goal {reached + 1} re-expressed in odom after "
                f"{math.dist(sent, issued):.2f} m of odometry drift",
            )
        self._issued = (reached, sent)
        self.sent_at = sim_time
        return GoalIssue(sent, notes)
