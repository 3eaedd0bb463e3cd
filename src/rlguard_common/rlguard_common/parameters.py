"""Node parameters as plain data, and the node YAML they are read from (no rclpy).

A package's core declares its node's parameters as a table of `ParameterSpec`; the node
declares them from that table (`rlguard_common.node_support.declare_parameters`) and the
ROS-free users (evaluation, the campaign, training) read the same YAML file the node gets
(``config/<node>.yaml``, keyed ``<node_name>: ros__parameters:``) with
`load_node_parameters`, so every user builds the core from one set of values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter: default, description, optional numeric range, read-only flag.

    ``bounds`` is an inclusive (low, high) range of a scalar number; an integer default
    makes it an integer range.
    """

    default: Any
    description: str
    bounds: tuple[float, float] | None = None
    read_only: bool = False

    def out_of_bounds(self, name: str, value: Any) -> str | None:
        """Why ``value`` lies outside ``bounds``, or None when it is inside (or unbounded)."""
        if self.bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        low, high = self.bounds
        if not low <= value <= high:
            return f"{name} must be in [{low}, {high}], got {value}"
        return None

    def checked(self, name: str, value: Any) -> Any:
        """``value`` as this parameter's type (a bool, an integer, a finite float within
        ``bounds``); raises ValueError naming ``name`` with the reason it is refused.
        Other types (strings, lists) are returned as they are."""
        default = self.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            return value
        if not isinstance(default, int | float):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if isinstance(default, int) and not float(value).is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        problem = self.out_of_bounds(name, value)
        if problem:
            raise ValueError(problem)
        return int(value) if isinstance(default, int) else float(value)


def parameter_defaults(specs: Mapping[str, ParameterSpec]) -> dict[str, Any]:
    """The default value of every parameter of a table."""
    return {name: spec.default for name, spec in specs.items()}


def load_node_parameters(
    path: str | Path, node_name: str, specs: Mapping[str, ParameterSpec] | None = None
) -> dict[str, Any]:
    """The ``<node_name>: ros__parameters:`` mapping of a node YAML file.

    With ``specs``, the values are laid over the table's defaults and an unknown name is
    refused (the node would refuse it too). Raises ValueError naming the file and the reason.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read node parameters ({exc})") from exc
    try:
        values = data[node_name]["ros__parameters"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no '{node_name}: ros__parameters:' mapping") from exc
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: '{node_name}: ros__parameters:' is not a mapping")
    if specs is None:
        return dict(values)
    unknown = sorted(set(values) - set(specs) - {"use_sim_time"})
    if unknown:
        raise ValueError(f"{path}: unknown {node_name} parameter(s): {', '.join(unknown)}")
    return {**parameter_defaults(specs), **values}
