"""Recording stand-ins of Jazzy's `launch` and `launch_ros` APIs, for `launch_check`.

A stand-in module exports what its Jazzy module exports (launch 3.4.3, launch_ros 0.26.6)
and nothing else; each exported name is a class that records how it was constructed
(`Recorded`) and reports what the real class would refuse or warn about: an argument that
must be "some substitutions" given anything else, or a condition Jazzy deprecates.
`LaunchContextStandIn` evaluates recorded substitutions with the launch configurations in
scope; `launch_stand_ins` installs the stand-in modules while launch files are loaded.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

STUB_MODULES = (
    "launch",
    "launch.actions",
    "launch.conditions",
    "launch.launch_description_sources",
    "launch.substitutions",
    "launch_ros",
    "launch_ros.actions",
    "launch_ros.substitutions",
    "launch_ros.descriptions",
    "launch_ros.parameter_descriptions",
)
# What each stubbed module exports in Jazzy (launch 3.4.3, launch_ros 0.26.6): importing
# anything else fails there, so it is a problem here.
JAZZY_API: dict[str, frozenset[str]] = {
    "launch": frozenset(
        "Action Condition Event EventHandler InvalidLaunchFileError LaunchContext "
        "LaunchDescription LaunchDescriptionEntity LaunchDescriptionSource LaunchIntrospector "
        "LaunchService SomeEntitiesType SomeEntitiesType_types_tuple SomeSubstitutionsType "
        "SomeSubstitutionsType_types_tuple Substitution actions conditions descriptions events "
        "frontend logging substitutions".split()
    ),
    "launch.actions": frozenset(
        "AppendEnvironmentVariable DeclareLaunchArgument EmitEvent ExecuteLocal ExecuteProcess "
        "GroupAction IncludeLaunchDescription LogInfo OpaqueCoroutine OpaqueFunction "
        "PopEnvironment PopLaunchConfigurations PushEnvironment PushLaunchConfigurations "
        "RegisterEventHandler ResetEnvironment ResetLaunchConfigurations SetEnvironmentVariable "
        "SetLaunchConfiguration Shutdown TimerAction UnregisterEventHandler "
        "UnsetEnvironmentVariable UnsetLaunchConfiguration".split()
    ),
    "launch.conditions": frozenset(
        "IfCondition InvalidConditionExpressionError LaunchConfigurationEquals "
        "LaunchConfigurationNotEquals UnlessCondition evaluate_condition_expression".split()
    ),
    "launch.launch_description_sources": frozenset(
        "AnyLaunchDescriptionSource FrontendLaunchDescriptionSource "
        "InvalidFrontendLaunchFileError InvalidLaunchFileError InvalidPythonLaunchFileError "
        "PythonLaunchDescriptionSource get_launch_description_from_any_launch_file "
        "get_launch_description_from_frontend_launch_file "
        "get_launch_description_from_python_launch_file load_python_launch_file_as_module".split()
    ),
    "launch.substitutions": frozenset(
        "AllSubstitution AndSubstitution AnonName AnySubstitution Command EnvironmentVariable "
        "EqualsSubstitution FileContent FindExecutable IfElseSubstitution LaunchConfiguration "
        "LaunchLogDir LocalSubstitution NotEqualsSubstitution NotSubstitution OrSubstitution "
        "PathJoinSubstitution PythonExpression SubstitutionFailure TextSubstitution "
        "ThisLaunchFile ThisLaunchFileDir".split()
    ),
    "launch_ros": frozenset(
        "actions descriptions event_handlers events ros_adapters substitutions".split()
    ),
    "launch_ros.actions": frozenset(
        "ComposableNodeContainer LifecycleNode LifecycleTransition LoadComposableNodes Node "
        "PushROSNamespace PushRosNamespace ROSTimer RosTimer SetParameter SetParametersFromFile "
        "SetROSLogDir SetRemap SetUseSimTime".split()
    ),
    "launch_ros.substitutions": frozenset(
        "ExecutableInPackage FindPackage FindPackagePrefix FindPackageShare Parameter".split()
    ),
    "launch_ros.descriptions": frozenset(
        "ComposableNode Parameter ParameterFile ParameterValue".split()
    ),
    "launch_ros.parameter_descriptions": frozenset(
        "Parameter ParameterFile ParameterValue".split()
    ),
}
# Substitution classes: what a "some substitutions" argument may hold besides str.
SUBSTITUTION_KINDS = (
    JAZZY_API["launch.substitutions"] | JAZZY_API["launch_ros.substitutions"] | {"Substitution"}
) - {"SubstitutionFailure"}
# Arguments Jazzy normalizes as "some substitutions" (str | Substitution | a flat iterable of
# them), by class: the positional parameter names in order, and which of them (or keyword
# arguments) hold one such value ("one") or an iterable of such values ("each").
SUBSTITUTION_ARGUMENTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "LaunchConfiguration": (("variable_name",), {"variable_name": "one"}),
    "PathJoinSubstitution": (("substitutions",), {"substitutions": "one"}),
    "PythonExpression": (("expression",), {"expression": "one"}),
    "TextSubstitution": ((), {}),
    "EnvironmentVariable": (("name",), {"name": "one", "default_value": "one"}),
    "FindPackageShare": (("package",), {"package": "one"}),
    "FindPackagePrefix": (("package",), {"package": "one"}),
    "IfCondition": (("predicate_expression",), {"predicate_expression": "one"}),
    "UnlessCondition": (("predicate_expression",), {"predicate_expression": "one"}),
    "DeclareLaunchArgument": (("name",), {"default_value": "one"}),
    "SetLaunchConfiguration": (("name", "value"), {"name": "one", "value": "one"}),
    "PythonLaunchDescriptionSource": (("launch_file_path",), {"launch_file_path": "one"}),
    "PushROSNamespace": (("namespace",), {"namespace": "one"}),
    "PushRosNamespace": (("namespace",), {"namespace": "one"}),
    "SetRemap": (("src", "dst"), {"src": "one", "dst": "one"}),
    "Node": (
        ("executable", "package", "name", "namespace"),
        {
            "executable": "one",
            "package": "one",
            "name": "one",
            "namespace": "one",
            "exec_name": "one",
            "arguments": "each",
            "ros_arguments": "each",
        },
    ),
    "ExecuteProcess": ((), {"cmd": "each"}),
}
# Deprecated in Jazzy: each use prints a UserWarning.
DEPRECATED = {
    "LaunchConfigurationEquals": (
        "IfCondition(EqualsSubstitution(LaunchConfiguration(name), value))"
    ),
    "LaunchConfigurationNotEquals": (
        "IfCondition(NotEqualsSubstitution(LaunchConfiguration(name), value))"
    ),
}
# Problems found while stand-ins are constructed go to the innermost reporter.
_REPORTERS: list[Any] = []


class Recorded:
    """A stand-in for any launch API object: remembers how it was constructed."""

    kind = "Recorded"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        if _REPORTERS:
            for problem in _construction_problems(self.kind, args, kwargs):
                _REPORTERS[-1](problem)

    def perform(self, context: LaunchContextStandIn) -> str:
        """Evaluate as a substitution in `context`."""
        return context.resolve(self)

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(map(repr, self.args))})"


def _recorder(name: str) -> type[Recorded]:
    return type(name, (Recorded,), {"kind": name})


def _is_substitution(value: Any) -> bool:
    return isinstance(value, Recorded) and value.kind in SUBSTITUTION_KINDS


def _substitutions_problem(value: Any) -> str | None:
    """Why Jazzy's normalize_to_list_of_substitutions refuses `value`, or None."""
    if isinstance(value, str) or _is_substitution(value):
        return None
    if not isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} ({value!r}) is not a str or substitution"
    for item in value:
        if not (isinstance(item, str) or _is_substitution(item)):
            kind = item.kind if isinstance(item, Recorded) else type(item).__name__
            return (
                f"holds an item of type '{kind}' where launch 3.4.3 accepts only a str or "
                "a substitution (a nested list needs a newer launch)"
            )
    return None


