"""Static checks of the launch files (no `launch` install needed; see rlguard_tools.launch_check).

The real launch run is test_real_launch.py (opt-in where `launch` and `launch_ros` import).
"""

import textwrap
from pathlib import Path

import pytest

from rlguard_tools.launch_check import LaunchChecker, check_launch_files

WORKSPACE = Path(__file__).resolve().parents[3]
TOP_LEVEL = sorted((WORKSPACE / "launch").glob("*.launch.py"))
PACKAGE_LAUNCH = sorted((WORKSPACE / "src" / "sim_bringup" / "launch").glob("*.launch.py"))
STACK = {"rl_policy_node", "hybrid_fallback", "safety_controller"}

needs_build = pytest.mark.skipif(
    not (WORKSPACE / "install" / "sim_bringup" / "share").is_dir(),
    reason="launch files resolve installed share paths: run `make build` (make test does)",
)


@needs_build
def test_shipped_launch_files_reference_only_what_exists():
    assert {p.name for p in TOP_LEVEL} == {"stack.launch.py", "sim.launch.py", "robot.launch.py"}
    report = check_launch_files(TOP_LEVEL + PACKAGE_LAUNCH, WORKSPACE)
    assert report.problems == []
    started = {name for _, _, name in report.nodes}
    assert STACK <= started
    assert "mujoco_sim" in started


@needs_build
def test_sim_launch_includes_both_simulators_and_the_stack():
    report = check_launch_files([WORKSPACE / "launch" / "sim.launch.py"], WORKSPACE)
    assert report.problems == []
    assert {"launch/stack.launch.py", "launch/sim.launch.py"} <= report.files
    assert any("gazebo.launch.py" in f for f in report.files)
    assert any("mujoco.launch.py" in f for f in report.files)
    assert "ros_gz_sim" in report.external_packages


BROKEN = """
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("documented", default_value="1", description="fine"),
        DeclareLaunchArgument("bare", default_value="1"),
        Node(package="no_such_package", executable="x"),
        Node(package="safety_controller", executable="no_such_exe", name="safety_controller"),
        Node(
            package="safety_controller",
            executable="safety_controller",
            name="safety_controller",
            parameters=["/nonexistent/params.yaml", {"no_such_parameter": 1, "use_sim_time": True}],
            arguments=[LaunchConfiguration("undeclared")],
        ),
    ])
"""


def _problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "broken.launch.py"
    path.write_text(textwrap.dedent(text))
    return check_launch_files([path], WORKSPACE).problems


def test_checker_reports_each_kind_of_problem(tmp_path):
    problems = "\n".join(_problems_of(tmp_path, BROKEN))
    assert "not annotated -> LaunchDescription" in problems
    assert "launch argument 'bare' has no description" in problems
    assert "'documented'" not in problems
    assert "package 'no_such_package' does not exist" in problems
    assert "has no executable 'no_such_exe'" in problems
    assert "parameter file '/nonexistent/params.yaml' does not exist" in problems
    assert "launch configuration 'undeclared' is never declared" in problems
    if (WORKSPACE / "config" / "safety_controller.yaml").is_file():
        assert "parameter 'no_such_parameter'" in problems
    assert "use_sim_time" not in problems


def test_checker_reports_syntax_errors_and_bad_includes(tmp_path):
    assert "does not compile" in _problems_of(tmp_path, "def generate_launch_description(:\n")[0]
    (tmp_path / "child.launch.py").write_text(
        textwrap.dedent(
            """
            from launch import LaunchDescription
            from launch.actions import DeclareLaunchArgument

            def generate_launch_description() -> LaunchDescription:
                return LaunchDescription(
                    [DeclareLaunchArgument("known", default_value="", description="d")]
                )
            """
        )
    )
    parent = f"""
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    def generate_launch_description() -> LaunchDescription:
        return LaunchDescription([
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource("{tmp_path / "child.launch.py"}"),
                launch_arguments={{"known": "1", "typo": "2"}}.items(),
            ),
            IncludeLaunchDescription(PythonLaunchDescriptionSource("{tmp_path / "absent.py"}")),
        ])
    """
    problems = "\n".join(_problems_of(tmp_path, parent))
    assert "given launch argument 'typo' that it does not declare" in problems
    assert "argument 'known' that it does not declare" not in problems
    assert "absent.py" in problems and "does not exist" in problems


