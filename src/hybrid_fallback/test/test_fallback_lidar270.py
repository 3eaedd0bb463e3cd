"""The fallback on the 270-degree lidar robot in the embedded simulator (closed loop, no DDS).

The scan's coverage goes to the controller as an `ObservedSector`, as the hybrid node
passes it: the back of the robot is unobserved, so the fallback must never reverse, and
it must still reach every goal without a collision.
"""

import math

import pytest

from hybrid_fallback.dwa import ObservedSector
from hybrid_fallback.fallback import FallbackController
from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from safety_controller.scan_geometry import LidarMount, scan_to_points
from sim_bringup import sim_core

CONTROL_PERIOD = 0.05


@pytest.mark.slow
def test_the_270_degree_lidar_robot_reaches_every_corridor_goal_without_reversing():
    robot = load_robot_profile("lidar270")
    world = load_world("corridor")
    sim = sim_core.Simulator(robot, world, seed=0)
    lidar = robot.lidar
    mount = LidarMount(lidar.mount_x, lidar.mount_y, lidar.mount_yaw)
    scan_every = max(1, round(1.0 / (lidar.rate_hz * CONTROL_PERIOD)))
    controller = FallbackController()
    reached, slowest, step = 0, math.inf, 0
    points, sector = None, None
    for goal in sim.goals:
        started = sim.time
        while math.hypot(goal[0] - sim.pose[0], goal[1] - sim.pose[1]) > world.goal_tolerance:
            assert sim.time - started < 120.0, f"goal {goal} not reached, at {sim.pose}"
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
                sector = ObservedSector.from_scan(
                    scan.angle_min,
                    scan.angle_increment,
                    scan.ranges.size,
                    lidar.mount_x,
                    lidar.mount_y,
                    lidar.mount_yaw,
                )
                assert sector is not None and not sector.contains(math.pi)
            result = controller.compute(
                points, sim.pose, goal, sim.velocity, sim.time, observed_sector=sector
            )
            slowest = min(slowest, result.linear)
            sim.step(result.linear, result.angular, CONTROL_PERIOD)
            step += 1
        reached += 1
    assert reached == len(world.goals)
    assert sim.collision_count == 0
    assert slowest >= 0.0
