"""The rlguard stack alone, on a real robot, remapped onto the robot's own topics.

ros2 launch launch/robot.launch.py scan_topic:=/front/scan cmd_vel_topic:=/base/cmd_vel
"""

from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import SetRemap

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_launch_description() -> LaunchDescription:
    """Include the stack with the robot's scan, odom and cmd_vel topics remapped."""
    arguments = [
        DeclareLaunchArgument(
            "scan_topic", default_value="scan", description="The robot's LaserScan topic."
        ),
        DeclareLaunchArgument(
            "odom_topic", default_value="odom", description="The robot's Odometry topic."
        ),
        DeclareLaunchArgument(
            "cmd_vel_topic",
            default_value="cmd_vel",
            description="The base's velocity command topic (the safety controller's output).",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the stack nodes."
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="nav_policy.pt",
            description="Policy file for rl_policy_node (default: the shipped policy; "
            "relative to its models_dir; empty keeps its YAML default, no model).",
        ),
        DeclareLaunchArgument(
            "require_gated_model",
            default_value="true",
            description="rl_policy_node refuses a model without a passed deployment gate for "
            "its own weights (rl_training promote MODEL records one); false only to try an "
            "ungated model on purpose.",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="Use the /clock topic as time (true only with a simulator or a bag).",
        ),
        DeclareLaunchArgument(
            "robot",
            default_value="default",
            description="Robot profile name (config/robots/<robot>.yaml).",
        ),
        DeclareLaunchArgument(
            "use_stamped",
            default_value="false",
            description="Publish cmd_vel as TwistStamped (what the base driver expects).",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value="",
            description="Optional YAML applied on top of each node's config.",
        ),
    ]
    stack = GroupAction(
        [
            SetRemap(src="scan", dst=LaunchConfiguration("scan_topic")),
            SetRemap(src="odom", dst=LaunchConfiguration("odom_topic")),
            SetRemap(src="cmd_vel", dst=LaunchConfiguration("cmd_vel_topic")),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(HERE, "stack.launch.py")),
                launch_arguments={
                    "namespace": LaunchConfiguration("namespace"),
                    "use_sim_time": LaunchConfiguration("use_sim_time"),
                    "model_path": LaunchConfiguration("model_path"),
                    "require_gated_model": LaunchConfiguration("require_gated_model"),
                    "robot": LaunchConfiguration("robot"),
                    "use_stamped": LaunchConfiguration("use_stamped"),
                    "params_file": LaunchConfiguration("params_file"),
                }.items(),
            ),
        ]
    )
    return LaunchDescription([*arguments, stack])
