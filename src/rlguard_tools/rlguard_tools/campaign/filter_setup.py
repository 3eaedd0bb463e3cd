"""How the campaign sets up the safety filter: the node's YAML and builder, the base model.

The filter is configured from config/safety_controller.yaml plus the robot-profile
overrides (rlguard_common.robot_parameters) by the node's own builder
(`safety_controller.node_config.build_safety_config`); `FilterLike` is the part of the
filter the campaign drives, so a broken stand-in can be swapped in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rlguard_common.profile_yaml import workspace_root
from rlguard_common.robot_parameters import robot_parameter_overrides
from rlguard_common.robot_profile import RobotProfile, load_robot_profile
from safety_controller.node_config import build_safety_config, load_parameters
from safety_controller.safety_filter import FilterOutput, SafetyConfig
from safety_controller.scan_geometry import LidarMount, ScanPoints


def safety_config_path() -> Path:
    """config/safety_controller.yaml of the workspace, else the installed share copy."""
    candidates = []
    root = workspace_root()
    if root is not None:
        candidates.append(root / "config" / "safety_controller.yaml")
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("safety_controller"))
        candidates.append(share / "config" / "safety_controller.yaml")
    except (ImportError, LookupError, ValueError, OSError):
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"safety_controller.yaml not found (searched {candidates})")


def robot_profile(name: str) -> RobotProfile:
    """The robot profile of a class (a name in config/robots)."""
    return load_robot_profile(name)


def safety_parameters(
    robot: str | RobotProfile = "default", path: Path | None = None
) -> dict[str, Any]:
    """The node's parameters: the YAML over the defaults, the robot-profile overrides on top."""
    values = load_parameters(path or safety_config_path())
    profile = robot if isinstance(robot, RobotProfile) else robot_profile(robot)
    values.update(robot_parameter_overrides(profile)["safety_controller"])
    return values


def build_config(values: dict[str, Any]) -> tuple[SafetyConfig, LidarMount]:
    """SafetyConfig and lidar mount from parameter values: the node's own builder."""
    return build_safety_config(values)


def base_horizon(values: dict[str, Any]) -> float:
    """How long the modelled base executes a command without a newer one (s).

    The base's command watchdog the node is told about (`base_command_timeout`, whose
    default equals `reaction_time`); `reaction_time` when the parameter is not there.
    """
    return float(values.get("base_command_timeout", values["reaction_time"]))


class FilterLike(Protocol):
    """The part of SafetyFilter the campaign drives (so a broken filter can be swapped in).

    `reject_scan(now, reason)` is used when the filter has it (see `feed_scan`).
    """

    def set_command(self, linear: float, angular: float, now: float) -> bool: ...  # noqa: D102
    def set_scan(  # noqa: D102
        self, scan: ScanPoints, now: float, stamp: float | None = None
    ) -> None: ...
    def set_odometry(self, linear: float, angular: float, now: float) -> bool: ...  # noqa: D102
    def step(self, now: float) -> FilterOutput: ...  # noqa: D102


FilterFactory = Callable[[SafetyConfig], FilterLike]
