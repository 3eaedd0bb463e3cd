"""The hybrid fallback's supervisor: inputs, fallback health, clock jumps, command choice."""

import math

import pytest

from hybrid_fallback.arbiter import CommandSource, Decision, Mode
from hybrid_fallback.hybrid_config import PARAMETERS, build_hybrid_config
from hybrid_fallback.supervisor import GOAL_CORRECTION_DISTANCE, GoalUpdate, HybridSupervisor
from rlguard_common.parameters import parameter_defaults
from rlguard_common.scan_validity import BEAM_COUNT_MISMATCH

FULL_CIRCLE = (-math.pi, 2.0 * math.pi / 360)  # angle_min, angle_increment of 360 beams
QUARTER_TURN = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))  # yaw pi/2
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def supervisor(now: float = 0.0, **overrides: object) -> HybridSupervisor:
    values = {**parameter_defaults(PARAMETERS), **overrides}
    ticks = iter(range(1_000_000))
    # A fake wall clock: each reading 2 ms after the previous one.
    return HybridSupervisor(build_hybrid_config(values), now, lambda: 0.002 * next(ticks))


def open_scan(sup: HybridSupervisor, now: float, ranges: float = math.inf) -> None:
    sup.receive_scan([ranges] * 360, *FULL_CIRCLE, 0.12, 3.5, now)


def ready(sup: HybridSupervisor, now: float) -> None:
    """A fresh open scan, odometry at the origin and a goal 5 m ahead."""
    open_scan(sup, now)
    sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), now)
    sup.receive_goal("odom", 5.0, 0.0)


def decision(source: CommandSource) -> Decision:
    mode = {
        CommandSource.POLICY: Mode.POLICY,
        CommandSource.TELEOP: Mode.TELEOP,
        CommandSource.FALLBACK: Mode.FALLBACK,
        CommandSource.ZERO: Mode.IDLE,
    }[source]
    return Decision(mode=mode, source=source, reason="test", switched=False, previous=mode)


def test_non_finite_inputs_are_dropped_and_counted_per_topic():
    sup = supervisor()
    assert not sup.receive_policy_cmd(math.nan, 0.0, 1.0)
    assert not sup.receive_teleop(0.0, math.inf, 1.0)
    assert not sup.receive_odom((0.0, 0.0), (0.0, 0.0, math.nan, 1.0), (0.0, 0.0), 1.0)
    assert not sup.receive_odom((0.0, 0.0), (0.0, 0.0, math.inf, 1.0), (0.0, 0.0), 1.0)
    assert not sup.receive_safety_scale(math.nan, 1.0)
    assert sup.receive_goal("odom", math.nan, 0.0) is GoalUpdate.DROPPED
    assert dict(sup.dropped) == {
        "policy/cmd_vel": 1,
        "cmd_vel_teleop": 1,
        "odom": 2,
        "safety/scale": 1,
        "goal_pose": 1,
    }
    assert sup.policy_cmd is None and sup.teleop_cmd is None and sup.pose is None
    assert sup.receive_policy_cmd(0.1, 0.2, 1.5)
    assert (sup.policy_cmd, sup.policy_cmd_time) == ((0.1, 0.2), 1.5)
    assert sup.receive_teleop(0.05, -0.3, 1.6)
    assert (sup.teleop_cmd, sup.teleop_time) == ((0.05, -0.3), 1.6)


def test_odometry_gives_the_pose_with_its_yaw():
    sup = supervisor()
    assert sup.receive_odom((1.0, 2.0), QUARTER_TURN, (0.2, -0.1), 3.0)
    x, y, yaw = sup.pose
    assert (x, y) == (1.0, 2.0)
    assert yaw == pytest.approx(math.pi / 2)
    assert sup.velocity == (0.2, -0.1)
    assert sup.odom_time == 3.0


def test_policy_active_reports_changes_only():
    sup = supervisor()
    assert not sup.receive_policy_active(False)
    assert sup.receive_policy_active(True)
    assert not sup.receive_policy_active(True)
    assert sup.policy_active
    assert sup.receive_policy_active(False)