def _construction_problems(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """What the real class would refuse (or warn about) when constructed like this."""
    problems = []
    if kind in DEPRECATED:
        problems.append(
            f"{kind} is deprecated in Jazzy (a UserWarning at every run): use {DEPRECATED[kind]}"
        )
    positional, rules = SUBSTITUTION_ARGUMENTS.get(kind, ((), {}))
    given = {**dict(zip(positional, args, strict=False)), **kwargs}
    for name, rule in rules.items():
        value = given.get(name)
        if value is None:
            continue
        values = [value] if rule == "one" else list(value)
        for item in values:
            problem = _substitutions_problem(item)
            if problem:
                problems.append(f"{kind}({name}=...) {problem}")
                break
    launch_arguments = kwargs.get("launch_arguments")
    if kind == "IncludeLaunchDescription" and not isinstance(launch_arguments, Iterator):
        for pair in launch_arguments or ():
            for item in pair:
                problem = _substitutions_problem(item)
                if problem:
                    problems.append(f"IncludeLaunchDescription launch argument {problem}")
    return problems


class LaunchCheckerLike(Protocol):
    """What a launch context stand-in asks of the checker that runs it."""

    def problem(self, source: Path, message: str) -> None:
        """Record a problem found while checking `source`."""

    def share_directory(self, package: str, source: Path) -> Path:
        """Where a package's share directory is."""


class LaunchContextStandIn:
    """The launch configurations in scope, and the workspace to resolve packages in."""

    def __init__(self, checker: LaunchCheckerLike, configurations: Mapping[str, str], source: Path):
        self.checker = checker
        self.launch_configurations = dict(configurations)
        self.source = source

    def resolve(self, value: Any) -> str:
        """The text a substitution (or list of them) evaluates to."""
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return "".join(self.resolve(v) for v in value)
        if not isinstance(value, Recorded):
            return str(value)
        kind = value.kind
        if kind == "LaunchConfiguration":
            name = self.resolve(value.args[0] if value.args else value.kwargs["variable_name"])
            if name not in self.launch_configurations:
                default = value.kwargs.get("default")
                if default is None:
                    self.checker.problem(
                        self.source, f"launch configuration '{name}' is never declared"
                    )
                    return ""
                return self.resolve(default)
            return self.launch_configurations[name]
        if kind == "TextSubstitution":
            return str(value.kwargs.get("text", value.args[0] if value.args else ""))
        if kind == "PathJoinSubstitution":
            parts = value.args[0] if value.args else value.kwargs["substitutions"]
            return os.path.join(*[self.resolve(p) for p in parts])
        if kind in ("FindPackageShare", "FindPackagePrefix"):
            package = self.resolve(value.args[0] if value.args else value.kwargs["package"])
            return str(self.checker.share_directory(package, self.source))
        if kind == "EnvironmentVariable":
            return os.environ.get(
                self.resolve(value.args[0]), self.resolve(value.kwargs.get("default_value", ""))
            )
        if kind in ("EqualsSubstitution", "NotEqualsSubstitution"):
            given = {**dict(zip(("left", "right"), value.args, strict=False)), **value.kwargs}
            equal = self.resolve(given.get("left")) == self.resolve(given.get("right"))
            return str(equal if kind == "EqualsSubstitution" else not equal).lower()
        if kind == "PythonExpression":
            return ""  # evaluated only by a real launch
        self.checker.problem(self.source, f"cannot evaluate substitution {kind}")
        return ""


@contextmanager
def launch_stand_ins(report: Any = None) -> Iterator[None]:
    """Install recording stand-ins for the launch modules while loading launch files.

    A stand-in module exports what its Jazzy module exports and nothing else; problems
    found while stand-ins are constructed go to `report(message)`.
    """
    saved = {name: sys.modules.get(name) for name in STUB_MODULES}
    for name in STUB_MODULES:
        module = types.ModuleType(name)
        # A module-level __getattr__ (PEP 562), and a __path__ so its submodules import.
        vars(module).update(__getattr__=stand_in_getattr(name), __path__=[])
        sys.modules[name] = module
    if report is not None:
        _REPORTERS.append(report)
    try:
        yield
    finally:
        if report is not None:
            _REPORTERS.pop()
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def stand_in_getattr(module_name: str) -> Any:
    """Module attribute lookup: a recording class per name Jazzy's module exports."""
    cache: dict[str, Any] = {}
    exported = JAZZY_API.get(module_name, frozenset())

    def lookup(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr not in exported:
            raise AttributeError(
                f"module '{module_name}' has no attribute '{attr}' in Jazzy "
                "(launch 3.4.3, launch_ros 0.26.6)"
            )
        if attr not in cache:
            submodule = f"{module_name}.{attr}"
            cache[attr] = sys.modules[submodule] if submodule in sys.modules else _recorder(attr)
        return cache[attr]

    return lookup
