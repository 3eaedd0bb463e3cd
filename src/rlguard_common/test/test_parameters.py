"""Node parameters as data: bounds, defaults, the node YAML, and their ROS descriptors."""

from pathlib import Path

import pytest

from rlguard_common.parameters import ParameterSpec, load_node_parameters, parameter_defaults

SPECS = {
    "rate_hz": ParameterSpec(20.0, "control rate (Hz)", (1.0, 100.0)),
    "beams": ParameterSpec(360, "beam count", (1, 4096)),
    "frame": ParameterSpec("odom", "frame", read_only=True),
}


def test_bounds_are_inclusive_and_only_apply_to_numbers():
    spec = SPECS["rate_hz"]
    assert spec.out_of_bounds("rate_hz", 1.0) is None
    assert spec.out_of_bounds("rate_hz", 100.0) is None
    assert "rate_hz must be in [1.0, 100.0]" in spec.out_of_bounds("rate_hz", 0.5)
    assert spec.out_of_bounds("rate_hz", "fast") is None  # the type check is ROS's
    assert SPECS["frame"].out_of_bounds("frame", "map") is None


def test_checked_values_take_the_parameter_type_or_are_refused_with_the_name():
    number = ParameterSpec(1.0, "a float", bounds=(0.0, 2.0))
    count = ParameterSpec(3, "an integer", bounds=(1, 10))
    flag = ParameterSpec(False, "a flag")
    assert number.checked("x", 1) == 1.0 and isinstance(number.checked("x", 1), float)
    assert count.checked("n", 4.0) == 4 and isinstance(count.checked("n", 4.0), int)
    assert flag.checked("f", True) is True
    assert ParameterSpec("a", "text").checked("s", "b") == "b"
    for spec, name, value, reason in (
        (number, "x", 2.5, r"x must be in \[0.0, 2.0\]"),
        (number, "x", float("nan"), "x must be finite"),
        (number, "x", True, "x must be a number"),
        (number, "x", "1", "x must be a number"),
        (count, "n", 2.5, "n must be an integer"),
        (count, "n", 11, r"n must be in \[1, 10\]"),
        (flag, "f", 1, "f must be true or false"),
    ):
        with pytest.raises(ValueError, match=reason):
            spec.checked(name, value)


def test_the_yaml_lays_over_the_defaults(tmp_path: Path):
    path = tmp_path / "node.yaml"
    path.write_text("node:\n  ros__parameters:\n    rate_hz: 10.0\n    use_sim_time: true\n")
    assert load_node_parameters(path, "node", SPECS) == {
        **parameter_defaults(SPECS),
        "rate_hz": 10.0,
        "use_sim_time": True,
    }
    assert load_node_parameters(path, "node") == {"rate_hz": 10.0, "use_sim_time": True}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("other:\n  ros__parameters: {}\n", "no 'node: ros__parameters:'"),
        ("node:\n  ros__parameters: [1, 2]\n", "is not a mapping"),
        ("node:\n  ros__parameters:\n    typo_hz: 1.0\n", "unknown node parameter(s): typo_hz"),
        ("node: [", "cannot read"),
    ],
)
def test_a_bad_yaml_names_the_file_and_the_reason(tmp_path: Path, text: str, reason: str):
    path = tmp_path / "node.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="node.yaml") as error:
        load_node_parameters(path, "node", SPECS)
    assert reason in str(error.value)


def test_descriptors_carry_description_range_and_read_only():
    node_support = pytest.importorskip("rlguard_common.node_support")
    rate = node_support.parameter_descriptor(SPECS["rate_hz"])
    assert rate.description == "control rate (Hz)"
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) == (
        1.0,
        100.0,
    )
    beams = node_support.parameter_descriptor(SPECS["beams"])
    assert (beams.integer_range[0].from_value, beams.integer_range[0].to_value) == (1, 4096)
    assert not beams.floating_point_range
    assert node_support.parameter_descriptor(SPECS["frame"]).read_only


def test_node_support_declares_every_parameter_of_a_table():
    rclpy = pytest.importorskip("rclpy")
    from rlguard_common.node_support import declare_parameters

    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("parameters_probe", context=context)
        try:
            values = declare_parameters(node, SPECS)
            assert values == parameter_defaults(SPECS)
            result = node.set_parameters([rclpy.parameter.Parameter("rate_hz", value=500.0)])[0]
            assert not result.successful  # the descriptor's range refuses it
            assert node.get_parameter("rate_hz").value == 20.0
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
