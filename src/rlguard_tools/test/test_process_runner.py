import os

from rlguard_tools.process_runner import NodeSpec, format_parameter


def test_parameter_formatting():
    assert format_parameter(True) == "true"
    assert format_parameter(0.5) == "0.5"
    assert format_parameter("") == "''"
    assert format_parameter([1.0, 2.0]) == "[1.0, 2.0]"


def test_command_line_has_ros_args():
    spec = NodeSpec(
        module="pkg.node",
        name="n",
        params_files=["a.yaml"],
        parameters={"x": 1},
        remappings={"scan": "front/scan"},
    )
    cmd = spec.command()
    assert cmd[1:4] == ["-u", "-m", "pkg.node"]
    tail = cmd[cmd.index("--ros-args") :]
    assert tail == [
        "--ros-args", "-r", "__node:=n", "--params-file", "a.yaml",
        "-p", "x:=1", "-r", "scan:=front/scan",
    ]  # fmt: skip


def test_test_process_is_isolated_on_loopback():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100