def test_goals_in_the_odom_frame_get_ids_and_a_repeat_is_no_new_goal():
    sup = supervisor()
    assert sup.receive_goal("map", 1.0, 2.0) is GoalUpdate.DROPPED
    assert sup.goal_id is None
    assert sup.receive_goal("odom", 1.0, 2.0) is GoalUpdate.NEW
    assert sup.receive_goal("", 1.0, 2.0) is GoalUpdate.REPEATED  # '' counts as odom
    assert (sup.goal, sup.goal_id) == ((1.0, 2.0), 1)
    assert sup.receive_goal("", 1.0, 2.5) is GoalUpdate.NEW
    assert sup.goal_id == 2


def test_a_goal_within_the_correction_distance_is_the_same_goal_corrected():
    """The simulator re-expresses its goal in the drifting odom frame: no new goal id, so
    the arbiter does not forget the policy's failures for it."""
    sup = supervisor()
    assert sup.receive_goal("odom", 1.0, 2.0) is GoalUpdate.NEW
    sup.arbiter._failures = 1  # the policy failed this goal once
    step = GOAL_CORRECTION_DISTANCE * 0.5
    assert sup.receive_goal("odom", 1.0 + step, 2.0) is GoalUpdate.MOVED
    assert (sup.goal, sup.goal_id, sup.arbiter.failures) == ((1.0 + step, 2.0), 1, 1)
    assert sup.receive_goal("odom", 1.0 + step + GOAL_CORRECTION_DISTANCE, 2.0) is GoalUpdate.NEW
    assert (sup.goal_id, sup.arbiter.failures) == (2, 1)  # reset on the arbiter's next update
    sup.step(0.1)
    assert sup.arbiter.failures == 0


def test_the_goal_frame_follows_the_config():
    sup = supervisor(odom_frame_id="world")
    assert sup.receive_goal("odom", 1.0, 2.0) is GoalUpdate.DROPPED
    assert sup.receive_goal("world", 1.0, 2.0) is GoalUpdate.NEW


def test_fallback_health_needs_a_fresh_usable_scan_and_fresh_odometry():
    sup = supervisor()
    assert sup.fallback_health(1.0) == (False, "no scan")
    open_scan(sup, 1.0)
    assert sup.fallback_health(1.0) == (False, "no odom")
    sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), 1.2)
    assert sup.fallback_health(1.4) == (True, "ok")
    assert sup.fallback_health(1.6) == (False, "scan stale (0.60 s)")  # source_timeout 0.5 s
    open_scan(sup, 1.6)
    assert sup.fallback_health(1.8) == (False, "odom stale (0.60 s)")  # odom_timeout 0.5 s
    open_scan(sup, 1.8, ranges=math.nan)  # no beam gave a reading
    sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), 1.8)
    assert sup.fallback_health(1.8) == (False, "scan blind (no usable beam)")


def test_a_rejected_scan_is_counted_and_leaves_the_last_valid_one():
    sup = supervisor()
    open_scan(sup, 1.0)
    accepted = sup.scan
    sup.reject_scan(BEAM_COUNT_MISMATCH)
    assert sup.scan is accepted
    assert sup.rejected_scans[BEAM_COUNT_MISMATCH] == 1
    assert sum(sup.rejected_scans.values()) == 1
    assert sup.dropped["scan"] == 1


def test_a_scan_is_placed_by_the_lidar_mount_and_a_partial_one_has_a_sector():
    sup = supervisor(lidar_x=0.5, lidar_yaw=math.pi / 2)
    ranges = [math.inf] * 271  # 270 degrees, one beam per degree
    ranges[135] = 1.0  # straight ahead of the lidar: 1 m to the robot's left of the lidar
    sup.receive_scan(ranges, -math.radians(135.0), math.radians(1.0), 0.12, 3.5, 2.0)
    assert sup.scan_time == 2.0
    (point,) = sup.scan.points
    assert point == pytest.approx((0.5, 1.0), abs=1e-6)
    sector = sup.observed_sector
    assert sector is not None
    assert sector.start == pytest.approx(-math.radians(135.0) + math.pi / 2)
    assert sector.origin == (0.5, 0.0)
    open_scan(sup, 2.1)
    assert sup.observed_sector is None  # a full circle: everything observed


