"""Static checks of the launch files (no `launch` install here; see sim_bringup.launch_check)."""

import textwrap
from pathlib import Path

import pytest

from sim_bringup.launch_check import check_launch_files

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
    assert "'known'" not in problems
    assert "absent.py" in problems and "does not exist" in problems
