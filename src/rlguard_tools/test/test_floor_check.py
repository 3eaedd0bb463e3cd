"""The floor check finds each broken fact in a small made-up workspace, and none in ours."""

from __future__ import annotations

import textwrap
from pathlib import Path

from rlguard_tools.floor_check import check_workspace, main

MANIFEST = """<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
{deps}
</package>
"""


def _package(root: Path, name: str, modules: dict[str, str], deps: str = "") -> None:
    package_dir = root / "src" / name
    (package_dir / name).mkdir(parents=True)
    (package_dir / name / "__init__.py").write_text("")
    (package_dir / "package.xml").write_text(MANIFEST.format(name=name, deps=deps))
    for relative, text in modules.items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _rules(root: Path) -> list[tuple[str, str]]:
    violations, _ = check_workspace(root)
    return sorted((v.rule, Path(v.path).name) for v in violations)


def test_a_clean_layering_passes(tmp_path: Path) -> None:
    _package(tmp_path, "rlguard_common", {"rlguard_common/geometry.py": "import math\n"})
    _package(
        tmp_path,
        "safety_controller",
        {
            "safety_controller/limits.py": "from rlguard_common.geometry import math\n",
            "safety_controller/safety_node.py": "import rclpy\nfrom . import limits\n",
        },
        deps="  <exec_depend>rlguard_common</exec_depend>",
    )
    assert _rules(tmp_path) == []
    assert main(["--root", str(tmp_path)]) == 0


def test_each_broken_fact_is_reported(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "rlguard_common",
        {
            # ground floor importing ROS and a core
            "rlguard_common/geometry.py": "import rclpy\nfrom safety_controller import limits\n",
        },
    )
    _package(
        tmp_path,
        "safety_controller",
        {
            # a core importing its node (upward), a tool (upward, undeclared) and a loop
            "safety_controller/limits.py": (
                "from safety_controller import safety_node\nfrom rlguard_tools import demo\n"
            ),
            "safety_controller/safety_node.py": "from safety_controller import limits\n",
            "test/safety_controller_test_support.py": "X = 1\n",
        },
        deps="  <exec_depend>rlguard_common</exec_depend>",
    )
    _package(
        tmp_path,
        "rlguard_tools",
        {
            "rlguard_tools/demo.py": "import std_msgs.msg\n",
            "test/test_demo.py": "from safety_controller_test_support import X\n",
        },
        deps="  <exec_depend>safety_controller</exec_depend>",
    )
    rules = _rules(tmp_path)
    assert ("ros-free", "geometry.py") in rules
    assert ("upward", "geometry.py") in rules
    assert ("undeclared", "geometry.py") in rules
    assert ("upward", "limits.py") in rules  # core -> node and core -> tools
    assert ("undeclared", "limits.py") in rules
    assert ("test-helper", "test_demo.py") in rules
    assert ("loop", "src") in rules  # limits <-> safety_node, and the package loop
    assert not any(name == "demo.py" for _, name in rules)  # tools may use ROS
    assert main(["--root", str(tmp_path)]) == 1


def test_lazy_and_relative_imports_count(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "sim_bringup",
        {
            "sim_bringup/sim_core.py": "def f():\n    from .sim_node import X\n    import rclpy\n",
            "sim_bringup/sim_node.py": "X = 1\n",
        },
    )
    rules = _rules(tmp_path)
    assert ("upward", "sim_core.py") in rules
    assert ("ros-free", "sim_core.py") in rules


def test_training_declares_through_pyproject(tmp_path: Path) -> None:
    _package(tmp_path, "rlguard_common", {"rlguard_common/world.py": "X = 1\n"})
    training = tmp_path / "src" / "rl_training"
    (training / "rl_training").mkdir(parents=True)
    (training / "rl_training" / "__init__.py").write_text("")
    (training / "rl_training" / "env.py").write_text("from rlguard_common.world import X\n")
    (training / "pyproject.toml").write_text('[tool.rlguard]\ndepends = ["rlguard_common"]\n')
    assert _rules(tmp_path) == []
    (training / "pyproject.toml").write_text("[tool.rlguard]\ndepends = []\n")
    assert _rules(tmp_path) == [("undeclared", "env.py")]


def test_this_workspace_keeps_its_floors(workspace_root: Path) -> None:
    violations, graph = check_workspace(workspace_root)
    assert [str(v) for v in violations] == []
    assert "sim_bringup" not in graph["safety_controller"]
    assert not any(
        "rlguard_tools" in deps for package, deps in graph.items() if package != "rlguard_tools"
    )