# -- issue 19: what the real `launch` (Jazzy: launch 3.4.3, launch_ros 0.26.6) refuses ------

JAZZY_REFUSES = """
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import LaunchConfigurationEquals
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    world = LaunchConfiguration("world")
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value="empty", description="d"),
        Node(
            package="sim_bringup",
            executable="mujoco_sim",
            name="mujoco_sim",
            arguments=[PathJoinSubstitution(["worlds", [world, ".sdf"]])],
            condition=LaunchConfigurationEquals("world", "empty"),
        ),
    ])
"""


def test_checker_refuses_a_nested_list_and_deprecated_conditions(tmp_path):
    problems = "\n".join(_problems_of(tmp_path, JAZZY_REFUSES))
    assert "PathJoinSubstitution(substitutions=...) holds an item of type 'list'" in problems
    assert "LaunchConfigurationEquals is deprecated in Jazzy" in problems


def test_checker_refuses_names_and_operators_jazzy_lacks(tmp_path):
    missing = """
    from launch import LaunchDescription
    from launch.substitutions import StringJoinSubstitution

    def generate_launch_description() -> LaunchDescription:
        return LaunchDescription([])
    """
    problems = "\n".join(_problems_of(tmp_path, missing))
    assert "fails with Jazzy's launch API" in problems and "StringJoinSubstitution" in problems
    added = """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration

    def generate_launch_description() -> LaunchDescription:
        path = LaunchConfiguration("world") + ".sdf"  # a real Substitution has no "+"
        return LaunchDescription([DeclareLaunchArgument("world", description="d")])
    """
    assert "TypeError" in "\n".join(_problems_of(tmp_path, added))


def test_checker_refuses_an_argument_an_include_fixes(tmp_path):
    (tmp_path / "child.launch.py").write_text(
        textwrap.dedent(
            """
            from launch import LaunchDescription
            from launch.actions import DeclareLaunchArgument

            def generate_launch_description() -> LaunchDescription:
                return LaunchDescription(
                    [DeclareLaunchArgument("use_sim_time", default_value="false", description="d")]
                )
            """
        )
    )
    parent = f"""
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    def generate_launch_description() -> LaunchDescription:
        return LaunchDescription([
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource("{tmp_path / "child.launch.py"}"),
                launch_arguments={{"use_sim_time": "true"}}.items(),
            ),
        ])
    """
    problems = "\n".join(_problems_of(tmp_path, parent))
    assert "fixes launch argument 'use_sim_time'" in problems


def _launched(path: str, **arguments: str):
    """The report of one top-level launch file run with `arguments` (as on the command line)."""
    checker = LaunchChecker(WORKSPACE)
    checker.check_file(WORKSPACE / path, arguments)
    assert checker.report.problems == []
    return checker.report


@needs_build
def test_the_shipped_policy_is_the_default_model():
    models = WORKSPACE / "install" / "rl_policy_node" / "share" / "rl_policy_node" / "models"
    for path in ("launch/sim.launch.py", "launch/robot.launch.py", "launch/stack.launch.py"):
        model = _launched(path).parameters["rl_policy_node"]["model_path"]
        assert model == "nav_policy.pt", path
        # Relative: the node finds it in the installed share, or the workspace's models/.
        assert (models / model).is_file() and (WORKSPACE / "models" / model).is_file()
    assert (
        "model_path"
        not in _launched("launch/sim.launch.py", model_path="").parameters["rl_policy_node"]
    )


