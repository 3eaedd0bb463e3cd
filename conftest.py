"""Workspace-wide pytest set-up: DDS isolation and node-process fixtures.

Every test process gets its own ROS_DOMAIN_ID and keeps discovery on loopback, set
before anything imports rclpy, so concurrent test runs on one machine never see each
other's topics. Packages are importable from `src/` without sourcing the colcon
install (pyproject.toml's pytest `pythonpath`), and node processes started by tests inherit
the same environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

WORKSPACE_ROOT = Path(__file__).resolve().parent
PACKAGE_DIRS = sorted(p for p in (WORKSPACE_ROOT / "src").iterdir() if p.is_dir())


def _test_domain_id() -> int:
    """A DDS domain for this test process: RLGUARD_TEST_DOMAIN_ID, else derived from the pid."""
    explicit = os.environ.get("RLGUARD_TEST_DOMAIN_ID")
    if explicit:
        return int(explicit)
    # Domains 1..100 keep the DDS port numbers valid on Linux.
    return 1 + os.getpid() % 100


os.environ["ROS_DOMAIN_ID"] = str(_test_domain_id())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ["RLGUARD_WORKSPACE"] = str(WORKSPACE_ROOT)

# Node processes started by tests import the packages from the source tree too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(p) for p in PACKAGE_DIRS]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)

from rlguard_tools.process_runner import NodeProcess, NodeSpec  # noqa: E402


@pytest.fixture(scope="session")
def workspace_root() -> Path:
    """The workspace root (holds src/, config/, models/)."""
    return WORKSPACE_ROOT


@pytest.fixture
def ros_env() -> dict[str, str]:
    """The environment node processes of this test run in (own domain, loopback only)."""
    return dict(os.environ)


@pytest.fixture
def start_node(tmp_path: Path, ros_env: dict[str, str]) -> Iterator[Callable[..., NodeProcess]]:
    """Start nodes as separate processes; all are stopped when the test ends.

    Usage: ``proc = start_node("safety_controller.safety_node", parameters={...})``.
    On test failure the node logs are printed to help debugging.
    """
    started: list[NodeProcess] = []

    def _start(module: str, **spec_kwargs: object) -> NodeProcess:
        process = NodeProcess(NodeSpec(module=module, **spec_kwargs), env=ros_env, log_dir=tmp_path)
        started.append(process.start())
        return process

    yield _start
    for process in started:
        process.stop(timeout=3.0)
    for process in started:
        sys.stdout.write(f"\n--- log of {process.spec.module} ({process.log_path}) ---\n")
        sys.stdout.write(process.output()[-4000:])


@pytest.fixture
def rclpy_context() -> Iterator[object]:
    """An initialised rclpy context for a test's own probe node; shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()
