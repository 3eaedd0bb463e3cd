"""200 episodes in the embedded simulator: a policy driving full speed at obstacles, 0 collisions.

Runs the safety filter core in-process with the MuJoCo simulator core (no DDS): each
control step the scan (10 Hz) and wheel odometry go into the filter, the policy's request
goes through it, and the simulator executes the filtered command.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from safety_controller.footprint import Footprint
from safety_controller.limits import VelocityLimits
from safety_controller.safety_filter import COLLISION, SafetyConfig, SafetyFilter
from safety_controller.scan_geometry import LidarMount

sim_core = pytest.importorskip("sim_bringup.sim_core")
robot_profile = pytest.importorskip("rlguard_common.robot_profile")
world = pytest.importorskip("rlguard_common.world")
campaign = pytest.importorskip("rlguard_tools.campaign")
clearance = campaign.clearance
random_start = campaign.random_start

pytestmark = pytest.mark.slow

STATIC_WORLDS = ("warehouse", "corridor", "empty")
EPISODES = 200
EPISODE_SECONDS = 10.0
CONTROL_PERIOD = 0.05
SCAN_EVERY = 2  # control steps per scan: 10 Hz lidar, 20 Hz control
FULL_SPEED = (0.26, 1.82)


def obstacle_targets(sim) -> tuple[list[np.ndarray], list[float]]:
    """Points on obstacles to drive at, and a function of clearance for start poses."""
    geometry = sim.obstacles()
    targets = [np.array(b[:2]) for b in geometry.boxes] + [
        np.array(c[:2]) for c in geometry.cylinders
    ]
    return targets, geometry


def make_filter(robot) -> tuple[SafetyFilter, LidarMount]:
    config = SafetyConfig(
        limits=VelocityLimits(
            max_velocity=FULL_SPEED,
            min_velocity=(-0.26, -1.82),
            max_accel=(1.5, 3.2),
            max_decel=(-1.5, -3.2),
            emergency_decel=(-1.6, -5.0),
        ),
        footprint=Footprint(radius=robot.footprint_radius, margin=0.05),
        reaction_time=0.15,
        closed_loop=True,
    )
    lidar = robot.lidar
    return SafetyFilter(config), LidarMount(lidar.mount_x, lidar.mount_y, lidar.mount_yaw)


def run_episode(sim, seed: int) -> tuple[int, bool, float]:
    """One episode; returns (collisions, whether the guard had to brake, closest approach)."""
    rng = np.random.default_rng(seed)
    sim.reset(seed)
    targets, geometry = obstacle_targets(sim)
    sim.reset(seed, start=random_start(sim, geometry, rng))
    filt, mount = make_filter(sim.robot)
    target = targets[rng.integers(len(targets))]
    wobble = rng.uniform(-0.5, 0.5)
    braked, closest = False, math.inf
    steps = int(round(EPISODE_SECONDS / CONTROL_PERIOD))
    for step in range(steps):
        now = sim.time
        if step % SCAN_EVERY == 0:
            assert campaign.feed_scan(filt, campaign.scan_message(sim), now, mount) is None
        odom = sim.odometry()
        filt.set_odometry(odom.v, odom.w, now)
        if step % 60 == 59:  # a new obstacle to ram every 3 s
            target = targets[rng.integers(len(targets))]
            wobble = rng.uniform(-0.5, 0.5)
        x, y, yaw = sim.pose
        bearing = math.atan2(target[1] - y, target[0] - x) - yaw
        bearing = math.remainder(bearing, 2.0 * math.pi)
        turn = float(np.clip(3.0 * bearing + wobble, -FULL_SPEED[1], FULL_SPEED[1]))
        filt.set_command(FULL_SPEED[0], turn, now)
        out = filt.step(now)
        braked |= COLLISION in out.reasons
        closest = min(
            closest, clearance(np.array(sim.pose[:2]), geometry) - sim.robot.footprint_radius
        )
        sim.step(out.linear, out.angular, CONTROL_PERIOD)
    return sim.collision_count, braked, closest


def test_full_speed_policy_never_collides_behind_the_safety_filter():
    robot = robot_profile.load_robot_profile("default")
    sims = {
        name: sim_core.Simulator(robot, world.load_world(name), seed=0, randomize=False)
        for name in STATIC_WORLDS
    }
    collisions, braked_episodes, closest = 0, 0, []
    for episode in range(EPISODES):
        name = STATIC_WORLDS[episode % len(STATIC_WORLDS)]
        count, braked, approach = run_episode(sims[name], seed=1000 + episode)
        collisions += count
        braked_episodes += braked
        closest.append(approach)
    print(
        f"\n{EPISODES} episodes: {collisions} collisions; the collision guard braked in "
        f"{braked_episodes}; median closest approach {np.median(closest):.3f} m"
    )
    assert collisions == 0
    # The policy really does drive into obstacles: the guard had to act in most episodes.
    assert braked_episodes >= EPISODES // 2
