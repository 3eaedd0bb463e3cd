"""Checks the import graph of the workspace against the floors of ARCHITECTURE.md.

    python -m rlguard_tools.floor_check [--root WORKSPACE] [--graph]

Floors, from the ground up (a module imports only its own floor or below):

1. ground: ``rlguard_common`` (ROS-free), except ``rlguard_common.node_support``;
2. cores: every other module of the robot packages;
3. nodes: the node modules listed in `NODE_MODULES` (and ``rlguard_common.node_support``,
   the ROS side they share);
4. training: ``rl_training``;
5. tools: ``rlguard_tools``.

The facts checked, each reported with file and line:

- no module imports a module on a higher floor;
- no ground-floor, core or training module imports ROS (rclpy, message or service
  packages, launch);
- no import loop between modules or between packages;
- every import of another workspace package is declared: ``package.xml`` (``depend``,
  ``exec_depend``; ``test_depend`` for tests) or, for rl_training, which colcon ignores,
  ``[tool.rlguard] depends`` in its pyproject.toml;
- no test imports another package's test helper.

Imports inside functions count like top-level ones: a lazy import is still a dependency.
Only the standard library is used, so ``make lint`` runs this before anything is built.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

GROUND, CORE, NODE, TRAINING, TOOLS = 1, 2, 3, 4, 5
FLOOR_NAMES = {GROUND: "ground", CORE: "core", NODE: "node", TRAINING: "training", TOOLS: "tools"}
PACKAGE_FLOORS = {
    "rlguard_common": GROUND,
    "rl_policy_node": CORE,
    "safety_controller": CORE,
    "hybrid_fallback": CORE,
    "sim_bringup": CORE,
    "rl_training": TRAINING,
    "rlguard_tools": TOOLS,
}
# Modules on the node floor: the ROS shells, and the ROS side they share.
NODE_MODULES = frozenset(
    {
        "rlguard_common.node_support",
        "rl_policy_node.policy_node",
        "rl_policy_node.threaded_executor",
        "safety_controller.safety_node",
        "hybrid_fallback.hybrid_node",
        "sim_bringup.sim_node",
    }
)
ROS_PACKAGES = frozenset(
    {"rclpy", "rcl_interfaces", "rosgraph_msgs", "std_srvs", "launch", "launch_ros", "tf2_ros"}
)
ROS_FREE_FLOORS = (GROUND, CORE, TRAINING)
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "build_export_depend")


@dataclass(frozen=True)
class Violation:
    """One broken fact: where, which rule, and what."""

    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


@dataclass
class SourceFile:
    """A Python file of a package: its module name, kind and imports."""

    path: Path
    package: str
    module: str | None  # dotted name of a package module; None for tests and bench scripts
    kind: str  # "module", "test", "test_helper", "bench" or "launch"
    imports: list[tuple[str, int]] = field(default_factory=list)  # (dotted name, line)


def is_ros_import(name: str) -> bool:
    """Whether a dotted import name belongs to ROS (client library, messages, launch)."""
    top = name.split(".")[0]
    return top in ROS_PACKAGES or top.endswith("_msgs") or top.endswith("_srvs")


def module_floor(module: str) -> int | None:
    """The floor of a workspace module (None when it is not a workspace package's)."""
    package = module.split(".")[0]
    floor = PACKAGE_FLOORS.get(package)
    if floor is None:
        return None
    if any(module == m or module.startswith(m + ".") for m in NODE_MODULES):
        return NODE
    return floor


def _imports(tree: ast.AST, module: str | None, is_package: bool) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level and module is not None:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix, node.lineno
            for alias in node.names:
                yield f"{prefix}.{alias.name}", node.lineno


def scan_package(package_dir: Path) -> list[SourceFile]:
    """Every Python file of one package directory under src/, with its imports."""
    package = package_dir.name
    files: list[SourceFile] = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        top = relative.parts[0]
        if top == package:
            parts = list(relative.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            module: str | None = ".".join(parts)
            kind = "module"
        elif top == "test":
            module, is_package = None, False
            kind = (
                "test"
                if path.name.startswith("test_") or path.name == "conftest.py"
                else ("test_helper")
            )
        elif top == "bench":
            module, is_package, kind = None, False, "bench"
        elif top == "launch":
            module, is_package, kind = None, False, "launch"
        else:
            continue  # setup.py and other packaging files
        tree = ast.parse(path.read_text(), filename=str(path))
        source = SourceFile(path, package, module, kind)
        source.imports = list(_imports(tree, module, is_package))
        files.append(source)
    return files


def declared_dependencies(package_dir: Path) -> tuple[set[str], set[str]]:
    """(run-time, test-time) packages a package declares."""
    manifest = package_dir / "package.xml"
    if manifest.is_file():
        root = ET.parse(manifest).getroot()
        run = {e.text.strip() for tag in DEPEND_TAGS for e in root.iter(tag) if e.text}
        test = {e.text.strip() for e in root.iter("test_depend") if e.text}
        return run, run | test
    pyproject = package_dir / "pyproject.toml"
    if pyproject.is_file():
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("rlguard", {})
        run = set(table.get("depends", []))
        return run, run | set(table.get("test_depends", []))
    return set(), set()


def _resolve(name: str, modules: set[str]) -> str | None:
    """The workspace module an import name refers to (longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check_workspace(root: Path) -> tuple[list[Violation], dict[str, set[str]]]:
    """All violations in ``root``/src, and the package dependency graph of package code."""
    package_dirs = sorted(p for p in (root / "src").iterdir() if (p / p.name).is_dir())
    files = [f for d in package_dirs for f in scan_package(d)]
    modules = {f.module for f in files if f.module}
    helpers = {(f.path.stem, f.package) for f in files if f.kind == "test_helper"}
    helper_home = {stem: package for stem, package in helpers}
    declared = {d.name: declared_dependencies(d) for d in package_dirs}
    violations: list[Violation] = []
    module_graph: dict[str, set[str]] = {m: set() for m in modules}
    package_graph: dict[str, set[str]] = {d.name: set() for d in package_dirs}

    for source in files:
        where = str(source.path.relative_to(root))
        floor = module_floor(source.module) if source.module else None
        run_deps, test_deps = declared.get(source.package, (set(), set()))
        reported: set[tuple[str, str]] = set()
        for name, line in source.imports:
            top = name.split(".")[0]
            if floor in ROS_FREE_FLOORS and is_ros_import(name) and ("ros", top) not in reported:
                reported.add(("ros", top))
                violations.append(
                    Violation(where, line, "ros-free", f"{FLOOR_NAMES[floor]} module imports {top}")
                )
            if source.kind.startswith("test") and top in helper_home:
                home = helper_home[top]
                if home != source.package and ("helper", top) not in reported:
                    reported.add(("helper", top))
                    violations.append(
                        Violation(where, line, "test-helper", f"imports {home}'s test helper {top}")
                    )
            target = _resolve(name, modules)
            if target is None:
                continue
            target_package = target.split(".")[0]
            if target_package != source.package:
                needed = test_deps if source.kind.startswith("test") else run_deps
                if (
                    source.kind != "bench"
                    and target_package not in needed
                    and ("dep", target_package) not in reported
                ):
                    reported.add(("dep", target_package))
                    violations.append(
                        Violation(
                            where, line, "undeclared", f"imports {target_package}, not declared"
                        )
                    )
                if source.kind == "module":
                    package_graph[source.package].add(target_package)
            if source.module is None:
                continue
            target_floor = module_floor(target)
            if (
                floor is not None
                and target_floor is not None
                and target_floor > floor
                and ("up", target) not in reported
            ):
                reported.add(("up", target))
                violations.append(
                    Violation(
                        where,
                        line,
                        "upward",
                        f"{FLOOR_NAMES[floor]} module {source.module} imports "
                        f"{FLOOR_NAMES[target_floor]} module {target}",
                    )
                )
            if target != source.module:
                module_graph[source.module].add(target)

    for cycle in _cycles(module_graph):
        violations.append(Violation("src", 0, "loop", "module import loop: " + " <-> ".join(cycle)))
    for cycle in _cycles(package_graph):
        violations.append(
            Violation("src", 0, "loop", "package import loop: " + " <-> ".join(cycle))
        )
    return violations, package_graph


def _format_graph(graph: dict[str, set[str]]) -> Iterable[str]:
    for package in sorted(graph, key=lambda p: (PACKAGE_FLOORS.get(p, 0), p)):
        floor = FLOOR_NAMES.get(PACKAGE_FLOORS.get(package, 0), "?")
        yield f"{package} ({floor}) -> {', '.join(sorted(graph[package])) or '-'}"


def main(argv: list[str] | None = None) -> int:
    """Print every violation; exit 1 when there is one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="workspace root")
    parser.add_argument("--graph", action="store_true", help="print the package graph")
    args = parser.parse_args(argv)
    violations, graph = check_workspace(args.root)
    if args.graph:
        print("\n".join(_format_graph(graph)))
    for violation in violations:
        print(violation)
    if violations:
        print(f"floor check: {len(violations)} violation(s)")
        return 1
    print(f"floor check: {sum(len(v) for v in graph.values())} package dependencies, all downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
