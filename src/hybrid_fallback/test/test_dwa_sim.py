"""The fallback controller alone in the embedded simulator: closed loop at 20 Hz, no DDS."""

import math

import pytest

from hybrid_fallback.arbiter import Arbiter, ArbiterConfig, ArbiterInputs, CommandSource, Mode
from hybrid_fallback.fallback import FallbackController
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from safety_controller.scan_geometry import LidarMount, scan_to_points
from sim_bringup import sim_core

CONTROL_PERIOD = 0.05


def drive_through_goals(
    world_name: str, goal_time_limit: float, seed: int = 0
) -> tuple[list[float], int]:
    """Visit every goal of a world; returns the time per goal and the collision count.

    The controller gets a lidar scan at the profile's rate (here every other control
    period) and the ground-truth pose and velocity: the goals are world coordinates, and
    the wheel odometry drifts by decimetres over a long run, which would test the
    odometry rather than the controller.
    """
    robot = load_robot_profile("default")
    world = load_world(world_name)
    sim = sim_core.Simulator(robot, world, seed=seed)
    lidar = robot.lidar
    mount = LidarMount(lidar.mount_x, lidar.mount_y, lidar.mount_yaw)
    scan_every = max(1, round(1.0 / (lidar.rate_hz * CONTROL_PERIOD)))
    controller = FallbackController()
    times: list[float] = []
    points = None
    step = 0
    for goal in sim.goals:
        started = sim.time
        while True:
            x, y, _ = sim.pose
            if math.hypot(goal[0] - x, goal[1] - y) <= world.goal_tolerance:
                times.append(sim.time - started)
                break
            assert sim.time - started < goal_time_limit, (
                f"{world_name}: goal {goal} not reached in {goal_time_limit} s, at {sim.pose}"
            )
            if points is None or step % scan_every == 0:
                scan = sim.scan()
                points = scan_to_points(
                    scan.ranges,
                    scan.angle_min,
                    scan.angle_increment,
                    scan.range_min,
                    scan.range_max,
                    mount,
                ).points
            result = controller.compute(points, sim.pose, goal, sim.velocity, sim.time)
            sim.step(result.linear, result.angular, CONTROL_PERIOD)
            step += 1
    return times, sim.collision_count


def test_reaches_a_goal_in_the_empty_world():
    times, collisions = drive_through_goals("empty", goal_time_limit=40.0)
    assert len(times) == 4 and collisions == 0


@pytest.mark.slow
@pytest.mark.parametrize("world_name", ["corridor", "warehouse"])
def test_reaches_every_goal_of_the_shipped_worlds_without_collision(world_name):
    times, collisions = drive_through_goals(world_name, goal_time_limit=120.0)
    assert len(times) == len(load_world(world_name).goals)
    assert collisions == 0


def test_frozen_policy_stalls_hands_over_and_the_fallback_reaches_the_goal():
    """Arbiter + fallback in the loop: a policy that outputs zeros is caught by the stall check.

    The frozen policy still looks healthy (active, publishing), so the arbiter retries it
    after the back-off; each retry stalls again and the DWA finishes the job.
    """
    robot = load_robot_profile("default")
    world = load_world("empty")
    sim = sim_core.Simulator(robot, world, seed=0)
    lidar = robot.lidar
    mount = LidarMount(lidar.mount_x, lidar.mount_y, lidar.mount_yaw)
    arbiter = Arbiter(
        ArbiterConfig(
            stall_window=3.0, min_progress=0.2, goal_tolerance=world.goal_tolerance, max_retries=5
        )
    )
    controller = FallbackController()
    goal = sim.goals[0]
    modes = []
    while sim.time < 40.0:
        x, y, yaw = sim.pose
        distance = math.hypot(goal[0] - x, goal[1] - y)
        # The "policy" is alive and active but frozen: it publishes zeros every period.
        inputs = ArbiterInputs(
            goal_id=1,
            goal_distance=distance,
            policy_active=True,
            last_policy_cmd_time=sim.time,
            fallback_healthy=True,
        )
        decision = arbiter.update(inputs, sim.time)
        modes.append(decision.mode)
        if decision.mode is Mode.IDLE and modes.count(Mode.FALLBACK):
            break
        command = (0.0, 0.0)
        if decision.source is CommandSource.FALLBACK:
            scan = sim.scan()
            points = scan_to_points(
                scan.ranges,
                scan.angle_min,
                scan.angle_increment,
                scan.range_min,
                scan.range_max,
                mount,
            ).points
            result = controller.compute(points, sim.pose, goal, sim.velocity, sim.time)
            command = (result.linear, result.angular)
        sim.step(*command, CONTROL_PERIOD)
    history = [(r.from_mode, r.to_mode, r.reason) for r in arbiter.history]
    assert history[0][:2] == (Mode.IDLE, Mode.POLICY)
    assert history[1][:2] == (Mode.POLICY, Mode.FALLBACK)
    assert history[1][2].startswith("no progress: 0.00 m toward the goal in 3.0 s")
    handovers = [
        reason for old, new, reason in history if (old, new) == (Mode.POLICY, Mode.FALLBACK)
    ]
    assert all(reason.startswith("no progress") for reason in handovers)
    assert arbiter.failures == len(handovers) >= 2  # retried with back-off, stalled again
    assert history[-1][:2] == (Mode.FALLBACK, Mode.IDLE)  # the DWA reached the goal
    assert sim.collision_count == 0
