"""The safety filter and the DWA fallback configured as the stack deploys them (no rclpy).

Each core is built by its package's own function from the YAML its node is launched with
(`config/<node>.yaml` of the workspace, found through
`rlguard_common.profile_yaml.workspace_root`), with the robot profile's overrides on top
(`rlguard_common.robot_parameters.robot_parameter_overrides`), as the launch files do:

- the safety filter: `safety_controller.node_config.build_safety_config`;
- the fallback (DWA guided by its navigation grid):
  `hybrid_fallback.hybrid_config.build_hybrid_config` and `fallback_controller`.

Only the velocity limits are the policy card's action range (policy, filter and baseline
then share one velocity range), and the DWA's control period is the env's control step
(the period it is called at). `deployed_navigation` gives the fallback's navigation grid
and guidance for a robot (what a grid-waypoint policy card records).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from hybrid_fallback import hybrid_config
from hybrid_fallback.fallback import GuidanceConfig
from hybrid_fallback.nav_grid import NavGridConfig
from rl_policy_node.policy_card import ActionSpec, PolicyCard
from rlguard_common.parameters import ParameterSpec, load_node_parameters
from rlguard_common.profile_yaml import workspace_root
from rlguard_common.robot_parameters import robot_parameter_overrides
from rlguard_common.robot_profile import RobotProfile
from safety_controller.node_config import build_safety_config
from safety_controller.safety_filter import SafetyConfig

SAFETY_NODE = "safety_controller"


class DeployedEnv(Protocol):
    """What the deployed configs read of an env (rl_training.nav_env.NavEnv, which builds
    its card from `deployed_navigation`, so this module cannot import it)."""

    robot: RobotProfile
    card: PolicyCard
    dt: float


def node_yaml(node_name: str) -> Path:
    """The workspace's config/<node_name>.yaml, the file the stack launches the node with."""
    root = workspace_root()
    if root is None:
        raise FileNotFoundError(
            f"no workspace config/ directory for {node_name}.yaml (set RLGUARD_WORKSPACE)"
        )
    return root / "config" / f"{node_name}.yaml"


def node_parameters(
    node_name: str,
    robot: RobotProfile,
    path: str | Path | None = None,
    specs: Mapping[str, ParameterSpec] | None = None,
) -> dict[str, Any]:
    """A node's parameters: its YAML (`path`, default the workspace's) with the robot
    profile's overrides on top, as the stack launches it (`specs`: lay them over the
    table's defaults and refuse unknown names)."""
    source = Path(path) if path is not None else node_yaml(node_name)
    values = load_node_parameters(source, node_name, specs)
    values.update(robot_parameter_overrides(robot)[node_name])
    return values


def card_speeds(action: ActionSpec) -> tuple[float, float]:
    """(top linear speed, top angular speed) of a policy card's action range."""
    return max(abs(v) for v in action.linear), max(abs(w) for w in action.angular)


def safety_parameters(robot: RobotProfile, path: str | Path | None = None) -> dict[str, Any]:
    """The safety node's parameters for `robot` (YAML `path`, default the workspace's)."""
    return node_parameters(SAFETY_NODE, robot, path)


def deployed_safety_config(env: DeployedEnv, path: str | Path | None = None) -> SafetyConfig:
    """The filter config the deployed safety node builds, with the card's velocity limits."""
    values = safety_parameters(env.robot, path)
    top_v, top_w = card_speeds(env.card.action)
    values["max_velocity"] = [top_v, top_w]
    values["min_velocity"] = [-top_v, -top_w]
    return build_safety_config(values)[0]


def hybrid_parameters(robot: RobotProfile, path: str | Path | None = None) -> dict[str, Any]:
    """The hybrid fallback node's parameters for `robot` (YAML `path`, default the
    workspace's), over its table's defaults."""
    return node_parameters(hybrid_config.NODE_NAME, robot, path, hybrid_config.PARAMETERS)


def deployed_hybrid_config(
    env: DeployedEnv,
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> hybrid_config.HybridConfig:
    """The hybrid fallback's config as deployed, in the card's velocity range at the env's
    control rate; `overrides` (parameter name -> value) go on top (e.g. the imitation
    expert's own safety_margin)."""
    values = hybrid_parameters(env.robot, path)
    action = env.card.action
    _, top_w = card_speeds(action)
    values["max_velocity"] = [max(action.linear), top_w]
    values["min_velocity"] = [max(min(action.linear), 0.0), -top_w]  # the policy never reverses
    values["control_rate_hz"] = 1.0 / env.dt
    values.update(overrides or {})
    return hybrid_config.build_hybrid_config(values)


def deployed_navigation(
    robot: RobotProfile, path: str | Path | None = None
) -> tuple[NavGridConfig, GuidanceConfig]:
    """The navigation grid and its guidance (lookahead, replan period) the deployed hybrid
    fallback runs with for `robot` (YAML `path`, default the workspace's); neither depends
    on the velocity limits or the control rate."""
    config = hybrid_config.build_hybrid_config(hybrid_parameters(robot, path))
    return config.grid, config.guidance
