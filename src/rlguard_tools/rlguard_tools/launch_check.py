"""Check ROS 2 launch files on a machine without `launch` or `launch_ros`.

The launch files are written for a real Jazzy install. Here each one is executed against
recording stand-ins of the `launch` and `launch_ros` APIs: `generate_launch_description`
runs, launch arguments take their defaults (or the values an including file passes),
`OpaqueFunction`s are called, includes are followed, and every branch of a condition is
walked. The check reports every launch argument without a description, every launch
configuration that is never declared, every include argument the included file does not
declare, every package, executable or file that does not exist, and every parameter a
node is given that its config YAML does not declare.

The stand-ins refuse what Jazzy's `launch` 3.4.3 and `launch_ros` 0.26.6 refuse: a name
those modules do not export, an argument that must be "some substitutions" (a str, a
substitution, or a flat list of them) given anything else (a nested list, say), and the
conditions Jazzy deprecates (they print a UserWarning at every run). The real `launch`
remains the truth; see test_real_launch.py for the opt-in run of the real thing.

    python -m rlguard_tools.launch_check launch/*.launch.py src/sim_bringup/launch/*.py
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlguard_tools.launch_stand_ins import LaunchContextStandIn, Recorded, launch_stand_ins

EXTERNAL_PACKAGES = frozenset({"ros_gz_sim", "ros_gz_bridge", "robot_state_publisher"})
# Parameters every ROS 2 node accepts without declaring them in its YAML.
BUILTIN_PARAMETERS = frozenset({"use_sim_time"})
# Module names whose attributes are replaced by recording stand-ins.


@dataclass
class LaunchReport:
    """What a check found: problems, and what the launch files start and include."""

    problems: list[str] = field(default_factory=list)
    nodes: list[tuple[str, str, str]] = field(default_factory=list)  # package, executable, name
    # Per node name (last started wins): the parameters its dictionaries set, in order, and
    # its remappings, with substitutions evaluated.
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    remappings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    external_packages: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


class LaunchChecker:
    """Executes launch files against stand-ins and checks what they reference."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(workspace).resolve()
        self.report = LaunchReport()
        self._packages = {
            p.name: p for p in (self.workspace / "src").iterdir() if (p / "package.xml").is_file()
        }
        self._depth = 0

    # -- workspace queries --------------------------------------------------------
    def problem(self, source: Path, message: str) -> None:
        """Record a problem found while checking `source`."""
        text = f"{_short(source, self.workspace)}: {message}"
        if text not in self.report.problems:
            self.report.problems.append(text)

    def share_directory(self, package: str, source: Path) -> Path:
        """Where a package's share directory is: the colcon install of this workspace."""
        if package in EXTERNAL_PACKAGES:
            self.report.external_packages.add(package)
            return Path(f"<external:{package}>")
        if package not in self._packages:
            self.problem(source, f"package '{package}' does not exist in the workspace")
            return Path(f"<missing:{package}>")
        return self.workspace / "install" / package / "share" / package

    def executables(self, package: str) -> set[str]:
        """console_scripts entry point names declared in a package's setup.py."""
        setup = self._packages[package] / "setup.py"
        names: set[str] = set()
        for node in ast.walk(ast.parse(setup.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "=" in node.value:
                name, _, target = node.value.partition("=")
                if ":" in target:
                    names.add(name.strip())
        return names

    def declared_parameters(self, node_name: str) -> set[str] | None:
        """Parameters documented in config/<node_name>.yaml, or None if there is none."""
        path = self.workspace / "config" / f"{node_name}.yaml"
        if not path.is_file():
            return None
        data = yaml.safe_load(path.read_text()) or {}
        params = (data.get(node_name) or {}).get("ros__parameters") or {}
        return set(_flatten(params))

    # -- walking ------------------------------------------------------------------
    def check_file(
        self,
        path: Path,
        arguments: Mapping[str, str] | None = None,
        fixed_by: tuple[Path, set[str]] | None = None,
    ) -> None:
        """Run one launch file's generate_launch_description and walk what it returns.

        `arguments` are the values an including file passes; `fixed_by` names that file and
        the arguments it passes as literals.
        """
        path = Path(path).resolve()
        self.report.files.add(_short(path, self.workspace))
        try:
            compile(path.read_text(), str(path), "exec")
        except SyntaxError as exc:
            self.problem(path, f"does not compile: {exc}")
            return
        tree = ast.parse(path.read_text())
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        generate = functions.get("generate_launch_description")
        if generate is None:
            self.problem(path, "defines no generate_launch_description()")
            return
        if not (
            generate.returns is not None and ast.unparse(generate.returns) == "LaunchDescription"
        ):
            self.problem(
                path, "generate_launch_description() is not annotated -> LaunchDescription"
            )
        with launch_stand_ins(lambda message: self.problem(path, message)):
            try:
                module = _load_module(path)
                description = module.generate_launch_description()
            except Exception as exc:  # what the real launch would fail with, too
                self.problem(path, f"fails with Jazzy's launch API: {type(exc).__name__}: {exc}")
                return
        context = LaunchContextStandIn(self, {}, path)
        declared = self._declared_arguments(description, path)
        for name, default in declared.items():
            context.launch_configurations[name] = default
        for name, value in (arguments or {}).items():
            if name not in declared:
                self.problem(path, f"is given launch argument '{name}' that it does not declare")
            elif fixed_by is not None and name in fixed_by[1]:
                self.problem(
                    fixed_by[0],
                    f"fixes launch argument '{name}' of {_short(path, self.workspace)} to "
                    f"'{value}': --show-args lists it, but a value given for it is ignored "
                    "(declare it here and pass LaunchConfiguration)",
                )
            context.launch_configurations[name] = value
        self._depth += 1
        try:
            self._walk(_entities(description), context)
        finally:
            self._depth -= 1

    def _declared_arguments(self, description: Recorded, path: Path) -> dict[str, str]:
        declared: dict[str, str] = {}
        for action in _all_actions(_entities(description)):
            if action.kind != "DeclareLaunchArgument":
                continue
            name = action.args[0] if action.args else action.kwargs.get("name")
            if not isinstance(name, str):
                self.problem(path, "a DeclareLaunchArgument name is not a literal string")
                continue
            if name in declared:
                self.problem(path, f"launch argument '{name}' is declared twice")
            if not action.kwargs.get("description"):
                self.problem(path, f"launch argument '{name}' has no description")
            default = action.kwargs.get("default_value")
            declared[name] = default if isinstance(default, str) else ""
        return declared

    def _walk(self, actions: Iterable[Any], context: LaunchContextStandIn) -> None:
        for action in actions:
            if not isinstance(action, Recorded):
                continue
            kind = action.kind
            if kind == "GroupAction":
                scoped = LaunchContextStandIn(self, context.launch_configurations, context.source)
                self._walk(action.args[0] if action.args else action.kwargs["actions"], scoped)
            elif kind == "OpaqueFunction":
                function = action.kwargs.get("function") or action.args[0]
                report = functools.partial(self.problem, context.source)
                with launch_stand_ins(report):
                    try:
                        produced = function(
                            context,
                            *action.kwargs.get("args", ()),
                            **action.kwargs.get("kwargs", {}),
                        )
                    except Exception as exc:
                        report(f"an OpaqueFunction fails: {type(exc).__name__}: {exc}")
                        produced = []
                self._walk(produced or [], context)
            elif kind == "IncludeLaunchDescription":
                self._include(action, context)
            elif kind == "Node":
                self._node(action, context)
            elif kind in ("PushROSNamespace", "PushRosNamespace", "SetRemap", "SetParameter"):
                for value in list(action.args) + list(action.kwargs.values()):
                    context.resolve(value)
            elif kind == "SetLaunchConfiguration":
                name = context.resolve(action.args[0] if action.args else action.kwargs["name"])
                context.launch_configurations[name] = context.resolve(
                    action.args[1] if len(action.args) > 1 else action.kwargs["value"]
                )
            condition = action.kwargs.get("condition")
            if isinstance(condition, Recorded):
                for value in condition.args:
                    context.resolve(value)

    def _include(self, action: Recorded, context: LaunchContextStandIn) -> None:
        source = action.args[0] if action.args else action.kwargs["launch_description_source"]
        location = context.resolve(
            source.args[0] if source.args else source.kwargs["launch_file_path"]
        )
        if location.startswith("<external:") or location.startswith("<missing:"):
            return
        path = Path(location)
        if not path.is_file():
            self.problem(
                context.source, f"includes '{_short(path, self.workspace)}', which does not exist"
            )
            return
        pairs = list(action.kwargs.get("launch_arguments", ()))
        arguments = {context.resolve(k): context.resolve(v) for k, v in pairs}
        # A literal value hides the included file's argument: --show-args lists it (includes'
        # arguments are listed too), yet what a user passes for it is ignored.
        fixed = {context.resolve(k) for k, v in pairs if isinstance(v, str)}
        if self._depth > 8:
            self.problem(context.source, "includes nest deeper than 8 levels")
            return
        self.check_file(_source_of(path, self.workspace), arguments, (context.source, fixed))

    def _node(self, action: Recorded, context: LaunchContextStandIn) -> None:
        package = context.resolve(action.kwargs.get("package"))
        executable = context.resolve(action.kwargs.get("executable"))
        name = context.resolve(action.kwargs.get("name")) or executable
        self.report.nodes.append((package, executable, name))
        self.report.parameters[name] = {
            context.resolve(key): _evaluated(value, context)
            for entry in action.kwargs.get("parameters", []) or []
            if isinstance(entry, Mapping)
            for key, value in entry.items()
        }
        self.report.remappings[name] = [
            (context.resolve(src), context.resolve(dst))
            for src, dst in action.kwargs.get("remappings", []) or []
        ]
        for key in ("arguments", "remappings", "namespace", "ros_arguments"):
            value = action.kwargs.get(key)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                for part in item if isinstance(item, tuple) else [item]:
                    context.resolve(part)
        if package in EXTERNAL_PACKAGES:
            self.report.external_packages.add(package)
            return
        if package not in self._packages:
            self.problem(
                context.source, f"node package '{package}' does not exist in the workspace"
            )
            return
        if executable not in self.executables(package):
            self.problem(context.source, f"package '{package}' has no executable '{executable}'")
        declared = self.declared_parameters(name)
        for entry in action.kwargs.get("parameters", []) or []:
            if isinstance(entry, Mapping):
                for key in entry:
                    key = context.resolve(key)
                    if (
                        declared is not None
                        and key not in declared
                        and key not in BUILTIN_PARAMETERS
                    ):
                        self.problem(
                            context.source,
                            f"node '{name}' is given parameter '{key}' "
                            f"that config/{name}.yaml does not declare",
                        )
            else:
                location = context.resolve(entry)
                if location and not location.startswith("<") and not Path(location).is_file():
                    self.problem(
                        context.source,
                        f"parameter file '{_short(Path(location), self.workspace)}' does not exist",
                    )


def check_launch_files(paths: Iterable[str | Path], workspace: str | Path) -> LaunchReport:
    """Check launch files of `workspace` (its packages must be colcon-built)."""
    checker = LaunchChecker(Path(workspace))
    for path in paths:
        checker.check_file(Path(path))
    return checker.report


# -- helpers ----------------------------------------------------------------------


def _evaluated(value: Any, context: LaunchContextStandIn) -> Any:
    """A parameter value with its substitutions evaluated (plain values as they are)."""
    if isinstance(value, Recorded):
        return context.resolve(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, Recorded) for v in value):
        return context.resolve(list(value))
    return value


def _flatten(params: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name


def _entities(description: Any) -> list[Any]:
    if isinstance(description, Recorded):
        return list(
            description.args[0]
            if description.args
            else description.kwargs.get("initial_entities", [])
        )
    return list(description or [])


def _all_actions(actions: Iterable[Any]) -> Iterator[Recorded]:
    for action in actions:
        if isinstance(action, Recorded):
            yield action
            if action.kind == "GroupAction":
                yield from _all_actions(action.args[0] if action.args else action.kwargs["actions"])


def _short(path: Path, workspace: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(workspace))
    except ValueError:
        return str(path)


def _source_of(path: Path, workspace: Path) -> Path:
    """The source file behind an installed (symlinked) launch file."""
    return Path(os.path.realpath(path))


def _load_module(path: Path) -> types.ModuleType:
    name = "_launch_check_" + path.stem.replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Check the launch files given on the command line; exit 1 on any problem."""
    args = sys.argv[1:] if argv is None else argv
    workspace = Path(os.environ.get("RLGUARD_WORKSPACE", Path.cwd()))
    report = check_launch_files(args, workspace)
    for package, executable, name in report.nodes:
        print(f"node {name}: {package}/{executable}")
    for problem in report.problems:
        print(f"PROBLEM {problem}")
    print(f"{len(report.files)} launch files, {len(report.problems)} problems")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