def test_goal_distance():
    sup = supervisor()
    assert math.isnan(sup.goal_distance())
    sup.receive_goal("odom", 3.0, 4.0)
    assert math.isnan(sup.goal_distance())  # no pose yet
    sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), 0.0)
    assert sup.goal_distance() == pytest.approx(5.0)


def test_the_clock_going_back_caps_input_times():
    sup = supervisor(now=100.0)
    ready(sup, 100.0)
    sup.receive_policy_cmd(0.1, 0.0, 100.0)
    sup.receive_teleop(0.1, 0.0, 100.0)
    sup.step(100.0)
    sup.step(95.0)  # the jump back
    assert sup.policy_cmd_time == sup.teleop_time == 95.0
    assert sup.scan_time == sup.odom_time == 95.0
    sup.receive_policy_cmd(0.1, 0.0, 95.5)
    sup.step(96.0)  # forward again: nothing capped
    assert sup.policy_cmd_time == 95.5


def test_a_policy_that_stops_at_a_jump_back_times_out_on_the_new_clock():
    sup = supervisor(now=100.0)
    sup.receive_policy_active(True)
    now = 100.0
    ready(sup, now)
    for _ in range(10):
        now += 0.05
        open_scan(sup, now)
        sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), now)
        sup.receive_policy_cmd(0.1, 0.0, now)
        assert sup.step(now).mode is Mode.POLICY
    assert sup.policy_driving
    jumped = now = now - 5.0
    while sup.step(now).mode is Mode.POLICY and now < jumped + 3.0:
        now += 0.05
        open_scan(sup, now)
        sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), now)
    assert sup.arbiter.mode is Mode.FALLBACK
    assert now - jumped <= 0.5 + 2 * 0.05
    assert not sup.policy_driving


def test_the_step_hands_the_arbiter_what_it_needs():
    sup = supervisor()
    assert sup.step(0.0).mode is Mode.IDLE
    assert sup.fallback_status == "no scan"
    ready(sup, 0.1)
    sup.receive_policy_active(True)
    sup.receive_policy_cmd(0.1, 0.2, 0.1)
    decision = sup.step(0.1)
    assert (decision.mode, decision.switched) == (Mode.POLICY, True)
    assert sup.decision is decision
    assert sup.fallback_status == "ok"
    sup.receive_policy_active(False)
    assert sup.step(0.15).mode is Mode.FALLBACK


def test_while_the_policy_drives_the_fallback_keeps_its_route_for_the_stall_check():
    sup = supervisor()
    ready(sup, 0.1)
    sup.receive_scan([1.0] * 360, *FULL_CIRCLE, 0.12, 3.5, 0.1)  # a ring of obstacles at 1 m
    sup.receive_policy_active(True)
    sup.receive_policy_cmd(0.1, 0.0, 0.1)
    assert sup.step(0.1).mode is Mode.POLICY
    grid = sup.controller.grid
    assert grid.field_goal is None  # the step itself does not plan: the command comes first
    sup.update_route(0.1)
    assert grid.field_goal == (5.0, 0.0) and grid.occupied.any()  # mapped and routed
    route = sup.controller.route_distance((5.0, 0.0), (0.0, 0.0))
    assert route > 5.0  # the goal lies beyond the ring: the route is longer than 5 m
    assert math.isnan(sup.controller.route_distance((9.0, 9.0), (0.0, 0.0)))  # other goal
    plain = supervisor(stall_along_route=False)
    ready(plain, 0.1)
    plain.receive_policy_active(True)
    plain.receive_policy_cmd(0.1, 0.0, 0.1)
    assert plain.step(0.1).mode is Mode.POLICY
    plain.update_route(0.1)
    assert plain.controller.grid.field_goal is None  # nothing routed while the policy drives


