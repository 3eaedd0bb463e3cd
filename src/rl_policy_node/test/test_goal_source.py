"""The grid waypoint goal source, and the policy controller feeding it (no ROS)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from rl_policy_node_test_support import LIMITS, SEC, T0, small_card, write_policy

from hybrid_fallback.nav_grid import NavGridConfig
from rl_policy_node.goal_source import GridWaypointSource, goal_input, goal_source_for
from rl_policy_node.observation import ObservationBuilder, ScanInput
from rl_policy_node.policy_card import GoalSpec
from rl_policy_node.policy_inputs import OdomSample, ScanSample
from rl_policy_node.policy_runtime import REASON_GOAL_REACHED, PolicyController
from rl_policy_node.policy_slots import prepare_policy
from safety_controller.scan_geometry import LidarMount

GRID = NavGridConfig(inflation_radius=0.19, proximity_radius=0.45)
GOAL = (3.0, 0.0)
MOUNT = LidarMount(-0.032, 0.0, 0.0)
# A wall across the way at x = 1 with a doorway for y in [1.0, 1.7].
DOOR_WALL = (((1.0, -4.0), (1.0, 1.0)), ((1.0, 1.7), (1.0, 4.0)))


def wall_scan(
    pose: tuple[float, float, float],
    walls: tuple = DOOR_WALL,
    mount: LidarMount = MOUNT,
    beams: int = 360,
    range_max: float = 6.0,
) -> ScanInput:
    """A 360-degree scan of wall segments (odom frame) from a lidar at `mount` on `pose`."""
    x, y, yaw = pose
    ox = x + math.cos(yaw) * mount.x - math.sin(yaw) * mount.y
    oy = y + math.sin(yaw) * mount.x + math.cos(yaw) * mount.y
    increment = 2 * math.pi / beams
    angles = -math.pi + increment * np.arange(beams) + yaw + mount.yaw
    ranges = np.full(beams, np.inf)
    for (ax, ay), (bx, by) in walls:
        ex, ey = bx - ax, by - ay
        for k, angle in enumerate(angles):
            dx, dy = math.cos(angle), math.sin(angle)
            denom = dx * ey - dy * ex
            if abs(denom) < 1e-12:
                continue
            t = ((ax - ox) * ey - (ay - oy) * ex) / denom  # along the beam
            u = ((ax - ox) * dy - (ay - oy) * dx) / denom  # along the wall
            if 0.0 <= u <= 1.0 and 0.0 < t <= range_max:
                ranges[k] = min(ranges[k], t)
    return ScanInput(ranges, -math.pi, increment, 0.12, range_max)


def bearing(point: tuple[float, float], pose: tuple[float, float, float]) -> float:
    """Bearing (rad) of an odom point seen from `pose`."""
    return wrap(math.atan2(point[1] - pose[1], point[0] - pose[0]) - pose[2])


def wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


def fed_source(pose=(0.0, 0.0, 0.0), walls=DOOR_WALL, lookahead=0.8, period=1.0):
    source = GridWaypointSource(lookahead, period, GRID)
    source.feed_scan(wall_scan(pose, walls), 1.0, MOUNT, pose, 0.0)
    return source


# ------------------------------------------------------------------------- the source


def test_the_waypoint_leads_around_the_wall_toward_the_doorway():
    pose = (0.0, 0.0, 0.0)
    waypoint = fed_source(pose).waypoint(GOAL, pose, 0.0)
    # Straight at the goal is bearing 0; the doorway (y 1.0..1.7 at x 1) lies up and left.
    assert bearing(waypoint, pose) > math.radians(30)
    assert math.hypot(*waypoint) == pytest.approx(0.8, abs=0.25)
    open_field = fed_source(pose, walls=()).waypoint(GOAL, pose, 0.0)
    assert abs(bearing(open_field, pose)) < math.radians(5)


def test_the_goal_itself_within_the_lookahead_or_without_a_path():
    pose = (0.0, 0.0, 0.0)
    source = fed_source(pose)
    near = (0.5, 0.3)
    assert source.waypoint(near, pose, 0.0) == near
    off_grid = (100.0, 0.0)  # outside the 40 m grid: no field, no path
    assert source.waypoint(off_grid, pose, 0.0) == off_grid
    unfed = GridWaypointSource(0.8, 1.0, GRID)  # no obstacles seen: the path is straight
    x, y = unfed.waypoint(GOAL, pose, 0.0)
    assert 0.7 < x < 1.0 and abs(y) < 0.1


def test_a_new_goal_replans_at_once_and_the_same_goal_every_replan_period():
    pose = (0.0, 0.0, 0.0)
    source = fed_source(pose, walls=(), period=1.0)
    ahead = source.waypoint(GOAL, pose, 0.0)
    behind = source.waypoint((-3.0, 0.0), pose, 0.1)  # a new goal: replanned, not waited for
    assert ahead[0] > 0.5 and behind[0] < -0.5
    # Within the replan period the plan stands although a wall appeared in the way ...
    source.feed_scan(wall_scan(pose), 2.0, MOUNT, pose, 0.2)
    assert source.waypoint((-3.0, 0.0), pose, 0.5) == behind
    wall_behind = (((-1.0, -4.0), (-1.0, 0.5)), ((-1.0, 1.2), (-1.0, 4.0)))
    source.feed_scan(wall_scan(pose, wall_behind), 3.0, MOUNT, pose, 0.6)
    assert source.waypoint((-3.0, 0.0), pose, 1.05) == behind
    # ... and is renewed once it is over (toward the gap of the wall behind).
    renewed = source.waypoint((-3.0, 0.0), pose, 1.2)
    assert renewed != behind and renewed[1] > 0.3


def test_the_clock_going_back_replans_at_once():
    pose = (0.0, 0.0, 0.0)
    source = fed_source(pose, walls=(), period=10.0)
    first = source.waypoint(GOAL, pose, 50.0)
    source.feed_scan(wall_scan(pose), 2.0, MOUNT, pose, 50.5)
    assert source.waypoint(GOAL, pose, 51.0) == first  # within the period
    assert source.waypoint(GOAL, pose, 1.0) != first  # the clock went back: replanned


def test_without_replanning_the_last_plan_is_walked_and_only_a_new_goal_planned():
    # The node's control tick: another thread maps and replans (`plan`).
    pose = (0.0, 0.0, 0.0)
    source = fed_source(pose, walls=(), period=1.0)
    ahead = source.waypoint(GOAL, pose, 0.0, replan=False)  # no plan yet: planned here
    assert ahead[0] > 0.5
    source.feed_scan(wall_scan(pose), 2.0, MOUNT, pose, 0.2)
    assert source.waypoint(GOAL, pose, 5.0, replan=False) == ahead  # overdue, not replanned
    behind = source.waypoint((-3.0, 0.0), pose, 5.0, replan=False)  # a new goal is planned
    assert behind[0] < -0.5
    # The planning thread's share: a plan when due, none before.
    assert source.plan(GOAL, pose, 5.1) and not source.plan(GOAL, pose, 5.5)
    around = source.waypoint(GOAL, pose, 5.5, replan=False)
    assert bearing(around, pose) > math.radians(30)  # toward the doorway the scan showed
    assert not source.plan((0.3, 0.2), pose, 9.0)  # within the lookahead: nothing to plan


def test_a_replan_replaces_the_field_whole(monkeypatch):
    # A tick walking the plan on another thread must never see a half-built field.
    from hybrid_fallback import nav_grid

    pose = (0.0, 0.0, 0.0)
    source = fed_source(pose, walls=())
    source.plan(GOAL, pose, 0.0)
    first = source.grid.plan()
    seen = []
    solve = nav_grid.cost_field

    def watched(*args, **kwargs):
        seen.append(source.grid.plan())  # what a reader sees while the field is solved
        return solve(*args, **kwargs)

    monkeypatch.setattr(nav_grid, "cost_field", watched)
    source.feed_scan(wall_scan(pose), 2.0, MOUNT, pose, 0.5)
    assert source.plan((-3.0, 0.0), pose, 2.0)  # a new goal: a new field
    assert seen and seen[0][0] is first[0] and seen[0][1] == first[1]
    assert source.grid.plan()[1] == (-3.0, 0.0)


def test_each_scan_is_fed_once_and_reset_forgets():
    pose = (0.0, 0.0, 0.0)
    source = GridWaypointSource(0.8, 1.0, GRID)
    scan = wall_scan(pose)
    assert source.feed_scan(scan, 1.0, MOUNT, pose, 0.0)
    assert not source.feed_scan(scan, 1.0, MOUNT, pose, 0.05)
    assert source.grid.occupied.any()
    source.reset()
    assert not source.grid.occupied.any()
    assert source.feed_scan(scan, 1.0, MOUNT, pose, 0.0)


def test_the_points_are_placed_by_pose_and_mount():
    pose = (2.0, -1.0, math.pi / 2)
    source = GridWaypointSource(0.8, 1.0, GRID)
    source.update(np.array([[1.0, 0.0]]), pose, 0.0)  # 1 m ahead of a robot facing +y
    cells = np.argwhere(source.grid.occupied)
    assert len(cells) == 1
    centre = source.grid.origin + (cells[0] + 0.5) * GRID.resolution
    assert centre == pytest.approx((2.0, 0.0), abs=GRID.resolution)


def test_the_same_inputs_give_the_same_waypoints():
    poses = [(0.0, 0.0, 0.0), (0.2, 0.3, 0.6), (0.4, 0.6, 0.9)]

    def run():
        source = GridWaypointSource(0.8, 0.5, GRID)
        out = []
        for k, pose in enumerate(poses):
            source.feed_scan(wall_scan(pose), float(k), MOUNT, pose, 0.3 * k)
            out.append(source.waypoint(GOAL, pose, 0.3 * k))
        return out

    assert run() == run()


def test_goal_input_and_goal_source_for():
    assert goal_source_for(GoalSpec(distance_cap=5.0)) is None
    assert goal_input(None, (1, 2), (0.0, 0.0, 0.0), 0.0) == (1.0, 2.0)
    spec = GoalSpec(5.0, "grid_waypoint", lookahead=0.6, replan_period=0.5, grid=GRID)
    source = goal_source_for(spec)
    assert (source.lookahead, source.replan_period, source.grid.config) == (0.6, 0.5, GRID)
    assert goal_input(source, GOAL, (0.0, 0.0, 0.0), 0.0) == source.waypoint(
        GOAL, (0.0, 0.0, 0.0), 0.0
    )
    with pytest.raises(ValueError, match="lookahead"):
        GridWaypointSource(0.0, 1.0, GRID)


# --------------------------------------------------------------- the policy controller


def waypoint_card(**goal_changes):
    card = small_card()
    goal = GoalSpec(5.0, "grid_waypoint", lookahead=0.8, replan_period=1.0, grid=GRID)
    goal = dataclasses.replace(goal, **goal_changes)
    return card.with_updates(observation=dataclasses.replace(card.observation, goal=goal))


def waypoint_slot(tmp_path, name="w.pt", **goal_changes):
    path = write_policy(tmp_path / name, waypoint_card(**goal_changes))
    return prepare_policy(path, name, LIMITS)


def controller_at(slot, pose, now=T0, scan_stamp=T0):
    controller = PolicyController(lidar_mount=MOUNT)
    controller.install(slot)
    controller.scan = ScanSample(wall_scan(pose), scan_stamp, now)
    controller.odom = OdomSample(pose, (0.0, 0.0), now, now)
    controller.set_goal(*GOAL)
    return controller


def test_a_grid_waypoint_policy_sees_the_waypoint(tmp_path):
    slot = waypoint_slot(tmp_path)
    assert slot.goal_source is not None
    pose = (0.0, 0.0, 0.0)
    controller = controller_at(slot, pose)
    assert controller.step(T0).active
    reference = fed_source(pose)
    waypoint = reference.waypoint(GOAL, pose, T0 / SEC)
    assert bearing(waypoint, pose) > math.radians(30)
    builder = ObservationBuilder(slot.policy.card.observation)
    expected = builder.build(controller.scan.scan, pose, (0.0, 0.0), waypoint, (0.0, 0.0))
    np.testing.assert_array_equal(controller._last_observation, expected)
    builder.reset()
    raw_goal = builder.build(controller.scan.scan, pose, (0.0, 0.0), GOAL, (0.0, 0.0))
    assert not np.array_equal(controller._last_observation, raw_goal)


def test_goal_reached_is_judged_on_the_goal_not_the_waypoint(tmp_path):
    pose = (0.0, 0.0, 0.0)
    controller = controller_at(waypoint_slot(tmp_path), pose)
    controller.set_goal(0.05, 0.0)
    assert controller.step(T0).reason == REASON_GOAL_REACHED
    controller.set_goal(*GOAL)
    controller.odom = OdomSample((2.0, 2.5, 0.0), (0.0, 0.0), T0, T0)  # waypoint-far, not goal
    assert controller.step(T0).active


def test_only_fresh_new_scans_are_fed(tmp_path):
    slot = waypoint_slot(tmp_path)
    pose = (0.0, 0.0, 0.0)
    controller = controller_at(slot, pose)
    controller.step(T0)
    fed = slot.goal_source.grid.occupied.copy()
    assert fed.any()
    # A stale scan (its stamp beyond source_timeout) is not fed, fresh or not.
    stale_at = T0 + 2 * SEC
    far_wall = (((2.5, -4.0), (2.5, 4.0)),)  # its beams pass where the doorway wall was
    controller.scan = ScanSample(wall_scan(pose, far_wall), T0 + SEC, stale_at)
    controller.odom = OdomSample(pose, (0.0, 0.0), stale_at, stale_at)
    controller.feed_goal_sources(stale_at)
    np.testing.assert_array_equal(slot.goal_source.grid.occupied, fed)
    # A fresh one is: its beams clear the doorway wall's cells.
    controller.scan = ScanSample(wall_scan(pose, far_wall), stale_at, stale_at)
    controller.feed_goal_sources(stale_at)
    assert not np.array_equal(slot.goal_source.grid.occupied, fed)


def test_with_planning_in_the_background_the_tick_only_walks_the_plan(tmp_path):
    slot = waypoint_slot(tmp_path)
    pose = (0.0, 0.0, 0.0)
    controller = controller_at(slot, pose)
    controller.plan_in_background = True
    source = slot.goal_source
    # The first tick for a goal without a plan plans it (on the empty grid: straight).
    assert controller.step(T0).active
    assert not source.grid.occupied.any()
    straight = controller._last_observation.copy()
    planned = source.grid.plan()
    # Later ticks neither map the fresh scans nor replan, however overdue.
    scan = controller.scan.scan
    for k in range(1, 40):
        now = T0 + k * SEC // 2
        controller.scan = ScanSample(scan, now, now)
        controller.odom = OdomSample(pose, (0.0, 0.0), now, now)
        assert controller.step(now).active
    assert not source.grid.occupied.any() and source.grid.plan()[0] is planned[0]
    goal_terms = slice(slot.policy.card.observation.scan.sectors, None)
    goal_terms = slice(goal_terms.start, goal_terms.start + 3)
    np.testing.assert_array_equal(controller._last_observation[goal_terms], straight[goal_terms])
    # The planning thread's call maps the fresh scan; it replans only while the policy
    # may drive, as the tick would.
    now = T0 + 20 * SEC
    controller.scan = ScanSample(wall_scan(pose), now, now)
    controller.odom = OdomSample(pose, (0.0, 0.0), now, now)
    controller.enabled = False
    controller.plan_goal_sources(now)
    assert source.grid.occupied.any() and source.grid.plan()[0] is planned[0]
    controller.enabled = True
    controller.plan_goal_sources(now)  # toward the doorway
    assert source.grid.occupied.any() and source.grid.plan()[0] is not planned[0]
    assert controller.step(now).active
    expected = ObservationBuilder(slot.policy.card.observation).build(
        controller.scan.scan,
        pose,
        (0.0, 0.0),
        fed_source(pose).waypoint(GOAL, pose, 0.0),
        (0.0, 0.0),
    )
    np.testing.assert_allclose(controller._last_observation[goal_terms], expected[goal_terms])
    assert not np.allclose(expected[goal_terms], straight[goal_terms])


def test_a_swap_to_another_goal_source_takes_effect_with_a_fresh_source(tmp_path):
    pose = (0.0, 0.0, 0.0)
    goal_slot = prepare_policy(write_policy(tmp_path / "g.pt", small_card()), "g.pt", LIMITS)
    assert goal_slot.goal_source is None
    controller = controller_at(goal_slot, pose)
    assert controller.step(T0).active
    builder = ObservationBuilder(goal_slot.policy.card.observation)
    raw = builder.build(controller.scan.scan, pose, (0.0, 0.0), GOAL, (0.0, 0.0))
    np.testing.assert_array_equal(controller._last_observation[:19], raw[:19])

    waypoint = waypoint_slot(tmp_path)
    controller.install(waypoint)
    now = T0 + SEC // 20
    assert controller.step(now).active
    assert waypoint.goal_source.grid.occupied.any()  # fed the live scan on its first tick
    target = fed_source(pose).waypoint(GOAL, pose, now / SEC)
    goal_terms = controller._last_observation[16:19]
    distance = math.hypot(*target) / 5.0
    angle = bearing(target, pose)
    np.testing.assert_allclose(goal_terms, [distance, math.cos(angle), math.sin(angle)], atol=1e-6)
    # Back to the goal-only policy: the raw goal again.
    controller.install(goal_slot)
    assert controller.step(now + SEC // 20).active
    np.testing.assert_allclose(controller._last_observation[16:19], raw[16:19], atol=1e-6)


def test_a_shadow_with_a_grid_waypoint_card_gets_its_own_waypoint(tmp_path):
    pose = (0.0, 0.0, 0.0)
    live = prepare_policy(write_policy(tmp_path / "g.pt", small_card()), "g.pt", LIMITS)
    controller = controller_at(live, pose)
    controller.shadow = waypoint_slot(tmp_path, lookahead=1.0)
    controller.step(T0)
    assert controller.shadow_step().command is not None
    assert controller.shadow.goal_source.grid.occupied.any()
