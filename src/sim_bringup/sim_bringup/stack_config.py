"""Stack node parameters that follow from the robot profile (no rclpy).

The robot profile (config/robots/<robot>.yaml) is the one description of the robot. The
launch files and the bringup runner both take the per-node overrides from here, so the
footprint, velocity limits and lidar mount the stack uses always match the robot the
simulator builds. Values not derived from the profile stay in config/<node>.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim_bringup.profiles import RobotProfile, load_robot_profile


def robot_parameter_overrides(robot: str | Path | RobotProfile) -> dict[str, dict[str, Any]]:
    """Parameters per stack node name that the robot profile determines."""
    profile = robot if isinstance(robot, RobotProfile) else load_robot_profile(robot)
    max_velocity = [profile.max_linear_velocity, profile.max_angular_velocity]
    lidar = profile.lidar
    mount = {"lidar_x": lidar.mount_x, "lidar_y": lidar.mount_y, "lidar_yaw": lidar.mount_yaw}
    return {
        "rl_policy_node": {"max_velocity": max_velocity},
        "hybrid_fallback": {
            "max_velocity": max_velocity,
            "robot_radius": profile.footprint_radius,
            **mount,
        },
        "safety_controller": {
            "max_velocity": max_velocity,
            "min_velocity": [-profile.max_linear_velocity, -profile.max_angular_velocity],
            "robot_radius": profile.footprint_radius,
            **mount,
        },
    }
