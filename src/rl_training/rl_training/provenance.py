"""Where a training run or an exported policy came from: the workspace's git revision."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rlguard_common.profile_yaml import workspace_root


def git_revision(root: Path | None = None) -> str:
    """The workspace's git commit (with "-dirty" when the tree has changes), or "unknown"."""
    root = root or workspace_root()
    if root is None:
        return "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")
