"""Gazebo Harmonic: an rlguard world, the robot spawned at the world's start pose, ros_gz_bridge.

The world SDF, robot SDF and bridge YAML are generated from the same YAML as the embedded
simulator (`python -m sim_bringup.gazebo_gen`).

    ros2 launch sim_bringup gazebo.launch.py world:=corridor headless:=false
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ROBOT_MODEL = "rlguard_robot"


def _robot_nodes(context: LaunchContext) -> list[Node]:
    """Spawn the robot at the world's start pose and publish its fixed frames."""
    from rlguard_common.world import load_world

    world = load_world(LaunchConfiguration("world").perform(context))
    share = FindPackageShare("sim_bringup").perform(context)
    model_dir = f"{share}/gazebo/models/{ROBOT_MODEL}"
    x, y, yaw = world.start
    spawn = Node(
        package="ros_gz_sim",
        executable="create",
        name="spawn_robot",
        output="screen",
        arguments=[
            "-world",
            world.name,
            "-name",
            ROBOT_MODEL,
            "-file",
            f"{model_dir}/model.sdf",
            "-x",
            str(x),
            "-y",
            str(y),
            "-z",
            "0.01",
            "-Y",
            str(yaw),
        ],  # fmt: skip
    )
    with open(f"{model_dir}/robot.urdf") as urdf:
        description = urdf.read()
    frames = Node(
        package="robot_state_publisher",
        executable="robot_state_publisher",
        name="robot_state_publisher",
        output="screen",
        parameters=[{"robot_description": description, "use_sim_time": True}],
    )
    return [spawn, frames]


def generate_launch_description() -> LaunchDescription:
    """Start gz sim with the world, spawn the robot and bridge clock/scan/odom/tf/cmd_vel."""
    world = LaunchConfiguration("world")
    headless = LaunchConfiguration("headless")
    use_stamped = LaunchConfiguration("use_stamped")
    share = FindPackageShare("sim_bringup")
    # Jazzy's launch (3.4.3) joins only str and substitutions, no nested list: the ".sdf"
    # suffix follows the joined path as a second substitution.
    world_sdf = [PathJoinSubstitution([share, "gazebo", "worlds", world]), ".sdf"]
    gz_sim_launch = PathJoinSubstitution(
        [FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"]
    )

    arguments = [
        DeclareLaunchArgument(
            "world",
            default_value="warehouse",
            description="World name: empty, corridor, warehouse or dynamic.",
        ),
        DeclareLaunchArgument(
            "robot",
            default_value="default",
            description="Robot profile; the committed robot SDF is generated from 'default'.",
        ),
        DeclareLaunchArgument(
            "headless",
            default_value="true",
            description="Run only the Gazebo server (sensors render offscreen).",
        ),
        DeclareLaunchArgument(
            "use_stamped",
            default_value="false",
            description="Bridge cmd_vel as geometry_msgs/TwistStamped instead of Twist.",
        ),
    ]
    gazebo_headless = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(gz_sim_launch),
        launch_arguments={
            "gz_args": [*world_sdf, " -r -s --headless-rendering"],
            "on_exit_shutdown": "true",
        }.items(),
        condition=IfCondition(headless),
    )
    gazebo_gui = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(gz_sim_launch),
        launch_arguments={"gz_args": [*world_sdf, " -r"], "on_exit_shutdown": "true"}.items(),
        condition=UnlessCondition(headless),
    )
    bridges = [
        Node(
            package="ros_gz_bridge",
            executable="parameter_bridge",
            name="ros_gz_bridge",
            output="screen",
            parameters=[
                {
                    "config_file": PathJoinSubstitution([share, "gazebo", config]),
                    "use_sim_time": True,
                }
            ],
            condition=condition(use_stamped),
        )
        for config, condition in (
            ("bridge.yaml", UnlessCondition),
            ("bridge_stamped.yaml", IfCondition),
        )
    ]
    return LaunchDescription(
        [*arguments, gazebo_headless, gazebo_gui, *bridges, OpaqueFunction(function=_robot_nodes)]
    )