@needs_build
@pytest.mark.parametrize(
    ("path", "default"),
    [
        ("launch/robot.launch.py", True),
        ("launch/sim.launch.py", False),
        ("launch/stack.launch.py", False),
    ],
)
def test_only_the_robot_requires_a_gated_model(path, default):
    """A real robot runs only promoted models; the simulator and tests run any model."""
    for given, expected in ((None, default), ("true", True), ("false", False)):
        report = _launched(path, **({} if given is None else {"require_gated_model": given}))
        assert report.parameters["rl_policy_node"]["require_gated_model"] is expected, given


@needs_build
def test_the_simulator_sends_no_goals_unless_asked():
    assert _launched("launch/sim.launch.py").parameters["mujoco_sim"]["publish_goals"] is False
    asked = _launched("launch/sim.launch.py", publish_goals="true")
    assert asked.parameters["mujoco_sim"]["publish_goals"] is True
    bare = _launched("src/sim_bringup/launch/mujoco.launch.py")
    assert bare.parameters["mujoco_sim"]["publish_goals"] is False


@needs_build
@pytest.mark.parametrize(
    ("path", "default"), [("launch/sim.launch.py", True), ("launch/robot.launch.py", False)]
)
def test_use_sim_time_is_honoured(path, default):
    for given, expected in ((None, default), ("true", True), ("false", False)):
        report = _launched(path, **({} if given is None else {"use_sim_time": given}))
        for name in STACK:
            assert report.parameters[name]["use_sim_time"] is expected, (path, given, name)


@needs_build
def test_a_goal_sent_once_has_one_owner():
    """The arbiter alone reads goal_pose; the policy node reads the goal it hands on."""
    report = _launched("launch/sim.launch.py")
    assert report.remappings["rl_policy_node"] == [("goal_pose", "hybrid/goal")]
    assert all(report.remappings[name] == [] for name in STACK - {"rl_policy_node"})


# Parameters that describe the robot, and the nodes whose config declares them. Under
# launch every one comes from the robot profile; the YAML defaults must agree as well.
ROBOT_PARAMETERS = {
    "max_velocity": ("rl_policy_node", "hybrid_fallback", "safety_controller"),
    "min_velocity[1]": ("hybrid_fallback", "safety_controller"),  # angular (DWA never reverses)
    "robot_radius": ("hybrid_fallback", "safety_controller"),
    "lidar_x": ("hybrid_fallback", "safety_controller"),
    "lidar_y": ("hybrid_fallback", "safety_controller"),
    "lidar_yaw": ("hybrid_fallback", "safety_controller"),
    "base_frame_id": ("safety_controller", "mujoco_sim"),
    "odom_frame_id": ("hybrid_fallback", "mujoco_sim"),
}


def _robot_value(parameters: dict, key: str):
    name, _, index = key.partition("[")
    value = parameters[name]
    return value[int(index[:-1])] if index else value


def test_config_files_describe_one_robot():
    import yaml

    for key, nodes in ROBOT_PARAMETERS.items():
        values = {}
        for node in nodes:
            data = yaml.safe_load((WORKSPACE / "config" / f"{node}.yaml").read_text())
            values[node] = _robot_value(data[node]["ros__parameters"], key)
        assert len({str(v) for v in values.values()}) == 1, (key, values)


@needs_build
@pytest.mark.parametrize("robot", ["default", "lidar270"])
def test_one_robot_profile_feeds_every_node(robot):
    from rlguard_common.robot_parameters import robot_parameter_overrides

    report = _launched("launch/sim.launch.py", robot=robot)
    profile = robot_parameter_overrides(robot)
    for key, nodes in ROBOT_PARAMETERS.items():
        values = {node: _robot_value(report.parameters[node], key) for node in nodes}
        assert len({str(v) for v in values.values()}) == 1, (key, values)
        assert str(next(iter(values.values()))) == str(_robot_value(profile[nodes[0]], key))
