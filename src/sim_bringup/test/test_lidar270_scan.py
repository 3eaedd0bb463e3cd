"""The simulator's 270-degree lidar sees what the 360-degree one sees, in its field of view."""

import math

import numpy as np

from rlguard_common.robot_profile import load_robot_profile
from rlguard_common.world import load_world
from sim_bringup.sim_core import Simulator, without_sensor_noise


def test_lidar270_scan_is_the_front_of_the_full_scan():
    robot = load_robot_profile("lidar270")
    default = load_robot_profile("default")
    lidar = robot.lidar
    world = load_world("warehouse")
    scan = Simulator(without_sensor_noise(robot), world).scan()
    assert scan.ranges.size == 271
    bearings = scan.angles + lidar.mount_yaw  # base frame
    assert np.all(np.cos(bearings) >= math.cos(0.75 * math.pi) - 1e-9)  # none looks backwards
    assert np.isfinite(scan.ranges).sum() > 100
    # Each beam measures what the default robot's beam in the same direction measures.
    full = Simulator(without_sensor_noise(default), world).scan()
    index = np.round((scan.angles - full.angle_min) / full.angle_increment).astype(int)
    np.testing.assert_allclose(full.angles[index], scan.angles, atol=1e-9)
    np.testing.assert_allclose(scan.ranges, full.ranges[index], atol=1e-4)
    # The 89 directions strictly behind are only in the 360-degree scan.
    behind = np.cos(full.angles + default.lidar.mount_yaw) < math.cos(0.75 * math.pi) - 1e-9
    assert behind.sum() == 360 - 271
