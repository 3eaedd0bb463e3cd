"""A simulated robot (embedded MuJoCo or Gazebo Harmonic) with the rlguard stack on it.

ros2 launch launch/sim.launch.py sim:=mujoco world:=warehouse
ros2 launch launch/sim.launch.py sim:=gazebo world:=corridor headless:=false
ros2 launch launch/sim.launch.py publish_goals:=true   # the world's goals, one after another

The stack runs the shipped policy (model_path) and waits for a goal on goal_pose.
"""

from __future__ import annotations

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import PushROSNamespace
from launch_ros.substitutions import FindPackageShare

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_launch_description() -> LaunchDescription:
    """Start the chosen simulator and the stack with simulated time."""
    namespace = LaunchConfiguration("namespace")
    world = LaunchConfiguration("world")
    robot = LaunchConfiguration("robot")
    use_stamped = LaunchConfiguration("use_stamped")
    arguments = [
        DeclareLaunchArgument(
            "sim", default_value="mujoco", description="Simulator: mujoco or gazebo."
        ),
        DeclareLaunchArgument(
            "world",
            default_value="warehouse",
            description="World name: empty, corridor, warehouse or dynamic.",
        ),
        DeclareLaunchArgument(
            "headless", default_value="true", description="Run Gazebo without its GUI."
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the robot and its stack."
        ),
        DeclareLaunchArgument(
            "robot",
            default_value="default",
            description="Robot profile name (config/robots/<robot>.yaml).",
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="nav_policy.pt",
            description="Policy file for rl_policy_node (default: the shipped policy; "
            "relative to its models_dir; empty keeps its YAML default, no model).",
        ),
        DeclareLaunchArgument(
            "require_gated_model",
            default_value="false",
            description="rl_policy_node refuses a model without a passed deployment gate for "
            "its own weights (robot.launch.py: true); in simulation any model may run.",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="true",
            description="Stack nodes use the simulator's /clock as time.",
        ),
        DeclareLaunchArgument(
            "publish_goals",
            default_value="false",
            description="MuJoCo only: publish the world's goals on goal_pose, the next when "
            "one is reached (unattended runs); off, the stack waits for your goal.",
        ),
        DeclareLaunchArgument(
            "use_stamped",
            default_value="false",
            description="cmd_vel as TwistStamped between the stack and the simulator.",
        ),
    ]
    sim_args = [
        ("world", world),
        ("robot", robot),
        ("use_stamped", use_stamped),
        ("headless", LaunchConfiguration("headless")),
    ]
    mujoco = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("sim_bringup"), "launch", "mujoco.launch.py"])
        ),
        launch_arguments=[*sim_args, ("publish_goals", LaunchConfiguration("publish_goals"))],
        condition=IfCondition(EqualsSubstitution(LaunchConfiguration("sim"), "mujoco")),
    )
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("sim_bringup"), "launch", "gazebo.launch.py"])
        ),
        launch_arguments=sim_args,
        condition=IfCondition(EqualsSubstitution(LaunchConfiguration("sim"), "gazebo")),
    )
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(HERE, "stack.launch.py")),
        launch_arguments={
            "namespace": namespace,
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "model_path": LaunchConfiguration("model_path"),
            "require_gated_model": LaunchConfiguration("require_gated_model"),
            "robot": robot,
            "use_stamped": use_stamped,
        }.items(),
    )
    simulator = GroupAction([PushROSNamespace(namespace), mujoco, gazebo])
    return LaunchDescription([*arguments, simulator, stack])
