"""Training, export and evaluation of rlguard navigation policies (no rclpy).

The package imports the cores of the colcon packages (`rl_policy_node`, `sim_bringup`,
`safety_controller`, `hybrid_fallback`). In a sourced colcon install they are importable
already; in a plain source checkout their `src/<pkg>` directories are put on `sys.path`
here, so `rl_training` (and its vectorized worker processes) work without a build.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

CORE_PACKAGES = ("rl_policy_node", "sim_bringup", "safety_controller", "hybrid_fallback")


def workspace_root() -> Path:
    """The rlguard workspace: $RLGUARD_WORKSPACE, else the checkout this package lives in."""
    explicit = os.environ.get("RLGUARD_WORKSPACE")
    if explicit and (Path(explicit) / "src").is_dir():
        return Path(explicit)
    return Path(__file__).resolve().parents[3]


def _add_core_packages() -> None:
    src = workspace_root() / "src"
    for name in CORE_PACKAGES:
        package_dir = src / name
        if importlib.util.find_spec(name) is None and package_dir.is_dir():
            sys.path.append(str(package_dir))


_add_core_packages()