def test_the_command_comes_from_the_decisions_source():
    sup = supervisor()
    now = 1.0
    for source in CommandSource:
        assert sup.command(decision(source), now) == (0.0, 0.0)  # nothing received yet
    assert sup.last_dwa_reason == "not run"
    sup.receive_policy_cmd(0.1, 0.2, now)
    sup.receive_teleop(0.05, -0.3, now)
    assert sup.command(decision(CommandSource.POLICY), now) == (0.1, 0.2)
    assert sup.command(decision(CommandSource.TELEOP), now) == (0.05, -0.3)
    assert sup.command(decision(CommandSource.ZERO), now) == (0.0, 0.0)
    ready(sup, now)
    linear, angular = sup.command(decision(CommandSource.FALLBACK), now)
    assert 0.0 < linear <= 0.26  # open space, goal ahead: the DWA drives forward
    assert math.isfinite(angular)
    assert sup.last_dwa_reason != "not run"
    assert sup.dwa_time_last == pytest.approx(0.002)  # one tick of the fake wall clock
    assert sup.dwa_time_max == pytest.approx(0.002)


def test_configure_keeps_the_obstacle_memory_unless_the_grid_changes():
    sup = supervisor()
    grid = sup.controller.grid
    values = parameter_defaults(PARAMETERS)
    sup.configure(build_hybrid_config({**values, "on_policy_disabled": "stop", "lookahead": 1.0}))
    assert sup.arbiter.config.on_policy_disabled == "stop"
    assert sup.controller.guidance.lookahead == 1.0
    assert sup.controller.grid is grid
    sup.configure(build_hybrid_config({**values, "safety_margin": 0.05}))
    assert sup.controller.planner.config.safety_margin == 0.05
    assert sup.controller.grid is not grid  # the inflation follows the footprint
    assert sup.controller.grid.config.inflation_radius == pytest.approx(0.11 + 0.05 + 0.05)
    sup.configure(build_hybrid_config({**values, "source_timeout": 2.0}))
    open_scan(sup, 0.0)
    sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), 0.0)
    assert sup.fallback_health(1.0) == (False, "odom stale (1.00 s)")  # odom_timeout 0.5


def test_configure_switches_the_mover_tracking():
    values = {**parameter_defaults(PARAMETERS), "track_moving_obstacles": True}
    sup = supervisor(**values)
    tracker = sup.controller.tracker
    sup.configure(build_hybrid_config({**values, "moving_horizon": 2.0}))
    assert sup.controller.tracker is tracker  # the tracks survive an unrelated change
    assert sup.controller.planner.config.moving_horizon == 2.0
    sup.configure(build_hybrid_config({**values, "track_moving_obstacles": False}))
    assert not sup.controller.tracker.config.enabled
    sup.configure(build_hybrid_config({**values, "track_moving_obstacles": True}))
    assert sup.controller.tracker.config.enabled


def test_diagnostic_values():
    sup = supervisor()
    assert sup.reason == "no update yet"
    sup.receive_teleop(math.nan, 0.0, 0.0)
    sup.reject_scan(BEAM_COUNT_MISMATCH)
    ready(sup, 0.0)
    sup.receive_policy_active(True)
    sup.receive_policy_cmd(0.1, 0.2, 0.0)
    sup.step(0.0)
    values = sup.diagnostic_values(0.5)
    assert list(values)[:13] == [
        "mode",
        "reason",
        "goal",
        "policy_failures",
        "retries_exhausted",
        "next_retry_delay_s",
        "intervention_rate",
        "fallback_status",
        "dwa_last_reason",
        "dwa_time_last_ms",
        "dwa_time_max_ms",
        "moving_obstacles",
        "switches_total",
    ]
    assert values["moving_obstacles"] == "0"
    assert values["mode"] == "POLICY"
    assert values["reason"] == sup.reason == "new goal; policy active"
    assert values["goal"] == "5.000, 0.000"
    assert values["switches IDLE->POLICY"] == "1"
    assert values["last_switch_0"] == "t=0.00 IDLE->POLICY: new goal; policy active"
    assert values["dropped cmd_vel_teleop"] == "1"
    assert values["dropped scan"] == "1"
    assert values[f"rejected_scan_{BEAM_COUNT_MISMATCH}"] == "1"
    assert values["time_in POLICY_s"] == "0.0"


