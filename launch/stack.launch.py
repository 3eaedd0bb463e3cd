"""The rlguard stack: rl_policy_node -> hybrid_fallback -> safety_controller.

Each node loads its YAML from the workspace config/ (installed into its package's share
directory), then the optional `params_file` overrides, then the launch arguments and the
robot profile's values.

The arbiter owns the goal: `hybrid_fallback` reads `goal_pose` (the user, RViz) and hands
every accepted goal on to the policy node on `hybrid/goal` (latched), so a goal published
once reaches both.

    ros2 launch launch/stack.launch.py use_sim_time:=true
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushROSNamespace
from launch_ros.substitutions import FindPackageShare

# (package, executable, node name); each node's YAML is config/<node name>.yaml.
STACK_NODES = (
    ("rl_policy_node", "rl_policy_node", "rl_policy_node"),
    ("hybrid_fallback", "hybrid_fallback", "hybrid_fallback"),
    ("safety_controller", "safety_controller", "safety_controller"),
)
# The shipped policy; relative, so the policy node finds it in its models_dir (the installed
# share/rl_policy_node/models, else the workspace's models/).
DEFAULT_MODEL = "nav_policy.pt"


def _as_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _stack_nodes(context: LaunchContext) -> list[Node]:
    use_sim_time = _as_bool(LaunchConfiguration("use_sim_time").perform(context))
    use_stamped = _as_bool(LaunchConfiguration("use_stamped").perform(context))
    model_path = LaunchConfiguration("model_path").perform(context)
    params_file = LaunchConfiguration("params_file").perform(context)
    robot = LaunchConfiguration("robot").perform(context)
    log_level = LaunchConfiguration("log_level").perform(context)
    require_gated = _as_bool(LaunchConfiguration("require_gated_model").perform(context))

    # The robot profile (config/robots/<robot>.yaml) sets footprint, limits and lidar
    # mount for every node; rlguard_common owns the profile format.
    from rlguard_common.robot_parameters import robot_parameter_overrides
    from rlguard_common.topics import STACK_REMAPPINGS

    overrides = robot_parameter_overrides(robot)
    overrides["rl_policy_node"] = {**overrides.get("rl_policy_node", {})}
    if model_path:
        overrides["rl_policy_node"]["model_path"] = model_path
    overrides["rl_policy_node"]["require_gated_model"] = require_gated
    overrides.setdefault("safety_controller", {})["enable_stamped_cmd_vel"] = use_stamped

    nodes = []
    for package, executable, name in STACK_NODES:
        parameters: list[object] = [
            FindPackageShare(package).perform(context) + f"/config/{name}.yaml"
        ]
        if params_file:
            parameters.append(params_file)
        parameters.append({"use_sim_time": use_sim_time, **overrides.get(name, {})})
        nodes.append(
            Node(
                package=package,
                executable=executable,
                name=name,
                output="screen",
                parameters=parameters,
                remappings=list(STACK_REMAPPINGS.get(name, {}).items()),
                arguments=["--ros-args", "--log-level", log_level],
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    """Launch the policy node, the arbiter with its DWA fallback, and the safety controller."""
    arguments = [
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of every stack node (fleets)."
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="Use the /clock topic as time."
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value=DEFAULT_MODEL,
            description="Policy file; relative paths resolve against the policy node's "
            "models_dir (installed share/rl_policy_node/models, else the workspace models/). "
            "Default: the shipped policy. Empty keeps the YAML's model_path ('' there: no "
            "model, the fallback drives).",
        ),
        DeclareLaunchArgument(
            "require_gated_model",
            default_value="false",
            description="rl_policy_node refuses a model without a passed deployment gate for "
            "its own weights (rl_training promote records one). robot.launch.py: true.",
        ),
        DeclareLaunchArgument(
            "robot",
            default_value="default",
            description="Robot profile name (config/robots/<robot>.yaml).",
        ),
        DeclareLaunchArgument(
            "use_stamped",
            default_value="false",
            description="Publish cmd_vel as TwistStamped instead of Twist.",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value="",
            description="Optional YAML applied on top of each node's config (keyed by node name).",
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", description="Log level of the stack nodes."
        ),
    ]
    stack = GroupAction(
        [
            PushROSNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=_stack_nodes),
        ]
    )
    return LaunchDescription([*arguments, stack])
