"""Where robot profiles and world files are found, and the checked YAML reader (no rclpy).

One description drives both simulators: the embedded MuJoCo core (`sim_core`) and the
generated Gazebo Harmonic files (`gazebo_gen`). Every field is checked at load time; a
missing or wrong field raises `ProfileError` naming the file, the field and the reason.

Names resolve as: ``load_robot_profile("default")`` -> ``config/robots/default.yaml`` under
the workspace root (or the installed ``share/sim_bringup/config/robots``), and
``load_world("warehouse")`` -> ``worlds/warehouse.yaml`` of the sim_bringup package, which
ships the world descriptions (its source tree, or its installed share directory; a data
lookup by package name, not an import). Anything containing a path separator or ending in
``.yaml`` is a path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

DATA_PACKAGE = "sim_bringup"
# src/sim_bringup/worlds in the source tree (symlink installs resolve to it).
WORLDS_DIR = Path(__file__).resolve().parents[2] / DATA_PACKAGE / "worlds"


class ProfileError(ValueError):
    """A robot profile or world file is missing, unreadable or has a wrong field."""

    def __init__(self, file: str | Path, field_name: str, reason: str) -> None:
        self.file = str(file)
        self.field = field_name
        self.reason = reason
        super().__init__(f"{self.file}: field '{field_name}': {reason}")


# --------------------------------------------------------------------------- validation


class ProfileReader:
    """Typed access to a YAML mapping that reports errors with file and dotted field path."""

    def __init__(self, file: str | Path, data: Any, prefix: str = "") -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise ProfileError(file, prefix or "<root>", "expected a mapping")
        self.data = data

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, reason: str) -> ProfileError:
        """A `ProfileError` for ``key`` of this mapping."""
        return ProfileError(self.file, self._name(key), reason)

    def raw(self, key: str, default: Any = ...) -> Any:
        """The unchecked value of ``key`` (``default`` when absent; required without one)."""
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        return self.data[key]

    def number(
        self,
        key: str,
        default: Any = ...,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        """A finite number field (within the given bounds)."""
        value = self.raw(key, default)
        return self.check_number(key, value, minimum, maximum, positive)

    def check_number(
        self,
        key: str,
        value: Any,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        """Check ``value`` as the number field ``key`` and return it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise self.error(key, f"must be finite, got {number}")
        if positive and number <= 0.0:
            raise self.error(key, f"must be > 0, got {number}")
        if minimum is not None and number < minimum:
            raise self.error(key, f"must be >= {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise self.error(key, f"must be <= {maximum}, got {number}")
        return number

    def integer(self, key: str, minimum: int = 1) -> int:
        """An integer field of at least ``minimum``."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def string(self, key: str, default: Any = ...) -> str:
        """A string field."""
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def pair(self, key: str, value: Any = ..., positive: bool = False) -> tuple[float, float]:
        """An [a, b] pair of finite numbers (both > 0 with ``positive``)."""
        if value is ...:
            value = self.raw(key)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise self.error(key, f"expected a list of 2 numbers, got {value!r}")
        first = self.check_number(key, value[0], positive=positive)
        second = self.check_number(key, value[1], positive=positive)
        return (first, second)

    def range(self, key: str, minimum: float | None = None) -> tuple[float, float]:
        """A [low, high] range with low <= high (and low >= ``minimum``)."""
        low, high = self.pair(key)
        if minimum is not None and low < minimum:
            raise self.error(key, f"lower bound must be >= {minimum}, got {low}")
        if low > high:
            raise self.error(key, f"lower bound {low} is above upper bound {high}")
        return (low, high)

    def sub(self, key: str) -> ProfileReader:
        """A reader of the nested mapping ``key``."""
        return ProfileReader(self.file, self.raw(key), self._name(key))

    def items(self, key: str) -> list[ProfileReader]:
        """Readers of the mappings in the list ``key``."""
        value = self.raw(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {type(value).__name__}")
        return [
            ProfileReader(self.file, item, f"{self._name(key)}[{i}]")
            for i, item in enumerate(value)
        ]

    def point_list(self, key: str, min_count: int) -> tuple[tuple[float, float], ...]:
        """A list of at least ``min_count`` [x, y] points."""
        value = self.raw(key)
        if not isinstance(value, list) or len(value) < min_count:
            raise self.error(key, f"expected a list of at least {min_count} [x, y] points")
        return tuple(self.pair(f"{key}[{i}]", point) for i, point in enumerate(value))


def read_profile_yaml(path: Path) -> Any:
    """The parsed YAML of a profile file; `ProfileError` when unreadable or invalid."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(path, "<file>", f"cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(path, "<file>", f"invalid YAML: {exc}") from exc


# --------------------------------------------------------------------------- resolution


def workspace_root() -> Path | None:
    """The workspace root: $RLGUARD_WORKSPACE, else the source tree this file lives in."""
    explicit = os.environ.get("RLGUARD_WORKSPACE")
    if explicit and (Path(explicit) / "config" / "robots").is_dir():
        return Path(explicit)
    for parent in Path(__file__).resolve().parents:
        if (parent / "config" / "robots").is_dir() and (parent / "src").is_dir():
            return parent
    return None


def data_share_dir() -> Path | None:
    """The installed share directory of the data package, when ament_index has it."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_packagedata_share_directory,
        )
    except ImportError:
        return None
    try:
        return Path(get_packagedata_share_directory(DATA_PACKAGE))
    except (PackageNotFoundError, ValueError, LookupError, OSError):
        return None


def is_path(name: str | Path) -> bool:
    """Whether ``name`` is a file path rather than a profile or world name."""
    text = str(name)
    return isinstance(name, Path) or os.sep in text or "/" in text or text.endswith(".yaml")


def resolve_robot_path(path_or_name: str | Path) -> Path:
    """The file a robot profile name or path refers to (first existing candidate)."""
    if is_path(path_or_name):
        return Path(path_or_name)
    candidates = []
    root = workspace_root()
    if root is not None:
        candidates.append(root / "config" / "robots" / f"{path_or_name}.yaml")
    share = data_share_dir()
    if share is not None:
        candidates.append(share / "config" / "robots" / f"{path_or_name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates) or "no search directory found"
    raise ProfileError(f"{path_or_name}.yaml", "<file>", f"robot profile not found ({searched})")


def resolve_world_path(path_or_name: str | Path) -> Path:
    """The file a world name or path refers to (first existing candidate)."""
    if is_path(path_or_name):
        return Path(path_or_name)
    candidates = [WORLDS_DIR / f"{path_or_name}.yaml"]
    share = data_share_dir()
    if share is not None:
        candidates.append(share / "worlds" / f"{path_or_name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise ProfileError(f"{path_or_name}.yaml", "<file>", f"world not found ({searched})")


def world_names() -> list[str]:
    """Names of the worlds shipped with this package."""
    return sorted(p.stem for p in WORLDS_DIR.glob("*.yaml"))