def test_a_scan_is_mapped_once_from_the_odometry_it_arrived_with():
    sup = supervisor()
    sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 2.0), 0.1)
    sup.receive_scan([2.5] * 360, *FULL_CIRCLE, 0.12, 3.5, 0.1)  # a ring at 2.5 m
    sup.receive_goal("odom", 5.0, 0.0)
    assert sup.scan_pose == (0.0, 0.0, 0.0) and sup.scan_count == 1
    sup.fallback_command(0.1)
    grid = sup.controller.grid
    ring = grid.occupied.copy()
    assert ring.any()
    sup.receive_odom((0.0, 0.0), QUARTER_TURN, (0.0, 2.0), 0.15)  # turned, same scan
    sup.fallback_command(0.15)
    sup.update_route(0.15)
    assert (grid.occupied == ring).all()
    sup.receive_scan([2.5] * 360, *FULL_CIRCLE, 0.12, 3.5, 0.2)  # the next scan
    assert sup.scan_pose == pytest.approx((0.0, 0.0, math.pi / 2)) and sup.scan_count == 2


def walker_ranges(x: float, y: float, radius: float = 0.2) -> list[float]:
    """The 360 ranges (FULL_CIRCLE) a lidar at the origin sees of one cylinder at (x, y)."""
    ranges = []
    for beam in range(360):
        angle = FULL_CIRCLE[0] + beam * FULL_CIRCLE[1]
        dx, dy = math.cos(angle), math.sin(angle)
        b = -(x * dx + y * dy)
        disc = b * b - (x * x + y * y - radius * radius)
        near = -b - math.sqrt(disc) if disc >= 0.0 else math.inf
        ranges.append(near if near > 0.0 else math.inf)
    return ranges


MOVERS_ON = {"track_moving_obstacles": True, "fallback_for_movers": True}


def test_a_mover_walking_into_the_policys_path_hands_over_to_the_fallback():
    sup = supervisor(**MOVERS_ON)
    ready(sup, 0.0)
    sup.receive_policy_active(True)
    modes = []
    for tick in range(60):  # 3 s at 20 Hz; a scan every other tick (10 Hz)
        now = 0.05 * tick
        sup.receive_policy_cmd(0.2, 0.0, now)  # straight on toward the goal (5, 0)
        sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), now)
        if tick % 2 == 0:
            # A cylinder crossing 0.6 m ahead from the left at 0.35 m/s.
            sup.receive_scan(walker_ranges(0.6, 1.6 - 0.35 * now), *FULL_CIRCLE, 0.12, 3.5, now)
        decision = sup.step(now)
        sup.command(decision, now)  # the fallback's command tracks the scan when it drives
        sup.update_route(now)
        modes.append(decision.mode)
    assert modes[0] is Mode.POLICY
    assert modes[-1] is Mode.FALLBACK
    assert sup.reason.startswith("moving obstacle: the policy's command meets one in")
    assert sup.arbiter.failures == 0
    assert sup.diagnostic_values(3.0)["moving_obstacles"] == "1"


def test_a_still_cylinder_ahead_is_no_mover():
    sup = supervisor(**MOVERS_ON)
    ready(sup, 0.0)
    sup.receive_policy_active(True)
    for tick in range(60):
        now = 0.05 * tick
        sup.receive_policy_cmd(0.2, 0.0, now)
        sup.receive_odom((0.0, 0.0), IDENTITY, (0.0, 0.0), now)
        if tick % 2 == 0:
            sup.receive_scan(walker_ranges(1.0, 0.0), *FULL_CIRCLE, 0.12, 3.5, now)
        sup.step(now)
        sup.update_route(now)
    assert sup.moving_threat(3.0) == ""
    assert sup.arbiter.mode is Mode.POLICY
