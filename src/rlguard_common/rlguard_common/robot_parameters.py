"""Stack node parameters that follow from the robot profile (no rclpy).

The robot profile (config/robots/<robot>.yaml) is the one description of the robot. The
launch files and the bringup runner both take the per-node overrides from here, so the
footprint, velocity limits and lidar mount the stack uses always match the robot the
simulator builds. Values not derived from the profile stay in config/<node>.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlguard_common.geometry import BASE_FRAME_ID, ODOM_FRAME_ID
from rlguard_common.robot_profile import RobotProfile, load_robot_profile


def robot_parameter_overrides(robot: str | Path | RobotProfile) -> dict[str, dict[str, Any]]:
    """Parameters per node name (the stack and the simulator) the robot profile determines."""
    profile = robot if isinstance(robot, RobotProfile) else load_robot_profile(robot)
    max_velocity = [profile.max_linear_velocity, profile.max_angular_velocity]
    lidar = profile.lidar
    mount = {"lidar_x": lidar.mount_x, "lidar_y": lidar.mount_y, "lidar_yaw": lidar.mount_yaw}
    return {
        "rl_policy_node": {"max_velocity": max_velocity, **mount},
        "hybrid_fallback": {
            "max_velocity": max_velocity,
            "min_velocity": [0.0, -profile.max_angular_velocity],
            "robot_radius": profile.footprint_radius,
            "odom_frame_id": ODOM_FRAME_ID,
            **mount,
        },
        "safety_controller": {
            "max_velocity": max_velocity,
            "min_velocity": [-profile.max_linear_velocity, -profile.max_angular_velocity],
            "robot_radius": profile.footprint_radius,
            "base_frame_id": BASE_FRAME_ID,
            **mount,
        },
        "mujoco_sim": {"odom_frame_id": ODOM_FRAME_ID, "base_frame_id": BASE_FRAME_ID},
    }
