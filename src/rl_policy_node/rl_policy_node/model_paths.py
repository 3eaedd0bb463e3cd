"""Where the policy node looks for model files (no ROS).

A relative ``model_path`` resolves against one models directory, chosen from the
``models_dir`` parameter, the environment and the installed package share.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def default_share_models_dir() -> Path | None:
    """`<share of rl_policy_node>/models` when the package is installed, else None."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("rl_policy_node")) / "models"
    except Exception:  # not installed, or ament_index_python missing
        return None


def models_directory(
    models_dir_parameter: str,
    environ: dict[str, str] | os._Environ[str] = os.environ,
    share_models_dir: Callable[[], Path | None] = default_share_models_dir,
) -> Path:
    """Where relative model paths point: parameter, RLGUARD_MODELS_DIR, installed share,
    ``$RLGUARD_WORKSPACE/models``, else ``./models``."""
    if models_dir_parameter:
        return Path(models_dir_parameter).expanduser()
    if environ.get("RLGUARD_MODELS_DIR"):
        return Path(environ["RLGUARD_MODELS_DIR"]).expanduser()
    share = share_models_dir()
    if share is not None:
        return share
    if environ.get("RLGUARD_WORKSPACE"):
        return Path(environ["RLGUARD_WORKSPACE"]) / "models"
    return Path("models")


def resolve_model_path(path: str, models_dir: Path) -> Path:
    """An absolute (or ~) path as is; a relative one under `models_dir`."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else models_dir / candidate
