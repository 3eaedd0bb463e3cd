"""The embedded MuJoCo simulator node (`mujoco_sim`) and the robot's fixed frames.

Same topics as the Gazebo bringup (`/clock`, `scan`, `odom`, `cmd_vel`) plus
`sim/ground_truth`, `sim/collisions` and, with publish_goals, `goal_pose`.

    ros2 launch sim_bringup mujoco.launch.py world:=dynamic real_time_factor:=2.0
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _as_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _nodes(context: LaunchContext) -> list[Node]:
    """The simulator with typed parameters, and robot_state_publisher for base_scan."""
    from rlguard_common.robot_parameters import robot_parameter_overrides

    share = FindPackageShare("sim_bringup").perform(context)
    value = {
        name: LaunchConfiguration(name).perform(context)
        for name in ("world", "robot", "seed", "randomize", "real_time_factor", "publish_goals")
    }
    simulator = Node(
        package="sim_bringup",
        executable="mujoco_sim",
        name="mujoco_sim",
        output="screen",
        parameters=[
            f"{share}/config/mujoco_sim.yaml",
            # Frames the stack shares with the simulator, from the robot profile.
            robot_parameter_overrides(value["robot"]).get("mujoco_sim", {}),
            {
                "world": value["world"],
                "robot": value["robot"],
                "seed": int(value["seed"]),
                "randomize": _as_bool(value["randomize"]),
                "real_time_factor": float(value["real_time_factor"]),
                "publish_goals": _as_bool(value["publish_goals"]),
                "enable_stamped_cmd_vel": _as_bool(
                    LaunchConfiguration("use_stamped").perform(context)
                ),
            },
        ],
    )
    with open(f"{share}/gazebo/models/rlguard_robot/robot.urdf") as urdf:
        description = urdf.read()
    frames = Node(
        package="robot_state_publisher",
        executable="robot_state_publisher",
        name="robot_state_publisher",
        output="screen",
        parameters=[{"robot_description": description, "use_sim_time": True}],
    )
    return [simulator, frames]


def generate_launch_description() -> LaunchDescription:
    """Start the embedded simulator with the chosen world and robot profile."""
    arguments = [
        DeclareLaunchArgument(
            "world",
            default_value="warehouse",
            description="World name (empty, corridor, warehouse, dynamic) or a world YAML path.",
        ),
        DeclareLaunchArgument(
            "robot",
            default_value="default",
            description="Robot profile name (config/robots/<robot>.yaml) or a YAML path.",
        ),
        DeclareLaunchArgument(
            "use_stamped",
            default_value="false",
            description="Subscribe to cmd_vel as geometry_msgs/TwistStamped.",
        ),
        DeclareLaunchArgument(
            "headless",
            default_value="true",
            description="Accepted for parity with gazebo.launch.py; the embedded sim has no GUI.",
        ),
        DeclareLaunchArgument(
            "seed", default_value="0", description="Episode seed (randomization, sensor noise)."
        ),
        DeclareLaunchArgument(
            "randomize", default_value="false", description="Domain randomization on or off."
        ),
        DeclareLaunchArgument(
            "real_time_factor",
            default_value="1.0",
            description="Sim seconds per wall second.",
        ),
        DeclareLaunchArgument(
            "publish_goals",
            default_value="false",
            description="Publish the world's goal sequence on goal_pose (unattended runs); "
            "off by default so a goal you send is not replaced.",
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
